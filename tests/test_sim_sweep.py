"""Sweeps (`suanli simulate --sweep`): grid, confidence intervals, local processes and a real
single-node Ray cluster on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from needs import need, strict
from suanli.cli import app, main
from suanli.errors import SuanliError
from suanli.sim.sweep import (
    SWEEP_JITTER,
    RunConfig,
    SweepPoint,
    grid,
    parse_sweep,
    run_point,
    run_sweep,
    summarise,
)

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def test_parse_and_grid() -> None:
    axes = parse_sweep(["policy=fifo,max-min;load=1,5,10", "seed=1,2,3"])
    assert axes == {"policy": ["fifo", "max-min"], "load": [1.0, 5.0, 10.0], "seed": [1, 2, 3]}
    pts = grid(axes, SweepPoint(policy="srpt", scale_fleet=0.5, round=60.0), jitter_given=False)
    assert len(pts) == 18 and {p.scale_fleet for p in pts} == {0.5}
    assert {p.jitter for p in pts} == {SWEEP_JITTER}  # several seeds: arrivals vary
    assert grid({"seed": [1, 2]}, SweepPoint(policy="fifo"), jitter_given=True)[0].jitter == 0
    assert grid({"seed": [1]}, SweepPoint(policy="fifo"), jitter_given=False)[0].jitter == 0
    assert parse_sweep(["scale-fleet=0.5;round=60"]) == {"scale_fleet": [0.5], "round": [60.0]}


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("policy=fifo,bogus", "unknown policy 'bogus'"),
        ("speed=1,2", "unknown axis 'speed'"),
        ("load=1,x", "axis load: 'x' is not a number"),
        ("load=0", "axis load: must be > 0"),
        ("seed=1.5", "axis seed: '1.5' is not a whole number"),
        ("seed=1;seed=2", "axis seed given twice"),
        ("load=1,1", "axis load repeats a value"),
        ("jitter=2", "axis jitter: must be in [0, 1]"),
        ("load=nan", "not a finite number"),
        ("policy", "expected AXIS=V1,V2"),
        (";", "no axes"),
    ],
)
def test_bad_sweeps_are_one_line_errors(spec: str, match: str) -> None:
    with pytest.raises(SuanliError, match=match.replace("[", r"\[").replace("]", r"\]")):
        parse_sweep([spec])


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet="policyloadseedjtr=,;.-_0123456789 fimnx", max_size=40))
def test_any_sweep_text_parses_or_is_a_suanli_error(text: str) -> None:
    try:
        axes = parse_sweep([text])
    except SuanliError as exc:
        assert exc.field == "sweep" and "\n" not in exc.render()
    else:
        assert axes and all(vals for vals in axes.values())


def test_confidence_interval_student_t() -> None:
    rows = [{"policy": "fifo", "load": 1.0, "scale_fleet": 1.0, "round": 360.0, "jitter": 0.2,
             "seed": s, "jct_mean_s": v, "jct_p99_s": v, "wait_mean_s": 0.0, "makespan_s": v,
             "utilisation": 0.5, "energy_kwh": None, "preemptions_per_job": 0.0,
             "completed": 10} for s, v in ((1, 1.0), (2, 2.0), (3, 3.0))]
    (s,) = summarise(rows)
    assert s["seeds"] == [1, 2, 3]
    assert s["jct_mean_s"]["mean"] == pytest.approx(2.0)
    # t(0.975, 2) = 4.3027; sd = 1; n = 3
    assert s["jct_mean_s"]["ci95"] == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert s["utilisation"]["ci95"] == 0.0 and s["energy_kwh"]["mean"] is None
    (one,) = summarise(rows[:1])
    assert one["jct_mean_s"]["ci95"] is None  # one seed: no interval


def test_seed_changes_something_real() -> None:
    """On the demo trace (fixed jobs) the seed acts through arrival jitter; on a Philly-like
    trace also through the workload rule; with jitter 0 on fixed jobs it changes nothing."""
    cfg = RunConfig(max_jobs=80)
    a, b = (run_point(cfg, SweepPoint(policy="fifo", seed=s, scale_fleet=0.02, load=20.0,
                                      jitter=0.5)) for s in (1, 2))
    assert a["jct_mean_s"] != b["jct_mean_s"]
    c, d = (run_point(cfg, SweepPoint(policy="fifo", seed=s, scale_fleet=0.02, load=20.0))
            for s in (1, 2))
    assert c["jct_mean_s"] == d["jct_mean_s"]


def test_sweep_in_local_processes_matches_one_process(tmp_path: Path) -> None:
    """Four points on two worker processes: the same figures as in this process, returned in
    grid order, and an HTML report with the plots."""
    html = tmp_path / "sweep.html"
    r = runner.invoke(app, ["simulate", "--max-jobs", "60", "--scale-fleet", "0.03", "--sweep",
                            "policy=fifo,srpt;seed=1,2", "--jobs", "2", "--json",
                            "--html", str(html)])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    pts = data["points"]
    assert [(p["policy"], p["seed"]) for p in pts] == [("fifo", 1), ("fifo", 2), ("srpt", 1),
                                                       ("srpt", 2)]
    assert len({p["worker_pid"] for p in pts}) == 2 and os.getpid() not in {
        p["worker_pid"] for p in pts}
    here = run_sweep(RunConfig(max_jobs=60),
                     [SweepPoint(policy=p["policy"], seed=p["seed"], scale_fleet=0.03,
                                 jitter=SWEEP_JITTER) for p in pts], jobs=1)
    for p, q in zip(pts, here, strict=True):
        for k in ("jct_mean_s", "jct_p99_s", "utilisation", "completed", "events"):
            assert p[k] == q[k], k
    assert [s["policy"] for s in data["summary"]] == ["fifo", "srpt"]
    assert all(s["seeds"] == [1, 2] for s in data["summary"])
    assert any("jitter 0.2" in n for n in data["notes"])
    text = html.read_text()
    assert "Sweep comparison" in text and "plotly" in text and "95 % CI" in text


def test_sweep_table_and_csv() -> None:
    args = ["simulate", "--max-jobs", "40", "--sweep", "policy=fifo,las", "--jobs", "1"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "mean JCT h" in r.stdout and "las" in r.stdout and "seeds" in r.stdout
    r = runner.invoke(app, [*args, "--format", "csv"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("policy,load,scale_fleet,round,jitter,seeds,jct_mean_s_mean")
    assert len(lines) == 3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--jobs", "2"], "error: --jobs: only with --sweep"),
        (["--ray", "127.0.0.1:9"], "error: --ray: only with --sweep"),
        (["--sweep", "speed=1"], "error: --sweep: unknown axis 'speed'"),
        (["--sweep", "policy=fifo", "--ray", "127.0.0.1:9"],
         "error: --ray: cannot connect to the Ray cluster at '127.0.0.1:9'"),
    ],
)
def test_sweep_option_errors(args: list[str], needle: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--max-jobs", "5", *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and needle in err and "Traceback" not in err


# ----------------------------------------------------------------------- real Ray
def _ray_installed() -> bool:
    # find_spec, not import: Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when first imported,
    # and the sweep sets it (for a loopback head) just before its own first import
    if importlib.util.find_spec("ray") is None:
        return False
    return shutil.which("ray", path=str(ROOT / ".venv" / "bin")) is not None or bool(
        shutil.which("ray"))


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The GCS address of a single-node Ray head on 127.0.0.1: the CI's
    (.ci/setup.d/30-ray.sh exports SUANLI_RAY_GCS), else one started here and stopped after
    (its own process group, never `ray stop`)."""
    given_addr = os.environ.get("SUANLI_RAY_GCS")
    if given_addr:
        yield given_addr
        return
    need(_ray_installed() and not strict(),
         "Ray (pip install 'suanli[ray]'; in CI .ci/setup.d/30-ray.sh sets SUANLI_RAY_GCS)")
    d = tmp_path_factory.mktemp("ray")
    port = int(os.environ.get("SUANLI_TEST_RAY_PORT", "26580"))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    ray_bin = shutil.which("ray", path=str(ROOT / ".venv" / "bin")) or shutil.which("ray")
    assert ray_bin
    log = (d / "start.log").open("w")  # not a pipe: the daemons Ray starts would hold it open
    proc = subprocess.run(
        ["setsid", "bash", "-c", 'echo $$ >"$0/pgid"; exec "$@"', str(d), ray_bin, "start",
         "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
         "--include-dashboard=false", f"--ray-client-server-port={port + 2}",
         f"--dashboard-agent-listen-port={port + 3}", f"--min-worker-port={port + 20}",
         f"--max-worker-port={port + 119}", "--num-cpus=2", "--object-store-memory=200000000",
         "--disable-usage-stats", f"--temp-dir={d / 'tmp'}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=120)
    log.close()
    pgid = int((d / "pgid").read_text())
    try:
        assert proc.returncode == 0, (d / "start.log").read_text()[-2000:]
        yield f"127.0.0.1:{port}"
    finally:
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 0.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            time.sleep(wait)


def test_sweep_on_a_real_ray_cluster(ray_head: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    consts = sys.modules.get("ray._private.ray_constants")
    if consts is not None:  # another test imported Ray before the variable was set
        monkeypatch.setattr(consts, "ENABLE_RAY_CLUSTER", False)
    r = runner.invoke(app, ["simulate", "--max-jobs", "50", "--scale-fleet", "0.03", "--sweep",
                            "policy=fifo,srpt;seed=1,2", "--ray", ray_head, "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert f"Ray at {ray_head}" in data["title"]
    pts = data["points"]
    assert len(pts) == 4 and os.getpid() not in {p["worker_pid"] for p in pts}
    here = run_sweep(RunConfig(max_jobs=50),
                     [SweepPoint(policy=p["policy"], seed=p["seed"], scale_fleet=0.03,
                                 jitter=SWEEP_JITTER) for p in pts], jobs=1)
    assert [p["jct_mean_s"] for p in pts] == [q["jct_mean_s"] for q in here]
