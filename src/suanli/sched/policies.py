"""Scheduling policies: plugins at named extension points of the scheduler's pass.

A policy never sees the mutable :class:`~suanli.sched.scheduler.Scheduler`: each call gets a
read-only :class:`~suanli.sched.view.SchedulerView` and the jobs as ``slots`` (row numbers into
the view). The extension points, in the order a pass calls them (Kubernetes' scheduler
framework names in brackets):

1. :meth:`Policy.queue_order` (QueueSort): a key per job; jobs claim capacity in increasing
   key order (ties: submit order).
2. :meth:`Policy.pre_score` (PreScore): share policies (``lp = True``) solve their allocation
   LP here, once per round when something changed, giving long-run time shares per
   (job, pool); the scheduler turns shares into rounds with a deficit counter.
3. :meth:`Policy.score` (Score): per (job, pool), a cost in the policy's own unit
   (``score_unit``), ``inf`` where the job must not go.
4. :meth:`Policy.normalise` (NormalizeScore): the score on the scheduler's one scale, the
   **cost scale**: lower is better, ``inf`` = never, compared only within one job's row. The job
   takes its lowest-cost pool with room (costs within 1e-9 relative tie; the emptiest pool
   wins), and if its best cost is positive it does not take a pool costing more than
   ``patience`` x that (it waits for a better one). Positive costs must therefore be on a ratio
   scale (twice the cost = twice as bad). The built-in scores are already on it (seconds, CNY,
   kWh, kg CO2; share policies: minus the seconds owed), so their ``normalise`` is the identity.
5. :meth:`Policy.backfill_score`: the cost for capacity no share claims (the work-conserving
   pass of share policies, and share policies' jobs without a share yet). The base default is
   the policy's own normalised score; share policies use the time to finish.
6. :meth:`Policy.reserve` / :meth:`Policy.unreserve` (Reserve / Unreserve): told when the
   scheduler gives a job devices and when it takes them back (stop, finish, failure,
   cancellation, a rolled-back start). No-ops by default; for policies that keep state.

Every policy exists in two flavours: heterogeneity-aware (uses each chip type's real speed) and
``-agnostic`` (treats every chip type a job can run on as equally fast), so that the gain from
awareness can be measured. See docs/scheduling.md for how to write and register one.
"""

from __future__ import annotations

import numpy as np

from suanli.errors import SuanliError
from suanli.sched import lp
from suanli.sched.policy_helpers import class_problem, seen_rates, stage_seconds, time_to_finish
from suanli.sched.view import SchedulerView

INF = np.inf
_OLD_API = {"priority": "queue_order", "scores": "score", "shares": "pre_score"}


