"""Regression: `suanli simulate --json` gives the same per-policy figures as the recorded runs.

The files in ``tests/data/sim_golden/`` were written by the simulator *before* ``run_simulation``
was split into event loop, simulated executor and accounting (issue 8 §3), so this test holds the
refactor to identical results. Figures that depend on the machine (wall time, events/s, LP
seconds) and the wording of notes are left out; every figure must match to 1e-9 relative.

A deliberate change of scheduling behaviour changes these figures: regenerate with
``python tests/test_sim_golden.py --write`` and say why in the commit message.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from needs import data_file
from suanli.cli import app

GOLDEN = Path(__file__).parent / "data" / "sim_golden"
VOLATILE = {"wall_s", "events_per_s", "lp_seconds", "notes"}


def _head(name: str, lines: int, dst: Path) -> Path:
    with data_file(name).open() as fh:
        dst.write_text("".join(itertools.islice(fh, lines)))
    return dst


def _cases(tmp: Path) -> dict[str, list[str]]:
    philly = _head("philly_head.csv", 401, tmp / "philly.csv")
    pods_dir = tmp / "ali"
    pods_dir.mkdir(exist_ok=True)
    pods = _head("alibaba_pods_gpuspec33_head.csv", 300, pods_dir / "pods.csv")
    (pods_dir / "x_node_list_gpu_node.csv").write_text(
        data_file("alibaba_node_list_gpu_node.csv").read_text())
    return {
        "demo": ["--max-jobs", "150", "--scale-fleet", "0.05", "--load", "3", "--policy", "fifo",
                 "--compare", "srpt", "--compare", "las", "--compare", "max-min", "--compare",
                 "max-min-agnostic", "--compare", "ftf", "--compare", "min-cost",
                 "--compare", "balanced"],
        "demo_quota": ["--max-jobs", "120", "--policy", "fifo", "--compare", "max-min",
                       "--quota", "research=8", "--weight", "production=2"],
        "synthetic_load5": ["--trace-format", "synthetic", "--max-jobs", "120", "--seed", "3",
                            "--load", "5", "--policy", "fifo", "--compare", "srpt",
                            "--compare", "max-min"],
        "philly": ["--trace", str(philly), "--scale-fleet", "0.005", "--load", "50", "--policy",
                   "fifo", "--compare", "srpt", "--compare", "max-min", "--compare", "ftf",
                   "--compare", "las"],
        "demo_light": ["--max-jobs", "150", "--policy", "fifo", "--compare", "max-min",
                       "--compare", "max-min-agnostic", "--compare", "min-cost"],
        "alibaba": ["--trace", str(pods), "--policy", "fifo", "--compare", "max-min-agnostic",
                    "--compare", "min-energy"],
        "gavel_measured": ["--trace", str(data_file("gavel_300jobs.trace")), "--throughputs",
                           str(data_file("gavel_throughputs_solo.json")), "--max-jobs", "80",
                           "--load", "3", "--policy", "fifo", "--compare", "max-min",
                           "--compare", "max-min-agnostic"],
    }


def _strip(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in VOLATILE}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def _run(args: list[str]) -> dict[str, Any]:
    r = CliRunner().invoke(app, ["simulate", "--json", *args])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    return _strip({"jobs": data["jobs"], "accelerators": data["accelerators"],
                   "pools": data["pools"], "notes": data["notes"], "results": data["results"]})


def _close(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{path}: keys differ: {sorted(a.keys() ^ b.keys())}"
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-9), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.mark.parametrize("case", ["demo", "demo_quota", "synthetic_load5", "philly", "alibaba",
                                  "gavel_measured", "demo_light"])
def test_simulate_matches_recorded_figures(case: str, tmp_path: Path) -> None:
    want = _strip(json.loads((GOLDEN / f"{case}.json").read_text()))
    got = _run(_cases(tmp_path)[case])
    _close(got, want, case)


if __name__ == "__main__" and "--write" in sys.argv:
    import tempfile

    GOLDEN.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        for name, args in _cases(Path(d)).items():
            out = GOLDEN / f"{name}.json"
            out.write_text(json.dumps(_run(args), indent=1, sort_keys=True) + "\n")
            print(f"wrote {out}")
