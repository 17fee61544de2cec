"""The scheduler object shared by the simulator and (later) the live service.

A driver calls :meth:`Scheduler.submit` when a job arrives, :meth:`Scheduler.on_finish` when
one completes, and :meth:`Scheduler.schedule` whenever something changed or the time returned by
:meth:`Scheduler.next_wakeup` has come. ``schedule`` returns :class:`Decision` s (stops first,
then starts) that the driver carries out: the simulator by advancing simulated time, a service by
launching and checkpointing real jobs.

Mechanism
---------
* **Filter** (at submit): :mod:`suanli.sched.filters` plus the throughput matrix remove pools a
  job can never use; a job with no pool left is *unrunnable* and gets a reason.
* **Score / order**: the policy (:mod:`suanli.sched.policies`) orders jobs and scores pools,
  seeing only a read-only :class:`~suanli.sched.view.SchedulerView` built for each call.
* **Allocate**: gangs are all-or-nothing inside one pool; per-queue quotas are enforced.
* **Rounds**: preemptive policies re-plan every ``round_s`` seconds while jobs are waiting
  (rounds stop when nobody waits). Between rounds, freed capacity is back-filled without
  preempting anyone.
* **Shares**: LP policies turn their time-share matrix ``X`` into rounds with a deficit counter
  per (job, pool): each round a job is owed ``X * elapsed`` and is charged the time it actually
  ran there; jobs with the largest (deficit + this round's entitlement) go first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from suanli.errors import SuanliError
from suanli.sched.cluster import ClusterSpec, ClusterState
from suanli.sched.filters import DEFAULT_FILTERS, Filter, filter_signature, run_filters
from suanli.sched.job import MILLI, Job, Queue, job_from_plain, job_to_plain
from suanli.sched.nodes import (
    ASSUMED_DEVICES_PER_NODE,
    INTER_NODE_FACTOR,
    Devices,
    Placement,
    whole_devices,
)
from suanli.sched.policies import Policy
from suanli.sched.policy_helpers import time_to_finish
from suanli.sched.slots import (
    CANCELLED,
    DONE,
    FAILED,
    RUNNING,
    STATE_NAMES,
    UNRUNNABLE,
    WAITING,
    SlotTable,
)
from suanli.sched.steps import drain as _drain
from suanli.sched.throughput import ThroughputMatrix, ThroughputProvider
from suanli.sched.view import SchedulerView
from suanli.sched.waitindex import WaitIndex

DEFICIT_CAP_ROUNDS = 24.0
SNAPSHOT_VERSION = 2  # 2: devices and placements
# back-fill goes through the index of waiting jobs (suanli.sched.waitindex) once this many wait;
# below it, it plans the whole queue (both give the same placements; the index is cheaper even
# for short queues, so by default it is always used)
ELIG_MIN_QUEUE = 0
# after a round the back-fill index is re-filed in place, or rebuilt when more than a quarter
# of the waiting jobs (+ this) change, or its heaps would hold more than 2 x waiting + this
INDEX_SLACK = 1024
PENDING_BATCH = 256  # stale waiting jobs filed per back-fill even if their demand fits nowhere
KEEP_ROUNDS = 8.0  # churn damping of share policies (see SharePolicy.owed)
# A round in slices (Scheduler(round_slice=...)): the work of one schedule() call is bounded by
# an estimate in microseconds of this machine class's CPU time (deterministic: counted, not
# timed, so replaying events gives the same decisions). Per row of a vectorised step over the
# active jobs, per job the greedy placement loop looks at, per job it places, per decision
# carried out (measured with benchmarks/bench_backlog.py pass; see docs/scheduling.md).
ROW_US = 0.25
LOOK_US = 1.0
PLACE_US = 8.0
DECISION_US = 22.0  # a stop; a start costs START_US
START_US = 30.0
SLICE_ROWS = 256  # the placement loops report their work every this many jobs
APPLY_CHUNK = 256  # stops / starts carried out between two reports (at most; see _chunk)
ROWS_CHUNK = 16384  # rows per piece of a vectorised step in a round in slices
FILE_CHUNK = 4096  # waiting jobs filed in the back-fill index between two reports
UPGRADE_GAIN = 0.5  # migrate a running job only if it would finish in < half the time left


@dataclass(frozen=True, slots=True)
class Decision:
    """Start ``job_id`` on pool ``pool`` (``demand_milli`` of it), or stop it there."""

    action: Literal["start", "stop"]
    job_id: str
    pool: int
    demand_milli: int
    rate: float = 0.0  # expected work units/s once running (the scheduler's estimate)
    stage_s: float = 0.0  # time to move the job's data before it makes progress
    restart_s: float = 0.0  # restoring its checkpoint (a restart), before it makes progress
    reason: str = ""  # why a stop happened: "preempted", "moved", "cancelled", "node failed"
    # where: ((node id, (device indices on that node, ...)), ...) - for a start the devices to
    # use (e.g. CUDA_VISIBLE_DEVICES on each node), for a stop the devices it held
    placement: tuple[tuple[str, tuple[int, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """What happens after a failed start or run: up to ``max_retries`` more tries, the k-th
    after ``backoff_s * factor ** (k - 1)`` seconds; then the job is given up (``failed``)."""

    max_retries: int = 3
    backoff_s: float = 60.0
    factor: float = 2.0

    def delay(self, failures: int) -> float:
        return self.backoff_s * self.factor ** max(failures - 1, 0)


@dataclass(frozen=True, slots=True)
class RestartCost:
    """Checkpoint + restart cost of a preemption or migration, for jobs that do not give
    their own (``Job.restart_s``): ``fixed_s`` (process start, framework and communicator
    set-up) plus writing and reading the checkpoint at ``storage_gbs`` GB/s. The checkpoint of
    a training job is its parameters x ``train_bytes_per_param`` (weights + optimizer state:
    16 B for mixed precision with Adam); an inference job reloads weights only
    (``infer_bytes_per_param``). Jobs without a known model pay ``fixed_s`` only."""

    fixed_s: float = 30.0  # assumption: process + framework + communicator start
    storage_gbs: float = 2.0
    train_bytes_per_param: float = 16.0
    infer_bytes_per_param: float = 2.0

    def of(self, job: Job) -> float:
        if job.restart_s is not None:
            return float(job.restart_s)
        w = job.workload
        if w is None or w.kind == "hpc" or self.storage_gbs <= 0:
            return self.fixed_s
        from suanli.perf.models import DEFAULT_INFER_MODEL, DEFAULT_TRAIN_MODEL, resolve_model

        name = w.model or (DEFAULT_TRAIN_MODEL if w.kind == "train" else DEFAULT_INFER_MODEL)
        try:
            n = resolve_model(name).n_params
        except Exception:  # unknown preset: the fixed part only
            return self.fixed_s
        if w.kind == "train":
            gb = n * self.train_bytes_per_param / 1e9
            return self.fixed_s + 2 * gb / self.storage_gbs  # write, then read
        return self.fixed_s + n * self.infer_bytes_per_param / 1e9 / self.storage_gbs


class Scheduler:
    """Heterogeneity-aware gang scheduler over the pools of a :class:`ClusterSpec`."""

    def __init__(
        self,
        cluster: ClusterSpec,
        policy: Policy,
        throughput: ThroughputProvider | ThroughputMatrix,
        *,
        round_s: float = 360.0,
        queues: Iterable[Queue] = (),
        filters: Sequence[Filter] = DEFAULT_FILTERS,
        keep_rounds: float = KEEP_ROUNDS,
        work_conserving: bool = True,
        restart: RestartCost | None = None,
        retry: RetryPolicy | None = None,
        checkpoint_every_s: float = 1800.0,
        learn_rate: float = 0.5,
        round_slice: float | None = None,
        decision_us: float = 0.0,
    ) -> None:
        if round_s <= 0:
            raise SuanliError(f"round length must be > 0 s, got {round_s}", field="--round")
        if round_slice is not None and not (math.isfinite(round_slice) and round_slice > 0):
            raise SuanliError(f"round slice must be a number > 0 (estimated microseconds of "
                              f"work per call), got {round_slice}", field="round_slice")
        # None: a round is planned and carried out in the schedule() call where it is due.
        # A number: a round's work is spread over consecutive calls, each doing about this
        # much (estimated microseconds; see ROW_US ...), so that no call, and no pass of a
        # live service, takes long; next_wakeup() says "now" until the round is done.
        self.round_slice = round_slice
        if not (math.isfinite(decision_us) and decision_us >= 0):
            raise SuanliError(f"decision cost must be a number >= 0 (microseconds), got "
                              f"{decision_us}", field="decision_us")
        # the driver's own work per decision it carries out (database rows, a launch), in
        # the same estimated microseconds: a round in slices makes fewer decisions per call
        self.decision_us = float(decision_us)
        self._round_gen: Generator[float, None, None] | None = None
        self._round_t0 = 0.0  # when the round in progress started
        self._round_dec: list[Decision] = []  # decisions of the current call's slice
        self._now = 0.0  # the time of the current schedule() call
        # churn damping for share policies: a running job keeps its pool until a waiting job is
        # owed keep_rounds rounds more than it
        self.keep_s = float(keep_rounds) * float(round_s)
        # share policies: capacity no share claims goes to waiting jobs (rate-scored)
        self.work_conserving = work_conserving
        self.restart = restart or RestartCost()
        self.retry = retry or RetryPolicy()
        # running jobs checkpoint this often (a failure loses the work since the last one);
        # a preemption checkpoints before the stop and loses nothing
        self.checkpoint_every_s = float(checkpoint_every_s)
        self.learn_rate = float(learn_rate)  # weight of a measured rate (on_progress)
        self.cluster = cluster
        self.policy = policy
        self.matrix = (
            throughput
            if isinstance(throughput, ThroughputMatrix)
            else ThroughputMatrix(throughput, cluster.chip_types)
        )
        if self.matrix.chip_types != cluster.chip_types:
            raise ValueError("throughput matrix chip types differ from the cluster's")
        self.round_s = float(round_s)
        self.filters = tuple(filters)
        self.P = cluster.n_pools
        self.capacity = cluster.capacity_milli.copy()
        self.free = self.capacity.copy()
        # queues
        self.queue_names: list[str] = []
        self.queue_index: dict[str, int] = {}
        self.queue_weight: list[float] = []
        self.queue_quota: list[float] = []  # milli; inf = none
        for q in queues:
            self._queue(q.name, q.weight, q.quota)
        self.queue_used = np.zeros(len(self.queue_names), dtype=np.int64)
        # per-slot columns (grown on demand)
        self.jobs: list[Job] = []
        self.slot_of: dict[str, int] = {}
        self._n = 0
        self.t = SlotTable(self.P, 1024)
        # classes (interchangeable jobs) and caches
        self._class_of_key: dict[tuple[object, ...], int] = {}
        self._class_rates: list[np.ndarray] = []
        self._class_weight: list[float] = []
        self._class_demand: list[int] = []
        self._filter_cache: dict[tuple[object, ...], list[str | None]] = {}
        self._restart_of: dict[tuple[object, ...], float] = {}  # RestartCost.of per model
        self._cm: np.ndarray | None = None  # cache of _class_rates as a matrix
        self._cd: np.ndarray | None = None  # cache of _class_demand as an array
        self._cbest: dict[int, float] = {}  # class -> its best rate (cache of rates.max())
        self._cdu: tuple[int, np.ndarray] | None = None  # (classes, their distinct demands)
        # active sets (dicts keep insertion order = submit order)
        self.waiting: dict[int, None] = {}
        self.running: dict[int, int] = {}
        self.unrunnable: dict[str, str] = {}
        self.backoff: dict[int, float] = {}  # slot -> time it may wait for a start again
        self.failed: dict[str, str] = {}  # job id -> last failure, for jobs given up
        # nodes: id -> (pool, devices, state "up" | "drained" | "failed")
        self.nodes: dict[str, list[object]] = {}
        # devices of every node, and the devices each running job holds
        self.dev = Devices(self.P)
        self.placement: dict[int, Placement] = {}
        for pool in cluster.pools:
            for nid, n in cluster.node_list(pool.index):
                if nid in self.nodes:
                    raise SuanliError(f"duplicate node id '{nid}'", where=pool.label)
                self.nodes[nid] = [pool.index, n, "up"]
        self.dev.add_nodes([(k, int(v[0]), int(v[1]), True)  # type: ignore[call-overload]
                            for k, v in self.nodes.items()])
        # rounds and shares
        self._next_round: float | None = None
        self._last_round_t: float | None = None
        self._dirty = True
        self.stats: dict[str, float] = {
            "rounds": 0, "lp_solves": 0, "lp_seconds": 0.0, "preemptions": 0, "migrations": 0,
            "restarts": 0, "restart_s": 0.0, "failures": 0, "retries": 0, "cancelled": 0,
            "rates_learnt": 0}
        self._freed = False  # capacity was released since the last schedule()
        self._last_stop_rate = 0.0
        # a node was drained: devices released on a node that is no longer up do not return
        # to the pool's free capacity (see _take_out and Devices.down_milli)
        self._any_down = False
        # running slots that some pool could ever upgrade: rate there > rate now / UPGRADE_GAIN
        self._subopt: set[int] = set()
        self._subopt_groups: dict[tuple[int, int], int] = {}  # (class, pool) -> slots in _subopt
        # share policies: per pool, demand -> running jobs with a time share on that pool
        # while they run on another (see _owed_elsewhere)
        self._owe: list[dict[int, int]] = [{} for _ in range(self.P)]
        # back-fill index of waiting jobs (priority, scores, eligible pools; see _fill and
        # suanli.sched.waitindex): valid until a job stops again, a round, a node event or a
        # learnt rate, for policies whose scores of a waiting job stay fixed between rounds
        # (Policy.fixed_while_waiting). Share policies that are work-conserving place in two
        # passes (shares, then rates): one index per pass.
        self._elig_cache = bool(policy.fixed_while_waiting)
        self._index = [WaitIndex(self.P)
                       for _ in range(2 if policy.lp and work_conserving else 1)]
        self._elig_stale: set[int] = set()
        self._pending: dict[int, list[int]] = {}  # demand -> stale slots not filed yet
        self._elig_all_stale = True
        # the last plan's (slots, order keys, score rows, pools then) and, right after a round,
        # the round's: reused by the index rebuild that follows the round (_refresh_index)
        self._last_plan: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._round_plan: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ storage
    def _queue(self, name: str, weight: float = 1.0, quota: float | None = None) -> int:
        if name not in self.queue_index:
            self.queue_index[name] = len(self.queue_names)
            self.queue_names.append(name)
            self.queue_weight.append(float(weight))
            self.queue_quota.append(np.inf if quota is None else float(quota) * MILLI)
            if hasattr(self, "queue_used"):
                self.queue_used = np.append(self.queue_used, 0)
        return self.queue_index[name]

    # ------------------------------------------------------------------ driver API
    def submit(self, job: Job, now: float | None = None) -> str | None:
        """Register an arrived job (``now`` defaults to its arrival time).

        Returns the reason when it can never run anywhere in the cluster, else None."""
        if job.id in self.slot_of:
            raise SuanliError(f"duplicate job id '{job.id}'", where=job.origin or None)
        s = self._n
        if s >= self.t.cap:
            self.t.grow(self.t.cap * 2)
        self._n += 1
        self.jobs.append(job)
        self.slot_of[job.id] = s
        qi = self._queue(job.queue)
        self.t.qidx[s] = qi
        self.t.demand[s] = job.demand_milli
        self.t.work[s] = job.work
        self.t.arrival[s] = job.arrival
        self.t.weight[s] = job.priority * self.queue_weight[qi]
        self.t.data_gb[s] = job.data_gb
        w = job.workload
        rkey = (job.restart_s, None if w is None else (w.kind, w.model))
        rs = self._restart_of.get(rkey)
        if rs is None:
            rs = self._restart_of[rkey] = self.restart.of(job)
        self.t.restart_s[s] = rs
        if job.home_site is not None and job.home_site in self.cluster.sites:
            self.t.data_site[s] = self.cluster.sites.index(job.home_site)
        rates, reason = self._rates_for(job)
        if reason is not None:
            self.t.state[s] = UNRUNNABLE
            self.unrunnable[job.id] = reason
            return reason
        key = (self.matrix.provider.key(job), job.gang, job.demand_milli,
               filter_signature(job), self.t.weight[s], rates.tobytes())
        c = self._class_of_key.get(key)
        if c is None:
            c = len(self._class_rates)
            self._class_of_key[key] = c
            self._class_rates.append(rates)
            self._class_weight.append(float(self.t.weight[s]))
            self._class_demand.append(job.demand_milli)
        self.t.cls[s] = c
        self.t.state[s] = WAITING
        self.waiting[s] = None
        self._elig_stale.add(s)
        self.t.iso_time[s] = self._isolated_time(s, rates)
        self._dirty = True
        return None

    def on_finish(self, job_id: str, now: float) -> None:
        """The job completed (its work is done); its devices are free."""
        s = self._slot(job_id)
        if self.t.state[s] == RUNNING:
            self._stop(s, now, "finished")
            self._freed = True
        self._leave(s, DONE)
        self.t.done[s] = self.t.work[s]

    def cancel(self, job_id: str, now: float) -> Decision | None:
        """Withdraw a job (waiting, backing off or running). For a running job the returned stop
        decision is for the driver to carry out; its devices count as free at once. Cancelling
        a job that has ended already does nothing (returns None)."""
        s = self._slot(job_id)
        out = None
        if self.t.state[s] == RUNNING:
            out = self._stop(s, now, "cancelled")
            self._freed = True
        if self.t.state[s] == WAITING:
            self._leave(s, CANCELLED)
            self.stats["cancelled"] += 1
        return out

    def on_start_failed(self, job_id: str, now: float, reason: str = "") -> bool:
        """The driver could not start a job this scheduler just started: the start is rolled
        back (devices free, no progress, no restart counted) and the failure counts for the
        retry policy. Returns True if the job will be tried again, False if it is given up."""
        s = self._slot(job_id)
        if self.t.state[s] != RUNNING:
            raise SuanliError(f"job '{job_id}' is not running: no start to roll back")
        self._stop(s, now, "start failed")
        self.t.done[s] = self.t.ckpt[s]
        self.t.starts[s] -= 1
        self._freed = True
        return self._failed(s, now, reason or "start failed")

    def on_fail(self, job_id: str, now: float, reason: str = "") -> bool:
        """A running job failed: it loses the work since its last checkpoint and is retried
        after a backoff (``RetryPolicy``) or, past ``max_retries``, given up. Returns True if
        it will be retried."""
        s = self._slot(job_id)
        if self.t.state[s] != RUNNING:
            raise SuanliError(f"job '{job_id}' is not running: it cannot fail")
        self._stop(s, now, "failed")
        self.t.done[s] = self._checkpointed(s)
        self._freed = True
        return self._failed(s, now, reason or "failed")

    def on_progress(self, job_id: str, work_done: float, at: float) -> None:
        """Measured progress of a running job: ``work_done`` units in total at time ``at``.
        It replaces the estimate, and the rate observed since the previous report (or the
        start) updates the rate of the job's class on its pool (exponential average with
        weight ``learn_rate``), which the policies use from then on."""
        s = self._slot(job_id)
        if self.t.state[s] != RUNNING:
            raise SuanliError(f"job '{job_id}' is not running: no progress to report")
        if not 0 <= work_done <= self.t.work[s] * (1 + 1e-9):
            raise SuanliError(f"work done {work_done} outside 0..{self.t.work[s]}",
                              where=f"job '{job_id}'", field="work_done")
        t0 = self.t.prog_t[s]
        if at > t0 and work_done >= self.t.done[s]:
            observed = (work_done - self.t.done[s]) / (at - t0)
            c, p = int(self.t.cls[s]), int(self.t.pool[s])
            rates = self._class_rates[c].copy()
            if observed > 0 and rates[p] > 0:
                rates[p] = (1 - self.learn_rate) * rates[p] + self.learn_rate * observed
                self._class_rates[c] = rates
                self._cm = None
                self._cbest.pop(c, None)
                self._dirty = True
                self._elig_all_stale = True  # scores of waiting jobs of its class change
                self.stats["rates_learnt"] += 1
            self.t.rate_now[s] = observed if observed > 0 else self.t.rate_now[s]
        self.t.done[s] = min(float(work_done), self.t.work[s])
        self.t.prog_t[s] = max(at, t0)

    def on_node_added(self, node_id: str, pool: int | str, devices: int, now: float) -> None:
        """A node joins ``pool`` (index or label ``site/chip_type``) with ``devices``
        accelerators. Pools are fixed when the scheduler is made: a node of a new chip type
        or site needs a new scheduler (or a snapshot restored onto the larger cluster)."""
        if node_id in self.nodes and self.nodes[node_id][2] == "up":
            raise SuanliError(f"node '{node_id}' is already up")
        p = self._pool(pool)
        if devices < 1:
            raise SuanliError(f"node '{node_id}' must have >= 1 device, got {devices}")
        self._abort_round(now)
        self.nodes[node_id] = [p, int(devices), "up"]
        self.dev.add_node(node_id, p, int(devices))
        self._resize(p, devices * MILLI)

    def on_node_drained(self, node_id: str, now: float) -> None:
        """Take a node out of service gently: no new work goes to its devices; jobs running
        there keep theirs until they stop (a round may preempt or move them like any other
        job), and the pool's free capacity counts the other nodes only."""
        if node_id in self.nodes:
            self._abort_round(now)
        self._take_out(node_id, "drained")

    def on_node_failed(self, node_id: str, now: float) -> list[str]:
        """A node is lost: its capacity goes, and the jobs holding a device on it go back to
        the queue, losing the work since their last checkpoint. Returns their ids."""
        if node_id in self.nodes:
            self._abort_round(now)
        k = self._take_out(node_id, "failed")
        lost: list[str] = []
        victims = [s for s in self.running if any(x == k for x, _, _ in self.placement[s])]
        for s in victims:
            self._stop(s, now, "node failed")
            self.t.done[s] = self._checkpointed(s)
            lost.append(self.jobs[s].id)
        self._freed = True
        return lost
    def next_wakeup(self, now: float) -> float | None:
        """When the scheduler wants to be called again without any event (a round, or the
        end of a retry backoff), or None."""
        if self._round_gen is not None:
            return now  # a round in slices is under way: the next call continues it
        t = [x for x in (self._next_round, min(self.backoff.values(), default=None))
             if x is not None]
        return min(t) if t else None

    @property
    def round_in_progress(self) -> bool:
        """A round in slices (``round_slice``) was begun and not finished: call
        :meth:`schedule` again (its other decisions wait until the round is done)."""
        return self._round_gen is not None

    def _abort_round(self, now: float) -> None:
        """Give up a round in slices (a node event changed what it planned on): what it
        carried out stands, and a new round is due at once."""
        if self._round_gen is None:
            return
        self._round_gen.close()
        self._round_gen = None
        self._round_plan = None
        self._last_plan = None
        self._elig_all_stale = True
        self._next_round = now

    def schedule(self, now: float, state: ClusterState | None = None) -> list[Decision]:
        """Decisions for time ``now``: a full round when one is due, else a back-fill.

        ``state`` (optional) is what the executors report free; capacity the scheduler thinks
        free but the cluster does not is held back for this call only."""
        hidden = None
        if state is not None:
            hidden = np.maximum(self.free - state.free_milli.astype(np.int64), 0)
            self.free -= hidden
        try:
            return self._schedule(now)
        finally:
            if hidden is not None:
                self.free += hidden

    def _schedule(self, now: float) -> list[Decision]:
        if self.backoff:
            for s in [s for s, t in self.backoff.items() if t <= now + 1e-9]:
                del self.backoff[s]
                self.waiting[s] = None
                self._elig_stale.add(s)
                self._dirty = True
        self._now = now
        if (self._round_gen is None and self._next_round is not None
                and now >= self._next_round - 1e-9):
            self._round_t0 = now
            self._round_gen = self._round_steps(now)
        if self._round_gen is not None:
            # a round (in slices: continued); nothing else happens until it is done
            out = self._advance(now)
            if self._round_gen is not None:
                return out
            due = True
        elif self.waiting:
            due = False
            out = self._fill(now)
        else:
            due = False
            out = []
        if (not self.waiting and self._subopt and self.policy.preemptive and self.policy.aware
                and self._freed):
            out += self._upgrade(now)
        self._freed = False
        if self.policy.preemptive:
            if self.waiting or (self.policy.lp and self._owed_elsewhere()):
                if due or self._next_round is None:
                    if self._next_round is None:
                        self._start_rounds(now)
                    self._next_round = now + self.round_s
            else:
                self._next_round = None
        return out

    def _owed_elsewhere(self) -> bool:
        """Some running job has a time share on another pool with room for it now (so a
        round may move it there even though nobody waits). Read from ``_owe`` (per pool, the
        demands of running jobs owed time there), not from every running job."""
        if not self.running:
            return False
        free = self.free
        return any(o and free[q] > 0 and min(o) <= free[q] for q, o in enumerate(self._owe))

    def _owe_pools(self, s: int, p: int) -> list[int]:
        """Pools other than ``p`` where job s has a time share."""
        row = self.t.share[s].tolist()
        return [q for q in range(self.P) if row[q] > 1e-6 and q != p]

    def _owe_count(self, s: int, p: int, by: int) -> None:
        """Count running job s (on pool p) in ``_owe`` (by = 1) or no more (by = -1). Its
        share row must be the one it was counted with: shares change only in a round, which
        rebuilds ``_owe`` (:meth:`_owe_rebuild`)."""
        qs = self._owe_pools(s, p)
        if not qs:
            return
        d = int(self.t.demand[s])
        for q in qs:
            o = self._owe[q]
            c = o.get(d, 0) + by
            if c:
                o[d] = c
            else:
                del o[d]

    def _owe_rebuild(self) -> None:
        """``_owe`` from scratch: per pool, demand -> running jobs with a time share there
        that run elsewhere."""
        self._owe = [{} for _ in range(self.P)]
        if not self.running or not self.policy.lp:
            return
        run = np.fromiter(self.running, np.int64, len(self.running))
        rp = np.fromiter(self.running.values(), np.int64, len(self.running))
        m = self.t.share[run] > 1e-6
        m[np.arange(len(run)), rp] = False
        r, q = np.nonzero(m)
        if len(r):
            d = self.t.demand[run[r]]
            key = q * (int(d.max()) + 1) + d  # (pool, demand) as one integer
            uk, cnt = np.unique(key, return_counts=True)
            qq, dd = np.divmod(uk, int(d.max()) + 1)
            for a, b, c in zip(qq.tolist(), dd.tolist(), cnt.tolist(), strict=True):
                self._owe[a][b] = c

    # ------------------------------------------------------------------ the policies' view
    def view(self) -> SchedulerView:
        """A read-only view of the current state, as policies see it (built for each pass)."""
        return SchedulerView(self.t, self.jobs, self.cluster, self._class_matrix(),
                             self._class_demand_arr(), self._class_weight, self.capacity,
                             self.round_s, self.keep_s)

    # ------------------------------------------------------------------ snapshot / restore
    def snapshot(self) -> dict[str, Any]:
        """The scheduler's state as plain data (JSON-able). :meth:`restore` with the same
        cluster, policy, throughput source and options continues exactly where this left off:
        replaying the same events afterwards gives the same decisions."""
        return {
            "version": SNAPSHOT_VERSION,
            "round_s": self.round_s,
            "policy": self.policy.label,
            "queues": [[n, self.queue_weight[i], None if not np.isfinite(self.queue_quota[i])
                        else self.queue_quota[i] / MILLI]
                       for i, n in enumerate(self.queue_names)],
            "jobs": [job_to_plain(j) for j in self.jobs],
            "slots": self.t.to_plain(self._n),
            "class_rates": [r.tolist() for r in self._class_rates],
            "waiting": list(self.waiting),
            "running": [[s, p] for s, p in self.running.items()],
            "backoff": [[s, t] for s, t in self.backoff.items()],
            "unrunnable": dict(self.unrunnable),
            "failed": dict(self.failed),
            "nodes": {k: list(v) for k, v in self.nodes.items()},
            "devices": self.dev.to_plain(),
            "placement": [[s, [list(x) for x in pl]] for s, pl in self.placement.items()],
            "capacity": self.capacity.tolist(),
            "free": self.free.tolist(),
            "queue_used": self.queue_used.tolist(),
            # a round in slices under way is not saved: the restored scheduler begins it again
            "next_round": self._round_t0 if self._round_gen is not None else self._next_round,
            "last_round_t": self._last_round_t,
            "dirty": self._dirty,
            "freed": self._freed,
            "last_stop_rate": self._last_stop_rate,
            "stats": dict(self.stats),
            "subopt": sorted(self._subopt),
            "subopt_groups": [[c, p, n] for (c, p), n in self._subopt_groups.items()],
            "elig_stale": sorted(self._elig_stale),
            "elig_all_stale": self._elig_all_stale,
        }

    @classmethod
    def restore(
        cls,
        data: dict[str, Any],
        cluster: ClusterSpec,
        policy: Policy,
        throughput: ThroughputProvider | ThroughputMatrix,
        **options: Any,
    ) -> Scheduler:
        """A scheduler in the state of :meth:`snapshot` output ``data``. ``options`` are the
        keyword options the snapshotted scheduler was made with (round_s and queues come from
        the snapshot)."""
        if data.get("version") != SNAPSHOT_VERSION:
            raise SuanliError(f"scheduler snapshot version {data.get('version')!r} is not "
                              f"{SNAPSHOT_VERSION}")
        if data["policy"] != policy.label:
            raise SuanliError(f"snapshot is of policy {data['policy']}, not {policy.label}")
        queues = [Queue(n, w, q) for n, w, q in data["queues"]]
        sched = cls(cluster, policy, throughput, round_s=data["round_s"], queues=queues,
                    **options)
        for d in data["jobs"]:
            sched.submit(job_from_plain(d))  # rebuilds classes and caches in the same order
        sched.t.load_plain(data["slots"])
        sched._class_rates = [np.asarray(r, dtype=float) for r in data["class_rates"]]
        sched._cm = None
        sched._cbest.clear()
        sched.waiting = dict.fromkeys(int(s) for s in data["waiting"])
        sched.running = {int(s): int(p) for s, p in data["running"]}
        sched.backoff = {int(s): float(t) for s, t in data["backoff"]}
        sched.unrunnable = dict(data["unrunnable"])
        sched.failed = dict(data["failed"])
        sched.nodes = {k: list(v) for k, v in data["nodes"].items()}
        sched.dev = Devices.from_plain(sched.P, data["devices"])
        sched.placement = {int(s): [(int(k), int(i), int(m)) for k, i, m in pl]
                           for s, pl in data["placement"]}
        sched.capacity = np.asarray(data["capacity"], dtype=np.int64)
        sched.free = np.asarray(data["free"], dtype=np.int64)
        sched.queue_used = np.asarray(data["queue_used"], dtype=np.int64)
        sched._next_round = data["next_round"]
        sched._last_round_t = data["last_round_t"]
        sched._dirty = bool(data["dirty"])
        sched._freed = bool(data["freed"])
        sched._last_stop_rate = float(data["last_stop_rate"])
        sched._any_down = any(v[2] != "up" for v in sched.nodes.values())
        sched.stats = dict(data["stats"])
        sched._subopt = {int(s) for s in data["subopt"]}
        sched._subopt_groups = {(int(c), int(p)): int(n) for c, p, n in data["subopt_groups"]}
        sched._elig_stale = {int(s) for s in data["elig_stale"]}
        sched._owe_rebuild()
        # the back-fill index is not part of the snapshot: rebuilt from the restored state
        # (a waiting job's priority and scores are fixed until the next round)
        sched._elig_all_stale = True
        return sched

    @property
    def indexed_backfill(self) -> bool:
        """Whether back-fill uses the waiting-job index (the policy declares its scores fixed
        while a job waits: ``Policy.fixed_while_waiting``) instead of re-planning every job."""
        return self._elig_cache

    def fragmentation(self) -> np.ndarray:
        """Per pool, free devices (fractions included) that no waiting job can use now: on
        nodes where no waiting job that can run in the pool fits (by the placement rules of
        :mod:`suanli.sched.nodes`). Zero when nobody waits (free capacity is then idle, not
        stranded)."""
        if not self.waiting:
            return np.zeros(self.P)
        w = np.fromiter(self.waiting, np.int64, len(self.waiting))
        cls = np.unique(self.t.cls[w])
        can = self._class_matrix()[cls] > 0
        dem = self._class_demand_arr()[cls]
        return self.dev.unusable([np.unique(dem[can[:, p]]) for p in range(self.P)])

    def waiting_ids(self) -> list[str]:
        """Jobs waiting for a start (submit order), not counting those in a retry backoff."""
        return [self.jobs[s].id for s in self.waiting]

    @property
    def queue_length(self) -> int:
        return len(self.waiting)

    def isolated_time(self, job_id: str) -> float:
        """The job's time alone on 1/n of the cluster (n = active jobs when it arrived)."""
        return float(self.t.iso_time[self._slot(job_id)])

    def adopt_running(self, job_id: str, pool: int | str, now: float) -> Decision | None:
        """A driver rebuilding from its own records (the service after a restart): ``job_id``,
        waiting here, already runs on ``pool``. Returns the start it records, or None when the
        job is not waiting or the pool has no room left for it (then it is not counted)."""
        s = self._slot(job_id)
        p = self._pool(pool)
        if int(self.t.state[s]) != WAITING or not self._fits(self.t.demand[s:s + 1])[0, p]:
            return None
        return self._start(s, p, now)

    def adopt_on(self, job_id: str, placement: Sequence[tuple[str, Sequence[int]]],
                 now: float) -> Decision | None:
        """Like :meth:`adopt_running`, onto the exact devices the driver recorded:
        ``((node id, (device indices, ...)), ...)`` as in :attr:`Decision.placement`. None
        (nothing recorded) when the job is not waiting, a node is unknown or not up, or a
        device is not free enough (e.g. the fleet changed while the driver was down)."""
        s = self._slot(job_id)
        if int(self.t.state[s]) != WAITING or not placement:
            return None
        left = int(self.t.demand[s])
        pl: Placement = []
        for nid, idx in placement:
            k = self.dev.index.get(nid)
            if k is None or not self.dev.up[k]:
                return None
            for i in idx:
                if (not 0 <= int(i) < int(self.dev.ndev[k]) or left <= 0
                        or any(x == k and y == int(i) for x, y, _ in pl)):
                    return None
                m = min(MILLI, left)
                if int(self.dev.free[self.dev.first[k] + int(i)]) < m:
                    return None
                pl.append((k, int(i), m))
                left -= m
        p = int(self.dev.pool[pl[0][0]])
        if left > 0 or any(int(self.dev.pool[k]) != p for k, _, _ in pl):
            return None
        return self._start(s, p, now, prefer=pl)

    def stopped_externally(self, job_id: str, now: float,
                           reason: str = "preempted") -> Decision | None:
        """The backend stopped a running job without a decision of ours (e.g. Slurm
        preemption): it waits again, keeping the work done so far."""
        s = self._slot(job_id)
        if int(self.t.state[s]) != RUNNING:
            return None
        return self._stop(s, now, reason)

    def job_state(self, job_id: str) -> str:
        """``waiting``, ``running``, ``done``, ``unrunnable``, ``cancelled`` or ``failed``."""
        return STATE_NAMES[int(self.t.state[self._slot(job_id)])]

    # ------------------------------------------------------------------ internals
    def _slot(self, job_id: str) -> int:
        s = self.slot_of.get(job_id)
        if s is None:
            raise SuanliError(f"unknown job id '{job_id}'")
        return s

    def _pool(self, pool: int | str) -> int:
        if isinstance(pool, str):
            for p in self.cluster.pools:
                if p.label == pool:
                    return p.index
            raise SuanliError(f"unknown pool '{pool}' (pools: "
                              f"{', '.join(p.label for p in self.cluster.pools)})")
        if not 0 <= pool < self.P:
            raise SuanliError(f"unknown pool index {pool}")
        return int(pool)

    def _node_down(self, node_id: str, how: str) -> tuple[int, int]:
        node = self.nodes.get(node_id)
        if node is None or node[2] != "up":
            raise SuanliError(f"node '{node_id}' is not up" if node else
                              f"unknown node '{node_id}'")
        node[2] = how
        return int(node[0]), int(node[1])  # type: ignore[call-overload]

    def _take_out(self, node_id: str, how: str) -> int:
        """Node ``node_id`` leaves service (``how``: drained | failed); returns its index. The
        pool loses the node's whole capacity but only the free part of its free capacity:
        devices of jobs running there were taken already, and they do not come back to the
        pool when those jobs stop (``Devices.down_milli``)."""
        p, n = self._node_down(node_id, how)
        k = self.dev.index[node_id]
        busy = sum(m for s in self.running for x, _, m in self.placement[s] if x == k)
        self.dev.set_up(k, False)
        self._any_down = True
        self._resize(p, -n * MILLI)
        self.free[p] += busy
        return k

    def _resize(self, p: int, milli: int) -> None:
        self.capacity[p] += milli
        self.free[p] += milli
        self._dirty = True  # LP capacities changed
        self._elig_all_stale = True
        if milli > 0:
            self._freed = True

    def _leave(self, s: int, state: int) -> None:
        """Job s is over (done, cancelled, failed for good)."""
        self.waiting.pop(s, None)
        self.backoff.pop(s, None)
        self.t.state[s] = state
        self._dirty = True

    def _checkpointed(self, s: int) -> float:
        """Work saved at job s's last periodic checkpoint (it has just been stopped)."""
        base = float(self.t.ckpt[s])
        chunk = self._last_stop_rate * self.checkpoint_every_s
        if chunk <= 0:
            return base
        since = max(0.0, float(self.t.done[s]) - base)
        return base + float(np.floor(since / chunk)) * chunk

    def _failed(self, s: int, now: float, reason: str) -> bool:
        self.t.failures[s] += 1
        self.stats["failures"] += 1
        self.t.ckpt[s] = self.t.done[s]
        if self.t.failures[s] > self.retry.max_retries:
            self.failed[self.jobs[s].id] = reason
            self._leave(s, FAILED)
            return False
        self.stats["retries"] += 1
        self.waiting.pop(s, None)
        self.backoff[s] = now + self.retry.delay(int(self.t.failures[s]))
        self.t.not_before[s] = self.backoff[s]
        self._dirty = True
        return True

    def _class_matrix(self) -> np.ndarray:
        """Rates per (class, pool); rebuilt when a class is added or a rate is learnt."""
        cm = self._cm
        if cm is None or len(cm) != len(self._class_rates):
            cm = np.array(self._class_rates).reshape(len(self._class_rates), self.P)
            self._cm = cm
        return cm

    def _class_demand_uniq(self) -> np.ndarray:
        """The distinct demands of the job classes (a fit test depends on the demand only)."""
        if self._cdu is None or self._cdu[0] != len(self._class_demand):
            self._cdu = (len(self._class_demand), np.unique(self._class_demand_arr()))
        return self._cdu[1]

    def _class_demand_arr(self) -> np.ndarray:
        cd = self._cd
        if cd is None or len(cd) != len(self._class_demand):
            cd = np.asarray(self._class_demand, dtype=np.int64)
            self._cd = cd
        return cd

    def _rates_for(self, job: Job) -> tuple[np.ndarray, str | None]:
        """Per-pool rate of ``job`` (0 where it cannot run) or the reason it can run nowhere."""
        sig = filter_signature(job)
        freasons = self._filter_cache.get(sig)
        if freasons is None:
            freasons = run_filters(job, self.cluster, self.filters)
            self._filter_cache[sig] = freasons
        trow, treasons = self.matrix.row(job)
        pt = self.cluster.pool_type
        rates = trow[pt] * job.gpu_fraction
        reasons: list[str] = []
        for p in range(self.P):
            r = freasons[p] or (treasons[pt[p]] if rates[p] <= 0 else None)
            if r:
                rates[p] = 0.0
                reasons.append(r)
        if not (rates > 0).any():
            uniq = list(dict.fromkeys(reasons))
            text = "; ".join(uniq[:3]) + (f" (+{len(uniq) - 3} more)" if len(uniq) > 3 else "")
            return rates, f"no pool can run it: {text}" if text else "cluster has no pools"
        return rates, None

    def _isolated_time(self, s: int, rates: np.ndarray) -> float:
        """Job time alone on 1/n of the cluster (n = active jobs incl. this one)."""
        n = len(self.waiting) + len(self.running)
        cap = self.capacity / MILLI
        feas = rates > 0
        share = float(cap[feas].sum()) / max(n, 1)
        r = float((rates[feas] * cap[feas]).sum() / max(cap[feas].sum(), 1e-12))
        frac = min(1.0, share / max(self.t.demand[s] / MILLI, 1e-9))
        return float(self.t.work[s]) / max(r * frac, 1e-300)

    def _start_rounds(self, now: float) -> None:
        self._last_round_t = now
        act = self._active()
        self.t.recv[act] = 0.0
        self.t.acct_t[act] = now

    def _active(self) -> np.ndarray:
        return np.fromiter(
            [*self.waiting, *self.running], np.int64, len(self.waiting) + len(self.running)
        )

    def _start(self, s: int, p: int, now: float, prefer: Placement | None = None
               ) -> Decision | None:
        """Start job s on pool p, on the devices :meth:`Devices.choose` picks there now; None
        (nothing changes) if its gang does not fit the pool's nodes now."""
        t = self.t
        d = int(t.demand[s])
        pl = self.dev.choose(p, d, prefer)
        if pl is None:
            return None
        job = self.jobs[s]
        self.dev.take(pl)
        self.placement[s] = pl
        stage = 0.0
        if t.data_gb[s] > 0:
            ds = t.data_site[s]
            site = int(self.cluster.pool_site[p])
            if ds >= 0 and ds != site:
                stage = float(t.data_gb[s] * 8.0 / self.cluster.wan_gbps[p])
            if ds >= 0:
                t.data_site[s] = site
        c = int(t.cls[s])
        rates = self._class_rates[c]
        rate = float(rates[p])
        best = self._cbest.get(c)
        if best is None:
            best = self._cbest[c] = float(rates.max())
        # _upgrade moves a job only where t_new < GAIN * t_here; with no staging where it runs
        # (its data is now here) that needs rate_new > rate / GAIN (exact in floating point:
        # rem / r' >= rem / (2 r) = 0.5 * (rem / r) whenever r' <= 2 r), so jobs without such a
        # pool are left out of the candidates for good
        if best > rate / UPGRADE_GAIN:
            self._subopt.add(s)
            key = (c, int(p))
            self._subopt_groups[key] = self._subopt_groups.get(key, 0) + 1
        # a placement on more nodes than the throughput source assumed runs slower
        if (len(pl) > 1 and len({k for k, _, _ in pl})
                > -(-whole_devices(d) // ASSUMED_DEVICES_PER_NODE)):
            rate *= INTER_NODE_FACTOR
        restart = float(t.restart_s[s]) if t.starts[s] > 0 else 0.0
        if restart:
            self.stats["restarts"] += 1
            self.stats["restart_s"] += restart
        t.starts[s] += 1
        self.free[p] -= d
        self.queue_used[t.qidx[s]] += d
        t.pool[s] = p
        t.state[s] = RUNNING
        t.seg_t0[s] = now
        t.prog_t[s] = now + stage + restart
        t.ckpt[s] = t.done[s]
        t.rate_now[s] = rate
        t.acct_t[s] = now
        self.waiting.pop(s, None)
        self.running[s] = p
        if self.policy.lp:
            self._owe_count(s, p, 1)
        self.policy.reserve(job.id, p, now)
        return Decision("start", job.id, p, d, rate, stage, restart,
                        placement=self.dev.named(pl))

    def _stop(self, s: int, now: float, reason: str = "preempted") -> Decision:
        t = self.t
        p = int(t.pool[s])
        d = int(t.demand[s])
        self._last_stop_rate = float(t.rate_now[s])
        t.done[s] = min(t.work[s], t.done[s] + t.rate_now[s] * max(0.0, now - t.prog_t[s]))
        t.attained[s] += (now - t.seg_t0[s]) * d / MILLI
        t.recv[s, p] += now - t.acct_t[s]
        pl = self.placement.pop(s)
        self.free[p] += d - self.dev.down_milli(pl) if self._any_down else d
        self.queue_used[t.qidx[s]] -= d
        self.dev.release(pl)
        t.pool[s] = -1
        t.rate_now[s] = 0.0
        self._stopped(s, p, int(t.cls[s]))
        jid = self.jobs[s].id
        self.policy.unreserve(jid, p, now, reason)
        return Decision("stop", jid, p, d, reason=reason, placement=self.dev.named(pl))

    def _stopped(self, s: int, p: int, c: int) -> None:
        """Bookkeeping of a stop of job s (class c) on pool p, after its devices are free."""
        if s in self._subopt:
            self._subopt.remove(s)
            key = (c, p)
            left = self._subopt_groups[key] - 1
            if left:
                self._subopt_groups[key] = left
            else:
                del self._subopt_groups[key]
        if self.policy.lp:
            self._owe_count(s, p, -1)
        self.t.state[s] = WAITING
        del self.running[s]
        self.waiting[s] = None
        self._elig_stale.add(s)

    def _stop_many(self, slots: list[int], now: float, reasons: list[str]) -> list[Decision]:
        """Stop running jobs ``slots`` (in this order, each for its reason): the same as
        stopping them one after the other, with the per-job arithmetic vectorised and their
        devices released at once."""
        if len(slots) < 8:
            return [self._stop(s, now, r) for s, r in zip(slots, reasons, strict=True)]
        t = self.t
        ss = np.asarray(slots, dtype=np.int64)
        ps = t.pool[ss].copy()
        ds = t.demand[ss]
        self._last_stop_rate = float(t.rate_now[ss[-1]])
        t.done[ss] = np.minimum(
            t.work[ss], t.done[ss] + t.rate_now[ss] * np.maximum(0.0, now - t.prog_t[ss]))
        t.attained[ss] += (now - t.seg_t0[ss]) * ds / MILLI
        t.recv[ss, ps] += now - t.acct_t[ss]
        pls = [self.placement.pop(s) for s in slots]
        if self._any_down:
            np.add.at(self.free, ps, ds - np.array([self.dev.down_milli(pl) for pl in pls],
                                                   dtype=np.int64))
        else:
            np.add.at(self.free, ps, ds)
        np.subtract.at(self.queue_used, t.qidx[ss], ds)
        self.dev.release_many(pls)
        t.pool[ss] = -1
        t.rate_now[ss] = 0.0
        cls = t.cls[ss].tolist()
        out: list[Decision] = []
        for s, p, d, c, pl, reason in zip(slots, ps.tolist(), ds.tolist(), cls, pls, reasons,
                                          strict=True):
            self._stopped(s, p, c)
            jid = self.jobs[s].id
            self.policy.unreserve(jid, p, now, reason)
            out.append(Decision("stop", jid, p, d, reason=reason,
                                placement=self.dev.named(pl)))
        return out

    def _plan(self, slots: np.ndarray, now: float) -> tuple[np.ndarray, np.ndarray]:
        """(slots in claim order, score matrix rows in that order)."""
        return _drain(self._plan_g(slots, now))

    def _plan_g(self, slots: np.ndarray, now: float
                ) -> Generator[float, None, tuple[np.ndarray, np.ndarray]]:
        view = self.view()
        pri = yield from self._by_rows(lambda x: self.policy.queue_order(view, x, now), slots,
                                       ROW_US)
        order = np.lexsort((slots, pri))
        slots = slots[order]
        yield len(slots) * ROW_US / 2
        scores = yield from self._by_rows(lambda x: self._scores(x, now), slots, ROW_US)
        yield len(slots) * ROW_US / 4
        # kept for the back-fill index rebuilt right after a round (see _refresh_index)
        self._last_plan = (slots, np.asarray(pri, dtype=float)[order], scores,
                           self.t.pool[slots])
        return slots, scores

    def _by_rows(self, fn: Any, rows: np.ndarray, us_per_row: float
                 ) -> Generator[float, None, np.ndarray]:
        """``fn(rows)`` of a policy function that keys or scores each job on its own; in a
        round in slices computed in pieces of ROWS_CHUNK rows, each reported."""
        step = self._row_step(len(rows), True)
        if step >= len(rows):
            return np.asarray(fn(rows))
        parts = []
        for a in range(0, len(rows), step):
            parts.append(np.asarray(fn(rows[a:a + step]), dtype=float))
            yield len(parts[-1]) * us_per_row
        return np.concatenate(parts)

    def _chunk(self) -> int:
        """Stops or starts carried out between two reports: APPLY_CHUNK, or fewer when a
        slice's budget is smaller (a driver whose own work per decision is large, such as
        the service's database writes, asks for small slices and gets few decisions each)."""
        if self.round_slice is None:
            return APPLY_CHUNK
        return max(16, min(APPLY_CHUNK,
                           int(self.round_slice / (START_US + self.decision_us))))

    def _row_step(self, n: int, policy: bool = False, chunk: int = ROWS_CHUNK) -> int:
        """Rows per piece of a vectorised step over ``n`` jobs: all of them, except in a
        round in slices (and, for the policy's own keys and scores, only if it declares each
        job scored on its own: ``fixed_while_waiting``), where each piece is reported."""
        if self.round_slice is None or self._round_gen is None or (
                policy and not self._elig_cache):
            return max(n, 1)
        return chunk

    def _scores(self, slots: np.ndarray, now: float) -> np.ndarray:
        """(job x pool) costs on the policy's normalised scale (see suanli.sched.policies)."""
        view = self.view()
        return self.policy.normalise(view, slots, self.policy.score(view, slots, now))

    def _eligible(self, scores: np.ndarray) -> np.ndarray:
        """(job x pool) pools a job would take if it fitted there: finite score, and within
        the policy's patience of its best pool."""
        ok = np.isfinite(scores)
        # patience: a job waits rather than take a pool scoring > patience x its best pool's
        # (scores are times or costs; share scores are negative and exempt)
        pat = self.policy.patience
        if pat is not None:
            best = np.where(ok, scores, np.inf).min(axis=1)
            pos = np.isfinite(best) & (best > 0)
            if pos.any():
                ok[pos] &= scores[pos] <= (best[pos] * pat)[:, None]
        return ok

    def _allocate(
        self, slots: np.ndarray, scores: np.ndarray, free: np.ndarray,
        used: np.ndarray | None = None, dev: Devices | None = None,
        idx: list[int] | None = None,
    ) -> dict[int, int]:
        return _drain(self._allocate_g(slots, scores, free, used, dev, idx))

    def _allocate_g(
        self, slots: np.ndarray, scores: np.ndarray, free: np.ndarray,
        used: np.ndarray | None = None, dev: Devices | None = None,
        idx: list[int] | None = None,
    ) -> Generator[float, None, dict[int, int]]:
        """Greedy all-or-nothing placement in order; mutates ``free``, ``used`` (queue use
        for the quota check, in milli; default: a copy of the running use) and ``dev`` (the
        devices as planned; default: a copy of the current ones). A gang must fit a pool's
        nodes (:mod:`suanli.sched.nodes`), not only its free total. ``idx`` (optional) gets
        the row numbers of the jobs placed, in increasing order.

        Vectorised: the (job x pool) "fits now" mask is built once and only the column of the
        pool just used is updated after each placement, so jobs that cannot be placed cost
        nothing in the Python loop. The loop itself works on plain lists (a placement touches
        a dozen numbers: numpy calls on them would cost more than the arithmetic).
        """
        out: dict[int, int] = {}
        if len(slots) == 0:
            return out
        dem = self.t.demand[slots]
        qi = self.t.qidx[slots]
        if used is None:
            used = self.queue_used.astype(float)
        if dev is None:
            dev = self.dev.copy()
        quota = np.asarray(self.queue_quota)
        has_quota = bool(np.isfinite(quota).any())
        quota_l = quota.tolist()
        capf = np.maximum(self.capacity, 1).astype(float)
        # ties go to the pool with the largest fraction free now: not held by running jobs,
        # so a job does not take the place of one that is running while another pool is free
        tie_free = np.minimum(self.free, free).astype(float)
        tie_l = tie_free.tolist()
        capf_l = capf.tolist()
        tf = (tie_free / capf).tolist()
        cur = self.t.pool[slots]
        # "fits pool p" only turns false during one allocation (room is only taken), and it
        # depends on the demand alone: test the few distinct demands after each placement
        # and flip the jobs of a demand once, when it stops fitting (not all jobs each time)
        udem, dinv = np.unique(dem, return_inverse=True)
        dinv = dinv.reshape(-1)
        dfit = (free[None, :] >= udem[:, None]) & dev.fits(udem)
        yield len(slots) * ROW_US / 2
        step = self._row_step(len(slots))
        if step >= len(slots):
            okm = self._eligible(scores) & dfit[dinv]
        else:
            okm = np.empty((len(slots), self.P), dtype=bool)
            for a in range(0, len(slots), step):
                okm[a:a + step] = self._eligible(scores[a:a + step]) & dfit[dinv[a:a + step]]
                yield step * ROW_US / 2
        cnt = okm.sum(axis=1)  # pools each job still fits in now
        by_dem = np.split(np.argsort(dinv, kind="stable"),
                          np.cumsum(np.bincount(dinv, minlength=len(udem)))[:-1])
        yield len(slots) * ROW_US / 2
        udem_l = udem.tolist()
        # per pool: the distinct demands (indices into udem) that still fit it
        fit_in = [np.flatnonzero(dfit[:, p]).tolist() for p in range(self.P)]
        free_l = free.tolist()
        used_l = used.tolist()
        dem_l, qi_l, slots_l, cur_l = dem.tolist(), qi.tolist(), slots.tolist(), cur.tolist()
        P = self.P
        rng_p = range(P)
        placement = self.placement
        inf = float("inf")
        looked = placed = 0
        for i in np.nonzero(cnt)[0].tolist():
            looked += 1
            if looked >= SLICE_ROWS:
                yield looked * LOOK_US + placed * PLACE_US
                looked = placed = 0
            if cnt[i] <= 0:
                continue
            d = dem_l[i]
            q = qi_l[i]
            if has_quota and used_l[q] + d > quota_l[q]:
                continue
            okr = okm[i].tolist()
            row = scores[i].tolist()
            best = inf
            for j in rng_p:
                if okr[j] and row[j] < best:
                    best = row[j]
            thr = best + 1e-9 * abs(best) + 1e-12
            p = -1
            bv = -inf
            for j in rng_p:  # the first pool with the largest free fraction among the ties
                if okr[j] and row[j] <= thr and tf[j] > bv:
                    bv = tf[j]
                    p = j
            s = slots_l[i]
            pl = dev.choose(p, d, placement.get(s) if cur_l[i] == p else None)
            if pl is None:  # cannot happen: fits() said it does
                continue
            dev.take(pl)
            fp = free_l[p] - d
            free_l[p] = fp
            if cur_l[i] != p:
                tie_l[p] -= d
                tf[p] = tie_l[p] / capf_l[p]
            used_l[q] += d
            out[s] = p
            placed += 1
            if idx is not None:
                idx.append(i)
            fits = fit_in[p]
            lo, span, hi = dev.thresholds(p)
            gone = [j for j in fits
                    if udem_l[j] > fp or not (udem_l[j] <= lo or span < udem_l[j] <= hi)]
            if gone:
                fit_in[p] = [j for j in fits if j not in gone]
                for j in gone:
                    rows = by_dem[j]
                    rows = rows[okm[rows, p]]
                    okm[rows, p] = False
                    cnt[rows] -= 1
        free[:] = free_l
        used[:] = used_l
        return out

    def _upgrade(self, now: float) -> list[Decision]:
        """Nobody waits and capacity came free: move running jobs (preemptive, aware policies)
        to a free pool where they would finish in under UPGRADE_GAIN of the time left where
        they are. Rounds are dormant then, so this is how jobs reach faster pools.

        Jobs are visited in order of how much time they would save (largest first); each takes
        its fastest qualifying pool with room left *at its turn* (a move frees its old pool for
        later jobs). Vectorised like :meth:`_allocate`: the (job x pool) "qualifies and fits"
        mask is built once and only the two columns a move touches are updated, so the Python
        loop runs once per move, not once per running job (thousands of them under load).
        """
        free = self.free.copy()
        # gate, per (class, pool) group instead of per job: a pool only gains room through a
        # move away from it, so unless some job qualifies for a pool with room *now*, nothing
        # moves in this call (the common case under load: every fast pool is full)
        groups = np.fromiter(
            (x for key in self._subopt_groups for x in key), np.int64, 2 * len(self._subopt_groups)
        ).reshape(-1, 2)
        Rg = self._class_matrix()[groups[:, 0]]
        r_here = Rg[np.arange(len(groups)), groups[:, 1]]
        dg = self._class_demand_arr()[groups[:, 0]]
        if not ((Rg > (r_here / UPGRADE_GAIN)[:, None]) & self._fits(dg)).any():
            return []
        run = np.sort(np.fromiter(self._subopt, np.int64, len(self._subopt)))
        dem_all = self.t.demand[run]
        t = time_to_finish(self.view(), run, now)
        cur_all = self.t.pool[run]
        here = t[np.arange(len(run)), cur_all]
        # a move pays its restart (checkpoint + restore) before progress resumes
        t = t + self.t.restart_s[run][:, None]
        t[np.arange(len(run)), cur_all] = here
        cand = t < UPGRADE_GAIN * here[:, None]  # pools worth moving to (ignoring room)
        rows = np.flatnonzero(cand.any(axis=1))
        if len(rows) == 0:
            return []
        gain = here - t.min(axis=1)
        rows = rows[np.argsort(-gain[rows], kind="stable")]  # = the stable order over all jobs
        C = cand[rows]
        T = np.where(C, t[rows], np.inf)
        D = dem_all[rows]
        cur = cur_all[rows]
        ok = C & (free[None, :] >= D[:, None]) & self.dev.fits(D)
        cnt = ok.sum(axis=1)
        out: list[Decision] = []
        i = 0
        n = len(rows)
        while i < n:
            nz = np.flatnonzero(cnt[i:])
            if len(nz) == 0:
                break
            i += int(nz[0])
            s = int(run[rows[i]])
            d = int(D[i])
            p = int(np.argmin(np.where(ok[i], T[i], np.inf)))
            q = int(cur[i])
            free[p] -= d
            free[q] += d
            out.append(self._stop(s, now, "moved"))
            st = self._start(s, p, now)  # fits: checked on the devices as they are now
            if st is not None:
                out.append(st)
            self.stats["migrations"] += 1
            i += 1
            if i < n:
                for col in (p, q):
                    new = C[i:, col] & (D[i:] <= free[col]) & self.dev.fits_pool(D[i:], col)
                    cnt[i:] += new.astype(np.int64) - ok[i:, col]
                    ok[i:, col] = new
        return out

    def _fill(self, now: float) -> list[Decision]:
        if not self.waiting:
            return []
        if self._elig_cache and len(self.waiting) >= ELIG_MIN_QUEUE:
            return self._fill_indexed(now)
        if self._elig_cache:
            self._elig_all_stale = True  # short queue: plan it all, rebuild the index later
            self._elig_stale.clear()
        slots = np.fromiter(self.waiting, np.int64, len(self.waiting))
        if not self._fits(self.t.demand[slots]).any():
            return []
        # the running quota use is already in self.queue_used
        place = self._place(slots, now, self.free.copy(), self.dev.copy())
        self._last_plan = None
        return [d for s, p in place.items() if (d := self._start(s, p, now)) is not None]

    def _refresh_index(self, now: float) -> None:
        """File the waiting jobs whose priority / scores are not in the index yet (all of
        them after a round)."""
        _drain(self._refresh_index_g(now))

    def _refresh_index_g(self, now: float) -> Generator[float, None, None]:
        every = self._elig_all_stale
        if every:
            # every waiting job is filed again, in place: those whose order key and scores
            # did not change keep their entries (WaitIndex.changed); the heaps are rebuilt
            # from scratch only when stale entries pile up
            todo = np.fromiter(self.waiting, np.int64, len(self.waiting))
            self._pending.clear()
        else:
            # jobs are filed once their demand fits some pool: until then (a full cluster
            # under load) they wait in _pending by demand, at no cost per event
            for x in self._elig_stale:
                if x in self.waiting:
                    self._pending.setdefault(int(self.t.demand[x]), []).append(x)
            if not self._pending:
                todo = np.zeros(0, dtype=np.int64)
            else:
                dems = np.fromiter(self._pending, np.int64, len(self._pending))
                go = dems[self._fits(dems).any(axis=1)].tolist()
                todo = np.fromiter((x for d in go for x in self._pending.pop(d)
                                    if x in self.waiting), np.int64)
                # and a bounded batch of the others, so that no large pile builds up to be
                # filed all at once (a latency spike) when its demand first fits
                more: list[int] = []
                for d in list(self._pending):
                    lst = self._pending[d]
                    take = lst[:PENDING_BATCH - len(more)]
                    more += [x for x in take if x in self.waiting]
                    del lst[:len(take)]
                    if not lst:
                        del self._pending[d]
                    if len(more) >= PENDING_BATCH:
                        break
                if more:
                    todo = np.concatenate([todo, np.asarray(more, dtype=np.int64)])
        self._elig_all_stale = False
        self._elig_stale.clear()
        plan, self._round_plan = self._round_plan, None
        if len(todo) == 0:
            return
        view = self.view()
        dem, q = self.t.demand[todo], self.t.qidx[todo]
        if plan is not None:
            # right after a round, at the same time: a job that waited when the round planned
            # and waits still has the order key and scores the plan gave it (a waiting job's
            # are its own, fixed while it waits: Policy.fixed_while_waiting); only the jobs
            # the round stopped are scored again
            pslots, ppri, pscores, pcur = plan
            pos = np.full(self._n, -1, dtype=np.int64)
            pos[pslots] = np.arange(len(pslots))
            at = pos[todo]
            reuse = at >= 0
            reuse[reuse] = pcur[at[reuse]] < 0
            new = todo[~reuse]
            yield len(todo) * ROW_US / 2
            pri = np.empty(len(todo))
            sc = np.empty((len(todo), self.P))
            pri[reuse] = ppri[at[reuse]]
            sc[reuse] = pscores[at[reuse]]
            yield len(todo) * ROW_US
            if len(new):
                pri[~reuse] = np.asarray(self.policy.queue_order(view, new, now), dtype=float)
                sc[~reuse] = self.policy.normalise(view, new, self.policy.score(view, new, now))
                yield len(new) * ROW_US * 2
        else:
            pri = np.asarray((yield from self._by_rows(
                lambda x: self.policy.queue_order(view, x, now), todo, ROW_US)), dtype=float)
            sc = yield from self._by_rows(
                lambda x: self.policy.normalise(view, x, self.policy.score(view, x, now)),
                todo, ROW_US)
        yield from self._file_g(self._index[0], todo, pri, sc, dem, q, every)
        if len(self._index) > 1:  # the rate-scored second pass of _two_pass
            fb = self.policy.backfill_score(view, todo, now)
            yield len(todo) * ROW_US
            yield from self._file_g(self._index[1], todo, pri, fb, dem, q, every)

    def _file_g(self, ix: WaitIndex, todo: np.ndarray, pri: np.ndarray, sc: np.ndarray,
                dem: np.ndarray, q: np.ndarray, every: bool) -> Generator[float, None, None]:
        """File ``todo`` in ``ix``; ``every``: they are all the waiting jobs, and only those
        whose order key or scores changed need a new entry. Filed in chunks (a round in
        slices reports its work between them): the index is only read once it is whole."""
        if every:
            ch, dropped = yield from ix.changed_g(todo, pri, sc, todo)
            n = int(ch.sum())
            if (n + dropped > len(todo) // 4 + INDEX_SLACK
                    or ix.entries() + n > 2 * len(todo) + INDEX_SLACK):
                # most entries change (e.g. share policies, whose order keys move every
                # round) or stale ones piled up: a fresh index is cheaper
                ix.clear()
            elif n < len(todo):
                todo, pri, sc, dem, q = todo[ch], pri[ch], sc[ch], dem[ch], q[ch]
        step = self._row_step(len(todo), chunk=FILE_CHUNK)
        for a in range(0, len(todo), step):
            b = a + step
            ix.add(todo[a:b], pri[a:b], sc[a:b], self._eligible(sc[a:b]), dem[a:b], q[a:b])
            yield (b - a) * ROW_US * 6

    def _fill_indexed(self, now: float) -> list[Decision]:
        """Back-fill through :class:`WaitIndex`: the same starts as :meth:`_place` over every
        waiting job (same order, same pools), at a cost proportional to the starts."""
        out: list[Decision] = []
        _drain(self._fill_indexed_g(now, out))
        return out

    def _fill_indexed_g(self, now: float, out: list[Decision]) -> Generator[float, None, None]:
        """:meth:`_fill_indexed` as steps (its starts appended to ``out``): each start looks
        at every group of waiting jobs (demand, queue, pools), so a back-fill after a round
        that starts hundreds of jobs reports its work as it goes."""
        if (not self._elig_all_stale
                and len(self._elig_stale) + sum(map(len, self._pending.values()))
                < PENDING_BATCH
                and not self._fits(self._class_demand_uniq()).any()):
            # no gang of any demand a job has fits anywhere now (a full cluster): nothing can
            # start, and filing the few new or stopped jobs waits for a later pass (their
            # order keys and scores do not change while they wait). A rebuild after a round
            # is not put off (it stays in the round's pass), nor a pile of stale jobs larger
            # than one filing batch (no latency spike when room appears)
            return
        self._refresh_index(now)
        quota = np.asarray(self.queue_quota, dtype=float)
        capf = np.maximum(self.capacity, 1).astype(float)
        k = 0
        for ix in self._index:
            while True:
                k += 1
                if k >= 16:
                    yield k * (START_US + 0.1 * len(ix.heaps))
                    k = 0
                nxt = ix.next_job(self._fits, self.queue_used, quota, self.waiting)
                if nxt is None:
                    break
                s, _, okp = nxt  # okp: its eligible pools where it fits now
                row = ix.score[s]
                best = row[okp].min()
                tie = okp & (row <= best + 1e-9 * abs(best) + 1e-12)
                p = int(np.argmax(np.where(tie, self.free / capf, -np.inf)))
                st = self._start(s, p, now)
                if st is None:  # cannot happen (it fits there); file it again to be safe
                    self._elig_stale.add(s)
                    continue
                out.append(st)

    def _fits(self, dem: np.ndarray) -> np.ndarray:
        """(len(dem) x pools): a gang of each demand (milli) fits each pool now: its nodes
        (:meth:`Devices.fits`) and its free total (which a driver's ``ClusterState`` may
        lower for one call)."""
        return (self.free[None, :] >= dem[:, None]) & self.dev.fits(dem)

    def _place(self, slots: np.ndarray, now: float, free: np.ndarray, dev: Devices
               ) -> dict[int, int]:
        return _drain(self._place_g(slots, now, free, dev, self.queue_used))

    def _place_g(self, slots: np.ndarray, now: float, free: np.ndarray, dev: Devices,
                 used0: np.ndarray) -> Generator[float, None, dict[int, int]]:
        """Plan and allocate ``slots`` on ``free`` and the devices ``dev`` (both mutated).
        Share policies place in two passes: first by shares (what the LP gave each job),
        then, when work-conserving, the jobs left over take the capacity no share claimed
        (rate scores; running jobs first so they keep their pool). If that moved running
        jobs only for want of room, the chosen jobs are re-placed with fewer moves
        (:meth:`_keep_places`) and the room this frees is offered to the jobs left out, in the
        same order. ``used0``: the queues' use (milli) the quota check starts from."""
        free0 = free.copy()
        dev0 = dev.copy()
        yield len(dev.free) * ROW_US / 4
        slots, scores = yield from self._plan_g(slots, now)
        self._favour_current(slots, scores)
        yield len(slots) * ROW_US / 2
        place, rows = yield from self._two_pass_g(slots, scores, now, free,
                                                  used0.astype(float), dev)
        pcur = self.t.pool[np.fromiter(place, np.int64, len(place))]
        moved = bool(((pcur >= 0) & (pcur != np.fromiter(place.values(), np.int64,
                                                          len(place)))).any())
        yield len(place) * ROW_US
        if moved:  # a running job goes elsewhere
            kept, kdev = yield from self._keep_places_g(place, rows, free0, dev0)
            if kdev is not None:
                dev = kdev
            free[:] = free0
            ks = np.fromiter(kept, np.int64, len(kept))
            np.subtract.at(free, np.fromiter(kept.values(), np.int64, len(kept)),
                           self.t.demand[ks])
            mark = np.zeros(self._n, dtype=bool)
            mark[ks] = True
            rest = ~mark[slots]
            yield len(kept) * ROW_US
            if rest.any():
                used = used0.astype(float)
                np.add.at(used, self.t.qidx[ks], self.t.demand[ks])
                more, _ = yield from self._two_pass_g(slots[rest], scores[rest], now, free,
                                                      used, dev)
                kept.update(more)
            place = kept
        return place

    def _two_pass_g(self, slots: np.ndarray, scores: np.ndarray, now: float, free: np.ndarray,
                    used: np.ndarray, dev: Devices
                    ) -> Generator[float, None, tuple[dict[int, int], dict[int, np.ndarray]]]:
        """(placements, score row each placed job was placed by) for ``slots`` in order;
        ``free`` and the queue use ``used`` are mutated (the second pass sees what the first
        placed: before, each pass started from the running use and the two together could
        exceed a queue's quota)."""
        idx: list[int] = []
        place = yield from self._allocate_g(slots, scores, free, used, dev, idx)
        rows = dict(zip(slots[idx].tolist(), scores[idx], strict=True))
        if self.policy.lp and self.work_conserving and len(place) < len(slots):
            left = np.ones(len(slots), dtype=bool)
            left[idx] = False
            rest = slots[left]
            if len(rest) and (free >= self.t.demand[rest].min()).any():
                rest = rest[np.argsort(self.t.pool[rest] < 0, kind="stable")]
                view = self.view()
                fb = yield from self._by_rows(
                    lambda x: self.policy.backfill_score(view, x, now), rest, ROW_US * 3)
                self._favour_current(rest, fb)
                yield len(rest) * ROW_US
                idx = []
                more = yield from self._allocate_g(rest, fb, free, used, dev, idx)
                place.update(more)
                rows.update(zip(rest[idx].tolist(), fb[idx], strict=True))
        return place, rows

    def _keep_places_g(self, place: dict[int, int], rows: dict[int, np.ndarray],
                       free: np.ndarray, dev: Devices
                       ) -> Generator[float, None, tuple[dict[int, int], Devices | None]]:
        """Same jobs, fewer moves. Greedy allocation in claim order can push a running job off
        its pool only because a job ahead of it took the room there while an equally good pool
        was free (typical for agnostic policies, to which pools look alike). Re-place the
        chosen jobs: running jobs first, each on its current pool unless the plan scored
        another pool strictly better for it; then the others, each on a pool that scores no
        worse for it than its planned one. If some job would fare worse, the plan stands
        (returned with None; else with the devices as re-planned)."""
        dev = dev.copy()
        free_l = free.tolist()
        out: dict[int, int] = {}
        pending: list[int] = []
        keys = np.fromiter(place, np.int64, len(place))
        cur_of = dict(zip(keys.tolist(), self.t.pool[keys].tolist(), strict=True))
        dem_of = dict(zip(keys.tolist(), self.t.demand[keys].tolist(), strict=True))
        placement = self.placement
        isfinite = math.isfinite
        yield len(free_l) * ROW_US / 4 + len(place) * ROW_US
        looked = 0
        for s, p in place.items():
            looked += 1
            if looked >= SLICE_ROWS:
                yield looked * PLACE_US
                looked = 0
            q = cur_of[s]
            if q < 0:
                continue
            row = rows[s]
            rq = float(row[q])
            want = q if isfinite(rq) and rq <= row[p] else p
            d = dem_of[s]
            pl = dev.choose(want, d, placement.get(s) if want == q else None)
            if free_l[want] >= d and pl is not None:
                dev.take(pl)
                out[s] = want
                free_l[want] -= d
            else:
                pending.append(s)
        for s in [s for s in place if cur_of[s] < 0] + pending:
            looked += 1
            if looked >= SLICE_ROWS:
                yield looked * PLACE_US
                looked = 0
            d = dem_of[s]
            p = place[s]
            lo, span, hi = dev.thresholds(p)
            if free_l[p] < d or not (d <= lo or span < d <= hi):
                row = rows[s]
                tol = 1e-9 * abs(row[p]) + 1e-12
                ok = ((row <= row[p] + tol) & (np.asarray(free_l) >= d)
                      & dev.fits(np.array([d]))[0])
                if not ok.any():
                    return place, None
                p = int(np.argmin(np.where(ok, row, np.inf)))
            pl = dev.choose(p, d)
            if pl is None:
                return place, None
            dev.take(pl)
            out[s] = p
            free_l[p] -= d
        return out, dev

    def _favour_current(self, slots: np.ndarray, scores: np.ndarray) -> None:
        """A running job keeps its pool on ties (no needless migration)."""
        cur = self.t.pool[slots]
        rows = np.nonzero(cur >= 0)[0]
        if len(rows):
            sc = scores[rows, cur[rows]]
            fin = np.isfinite(sc)
            scores[rows[fin], cur[rows[fin]]] = sc[fin] - 1e-9 * np.abs(sc[fin]) - 1e-12

    def _advance(self, now: float) -> list[Decision]:
        """Run the round under way for one call's budget (all of it without ``round_slice``);
        the decisions it made in this call."""
        gen = self._round_gen
        assert gen is not None
        out: list[Decision] = []
        self._round_dec = out
        budget = math.inf if self.round_slice is None else self.round_slice
        used = 0.0
        try:
            while used < budget:
                used += next(gen)
        except StopIteration:
            self._round_gen = None
        except BaseException:
            self._round_gen = None
            raise
        finally:
            if self._round_gen is None:
                self._round_plan = None
        return out

    def _round_steps(self, now: float) -> Generator[float, None, None]:
        """A round, as steps that report their estimated work (microseconds) as they go.

        Planned at ``now`` on copies of the pools and devices; carried out at the time of the
        call that gets there (``self._now``). Between two calls (a round in slices) jobs may
        end, arrive, be cancelled or fail: the plan's stops apply only to jobs still running
        where they ran when the round began, its starts only to jobs still waiting, and a
        start that no longer fits the real nodes waits (as after any round). A node event
        gives the round up (:meth:`_abort_round`)."""
        self.stats["rounds"] += 1
        self._elig_all_stale = True  # deficits and shares change
        act = self._active()
        if len(act) == 0:
            return
        if self.policy.lp:
            run = np.fromiter(self.running, np.int64, len(self.running))
            if len(run):
                self.t.recv[run, self.t.pool[run]] += now - self.t.acct_t[run]
                self.t.acct_t[run] = now
            dt = now - (self._last_round_t if self._last_round_t is not None else now)
            lim = DEFICIT_CAP_ROUNDS * self.round_s
            step = self._row_step(len(act))
            for a in range(0, len(act), step):
                ids = act[a:a + step]
                self.t.deficit[ids] = np.clip(
                    self.t.deficit[ids] + self.t.share[ids] * dt - self.t.recv[ids], -lim, lim
                )
                self.t.recv[ids] = 0.0
                yield len(ids) * ROW_US * 2
            self._last_round_t = now
            if self._dirty:
                t0 = time.perf_counter()
                shares = self.policy.pre_score(self.view(), act, now)
                if shares is not None:
                    self.t.share[act] = shares
                    self._owe_rebuild()
                self.stats["lp_solves"] += 1
                self.stats["lp_seconds"] += time.perf_counter() - t0
                self._dirty = False
                yield len(act) * ROW_US
        # every active job competes afresh: capacity held by running jobs counts as free,
        # and their queue usage is released for the quota check. Except: a job still staging
        # or restoring, or restarted and not yet progressed for as long as its restart cost
        # it, keeps its place, so a restart
        # always pays for itself at least once (without this, a preemptive policy with
        # restarts longer than a round can stop jobs before they ever progress: livelock)
        run = np.fromiter(self.running, np.int64, len(self.running))
        rpool = np.fromiter(self.running.values(), np.int64, len(self.running))
        t = self.t
        pin = now < t.prog_t[run] + np.where(t.starts[run] > 1, t.restart_s[run], 0.0) - 1e-9
        if self._any_down:  # jobs on a drained node finish there (drain, not evict)
            pin |= np.fromiter((self.dev.down_milli(self.placement[s]) > 0 for s in run.tolist()),
                               bool, len(run))
        pinned = set(run[pin].tolist())
        if pinned:
            act = act[~np.isin(act, run[pin])]
        free = self.free.copy()
        used = self.queue_used.copy()
        move, mpool = run[~pin], rpool[~pin]
        np.add.at(free, mpool, t.demand[move])
        np.subtract.at(used, t.qidx[move], t.demand[move])
        dev = self.dev.copy()
        yield len(self.dev.free) * ROW_US / 4
        yield from dev.release_many_g([pl for s, pl in self.placement.items()
                                       if s not in pinned])
        place = yield from self._place_g(act, now, free, dev, used)
        self._round_plan = self._last_plan if self._elig_cache else None
        self._last_plan = None
        # carry the plan out: stops first (their devices are what the starts need), then starts
        was = [(s, p) for s, p in zip(run.tolist(), rpool.tolist(), strict=True)
               if s not in pinned and place.get(s) != p]
        chunk = self._chunk()
        for a in range(0, len(was), chunk):
            running = self.running
            stop = [s for s, p in was[a:a + chunk] if running.get(s) == p]
            self._round_dec += self._stop_many(
                stop, self._now, ["moved" if s in place else "preempted" for s in stop])
            self.stats["preemptions"] += sum(s not in place for s in stop)
            yield len(stop) * (DECISION_US + self.decision_us)
        k = 0
        waiting = self.waiting
        for s, p in place.items():
            if s in waiting:
                # the plan's devices may differ from the real ones where running jobs kept
                # theirs: a gang that does not fit the real nodes waits for the next chance
                st = self._start(s, p, self._now)
                if st is not None:
                    self._round_dec.append(st)
                k += 1
                if k >= chunk:
                    yield k * (START_US + self.decision_us)
                    k = 0
        if self.waiting:
            # the round planned on pools' devices as if running jobs could be re-packed;
            # where kept jobs hold other devices than planned, a planned start may not fit
            # and room may be left that a back-fill can use
            if self._elig_cache and len(self.waiting) >= ELIG_MIN_QUEUE:
                yield from self._refresh_index_g(self._now)
                yield from self._fill_indexed_g(self._now, self._round_dec)
            else:
                self._round_dec += self._fill(self._now)
