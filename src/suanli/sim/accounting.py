"""Accounting of a simulation: what each job and pool did, sampled over time.

The simulated executor reports facts (a job started, ran a segment, finished, was stopped); this
module only adds them up. It knows nothing about the scheduler or the event loop.
"""

from __future__ import annotations

import numpy as np

from suanli.catalog.schema import Precision
from suanli.sched.cluster import ClusterSpec
from suanli.sched.job import MILLI, Job
from suanli.sim.result import DecisionRecord


class Accounting:
    """Per-job and per-pool counters of one run (device-seconds, starts, preemptions, ...)."""

    def __init__(self, jobs: list[Job], n_pools: int, *, max_samples: int = 200_000,
                 record_decisions: bool = False) -> None:
        n = len(jobs)
        self.n_pools = n_pools
        self.start = np.full(n, np.nan)
        self.first_pool = np.full(n, -1, dtype=np.int64)
        self.finish = np.full(n, np.nan)
        self.busy = np.zeros(n_pools)  # device-seconds computing
        self.held = np.zeros(n_pools)  # device-seconds allocated
        self.lost = np.zeros(n)  # device-seconds held without progress
        self.preemptions = np.zeros(n, dtype=np.int64)
        self.migrations = np.zeros(n, dtype=np.int64)
        self.dev_s_prec: dict[tuple[int, str], float] = {}
        self.prec_of = [(j.need_precision.value if j.need_precision else "unknown") for j in jobs]
        self.max_samples = max_samples
        self.tl_t: list[float] = []
        self.tl_used: list[np.ndarray] = []
        self.tl_q: list[int] = []
        self.record_decisions = record_decisions
        self.log: list[DecisionRecord] = []
        # stranded devices (Scheduler.fragmentation) per pool, sampled, integrated over time
        self.frag_int = np.zeros(n_pools)
        self.frag_last = np.zeros(n_pools)
        self.frag_t = 0.0
        self.t_end = 0.0  # time of the run's last event

    # -- facts reported by the executor
    def segment(self, i: int, pool: int, devices: float, computing_s: float,
                held_s: float) -> None:
        """Job ``i`` held ``devices`` of ``pool`` for ``held_s``, computing ``computing_s``."""
        self.busy[pool] += devices * computing_s
        self.held[pool] += devices * held_s
        self.lost[i] += devices * (held_s - computing_s)
        key = (pool, self.prec_of[i])
        self.dev_s_prec[key] = self.dev_s_prec.get(key, 0.0) + devices * computing_s

    def started(self, i: int, pool: int, t: float) -> None:
        if np.isnan(self.start[i]):
            self.start[i] = t
            self.first_pool[i] = pool

    def finished(self, i: int, t: float) -> None:
        self.finish[i] = t

    def preempted(self, i: int) -> None:
        self.preemptions[i] += 1

    def migrated(self, i: int) -> None:
        self.migrations[i] += 1

    def record(self, t: float, action: str, i: int, pool: int, milli: int) -> None:
        if self.record_decisions:
            self.log.append((t, action, i, pool, milli))

    def sample(self, t: float, used_milli: np.ndarray, queue_length: int) -> None:
        """One timeline point (up to ``max_samples``)."""
        if len(self.tl_t) < self.max_samples:
            self.tl_t.append(t)
            self.tl_used.append(used_milli.copy())
            self.tl_q.append(queue_length)

    def stranded(self, t: float, free_unusable: np.ndarray) -> None:
        """A sample of the free devices no waiting job can use, per pool (held until the next)."""
        self.frag_int += self.frag_last * (t - self.frag_t)
        self.frag_last, self.frag_t = np.asarray(free_unusable, dtype=float), t

    # -- derived
    def stranded_mean(self, t_end: float) -> np.ndarray:
        """Time-weighted mean of the stranded-device samples per pool up to ``t_end``."""
        if t_end <= 0:
            return np.zeros(self.n_pools)
        return (self.frag_int + self.frag_last * (t_end - self.frag_t)) / t_end

    def flops_by_precision(self, cluster: ClusterSpec) -> dict[str, float]:
        """Peak-equivalent FLOP delivered per precision (device-seconds x the chip's peak)."""
        flops: dict[str, float] = {}
        for (p, prec), dev_s in self.dev_s_prec.items():
            chip = cluster.pools[p].chip
            tf = None
            if chip is not None and prec in Precision.__members__.values():
                tf = chip.tflops(prec)
            flops[prec] = flops.get(prec, 0.0) + (tf or 0.0) * 1e12 * dev_s
        return flops

    def timeline(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(times, accelerators in use per pool, jobs waiting)."""
        n = len(self.tl_t)
        used = np.asarray(self.tl_used).reshape(n, self.n_pools) / MILLI
        return np.asarray(self.tl_t), used, np.asarray(self.tl_q)
