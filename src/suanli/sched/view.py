"""What a scheduling policy sees: a read-only view of the scheduler, built for each pass.

Policies (:mod:`suanli.sched.policies`) never receive the mutable
:class:`~suanli.sched.scheduler.Scheduler`. The scheduler builds a :class:`SchedulerView` each
time it asks a policy something (order a queue, solve shares, score pools) and the policy reads
jobs and pools through it. Jobs are named by *slot*: the row numbers in the ``slots`` array the
scheduler passes in (meaningful only inside one pass; nothing outside :mod:`suanli.sched` sees
them).

Every method that takes ``slots`` returns a fresh array (NumPy fancy indexing copies), so a
policy may scribble on what it gets; whole arrays (per pool, per class) come back read-only.
Nothing here changes the scheduler.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from suanli.sched.cluster import ClusterSpec
from suanli.sched.job import MILLI, Job
from suanli.sched.slots import RUNNING, SlotTable


def _frozen(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.setflags(write=False)
    return v


class SchedulerView:
    """Read-only state of one scheduling pass: jobs (by slot), their classes, the pools."""

    __slots__ = (
        "_capacity",
        "_class_demand",
        "_class_rates",
        "_class_weight",
        "_cluster",
        "_jobs",
        "_t",
        "keep_s",
        "round_s",
    )

    def __init__(
        self,
        table: SlotTable,
        jobs: Sequence[Job],
        cluster: ClusterSpec,
        class_rates: np.ndarray,
        class_demand: np.ndarray,
        class_weight: Sequence[float],
        capacity: np.ndarray,
        round_s: float,
        keep_s: float,
    ) -> None:
        self._t = table
        self._jobs = jobs
        self._cluster = cluster
        self._class_rates = class_rates
        self._class_demand = class_demand
        self._class_weight = class_weight
        self._capacity = capacity
        #: seconds between rounds of a preemptive policy
        self.round_s = float(round_s)
        #: churn damping: a running job's pool counts this many seconds more for it
        self.keep_s = float(keep_s)

    # ------------------------------------------------------------------ pools
    @property
    def n_pools(self) -> int:
        return self._cluster.n_pools

    @property
    def cluster(self) -> ClusterSpec:
        """The pools (sites, chip types, prices); shared, do not modify."""
        return self._cluster

    @property
    def capacity(self) -> np.ndarray:
        """Accelerators per pool now (nodes drained or failed are gone), read-only."""
        return _frozen(self._capacity / MILLI)

    @property
    def power_kw(self) -> np.ndarray:
        """Power per accelerator per pool (kW), read-only."""
        return _frozen(self._cluster.power_kw)

    @property
    def pue(self) -> np.ndarray:
        return _frozen(self._cluster.pue)

    @property
    def price(self) -> np.ndarray:
        """Electricity price per pool (CNY/kWh), read-only."""
        return _frozen(self._cluster.price)

    @property
    def carbon(self) -> np.ndarray:
        """Grid carbon intensity per pool (kg CO2/kWh), read-only."""
        return _frozen(self._cluster.carbon)

    @property
    def wan_gbps(self) -> np.ndarray:
        """Bandwidth to bring data to each pool's site (Gbit/s), read-only."""
        return _frozen(self._cluster.wan_gbps)

    @property
    def pool_site(self) -> np.ndarray:
        """Site index of each pool, read-only."""
        return _frozen(self._cluster.pool_site)

    # ------------------------------------------------------------------ classes
    @property
    def class_rates(self) -> np.ndarray:
        """Rate (work units/s) of one job of each class on each pool (0 = cannot run there),
        learnt rates included; read-only (classes x pools)."""
        return _frozen(self._class_rates)

    @property
    def class_demand(self) -> np.ndarray:
        """Milli-accelerators one job of each class holds, read-only."""
        return _frozen(self._class_demand)

    @property
    def class_weight(self) -> np.ndarray:
        """Weight (priority x queue weight) of each class."""
        return np.asarray(self._class_weight, dtype=float)

    # ------------------------------------------------------------------ jobs (by slot)
    def jobs(self, slots: np.ndarray) -> list[Job]:
        """The submitted jobs (frozen: any field, e.g. ``deadline`` or ``queue``). A Python
        loop over ``slots``: prefer the array methods below in policies that run on deep
        queues."""
        return [self._jobs[s] for s in slots.tolist()]

    def job_class(self, slots: np.ndarray) -> np.ndarray:
        """Class of each job (jobs of one class are interchangeable)."""
        return self._t.cls[slots]

    def rates(self, slots: np.ndarray) -> np.ndarray:
        """(job x pool) rate in work units/s; 0 where the job cannot run."""
        return self._class_rates[self._t.cls[slots]]

    def gang(self, slots: np.ndarray) -> np.ndarray:
        """Accelerators each job holds while running (fractions for shared devices)."""
        return self._t.demand[slots] / MILLI

    def demand_milli(self, slots: np.ndarray) -> np.ndarray:
        return self._t.demand[slots]

    def running(self, slots: np.ndarray) -> np.ndarray:
        return self._t.state[slots] == RUNNING

    def pool(self, slots: np.ndarray) -> np.ndarray:
        """Pool each job runs on, -1 if it is not running."""
        return self._t.pool[slots]

    def arrival(self, slots: np.ndarray) -> np.ndarray:
        return self._t.arrival[slots]

    def weight(self, slots: np.ndarray) -> np.ndarray:
        """Priority x queue weight of each job."""
        return self._t.weight[slots]

    def work(self, slots: np.ndarray) -> np.ndarray:
        """Total work units of each job."""
        return self._t.work[slots]

    def remaining(self, slots: np.ndarray, now: float) -> np.ndarray:
        """Work units left at ``now`` (running jobs progress at their current rate)."""
        t = self._t
        run = t.state[slots] == RUNNING
        ran = np.maximum(0.0, now - t.prog_t[slots])
        prog = np.where(run, t.rate_now[slots] * ran, 0)
        return np.maximum(t.work[slots] - t.done[slots] - prog, 0.0)

    def attained(self, slots: np.ndarray, now: float) -> np.ndarray:
        """Accelerator-seconds each job has held so far."""
        t = self._t
        run = t.state[slots] == RUNNING
        extra = np.where(run, (now - t.seg_t0[slots]) * t.demand[slots] / MILLI, 0.0)
        return t.attained[slots] + extra

    def iso_time(self, slots: np.ndarray) -> np.ndarray:
        """Each job's time alone on 1/n of the cluster (n = active jobs when it arrived)."""
        return self._t.iso_time[slots]

    def data_site(self, slots: np.ndarray) -> np.ndarray:
        """Site index of each job's data, -1 = it has none to move."""
        return self._t.data_site[slots]

    def data_gb(self, slots: np.ndarray) -> np.ndarray:
        return self._t.data_gb[slots]

    def restart_s(self, slots: np.ndarray) -> np.ndarray:
        """Checkpoint + restart cost of stopping each job (seconds)."""
        return self._t.restart_s[slots]

    def share(self, slots: np.ndarray) -> np.ndarray:
        """(job x pool) long-run time shares from the last pre-score (share policies)."""
        return self._t.share[slots]

    def deficit(self, slots: np.ndarray) -> np.ndarray:
        """(job x pool) seconds owed: share x time elapsed - time received, capped."""
        return self._t.deficit[slots]
