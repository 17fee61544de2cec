"""Run every benchmark script in this folder (``make bench``) and print their figures.

Benchmarks are not tests: they print measurements (evaluations/s, wall time, memory) and the
targets they are compared against. Each ``bench_*.py`` runs as its own process so that one
benchmark's memory and caches do not colour another's.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    names = argv or sorted(p.name for p in HERE.glob("bench_*.py"))
    failed = 0
    for name in names:
        path = HERE / name
        print(f"=== {name}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(path)], cwd=HERE.parent)
        print(f"=== {name}: exit {rc}, {time.perf_counter() - t0:.1f} s\n", flush=True)
        failed += rc != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