class Policy:
    """Base policy: FIFO order, place on the pool that finishes the job soonest."""

    name = "fifo"
    description = "first come, first served; non-preemptive; backfills jobs that fit"
    preemptive = False
    # the policy allocates long-run time shares in pre_score (the scheduler keeps the
    # deficits and re-plans every round)
    lp = False
    # A job waits instead of taking a free pool that costs more than PATIENCE x its best pool
    # (time or cost): how the greedy policies weigh queueing against speed and price.
    patience: float | None = 3.0
    # What one unit of the raw score means (documentation; see normalise).
    score_unit = "s to finish"
    # Between rounds, a waiting job's order key and scores do not change (they depend on its
    # remaining work, data site, shares and deficits, which only change when it runs or at a
    # round) and each job is scored on its own, not relative to the other jobs passed in.
    # The scheduler relies on it to skip, between rounds, waiting jobs that cannot start
    # anywhere (the back-fill fast path, Scheduler._fill). Set False if your policy's order
    # or scores of a waiting job change with time or depend on the other jobs.
    fixed_while_waiting = True

    def __init__(self, aware: bool = True, patience: float | None = 3.0) -> None:
        self.aware = aware
        self.patience = patience

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        old = [f"{m} (now {new})" for m, new in _OLD_API.items() if m in vars(cls)]
        if old:
            raise TypeError(
                f"policy {cls.__name__} defines {', '.join(old)}: policies now implement "
                "queue_order / pre_score / score on a SchedulerView (docs/scheduling.md)")

    @property
    def label(self) -> str:
        return self.name if self.aware else f"{self.name}-agnostic"

    # -- queue sort -------------------------------------------------------------------
    def queue_order(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        """A key per job (float array), lower claims capacity first; default submit order."""
        return slots.astype(float)

    # -- pre-score --------------------------------------------------------------------
    def pre_score(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray | None:
        """Once per round, before scoring, for share policies (``lp = True``): the (job x
        pool) long-run time shares of ``slots`` (all active jobs). Others: None."""
        return None

    # -- score ------------------------------------------------------------------------
    def score(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        """(job x pool) cost in ``score_unit``, lower is better, ``inf`` = never there.
        Default: seconds to finish there (aware) / 0 on every allowed pool (agnostic; the
        allocator then balances load by free fraction)."""
        return time_to_finish(view, slots, now, self.aware)

    def normalise(self, view: SchedulerView, slots: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """``raw`` (from :meth:`score`) on the cost scale (see the module docs). The default
        is for scores already on it: costs on a ratio scale. Override to convert, e.g. a
        higher-is-better benefit ``b > 0`` to ``b.max(axis=1, keepdims=True) / b``."""
        return raw

    def backfill_score(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        """Cost scale, for capacity no share claims; default: the normalised score."""
        return self.normalise(view, slots, self.score(view, slots, now))

    # -- reserve / unreserve ----------------------------------------------------------
    def reserve(self, job_id: str, pool: int, now: float) -> None:
        """The scheduler has given ``job_id`` its devices on ``pool`` (a start decision)."""

    def unreserve(self, job_id: str, pool: int, now: float, reason: str) -> None:
        """``job_id``'s devices on ``pool`` are free again: ``reason`` is ``finished``,
        ``preempted``, ``moved``, ``cancelled``, ``failed``, ``start failed``, ..."""


class ShortestRemaining(Policy):
    name = "srpt"
    description = "shortest remaining processing time first; preemptive at round boundaries"
    preemptive = True

    def queue_order(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        R = seen_rates(view, slots, self.aware)
        best = R.max(axis=1)
        return view.remaining(slots, now) / np.maximum(best, 1e-300)


class LeastAttained(Policy):
    name = "las"
    description = "least attained service (accelerator-seconds) first; preemptive"
    preemptive = True

    def queue_order(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        return view.attained(slots, now)


class _EnergyBase(Policy):
    """FIFO order; place where one unit of work costs least (price, energy or carbon)."""

    def per_device_hour(self, view: SchedulerView) -> np.ndarray:
        raise NotImplementedError

    def score(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        R = seen_rates(view, slots, self.aware)
        per_h = self.per_device_hour(view)[None, :] * view.gang(slots)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(R > 0, per_h / (3600.0 * R), INF)


class MinCost(_EnergyBase):
    name = "min-cost"
    description = "FIFO; each job goes where its work costs least (electricity x PUE / speed)"
    score_unit = "CNY per work unit"

    def per_device_hour(self, view: SchedulerView) -> np.ndarray:
        return view.power_kw * view.pue * view.price


class MinEnergy(_EnergyBase):
    name = "min-energy"
    description = "FIFO; each job goes where its work needs the least energy incl. PUE"
    score_unit = "kWh per work unit"

    def per_device_hour(self, view: SchedulerView) -> np.ndarray:
        return view.power_kw * view.pue


class MinCarbon(_EnergyBase):
    name = "min-carbon"
    description = "FIFO; each job goes where its work emits the least CO2"
    score_unit = "kg CO2 per work unit"

    def per_device_hour(self, view: SchedulerView) -> np.ndarray:
        return view.power_kw * view.pue * view.carbon


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
    score_unit = "CNY for the rest of the job"
    value_cny_per_acc_h = 10.0
    carbon_cny_per_kg = 0.08

    def score(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        R = seen_rates(view, slots, self.aware)
        g = view.gang(slots)[:, None]
        rem = view.remaining(slots, now)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            comp_h = np.where(R > 0, rem / R, np.inf) / 3600.0
        stage_h = stage_seconds(view, slots) / 3600.0
        kwh = g * comp_h * (view.power_kw * view.pue)[None, :]
        money = (g * (comp_h + stage_h) * self.value_cny_per_acc_h
                 + kwh * (view.price + view.carbon * self.carbon_cny_per_kg)[None, :])
        return np.where(R > 0, money, INF)


class SharePolicy(Policy):
    """Base of the share policies: :meth:`solve` an allocation LP in pre-score; order jobs and
    score pools by the seconds each job is owed there (:meth:`owed`). Jobs without a share
    (arrived since the last solve, or given none) are scored by their time to finish, as is
    the capacity no share claims (work-conserving back-fill)."""

    preemptive = True
    lp = True
    score_unit = "-s owed (s to finish without a share)"

    def solve(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        """(job x pool) time shares: the policy's LP."""
        raise NotImplementedError

    def pre_score(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        """Time shares per (job, pool): :meth:`solve`, spread evenly over pools that look
        alike for agnostic policies (see :func:`suanli.sched.lp.spread`)."""
        X = self.solve(view, slots, now)
        if not self.aware and len(slots):
            R, m, g, _, cap, inv, _ = class_problem(view, slots, self.aware)
            first = np.zeros(len(m), dtype=np.int64)
            first[inv[::-1]] = np.arange(len(inv))[::-1]
            X = lp.spread(X[first], R, m, g, cap)[inv]
        return X

    def owed(self, view: SchedulerView, slots: np.ndarray) -> np.ndarray:
        """Seconds each job is owed on each pool (deficit + this round's entitlement), -inf
        where it has no share; a running job's current pool counts ``keep_s`` more, so it is
        only displaced by a job owed that much more than it (churn damping)."""
        X = view.share(slots)
        p = view.deficit(slots) + X * view.round_s
        cur = view.pool(slots)
        run = np.flatnonzero(cur >= 0)
        if len(run):
            # its preemption would cost a restart too
            p[run, cur[run]] += view.keep_s + view.restart_s(slots[run])
        return np.where(X > 1e-6, p, -np.inf)

    def queue_order(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        p = self.owed(view, slots)
        best = np.where(np.isfinite(p), p, -INF).max(axis=1)
        return -best

    def score(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        p = self.owed(view, slots)
        scores = np.where(np.isfinite(p), -p, INF)
        # jobs without a share (not yet solved, or zero share) fall back to the time score
        none = ~np.isfinite(scores).any(axis=1)
        if none.any():
            scores[none] = self.backfill_score(view, slots[none], now)
        return scores

    def backfill_score(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        return time_to_finish(view, slots, now, self.aware)


class MaxMinFairness(SharePolicy):
    name = "max-min"
    description = (
        "Gavel-style max-min fairness over effective (normalised) throughput; LP per round"
    )

    # a job of g devices counts g x its normalised throughput (Gavel section 4: equal device
    # time, so a 4-device job gets a quarter of the time share of a 1-device job)
    gang_weighted = True
    # normalise a job's throughput by its rate under an equal split of the pools it can use
    # ("equal", Gavel's X^equal) or by its best single-pool rate ("best")
    normalise_rates = "equal"

    def solve(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        R, m, g, w, cap, inv, _ = class_problem(view, slots, self.aware)
        if self.gang_weighted:
            w = w / np.maximum(g, 1e-9)
        norm = lp.equal_share_rate(R, cap) if self.normalise_rates == "equal" else None
        return lp.max_min(R, m, g, w, cap, norm=norm)[inv]


class FinishTimeFairness(SharePolicy):
    name = "ftf"
    description = (
        "finish-time fairness: maximise the worst ratio of a job's throughput to what it needs "
        "to finish by its isolated (1/n of the cluster) finish time"
    )

    def need(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        """Normalised throughput each job needs to finish by its isolated finish time."""
        R = seen_rates(view, slots, self.aware)
        best = np.maximum(R.max(axis=1), 1e-300)
        rem_t = view.remaining(slots, now) / best
        budget = view.iso_time(slots) - (now - view.arrival(slots))
        return rem_t / np.maximum(budget, view.round_s)

    def solve(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        R, m, g, _, cap, inv, _ = class_problem(view, slots, self.aware)
        need = self.need(view, slots, now)
        urgency = np.zeros(len(m))
        np.maximum.at(urgency, inv, need)
        return lp.max_min(R, m, g, np.maximum(urgency, 1e-6), cap)[inv]


class MinMakespan(SharePolicy):
    name = "min-makespan"
    description = "minimise the time until all active jobs are done (LP on time shares)"

    def solve(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        R, m, g, _, cap, inv, _ = class_problem(view, slots, self.aware)
        rem = view.remaining(slots, now)
        mx = np.zeros(len(m))
        np.maximum.at(mx, inv, rem)
        return lp.min_makespan(R, m, g, cap, mx)[inv]


class MaxThroughput(SharePolicy):
    name = "max-throughput"
    description = "maximise total normalised throughput (LP on time shares)"

    def solve(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        R, m, g, _, cap, inv, _ = class_problem(view, slots, self.aware)
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
