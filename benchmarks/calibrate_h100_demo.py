"""Calibration demo (prints figures, not a test): fit H100 factors on half of the H100 rows of
../shared/data/validation/nemo_megatron_pretraining.csv (alternate rows) and predict the other
half, before and after. Usage: python benchmarks/calibrate_h100_demo.py [--no-loo]"""

from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path

from suanli.cli import main

SRC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "validation" / \
    "nemo_megatron_pretraining.csv"


def run() -> int:
    if not SRC.exists():
        print(f"needs {SRC} (the workspace's shared data)")
        return 1
    with SRC.open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], [r for r in rows[1:] if r[1] == "DGX-H100"]
    with tempfile.TemporaryDirectory() as tmp:
        halves = []
        for k in (0, 1):
            p = Path(tmp) / f"h100_half_{'ab'[k]}.csv"
            with p.open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(header)
                w.writerows(r for i, r in enumerate(body) if i % 2 == k)
            halves.append(p)
        args = ["calibrate", str(halves[0]), "--out", str(Path(tmp) / "h100_overlay.yaml"),
                "--holdout", str(halves[1]), *sys.argv[1:]]
        print(f"{len(body)} H100 rows: calibrate on {halves[0].name}, hold out {halves[1].name}")
        try:
            main(args)
        except SystemExit as exc:
            return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
