"""The one place where the service meets :mod:`suanli.sched`.

It maps database jobs to scheduler jobs and back, and rebuilds the scheduler's state from the
database when this process becomes the scheduling leader (level-triggered: what the database
says is desired and observed, never what an earlier process remembered).

Devices: the scheduler is the one source of truth for *which* devices a job gets. Every pool
is built with its nodes (``Pool.nodes`` / ``Pool.node_ids`` = the database's node names), and
a start's :attr:`~suanli.sched.Decision.placement` names the node and device indices that the
allocation records and the executor exports in the vendor's visibility variable. The adapter
only remembers which devices are still *physically* held by a launch that has not ended (a
stop decided by the scheduler frees the devices there at once; the process may take a grace
period to exit): a start on such a device waits until that launch is over, so no device is
ever used by two processes. After a restart, running allocations are adopted onto their
recorded devices (:meth:`Scheduler.adopt_on`).

:meth:`SchedAdapter.stopped` uses the scheduler's public ``stopped_externally``; there is no
private access.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from suanli.catalog.loader import Catalog, load_catalog
from suanli.catalog.schema import Chip, Precision
from suanli.errors import CannotRun, SuanliError
from suanli.perf import job_rate
from suanli.perf.workload import Workload
from suanli.sched import ClusterSpec, Decision, Job, Queue, Scheduler, get_policy
from suanli.sched.cluster import DEFAULT_POWER_W, Pool

DEFAULT_WORK_S = 3600.0  # a job without workload or duration is priced as one hour


class ServiceThroughput:
    """Rates for live jobs: the performance model for jobs with a workload; every allowed chip
    equally fast (1 unit/s, work = seconds) for jobs given by a duration or nothing."""

    name = "service"

    def __init__(self, chips: dict[str, Chip | None]) -> None:
        self.chips = chips

    def key(self, job: Job) -> Hashable | None:
        return job.workload if job.workload is not None else "uniform"

    def rate(self, job_class: Any, chip_type: str, n: int) -> float:
        if isinstance(job_class, Workload):
            chip = self.chips.get(chip_type)
            if chip is None:
                raise CannotRun(f"chip type '{chip_type}' has no catalogue entry to price it")
            return float(job_rate(job_class, chip, n))
        return 1.0


@dataclass
class NodeInfo:
    name: str
    site: str
    chip: str
    vendor: str | None
    devices: int
    simulated: bool
    pool: int = -1


@dataclass(frozen=True)
class Placement:
    """A start decision turned into concrete devices."""

    job_id: int
    pool: str
    site: str
    chip: str
    vendor: str | None
    nodes: list[str]
    devices: list[list[int]]
    simulated: bool


class SchedAdapter:
    """Database jobs <-> :class:`Scheduler` jobs, plus device bookkeeping per node."""

    def __init__(
        self,
        nodes: Iterable[NodeInfo],
        sites: dict[str, dict[str, Any]],
        queues: Iterable[Queue],
        policy: str = "max-min",
        round_s: float = 60.0,
        catalog: Catalog | None = None,
        round_slice: float | None = None,
        decision_us: float = 0.0,
    ) -> None:
        self.catalog = catalog or load_catalog()
        # the database ids of the jobs the scheduler knows, in order (the loop re-checks
        # them against the database in slices: ``known_from``)
        self.known_ids: list[int] = []
        self.nodes = {n.name: n for n in nodes}
        pools: list[Pool] = []
        members: list[list[NodeInfo]] = []
        pool_of: dict[tuple[str, str], int] = {}
        for n in self.nodes.values():
            key = (n.site, n.chip)
            if key not in pool_of:
                site = sites.get(n.site, {})
                chip = self._chip(n.chip)
                tdp = chip.tdp_w.value if chip is not None else None
                pool_of[key] = len(pools)
                members.append([])
                pools.append(Pool(
                    index=len(pools), site=n.site, region=site.get("region"),
                    chip_type=chip.id if chip else n.chip, chip=chip, devices=0,
                    pue=float(site.get("pue", 1.3)),
                    price_cny_kwh=float(site.get("electricity_price_cny_kwh", 0.5)),
                    carbon_kg_kwh=float(site.get("carbon_kg_per_kwh", 0.55)),
                    wan_gbps=float(site.get("wan_gbps", 100.0)),
                    power_w=tdp if tdp else DEFAULT_POWER_W, power_known=bool(tdp)))
            n.pool = pool_of[key]
            members[n.pool].append(n)
        # the scheduler's node ids are the database's node names (unique), so decisions,
        # allocations, agents and node events all speak of the same nodes
        pools = [replace(pl, devices=sum(n.devices for n in ms),
                         nodes=tuple(n.devices for n in ms),
                         node_ids=tuple(n.name for n in ms))
                 for pl, ms in zip(pools, members, strict=True)]
        self.cluster = ClusterSpec(pools=pools, fleet_name="service")
        chips = {p.chip_type: p.chip for p in pools}
        self.sched = Scheduler(self.cluster, get_policy(policy),
                               ServiceThroughput(chips), round_s=round_s, queues=queues,
                               round_slice=round_slice, decision_us=decision_us)
        self.key_of: dict[int, str] = {}  # db job id -> scheduler job id
        self.db_of: dict[str, int] = {}
        self.requeues: dict[int, int] = {}
        self.held: dict[int, Placement] = {}  # db job id -> devices it holds (active alloc)
        # (node, device index) -> db job id whose launch still holds it (until it ends)
        self.busy: dict[tuple[str, int], int] = {}
        # node -> how many of its devices launches hold (drains end when it reaches 0)
        self.busy_on: dict[str, int] = {}

    # ------------------------------------------------------------------ helpers
    def _chip(self, name: str) -> Chip | None:
        try:
            return self.catalog.get(name)
        except SuanliError:
            return None

    def pool_label(self, p: int) -> str:
        return self.cluster.pools[p].label

    def to_job(self, db_id: int, spec: dict[str, Any], submitted: float) -> Job:
        """A scheduler job for a stored spec (validated by the API already)."""
        res = spec.get("resources") or {}
        allowed = self._allowed_chips(res.get("chips"), res.get("vendors"))
        wl = spec.get("workload")
        workload = None
        work = float(spec.get("duration_s") or DEFAULT_WORK_S)
        if wl:
            workload = Workload(kind=wl["kind"], model=wl.get("model"),
                                precision=Precision(wl.get("precision", "bf16")),
                                seq_len=int(wl.get("seq_len", 2048)),
                                batch=int(wl.get("batch", 256)),
                                hpc_kernel=wl.get("hpc_kernel", "hpl"))
            work = float(wl["work"])
        prec = res.get("precision")
        n = self.requeues.get(db_id, 0)
        key = str(db_id) if n == 0 else f"{db_id}.{n}"
        return Job(
            id=key, arrival=submitted, gang=int(res.get("devices", 1)), work=work,
            queue=str(spec.get("queue", "default")), workload=workload,
            precision=Precision(prec) if prec else None,
            mem_gb=float(res.get("min_memory_gb") or 0.0),
            cuda_only=bool(res.get("cuda_only")), fp64=bool(res.get("fp64")),
            allowed_chips=allowed,
            allowed_sites=frozenset(res["sites"]) if res.get("sites") else None,
            priority=float(spec.get("priority", 1.0)), origin=f"job {db_id}",
            stacks=frozenset(spec["stacks"]) if spec.get("stacks") is not None else None,
        )

    def _allowed_chips(self, chips: list[str] | None, vendors: list[str] | None
                       ) -> frozenset[str] | None:
        out: set[str] | None = None
        if chips:
            out = set()
            for c in chips:
                ch = self._chip(c)
                out.add(ch.id if ch else c)
        if vendors:
            want = {v.casefold() for v in vendors}
            by_vendor = {p.chip_type for p in self.cluster.pools
                         if p.chip is not None and (p.chip.vendor.casefold() in want or
                                                    (p.chip.vendor_zh or "") in vendors)}
            out = by_vendor if out is None else out & by_vendor
            if not out:
                out = {"(no chip of the allowed vendors)"}
        return frozenset(out) if out is not None else None

    # ------------------------------------------------------------------ driver API
    def submit(self, db_id: int, spec: dict[str, Any], submitted: float) -> str | None:
        """Register a pending job; the reason when it can never run here."""
        if db_id in self.key_of:
            return None
        if not self.cluster.pools:
            # no nodes at all (before the first agent registers, or all lost): the job waits
            # in the database; the rebuild after the next registration submits it
            return None
        job = self.to_job(db_id, spec, submitted)
        self.key_of[db_id] = job.id
        self.db_of[job.id] = db_id
        ids = self.known_ids
        if not ids or db_id > ids[-1]:
            ids.append(db_id)
        else:
            bisect.insort(ids, db_id)
        return self.sched.submit(job, now=submitted)

    def knows(self, db_id: int) -> bool:
        return db_id in self.key_of

    def known_from(self, after: int, k: int) -> list[int]:
        """Up to ``k`` ids of known jobs above ``after``, in order."""
        i = bisect.bisect_right(self.known_ids, after)
        return self.known_ids[i:i + k]

    def forget(self, db_id: int, now: float) -> None:
        """The job left (finished, cancelled, failed): release it everywhere."""
        key = self.key_of.pop(db_id, None)
        if key is not None:
            self.db_of.pop(key, None)
            i = bisect.bisect_left(self.known_ids, db_id)
            if i < len(self.known_ids) and self.known_ids[i] == db_id:
                del self.known_ids[i]
            if self.sched.job_state(key) != "unrunnable":
                self.sched.on_finish(key, now)
        self.release(db_id)

    def requeue(self, db_id: int, spec: dict[str, Any], submitted: float, now: float
                ) -> str | None:
        """The job goes back to pending after a failure or lost node (a new scheduler job)."""
        self.forget(db_id, now)
        self.requeues[db_id] = self.requeues.get(db_id, 0) + 1
        return self.submit(db_id, spec, submitted)

    def stopped(self, db_id: int, now: float) -> None:
        """The job stopped without a decision of ours (backend preemption): waiting again."""
        key = self.key_of.get(db_id)
        self.release(db_id)
        if key is not None:
            self.sched.stopped_externally(key, now)

    def schedule(self, now: float) -> list[tuple[int, Decision]]:
        decisions = self.sched.schedule(now)
        return [(self.db_of[d.job_id], d) for d in decisions if d.job_id in self.db_of]

    def next_wakeup(self, now: float) -> float | None:
        return self.sched.next_wakeup(now)

    # ------------------------------------------------------------------ devices
    def place(self, db_id: int, decision: Decision) -> Placement | None:
        """The devices of a start decision (the scheduler's choice), recorded as held; None
        while one of them is still held by a launch that has not ended yet (a preempted or
        moved job within its grace period): the caller retries on a later pass."""
        if not decision.placement:
            return None
        if any(self.busy.get((n, i), db_id) != db_id
               for n, idx in decision.placement for i in idx):
            return None
        names = [n for n, _ in decision.placement]
        if any(n not in self.nodes for n in names):
            return None
        first = self.nodes[names[0]]
        pl = Placement(job_id=db_id, pool=self.pool_label(decision.pool), site=first.site,
                       chip=self.cluster.pools[decision.pool].chip_type, vendor=first.vendor,
                       nodes=names, devices=[list(idx) for _, idx in decision.placement],
                       simulated=all(self.nodes[n].simulated for n in names))
        self._hold(pl)
        return pl

    def _hold(self, pl: Placement) -> None:
        self.release(pl.job_id)  # held twice (adopted again): counted once
        self.held[pl.job_id] = pl
        for n, devs in zip(pl.nodes, pl.devices, strict=False):
            for i in devs:
                self.busy[(n, int(i))] = pl.job_id
            self.busy_on[n] = self.busy_on.get(n, 0) + len(devs)

    def adopt(self, db_id: int, pool_label: str, nodes: list[str], devices: list[list[int]],
              now: float) -> bool:
        """Rebuild: an active allocation from the database. Its devices stay held until the
        launch ends, whatever happens; the scheduler counts the job as running on exactly
        those devices when they are known and free there (True), else (the node is gone or
        the fleet changed) the job stays waiting and cannot start again before its
        allocation ends."""
        first = self.nodes.get(nodes[0]) if nodes else None
        self._hold(Placement(
            db_id, pool_label, first.site if first else "", first.chip if first else "",
            first.vendor if first else None, list(nodes), [list(d) for d in devices],
            first.simulated if first else False))
        key = self.key_of.get(db_id)
        if key is None:
            return False
        return self.sched.adopt_on(key, [(n, tuple(d)) for n, d in
                                         zip(nodes, devices, strict=False)], now) is not None

    def release(self, db_id: int) -> None:
        """The job's launch ended: its devices are physically free again."""
        pl = self.held.pop(db_id, None)
        if pl is None:
            return
        for n, devs in zip(pl.nodes, pl.devices, strict=False):
            for i in devs:
                if self.busy.get((n, int(i))) == db_id:
                    del self.busy[(n, int(i))]
            left = self.busy_on.get(n, 0) - len(devs)
            if left > 0:
                self.busy_on[n] = left
            else:
                self.busy_on.pop(n, None)

    def node_busy(self, name: str) -> bool:
        """Does a launch still hold a device on node ``name``?"""
        return name in self.busy_on

    def node_failed(self, name: str, now: float) -> list[int]:
        """A node is lost: the scheduler drops its capacity and stops exactly the jobs that
        held a device on it (they wait again, from their last checkpoint). Returns their
        database ids; their launches' devices stay held until the launches end."""
        if name not in self.sched.nodes or self.sched.nodes[name][2] != "up":
            return []
        return [self.db_of[k] for k in self.sched.on_node_failed(name, now)
                if k in self.db_of]

    def node_drained(self, name: str, now: float) -> None:
        """No new work on the node; what runs there finishes."""
        if name in self.sched.nodes and self.sched.nodes[name][2] == "up":
            self.sched.on_node_drained(name, now)

    def node_added(self, info: NodeInfo, now: float) -> bool:
        """A node joins a pool the scheduler already has (same site and chip): True. False
        when it needs a new pool (the caller rebuilds the scheduler from the database)."""
        chip = self._chip(info.chip)
        chip_type = chip.id if chip else info.chip
        pool = next((p for p in self.cluster.pools
                     if p.site == info.site and p.chip_type == chip_type), None)
        if pool is None:
            return False
        if info.name in self.sched.nodes and self.sched.nodes[info.name][2] == "up":
            return True
        if info.name in self.sched.nodes and self.node_busy(info.name):
            # undrained while launches still run there: the scheduler would count the node
            # as wholly free (a new entry); a rebuild adopts those launches onto it instead
            return False
        self.sched.on_node_added(info.name, pool.index, info.devices, now)
        info.pool = pool.index
        self.nodes[info.name] = info
        return True

    def busy_by_pool(self) -> dict[str, int]:
        """Devices held by launches, per pool label."""
        out: dict[str, int] = {}
        for pl in self.held.values():
            out[pl.pool] = out.get(pl.pool, 0) + sum(len(d) for d in pl.devices)
        return out

    @property
    def pending(self) -> int:
        return len(self.sched.waiting)


def quota_or_none(q: float | None) -> float | None:
    return None if q is None or not math.isfinite(q) else q
