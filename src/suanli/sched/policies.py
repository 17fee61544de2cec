"""Scheduling policies as plugins of the filter -> score -> allocate pipeline.

A policy decides two things for a set of jobs: the *order* in which they claim capacity
(``priority``, lower first) and, per job, a *score* per pool (lower is better, ``inf`` = never
there). Share policies (``lp = True``) first solve an allocation LP (:mod:`suanli.sched.lp`)
for the jobs' long-run time shares per pool; the scheduler turns shares into rounds with a
deficit counter (see :class:`suanli.sched.scheduler.Scheduler`).

Every policy exists in two flavours: heterogeneity-aware (uses each chip type's real speed) and
``-agnostic`` (treats every chip type a job can run on as equally fast), so that the gain from
awareness can be measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from suanli.errors import SuanliError
from suanli.sched import lp

if TYPE_CHECKING:
    from suanli.sched.scheduler import Scheduler

INF = np.inf


class Policy:
    """Base policy: FIFO order, place on the pool that finishes the job soonest."""

    name = "fifo"
    description = "first come, first served; non-preemptive; backfills jobs that fit"
    preemptive = False
    lp = False
    # A job waits instead of taking a free pool that scores worse than PATIENCE x its best
    # pool (time or cost): how the greedy policies weigh queueing against speed and price.
    patience: float | None = 3.0

    def __init__(self, aware: bool = True, patience: float | None = 3.0) -> None:
        self.aware = aware
        self.patience = patience

    @property
    def label(self) -> str:
        return self.name if self.aware else f"{self.name}-agnostic"

    # -- ordering ---------------------------------------------------------------------
    def priority(self, sched: Scheduler, slots: np.ndarray, now: float) -> np.ndarray:
        return slots.astype(float)  # submit order == arrival order

    # -- scoring ----------------------------------------------------------------------
    def scores(self, sched: Scheduler, slots: np.ndarray, now: float) -> np.ndarray:
        """Default: estimated time to finish there (aware) / 0 everywhere allowed (agnostic;
        the allocator then balances load by free fraction)."""
        R = sched.view_rates(slots, self.aware)
        with np.errstate(divide="ignore", invalid="ignore"):
            if not self.aware:
                return np.where(R > 0, 0.0, INF)
            rem = sched.remaining(slots, now)[:, None]
            t = np.where(R > 0, rem / R, INF) + sched.stage_matrix(slots)
        return t

    # -- shares (LP policies) ---------------------------------------------------------
    def solve(self, sched: Scheduler, slots: np.ndarray, now: float) -> np.ndarray:
        raise NotImplementedError

    def shares(self, sched: Scheduler, slots: np.ndarray, now: float) -> np.ndarray:
        """Time shares per (job, pool) for LP policies (``lp = True``); by default the LP."""
        return self.solve(sched, slots, now)


class ShortestRemaining(Policy):
    name = "srpt"
    description = "shortest remaining processing time first; preemptive at round boundaries"
    preemptive = True

    def priority(self, sched: Scheduler, slots: np.ndarray, now: float) -> np.ndarray:
        R = sched.view_rates(slots, self.aware)
        best = R.max(axis=1)
        return sched.remaining(slots, now) / np.maximum(best, 1e-300)


class LeastAttained(Policy):
    name = "las"
    description = "least attained service (accelerator-seconds) first; preemptive"
    preemptive = True

    def priority(self, sched: Scheduler, slots: np.ndarray, now: float) -> np.ndarray:
        return sched.attained(slots, now)


class _EnergyBase(Policy):
    """FIFO order; place where one unit of work costs least (price, energy or carbon)."""

    def per_device_hour(self, sched: Scheduler) -> np.ndarray:
        raise NotImplementedError

    def scores(self, sched: Scheduler, slots: np.ndarray, now: float) -> np.ndarray:
        R = sched.view_rates(slots, self.aware)
        per_h = self.per_device_hour(sched)[None, :] * sched.gang(slots)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(R > 0, per_h / (3600.0 * R), INF)


class MinCost(_EnergyBase):
    name = "min-cost"
    description = "FIFO; each job goes where its work costs least (electricity x PUE / speed)"

    def per_device_hour(self, sched: Scheduler) -> np.ndarray:
        c = sched.cluster
        return c.power_kw * c.pue * c.price


class MinEnergy(_EnergyBase):
    name = "min-energy"
    description = "FIFO; each job goes where its work needs the least energy incl. PUE"

    def per_device_hour(self, sched: Scheduler) -> np.ndarray:
        c = sched.cluster
        return c.power_kw * c.pue


class MinCarbon(_EnergyBase):
    name = "min-carbon"
    description = "FIFO; each job goes where its work emits the least CO2"

    def per_device_hour(self, sched: Scheduler) -> np.ndarray:
        c = sched.cluster
        return c.power_kw * c.pue * c.carbon


class Balanced(Policy):
    """FIFO; each job goes where it costs least in money, counting its time too.

    score = accelerator-hours held (data staging + compute) x ``value_cny_per_acc_h`` (what an
    accelerator-hour is worth to its owner: rental price or opportunity cost)
    + electricity (power x PUE x site price) + CO2 x ``carbon_cny_per_kg``. This is how a job
    weighs speed, price, energy, carbon and the time to move its data to a site; queueing is
    weighed by the patience rule (wait for a better pool rather than take a much worse one).
    """

    name = "balanced"
    description = "FIFO; place where value of time + electricity + carbon cost is lowest"
    value_cny_per_acc_h = 10.0
    carbon_cny_per_kg = 0.08

    def scores(self, sched: Scheduler, slots: np.ndarray, now: float) -> np.ndarray:
        c = sched.cluster
        R = sched.view_rates(slots, self.aware)
        g = sched.gang(slots)[:, None]
        rem = sched.remaining(slots, now)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            comp_h = np.where(R > 0, rem / R, np.inf) / 3600.0
        stage_h = sched.stage_matrix(slots) / 3600.0
        kwh = g * comp_h * (c.power_kw * c.pue)[None, :]
        money = (g * (comp_h + stage_h) * self.value_cny_per_acc_h
                 + kwh * (c.price + c.carbon * self.carbon_cny_per_kg)[None, :])
        return np.where(R > 0, money, INF)


class _SharePolicy(Policy):
    preemptive = True
    lp = True

    def shares(self, sched: Scheduler, slots: np.ndarray, now: float) -> np.ndarray:
        """Time shares per (job, pool): :meth:`solve`, spread evenly over pools that look
        alike for agnostic policies (see :func:`suanli.sched.lp.spread`)."""
        X = self.solve(sched, slots, now)
        if not self.aware and len(slots):
            R, m, g, _, cap, inv, _ = sched.class_problem(slots, self.aware)
            first = np.zeros(len(m), dtype=np.int64)
            first[inv[::-1]] = np.arange(len(inv))[::-1]
            X = lp.spread(X[first], R, m, g, cap)[inv]
        return X

    def priority(self, sched: Scheduler, slots: np.ndarray, now: float) -> np.ndarray:
        p = sched.share_priority(slots)
        best = np.where(np.isfinite(p), p, -INF).max(axis=1)
        return -best

    def scores(self, sched: Scheduler, slots: np.ndarray, now: float) -> np.ndarray:
        p = sched.share_priority(slots)
        return np.where(np.isfinite(p), -p, INF)


class MaxMinFairness(_SharePolicy):
    name = "max-min"
    description = (
        "Gavel-style max-min fairness over effective (normalised) throughput; LP per round"
    )

    # a job of g devices counts g x its normalised throughput (Gavel section 4: equal device
    # time, so a 4-device job gets a quarter of the time share of a 1-device job)
    gang_weighted = True
    # normalise a job's throughput by its rate under an equal split of the pools it can use
    # ("equal", Gavel's X^equal) or by its best single-pool rate ("best")
    normalise = "equal"

    def solve(self, sched: Scheduler, slots: np.ndarray, now: float) -> np.ndarray:
        R, m, g, w, cap, inv, _ = sched.class_problem(slots, self.aware)
        if self.gang_weighted:
            w = w / np.maximum(g, 1e-9)
        norm = lp.equal_share_rate(R, cap) if self.normalise == "equal" else None
        return lp.max_min(R, m, g, w, cap, norm=norm)[inv]


class FinishTimeFairness(_SharePolicy):
    name = "ftf"
    description = (
        "finish-time fairness: maximise the worst ratio of a job's throughput to what it needs "
        "to finish by its isolated (1/n of the cluster) finish time"
    )

    def solve(self, sched: Scheduler, slots: np.ndarray, now: float) -> np.ndarray:
        R, m, g, _, cap, inv, _ = sched.class_problem(slots, self.aware)
        need = sched.ftf_need(slots, now, self.aware)
        urgency = np.zeros(len(m))
        np.maximum.at(urgency, inv, need)
        return lp.max_min(R, m, g, np.maximum(urgency, 1e-6), cap)[inv]


class MinMakespan(_SharePolicy):
    name = "min-makespan"
    description = "minimise the time until all active jobs are done (LP on time shares)"

    def solve(self, sched: Scheduler, slots: np.ndarray, now: float) -> np.ndarray:
        R, m, g, _, cap, inv, _ = sched.class_problem(slots, self.aware)
        rem = sched.remaining(slots, now)
        mx = np.zeros(len(m))
        np.maximum.at(mx, inv, rem)
        return lp.min_makespan(R, m, g, cap, mx)[inv]


class MaxThroughput(_SharePolicy):
    name = "max-throughput"
    description = "maximise total normalised throughput (LP on time shares)"

    def solve(self, sched: Scheduler, slots: np.ndarray, now: float) -> np.ndarray:
        R, m, g, _, cap, inv, _ = sched.class_problem(slots, self.aware)
        return lp.max_throughput(R, m, g, cap)[inv]


POLICIES: dict[str, type[Policy]] = {
    cls.name: cls
    for cls in (
        Policy,
        ShortestRemaining,
        LeastAttained,
        MaxMinFairness,
        FinishTimeFairness,
        MinMakespan,
        MaxThroughput,
        MinCost,
        MinEnergy,
        MinCarbon,
        Balanced,
    )
}
# The policies above score a *waiting* job the same until the next round (their scores depend
# on its remaining work, data site, shares and deficits, which only change when it runs or at a
# round) and score each job on its own; the scheduler relies on that to skip, between rounds,
# waiting jobs that cannot start anywhere (see Scheduler._fill). Policies registered later do
# not get that shortcut.
FIXED_WHILE_WAITING: frozenset[type[Policy]] = frozenset(POLICIES.values())
ALIASES = {"gavel": "max-min", "max-min-fairness": "max-min", "sjf": "srpt", "fcfs": "fifo"}


def register_policy(cls: type[Policy]) -> type[Policy]:
    """Add a policy class to the registry (usable as a decorator); ``cls.name`` is its name."""
    if not cls.name or cls.name.endswith("-agnostic"):
        raise ValueError(f"bad policy name {cls.name!r}")
    POLICIES[cls.name] = cls
    return cls


def policy_names() -> list[str]:
    """Every accepted policy name, aware and agnostic."""
    return [n for base in POLICIES for n in (base, f"{base}-agnostic")]


def get_policy(name: str) -> Policy:
    """``fifo``, ``max-min``, ... or their ``-agnostic`` variants (``max-min-agnostic``)."""
    key = name.strip().casefold()
    aware = True
    if key.endswith("-agnostic"):
        key, aware = key.removesuffix("-agnostic"), False
    key = ALIASES.get(key, key)
    cls = POLICIES.get(key)
    if cls is None:
        raise SuanliError(
            f"unknown policy '{name}' (choose from {', '.join(POLICIES)}; add -agnostic for the "
            "heterogeneity-agnostic variant)",
            field="--policy",
        )
    return cls(aware=aware)
