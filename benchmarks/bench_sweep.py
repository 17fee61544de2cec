"""Sweep speed: the same grid in one process and in local worker processes (and on Ray when
an address is given), with a check that every point gives the same figures wherever it ran.

Run: ``python benchmarks/bench_sweep.py [--jobs 2] [--ray 127.0.0.1:PORT]`` from the project
root. Prints figures; no assertion on speed.
"""

from __future__ import annotations

import argparse
import os
import time

from suanli.sim.sweep import RunConfig, SweepPoint, grid, parse_sweep, run_sweep, summarise

SPEC = "policy=fifo,srpt,max-min;load=1,4;seed=1,2,3"
KEYS = ("jct_mean_s", "jct_p99_s", "utilisation", "completed", "events")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--ray", default=None)
    ap.add_argument("--max-jobs", type=int, default=300)
    args = ap.parse_args()
    cfg = RunConfig(trace_format="synthetic", max_jobs=args.max_jobs)  # seed = a new trace
    points = grid(parse_sweep([SPEC]), SweepPoint(policy="fifo", scale_fleet=0.05),
                  jitter_given=False)
    print(f"grid {SPEC}: {len(points)} runs of {args.max_jobs} synthetic jobs (one trace per "
          "seed) on the demo fleet x0.05")
    runs = [("1 process", {"jobs": 1}), (f"{args.jobs} processes", {"jobs": args.jobs})]
    if args.ray:
        runs.append((f"Ray at {args.ray}", {"ray_address": args.ray}))
    base = None
    for label, kw in runs:
        t0 = time.perf_counter()
        res = run_sweep(cfg, points, **kw)  # type: ignore[arg-type]
        wall = time.perf_counter() - t0
        sim_s = sum(r["wall_s"] for r in res)
        same = base is None or all(r[k] == b[k] for r, b in zip(res, base, strict=True)
                                   for k in KEYS)
        base = base or res
        print(f"{label:22s} wall {wall:6.1f} s  (simulation time summed {sim_s:6.1f} s)  "
              f"same figures as 1 process: {'yes' if same else 'NO'}")
    for s in summarise(base or []):
        m = s["jct_mean_s"]
        print(f"  {s['policy']:8s} load {s['load']:g}: mean JCT {m['mean'] / 3600:.3f} h "
              f"± {(m['ci95'] or 0) / 3600:.3f} (95 % CI, seeds {s['seeds']})")


if __name__ == "__main__":
    main()
