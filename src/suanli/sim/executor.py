"""The simulated executor: runs the scheduler's decisions in simulated time.

It plays the part a real executor (Slurm, Ray, local processes) plays in the service: it starts
and stops jobs where the scheduler says and reports when they finish. Running jobs progress
lazily (remaining work is settled only when a job stops or finishes) and completions sit in a
heap, so an event costs O(log n). Every fact goes to an :class:`~.accounting.Accounting`.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np

from suanli.sched.job import MILLI, Job
from suanli.sched.scheduler import Decision
from suanli.sim.accounting import Accounting

EPS_T = 1e-9


class SimulationInvariantError(RuntimeError):
    """The scheduler asked for something impossible (a bug, not bad input)."""


class SimulatedExecutor:
    """Jobs of one run, by index into ``jobs``: what each is doing and when it will finish."""

    def __init__(self, jobs: Sequence[Job], capacity_milli: np.ndarray,
                 accounting: Accounting) -> None:
        n = len(jobs)
        self.jobs = jobs
        self.capacity_milli = capacity_milli
        self.acct = accounting
        self.index = {j.id: i for i, j in enumerate(jobs)}
        self.demand = np.fromiter((j.demand_milli for j in jobs), np.int64, n)
        self.remaining = np.fromiter((j.work for j in jobs), float, n)
        self.rate = np.zeros(n)
        self.progress_from = np.zeros(n)  # time progress starts (after staging / restart)
        self.segment_from = np.zeros(n)  # time the current allocation began
        self.pool_of = np.full(n, -1, dtype=np.int64)
        self.used = np.zeros(len(capacity_milli), dtype=np.int64)  # milli in use per pool
        self._version = np.zeros(n, dtype=np.int64)  # invalidates stale heap entries
        self._heap: list[tuple[float, int, int]] = []

    def next_completion(self) -> float:
        """Time of the next finish (inf if nothing runs)."""
        heap, ver = self._heap, self._version
        while heap and heap[0][2] != ver[heap[0][1]]:
            heapq.heappop(heap)
        return heap[0][0] if heap else float(np.inf)

    def finish_due(self, t: float) -> list[int]:
        """Finish every job due by ``t``; returns their indices in completion order."""
        done: list[int] = []
        heap, ver = self._heap, self._version
        while heap and heap[0][0] <= t + EPS_T:
            _, i, v = heapq.heappop(heap)
            if v != ver[i]:
                continue
            self.acct.record(t, "finish", i, int(self.pool_of[i]), int(self.demand[i]))
            self._settle(i, t)
            self.remaining[i] = 0.0
            self.acct.finished(i, t)
            done.append(i)
        return done

    def apply(self, decisions: Sequence[Decision], t: float) -> None:
        """Carry out one scheduling pass (stops come before starts in a pass). A job stopped
        and started again in the same pass moved (a migration); otherwise it was preempted."""
        stopped: set[int] = set()
        for d in decisions:
            i = self.index[d.job_id]
            self.acct.record(t, d.action, i, d.pool, d.demand_milli)
            if d.action == "stop":
                if self.pool_of[i] != d.pool:
                    raise SimulationInvariantError(
                        f"scheduler stopped {d.job_id} which is not running there")
                self._settle(i, t)
                stopped.add(i)
                continue
            if i in stopped:
                stopped.discard(i)
                self.acct.migrated(i)
            self._start(i, d, t)
        for i in stopped:
            self.acct.preempted(i)

    def work_done(self) -> np.ndarray:
        return np.fromiter((j.work for j in self.jobs), float, len(self.jobs)) - self.remaining

    def _start(self, i: int, d: Decision, t: float) -> None:
        if self.pool_of[i] >= 0:
            raise SimulationInvariantError(f"scheduler started {d.job_id} which is already "
                                           "running")
        self.used[d.pool] += self.demand[i]
        if self.used[d.pool] > self.capacity_milli[d.pool]:
            raise SimulationInvariantError(f"pool {d.pool} over-allocated at t={t}")
        self.pool_of[i] = d.pool
        self.rate[i] = d.rate
        self.segment_from[i] = t
        self.progress_from[i] = t + d.stage_s + d.restart_s
        self.acct.started(i, d.pool, t)
        self._version[i] += 1
        eta = self.progress_from[i] + self.remaining[i] / d.rate
        heapq.heappush(self._heap, (eta, i, int(self._version[i])))

    def _settle(self, i: int, t: float) -> None:
        """Book the work done since the job's last start and free its devices."""
        p = int(self.pool_of[i])
        computing = max(0.0, t - self.progress_from[i])
        self.remaining[i] = max(0.0, self.remaining[i] - self.rate[i] * computing)
        self.acct.segment(i, p, self.demand[i] / MILLI, computing, t - self.segment_from[i])
        self.used[p] -= self.demand[i]
        self.pool_of[i] = -1
        self.rate[i] = 0.0
        self._version[i] += 1
