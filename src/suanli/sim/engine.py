"""Discrete-event simulator: drives a :class:`suanli.sched.Scheduler` with simulated time.

Time jumps straight to the next event: ``min(next arrival, next completion, next round)``.
Running jobs progress lazily (remaining work is settled only when a job stops or finishes), and
completions sit in a heap, so an event costs O(log n) plus whatever the policy does.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from suanli.catalog.schema import Precision
from suanli.errors import SuanliError
from suanli.sched.cluster import ClusterSpec
from suanli.sched.job import MILLI, Job, Queue
from suanli.sched.policies import Policy, get_policy
from suanli.sched.scheduler import RestartCost, Scheduler
from suanli.sched.throughput import ThroughputMatrix, ThroughputProvider

Progress = Callable[[int, int], None]
EPS_T = 1e-9
FRAG_EVERY = 500  # events between samples of the scheduler's stranded devices


@dataclass
class SimResult:
    """Everything a run produced; :mod:`suanli.sim.metrics` turns it into figures."""

    policy: str
    cluster: ClusterSpec
    jobs: list[Job]
    start: np.ndarray  # first start time, nan if never
    finish: np.ndarray  # nan if not completed
    first_pool: np.ndarray  # pool of the first start, -1 if never started
    work_done: np.ndarray
    iso_time: np.ndarray  # time alone on 1/n of the cluster (fairness reference)
    preemptions: np.ndarray  # per job: times stopped before finishing and not moved at once
    migrations: np.ndarray  # per job: times stopped and restarted elsewhere at the same time
    lost_dev_s: np.ndarray  # per job: device-seconds held without progress (staging, restarts)
    unrunnable: dict[str, str]
    busy_dev_s: np.ndarray  # per pool, device-seconds computing
    held_dev_s: np.ndarray  # per pool, device-seconds allocated (incl. data staging)
    flops_by_precision: dict[str, float]  # peak-equivalent FLOP delivered
    timeline_t: np.ndarray
    timeline_used: np.ndarray  # (T, pools) accelerators in use
    timeline_queue: np.ndarray  # jobs waiting
    events: int
    wall_s: float
    stats: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    # (time, "start" | "stop" | "finish", job index, pool, milli-accelerators) when recorded
    decisions: list[tuple[float, str, int, int, int]] = field(default_factory=list)

    @property
    def completed(self) -> np.ndarray:
        return ~np.isnan(self.finish)


def run_simulation(
    cluster: ClusterSpec,
    jobs: Sequence[Job],
    policy: Policy | str,
    throughput: ThroughputProvider | ThroughputMatrix,
    *,
    round_s: float = 360.0,
    queues: Sequence[Queue] = (),
    progress: Progress | None = None,
    notes: Sequence[str] = (),
    max_samples: int = 200_000,
    record_decisions: bool = False,
    restart: RestartCost | None = None,
    options: dict[str, Any] | None = None,
) -> SimResult:
    """Simulate ``jobs`` on ``cluster`` under ``policy``; deterministic for given inputs.
    ``options`` are more keyword options for :class:`Scheduler` (e.g. ``keep_rounds``)."""
    from suanli.sim.metrics import summarize  # local: metrics imports SimResult

    pol = get_policy(policy) if isinstance(policy, str) else policy
    t_wall = time.perf_counter()
    order = sorted(range(len(jobs)), key=lambda i: (jobs[i].arrival, i))
    jobs = [jobs[i] for i in order]
    N, P = len(jobs), cluster.n_pools
    sched = Scheduler(cluster, pol, throughput, round_s=round_s, queues=queues, restart=restart,
                      **(options or {}))
    arrival = np.fromiter((j.arrival for j in jobs), float, N)
    if N and (np.isnan(arrival).any() or arrival.min() < 0):
        raise SuanliError("job arrival times must be >= 0")
    for j in jobs:
        if not j.work > 0:
            raise SuanliError(
                "job has no work to do (work <= 0); for traces with durations call "
                "suanli.sim.traces.attach_work first", where=j.origin or f"job '{j.id}'")

    rem = np.fromiter((j.work for j in jobs), float, N)
    rate = np.zeros(N)
    prog_t = np.zeros(N)
    seg_t0 = np.zeros(N)
    pool_of = np.full(N, -1, dtype=np.int64)
    ver = np.zeros(N, dtype=np.int64)
    start = np.full(N, np.nan)
    first_pool = np.full(N, -1, dtype=np.int64)
    finish = np.full(N, np.nan)
    used = np.zeros(P, dtype=np.int64)
    busy = np.zeros(P)
    held = np.zeros(P)
    dev_s_prec: dict[tuple[int, str], float] = {}
    prec_of = [(j.need_precision.value if j.need_precision else "unknown") for j in jobs]
    demand = np.fromiter((j.demand_milli for j in jobs), np.int64, N)
    index = {j.id: i for i, j in enumerate(jobs)}
    n_pre = np.zeros(N, dtype=np.int64)
    n_mig = np.zeros(N, dtype=np.int64)
    lost = np.zeros(N)
    heap: list[tuple[float, int, int]] = []
    tl_t: list[float] = []
    tl_used: list[np.ndarray] = []
    tl_q: list[int] = []
    log: list[tuple[float, str, int, int, int]] = []
    # stranded devices (Scheduler.fragmentation), sampled every FRAG_EVERY events, time-weighted
    frag_int = np.zeros(P)
    frag_last, frag_t = np.zeros(P), 0.0

    def settle(i: int, t: float) -> None:
        p = int(pool_of[i])
        comp = max(0.0, t - prog_t[i])
        rem[i] = max(0.0, rem[i] - rate[i] * comp)
        d = demand[i] / MILLI
        busy[p] += d * comp
        held[p] += d * (t - seg_t0[i])
        lost[i] += d * ((t - seg_t0[i]) - comp)
        key = (p, prec_of[i])
        dev_s_prec[key] = dev_s_prec.get(key, 0.0) + d * comp
        used[p] -= demand[i]
        pool_of[i] = -1
        rate[i] = 0.0
        ver[i] += 1

    ia = 0
    t = 0.0
    events = 0
    n_final = 0
    next_report = 0
    n_dec = 1
    while True:
        t_arr = arrival[ia] if ia < N else np.inf
        while heap and heap[0][2] != ver[heap[0][1]]:
            heapq.heappop(heap)
        t_fin = heap[0][0] if heap else np.inf
        wake = sched.next_wakeup(t)
        t_wake = wake if wake is not None else np.inf
        t_next = min(t_arr, t_fin, t_wake)
        if t_next == np.inf or (t_arr == np.inf and t_fin == np.inf and not n_dec):
            break  # nothing left, or only rounds that can no longer change anything
        t = max(t, float(t_next))
        events += 1
        # completions
        while heap and heap[0][0] <= t + EPS_T:
            _, i, v = heapq.heappop(heap)
            if v != ver[i]:
                continue
            if record_decisions:
                log.append((t, "finish", i, int(pool_of[i]), int(demand[i])))
            settle(i, t)
            rem[i] = 0.0
            finish[i] = t
            sched.on_finish(jobs[i].id, t)
            n_final += 1
        # arrivals
        while ia < N and arrival[ia] <= t + EPS_T:
            reason = sched.submit(jobs[ia], t)
            if reason is not None:
                n_final += 1
            ia += 1
        # decisions: stops first, then starts
        decisions = sched.schedule(t)
        n_dec = len(decisions)
        stopped: set[int] = set()
        for d in decisions:
            i = index[d.job_id]
            if record_decisions:
                log.append((t, d.action, i, d.pool, d.demand_milli))
            if d.action == "stop":
                if pool_of[i] != d.pool:
                    raise RuntimeError(f"scheduler stopped {d.job_id} which is not running there")
                settle(i, t)
                stopped.add(i)
                continue
            if pool_of[i] >= 0:
                raise RuntimeError(f"scheduler started {d.job_id} which is already running")
            if i in stopped:
                stopped.discard(i)
                n_mig[i] += 1
            used[d.pool] += demand[i]
            if used[d.pool] > cluster.capacity_milli[d.pool]:
                raise RuntimeError(f"pool {d.pool} over-allocated at t={t}")
            pool_of[i] = d.pool
            rate[i] = d.rate
            seg_t0[i] = t
            prog_t[i] = t + d.stage_s + d.restart_s
            if np.isnan(start[i]):
                start[i] = t
                first_pool[i] = d.pool
            ver[i] += 1
            eta = prog_t[i] + rem[i] / d.rate
            heapq.heappush(heap, (eta, i, int(ver[i])))
        for i in stopped:
            n_pre[i] += 1
        if events <= FRAG_EVERY or events % FRAG_EVERY == 0:
            frag_int += frag_last * (t - frag_t)
            frag_last, frag_t = sched.fragmentation(), t
        if len(tl_t) < max_samples:
            tl_t.append(t)
            tl_used.append(used.copy())
            tl_q.append(sched.queue_length)
        if progress is not None and events >= next_report:
            progress(n_final, N)
            next_report = events + 2000
    if progress is not None:
        progress(N, N)

    unrunnable = dict(sched.unrunnable)
    for jid in sched.waiting_ids():
        unrunnable[jid] = (
            "never placed: its gang never fitted the capacity its queue quota allows"
        )
    flops: dict[str, float] = {}
    for (p, prec), dev_s in dev_s_prec.items():
        chip = cluster.pools[p].chip
        tf = None
        if chip is not None and prec in Precision.__members__.values():
            tf = chip.tflops(prec)
        flops[prec] = flops.get(prec, 0.0) + (tf or 0.0) * 1e12 * dev_s
    res = SimResult(
        policy=pol.label,
        cluster=cluster,
        jobs=jobs,
        start=start,
        finish=finish,
        first_pool=first_pool,
        work_done=np.array([j.work for j in jobs]) - rem,
        iso_time=np.array([sched.isolated_time(j.id) for j in jobs]),
        preemptions=n_pre,
        migrations=n_mig,
        lost_dev_s=lost,
        unrunnable=unrunnable,
        busy_dev_s=busy,
        held_dev_s=held,
        flops_by_precision=flops,
        timeline_t=np.asarray(tl_t),
        timeline_used=np.asarray(tl_used).reshape(len(tl_t), P) / MILLI,
        timeline_queue=np.asarray(tl_q),
        events=events,
        wall_s=time.perf_counter() - t_wall,
        stats=dict(sched.stats) | {
            "provider_calls": sched.matrix.calls,
            "stranded_devices_mean_by_pool": {
                pl.label: float(v / t) if t > 0 else 0.0
                for pl, v in zip(cluster.pools, frag_int + frag_last * (t - frag_t), strict=True)}},
        notes=list(notes),
        decisions=log,
    )
    res.metrics = summarize(res)
    return res
