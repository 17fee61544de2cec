"""Simulator speed on the full Philly trace, and the Gavel reproduction.

1. Philly (82,247 jobs) on the bundled demo fleet scaled to >= 10,000 accelerators, for FIFO
   and heterogeneity-aware max-min fairness: wall time, peak memory (process peak RSS from
   getrusage, so it includes the trace and the interpreter), events/s.
   Target: each under 60 s on one core.
2. The same trace on a small fleet (contended: rounds, LPs and queues really happen).
3. The same trace on the >= 10,000-accelerator fleet with arrivals x300 (thousands of jobs
   active at once: contended at 10k accelerators).
4. Gavel's 300-job trace on 36 K80 + 36 P100 + 36 V100 with Gavel's measured throughputs:
   mean JCT of heterogeneity-aware vs -agnostic policies at several loads (arrival rate x K).

Run: ``python benchmarks/bench_sim.py [--quick]`` from the project root (needs ../shared/data).
"""

from __future__ import annotations

import dataclasses
import os
import resource
import sys
import time
from pathlib import Path

from suanli.sched import MeasuredThroughput
from suanli.sched.cluster import ClusterSpec
from suanli.sim.engine import run_simulation
from suanli.sim.setup import gavel_fleet, prepare
from suanli.sim.traces import load_gavel

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT.parent / "shared" / "data" / "traces"
TARGET_S = 60.0


def philly(scale: float, policies: list[str], label: str, load: float = 1.0) -> bool:
    t0 = time.perf_counter()
    setup = prepare(trace=TRACES / "philly.csv", scale_fleet=scale, load=load)
    print(f"\n## Philly, {label}: {len(setup.trace.jobs)} jobs on {setup.cluster.devices} "
          f"accelerators ({len(setup.cluster.pools)} pools); load + workload rule + work "
          f"{time.perf_counter() - t0:.1f} s")
    ok = True
    for pol in policies:
        t1, c1 = time.perf_counter(), time.process_time()
        res = run_simulation(setup.cluster, setup.trace.jobs, pol, setup.provider)
        wall = time.perf_counter() - t1
        cpu = time.process_time() - c1  # robust to a loaded machine, unlike wall
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
        m = res.metrics
        ok &= wall < TARGET_S
        print(f"{pol:18s} wall {wall:6.1f} s  cpu {cpu:6.1f} s  load "
              f"{os.getloadavg()[0]:.1f}  peak RSS {peak:6.0f} MiB  "
              f"events {m['events']:7d}  {m['events'] / wall:8.0f} events/s  "
              f"mean JCT {m['jct_s']['mean'] / 3600:6.2f} h  util {100 * m['utilisation']:5.1f}%"
              f"  rounds {m['scheduler']['rounds']}  LPs {m['scheduler']['lp_solves']}  "
              f"unrunnable {m['unrunnable']}  [target < {TARGET_S:.0f} s: "
              f"{'ok' if wall < TARGET_S else 'MISSED'}]")
    return ok


def gavel(loads: list[float]) -> None:
    tr = load_gavel(TRACES / "gavel_300jobs.trace")
    cl = ClusterSpec.from_fleet(gavel_fleet(), None, opaque={"*"})
    tp = MeasuredThroughput.from_file(TRACES / "gavel_simulation_throughputs.json")
    pairs = [("max-min", "max-min-agnostic"), ("las", "las-agnostic"), ("ftf", "ftf-agnostic"),
             ("fifo", "fifo-agnostic")]
    print(f"\n## Gavel reproduction: {len(tr.jobs)} jobs, 36 K80 + 36 P100 + 36 V100, "
          "measured throughputs, round 360 s; mean JCT in hours (agnostic / aware)")
    print("load  " + "  ".join(f"{a:>26s}" for a, _ in pairs) + "   wall s")
    for k in loads:
        jobs = [dataclasses.replace(j, arrival=j.arrival / k) for j in tr.jobs]
        t0 = time.perf_counter()
        cells = []
        for aware, agn in pairs:
            a = run_simulation(cl, jobs, aware, tp).metrics["jct_s"]["mean"] / 3600
            b = run_simulation(cl, jobs, agn, tp).metrics["jct_s"]["mean"] / 3600
            cells.append(f"{a:6.2f} vs {b:6.2f} = {b / a:4.2f}x")
        print(f"x{k:<4g} " + "  ".join(f"{c:>26s}" for c in cells)
              + f"   {time.perf_counter() - t0:5.1f}")
    print("\nmakespan in hours, min-makespan vs min-makespan-agnostic (ratio agnostic / aware)")
    for k in loads:
        jobs = [dataclasses.replace(j, arrival=j.arrival / k) for j in tr.jobs]
        a = run_simulation(cl, jobs, "min-makespan", tp).metrics["makespan_s"] / 3600
        b = run_simulation(cl, jobs, "min-makespan-agnostic", tp).metrics["makespan_s"] / 3600
        print(f"x{k:<4g} {a:6.1f} vs {b:6.1f} = {b / a:4.2f}x")


def main(argv: list[str]) -> int:
    if not (TRACES / "philly.csv").exists():
        print(f"skipped: {TRACES} not found")
        return 0
    quick = "--quick" in argv
    ok = philly(6.1, ["fifo", "max-min"], "demo fleet x6.1")
    if not quick:
        ok &= philly(0.01, ["fifo", "max-min"], "demo fleet x0.01 (contended)")
        ok &= philly(6.1, ["fifo", "max-min"],
                     "demo fleet x6.1, arrivals x300 (contended at 10k accelerators)", load=300)
    gavel([1, 10, 20, 40, 80] if not quick else [40])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
