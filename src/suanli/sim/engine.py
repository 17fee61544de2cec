"""Discrete-event simulator: drives a :class:`suanli.sched.Scheduler` with simulated time.

Three parts, each replaceable on its own:

* the **event loop** (this module): time jumps straight to the next event, ``min(next arrival,
  next completion, next scheduler wake-up)``; at each event completions are reported first,
  then arrivals are submitted, then one scheduling pass runs;
* the **simulated executor** (:mod:`.executor`): carries out the pass's stops and starts and
  knows when each running job will finish;
* the **accounting** (:mod:`.accounting`): adds up what happened; :mod:`.metrics` turns the
  :class:`~.result.SimResult` into figures without importing this module.

The loop talks to the scheduler through its public API only (``submit``, ``on_finish``,
``schedule``, ``next_wakeup``, ``queue_length``, ``waiting_ids``, ``unrunnable``,
``isolated_time``, ``stats``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from suanli.errors import SuanliError
from suanli.sched.cluster import ClusterSpec
from suanli.sched.job import Job, Queue
from suanli.sched.policies import Policy, get_policy
from suanli.sched.scheduler import RestartCost, Scheduler
from suanli.sched.throughput import ThroughputMatrix, ThroughputProvider
from suanli.sim.accounting import Accounting
from suanli.sim.executor import EPS_T, SimulatedExecutor, SimulationInvariantError
from suanli.sim.metrics import summarize
from suanli.sim.result import SimResult

Progress = Callable[[int, int], None]
NEVER_PLACED = "never placed: its gang never fitted the capacity its queue quota allows"
PROGRESS_EVERY = 2000  # events between progress reports
FRAG_EVERY = 500  # events between samples of the scheduler's stranded devices

__all__ = ["EPS_T", "Progress", "SimResult", "SimulationInvariantError", "run_simulation"]


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
    pol = get_policy(policy) if isinstance(policy, str) else policy
    t_wall = time.perf_counter()
    ordered = sorted_by_arrival(jobs)
    check_jobs(ordered)
    sched = Scheduler(cluster, pol, throughput, round_s=round_s, queues=queues, restart=restart,
                      **(options or {}))
    acct = Accounting(ordered, cluster.n_pools, max_samples=max_samples,
                      record_decisions=record_decisions)
    executor = SimulatedExecutor(ordered, cluster.capacity_milli, acct)
    events = event_loop(sched, executor, ordered, progress)
    return collect(pol.label, cluster, ordered, sched, executor, acct, events=events,
                   wall_s=time.perf_counter() - t_wall, notes=notes)


def sorted_by_arrival(jobs: Sequence[Job]) -> list[Job]:
    """Jobs by arrival time (stable: the trace's order breaks ties)."""
    order = sorted(range(len(jobs)), key=lambda i: (jobs[i].arrival, i))
    return [jobs[i] for i in order]


def check_jobs(jobs: Sequence[Job]) -> None:
    """Arrival times >= 0 and work > 0 (a duration-only trace needs ``attach_work`` first)."""
    arrival = np.fromiter((j.arrival for j in jobs), float, len(jobs))
    if len(jobs) and (np.isnan(arrival).any() or arrival.min() < 0):
        raise SuanliError("job arrival times must be >= 0")
    for j in jobs:
        if not j.work > 0:
            raise SuanliError(
                "job has no work to do (work <= 0); for traces with durations call "
                "suanli.sim.traces.attach_work first", where=j.origin or f"job '{j.id}'")


def event_loop(sched: Scheduler, executor: SimulatedExecutor, jobs: Sequence[Job],
               progress: Progress | None = None) -> int:
    """Run until no job can arrive, finish or be placed any more; returns the event count.
    ``jobs`` are sorted by arrival."""
    n = len(jobs)
    arrival = np.fromiter((j.arrival for j in jobs), float, n)
    ia = 0
    t = 0.0
    events = 0
    n_final = 0  # jobs finished or rejected at submission
    next_report = 0
    n_dec = 1
    while True:
        t_arr = arrival[ia] if ia < n else np.inf
        t_fin = executor.next_completion()
        wake = sched.next_wakeup(t)
        t_next = min(t_arr, t_fin, wake if wake is not None else np.inf)
        if t_next == np.inf or (t_arr == np.inf and t_fin == np.inf and not n_dec):
            break  # nothing left, or only rounds that can no longer change anything
        t = max(t, float(t_next))
        events += 1
        for i in executor.finish_due(t):
            sched.on_finish(jobs[i].id, t)
            n_final += 1
        while ia < n and arrival[ia] <= t + EPS_T:
            if sched.submit(jobs[ia], t) is not None:
                n_final += 1
            ia += 1
        decisions = sched.schedule(t)
        n_dec = len(decisions)
        executor.apply(decisions, t)
        executor.acct.sample(t, executor.used, sched.queue_length)
        if events <= FRAG_EVERY or events % FRAG_EVERY == 0:
            executor.acct.stranded(t, sched.fragmentation())
        if progress is not None and events >= next_report:
            progress(n_final, n)
            next_report = events + PROGRESS_EVERY
    executor.acct.t_end = t
    if progress is not None:
        progress(n, n)
    return events


def collect(policy: str, cluster: ClusterSpec, jobs: list[Job], sched: Scheduler,
            executor: SimulatedExecutor, acct: Accounting, *, events: int, wall_s: float,
            notes: Sequence[str] = ()) -> SimResult:
    """The run's :class:`SimResult`, with its metrics."""
    unrunnable = dict(sched.unrunnable)
    for jid in sched.waiting_ids():
        unrunnable[jid] = NEVER_PLACED
    tl_t, tl_used, tl_q = acct.timeline()
    t_end = acct.t_end
    stats = dict(sched.stats) | {
        "provider_calls": sched.matrix.calls,
        "stranded_devices_mean_by_pool": {
            pl.label: float(v) for pl, v in zip(cluster.pools, acct.stranded_mean(t_end),
                                                strict=True)}}
    res = SimResult(
        policy=policy, cluster=cluster, jobs=jobs,
        start=acct.start, finish=acct.finish, first_pool=acct.first_pool,
        work_done=executor.work_done(),
        iso_time=np.array([sched.isolated_time(j.id) for j in jobs]),
        preemptions=acct.preemptions, migrations=acct.migrations, lost_dev_s=acct.lost,
        unrunnable=unrunnable, busy_dev_s=acct.busy, held_dev_s=acct.held,
        flops_by_precision=acct.flops_by_precision(cluster),
        timeline_t=tl_t, timeline_used=tl_used, timeline_queue=tl_q,
        events=events, wall_s=wall_s, stats=stats, notes=list(notes), decisions=acct.log,
    )
    res.metrics = summarize(res)
    return res
