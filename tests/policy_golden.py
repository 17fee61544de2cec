"""Golden decisions of every built-in policy: a refactor of the policy API must decide the same.

The scenarios below are simulated with every built-in policy, aware and ``-agnostic``; the
decisions, finish times and a few counters are compared with ``tests/data/policy_decisions.json.gz``
(``tests/test_policy_golden.py``). The file was written by this module on main at a8ed621
(before policies saw a read-only view instead of the scheduler), and regenerated once after the
merge of node placement and the quota fix of the back-fill index (issue 8 §1, §4), after checking
that the schedcore branch alone writes the identical file::

    .venv/bin/python tests/policy_golden.py   # rewrites tests/data/policy_decisions.json.gz

Regenerate it only when a change of decisions is intended, and say so in the commit.
"""

from __future__ import annotations

import gzip
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # when run as a script

from needs import data_file
from sched_support import make_cluster
from suanli.perf.workload import Workload
from suanli.sched import Job, MeasuredThroughput, Queue, Scheduler, get_policy
from suanli.sched.cluster import ClusterSpec
from suanli.sim.engine import SimResult, run_simulation
from suanli.sim.setup import gavel_fleet
from suanli.sim.traces import load_gavel
from test_sched_policies import RATES, FixedRates

GOLDEN = data_file("README.md").parent / "policy_decisions.json.gz"
BUILTIN = ["fifo", "srpt", "las", "max-min", "ftf", "min-makespan", "max-throughput",
           "min-cost", "min-energy", "min-carbon", "balanced"]
POLICIES = [n for b in BUILTIN for n in (b, f"{b}-agnostic")]
SCENARIOS = ["synthetic-1", "synthetic-2", "gavel-60", "events"]


def synthetic_jobs(seed: int, n: int) -> list[Job]:
    """Random gangs, CUDA-only and FP64 jobs, half-GPU jobs, two queues, data at two sites."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        gang = int(rng.choice([1, 1, 2, 4, 8]))
        fp64 = bool(rng.random() < 0.1)
        site = [None, "east", "west"][int(rng.integers(3))]
        out.append(Job(
            id=f"j{i}", arrival=float(rng.uniform(0, 4000)), gang=gang,
            work=float(rng.uniform(10, 4e4)), queue=["a", "b"][int(rng.integers(2))],
            workload=Workload(kind="hpc") if fp64 else Workload(kind="train"),
            cuda_only=bool(rng.random() < 0.2), fp64=fp64,
            gpu_fraction=0.5 if gang == 1 and rng.random() < 0.2 else 1.0,
            data_gb=50.0 if site else 0.0, home_site=site,
        ))
    return out


def outcome(scenario: str, policy: str) -> dict[str, Any]:
    if scenario == "events":
        return run_events(policy)
    return record(run(scenario, policy))


def run(scenario: str, policy: str) -> SimResult:
    if scenario.startswith("synthetic-"):
        seed = int(scenario.rsplit("-", 1)[1])
        queues = [Queue("a", weight=2.0), Queue("b", weight=1.0, quota=20)]
        return run_simulation(make_cluster(), synthetic_jobs(seed, 60), policy,
                              FixedRates(RATES), round_s=120.0, queues=queues,
                              record_decisions=True)
    assert scenario == "gavel-60"
    tr = load_gavel(data_file("gavel_300jobs.trace"), max_jobs=60)
    jobs = [j.__class__(**{**{f: getattr(j, f) for f in j.__dataclass_fields__},
                           "arrival": j.arrival / 100}) for j in tr.jobs]
    cl = ClusterSpec.from_fleet(gavel_fleet(), None, opaque={"*"})
    tp = MeasuredThroughput.from_file(data_file("gavel_throughputs_solo.json"))
    return run_simulation(cl, jobs, policy, tp, record_decisions=True)


def run_events(policy: str) -> dict[str, Any]:
    """The scheduler driven directly through events the simulator does not produce: measured
    progress (learnt rates), failures with retries, cancellations and a node failure."""
    s = Scheduler(make_cluster(), get_policy(policy), FixedRates(RATES), round_s=120.0,
                  queues=[Queue("a", weight=2.0), Queue("b", weight=1.0, quota=20)])
    jobs = synthetic_jobs(3, 40)
    times = sorted({j.arrival for j in jobs} | {500.0 * k for k in range(1, 12)})
    first_run: dict[str, tuple[float, float, float]] = {}  # id -> (progress from, rate, work)
    started: set[str] = set()
    log: list[list[Any]] = []

    def sched(t: float) -> None:
        for d in s.schedule(t):
            log.append([t, d.action, d.job_id, d.pool, d.demand_milli, d.rate, d.stage_s,
                        d.restart_s, d.reason])
            if d.action == "start" and d.job_id not in started:
                started.add(d.job_id)
                first_run[d.job_id] = (t + d.stage_s, d.rate, next(
                    j.work for j in jobs if j.id == d.job_id))
            elif d.action == "stop":
                first_run.pop(d.job_id, None)

    for k, t in enumerate(times):
        wake = s.next_wakeup(t)
        while wake is not None and wake < t:
            sched(wake)
            wake = s.next_wakeup(wake)
        for j in jobs:
            if j.arrival == t:
                s.submit(j, t)
        if k % 5 == 3:
            for jid, (t0, rate, work) in sorted(first_run.items()):
                if t > t0 and s.job_state(jid) == "running":
                    s.on_progress(jid, min(0.999 * work, 0.7 * rate * (t - t0)), t)
                    log.append([t, "progress", jid])
                    break
        first_run = {j: v for j, v in first_run.items() if s.job_state(j) == "running"}
        if k % 17 == 8 and first_run:
            jid = min(first_run)
            first_run.pop(jid)
            log.append([t, "fail", jid, s.on_fail(jid, t, "test")])
        if k % 13 == 6 and s.waiting_ids():
            jid = s.waiting_ids()[0]
            log.append([t, "cancel", jid])
            s.cancel(jid, t)
        if t == 2000.0:
            log.append([t, "node failed", s.on_node_failed("east/fast_gpu/0", t)])
        sched(t)
    return {"decisions": log, "finish": [],
            "stats": {k: s.stats[k] for k in ("rounds", "lp_solves", "preemptions",
                                              "migrations", "restarts")}}


def record(res: SimResult) -> dict[str, Any]:
    """What must not change: every decision, every finish time, the scheduler's counters."""
    return {
        "decisions": [list(d) for d in res.decisions],
        "finish": [None if math.isnan(x) else float(x) for x in res.finish],
        "stats": {k: res.stats[k] for k in ("rounds", "lp_solves", "preemptions", "migrations",
                                            "restarts")},
    }


def load() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads(gzip.decompress(GOLDEN.read_bytes()))
    return data


def main() -> None:
    out: dict[str, dict[str, Any]] = {}
    for sc in SCENARIOS:
        out[sc] = {}
        for pol in POLICIES:
            out[sc][pol] = outcome(sc, pol)
            print(sc, pol, len(out[sc][pol]["decisions"]), "decisions", file=sys.stderr)
    text = json.dumps(out, separators=(",", ":")) + "\n"
    GOLDEN.write_bytes(gzip.compress(text.encode(), mtime=0))
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
