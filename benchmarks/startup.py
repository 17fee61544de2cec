"""CLI start-up time: wall time of `suanli --help`, `--version` and `chips list`, and which heavy
modules each one imports. Prints figures; no assertion (speed goals live here, not in tests).

    .venv/bin/python benchmarks/startup.py            # this checkout
    .venv/bin/python benchmarks/startup.py --src DIR  # another checkout's src/ (before/after)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (["--help"], ["--version"], ["chips", "list"], ["estimate", "train", "--help"])
HEAVY = ("numpy", "scipy", "plotly")
PROBE = (
    "import sys, runpy; sys.argv = ['suanli', *sys.argv[1:]]\n"
    "from suanli.cli import app\n"
    "try:\n    app()\n"
    "except SystemExit:\n    pass\n"
    "sys.stderr.write('HEAVY=' + ','.join(m for m in {heavy!r} if m in sys.modules) + '\\n')\n"
)


def run(src: Path, args: list[str], repeat: int) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(src), "COLUMNS": "100"}
    code = PROBE.format(heavy=HEAVY)
    times, heavy = [], ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                           text=True, check=False)
        times.append(time.perf_counter() - t0)
        heavy = next((ln[6:] for ln in p.stderr.splitlines() if ln.startswith("HEAVY=")), "?")
    return statistics.median(times), heavy or "none"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[1] / "src")
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    print(f"python {sys.version.split()[0]}, src {a.src}, median of {a.repeat} runs")
    for args in COMMANDS:
        t, heavy = run(a.src, args, a.repeat)
        print(f"  suanli {' '.join(args):<24} {t:6.3f} s   heavy modules imported: {heavy}")


if __name__ == "__main__":
    main()
