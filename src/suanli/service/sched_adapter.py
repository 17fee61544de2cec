"""The one place where the service meets :mod:`suanli.sched` (swap in Scheduler v2 here).

It maps database jobs to scheduler jobs and back, owns the per-node device indices (the
scheduler only knows pools = chip type x site), and rebuilds the scheduler's state from the
database when this process becomes the scheduling leader (level-triggered: what the database
says is desired and observed, never what an earlier process remembered).

Today's :class:`~suanli.sched.Scheduler` has no public call to say "this job is already
running in pool p" or "this job stopped without my decision"; :meth:`SchedAdapter.rebuild`
and :meth:`SchedAdapter.stopped` use its ``_start`` / ``_stop`` for that. Those two calls are
the only private access, and only here.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
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
    free: set[int] = field(default_factory=set)


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
    ) -> None:
        self.catalog = catalog or load_catalog()
        # the database ids of the jobs the scheduler knows, in order (the loop re-checks
        # them against the database in slices: ``known_from``)
        self.known_ids: list[int] = []
        self.nodes = {n.name: n for n in nodes}
        for n in self.nodes.values():
            n.free = set(range(n.devices))
        pools: list[Pool] = []
        pool_of: dict[tuple[str, str], int] = {}
        for n in self.nodes.values():
            key = (n.site, n.chip)
            if key not in pool_of:
                site = sites.get(n.site, {})
                chip = self._chip(n.chip)
                tdp = chip.tdp_w.value if chip is not None else None
                pool_of[key] = len(pools)
                pools.append(Pool(
                    index=len(pools), site=n.site, region=site.get("region"),
                    chip_type=chip.id if chip else n.chip, chip=chip, devices=0,
                    pue=float(site.get("pue", 1.3)),
                    price_cny_kwh=float(site.get("electricity_price_cny_kwh", 0.5)),
                    carbon_kg_kwh=float(site.get("carbon_kg_per_kwh", 0.55)),
                    wan_gbps=float(site.get("wan_gbps", 100.0)),
                    power_w=tdp if tdp else DEFAULT_POWER_W, power_known=bool(tdp)))
            p = pool_of[key]
            n.pool = p
            old = pools[p]
            pools[p] = Pool(**{**{k: getattr(old, k) for k in old.__dataclass_fields__},
                               "devices": old.devices + n.devices})
        self.cluster = ClusterSpec(pools=pools, fleet_name="service")
        # per pool: free-device count -> nodes with exactly that many free
        self.buckets: list[dict[int, set[str]]] = [{} for _ in pools]
        for n in self.nodes.values():
            if n.free:
                self.buckets[n.pool].setdefault(len(n.free), set()).add(n.name)
        chips = {p.chip_type: p.chip for p in pools}
        self.sched = Scheduler(self.cluster, get_policy(policy),
                               ServiceThroughput(chips), round_s=round_s, queues=queues)
        self.key_of: dict[int, str] = {}  # db job id -> scheduler job id
        self.db_of: dict[str, int] = {}
        self.requeues: dict[int, int] = {}
        self.held: dict[int, Placement] = {}  # db job id -> devices it holds (active alloc)

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
        from suanli.sched.cluster import ClusterState

        free = [sum(k * len(names) for k, names in b.items()) * 1000 for b in self.buckets]
        import numpy as np

        decisions = self.sched.schedule(now, ClusterState(np.asarray(free, dtype=np.int64)))
        return [(self.db_of[d.job_id], d) for d in decisions if d.job_id in self.db_of]

    def next_wakeup(self, now: float) -> float | None:
        return self.sched.next_wakeup(now)

    # ------------------------------------------------------------------ devices
    def _set_free(self, n: NodeInfo, free: set[int]) -> None:
        """Change a node's free devices, keeping the per-pool free-count buckets right."""
        b = self.buckets[n.pool]
        old = len(n.free)
        if old:
            b[old].discard(n.name)
        n.free = free
        if free:
            b.setdefault(len(free), set()).add(n.name)

    def place(self, db_id: int, pool: int, gang: int) -> Placement | None:
        """Concrete devices for a start in ``pool`` (None: not free yet, e.g. the preempted
        job there has not stopped). Best fit on one node (the node with the fewest free
        devices that still holds the gang), else the fewest nodes, largest first. Nodes are
        kept in buckets by free-device count, so this costs O(devices per node), not
        O(nodes in the pool)."""
        b = self.buckets[pool]
        counts = sorted(k for k, names in b.items() if names)
        if sum(k * len(b[k]) for k in counts) < gang:
            return None
        chosen: list[tuple[str, list[int]]] = []
        fit = next((k for k in counts if k >= gang), None)
        if fit is not None:
            n = min(b[fit])
            chosen.append((n, sorted(self.nodes[n].free)[:gang]))
        else:
            left = gang
            for k in reversed(counts):
                for n in sorted(b[k]):
                    take = sorted(self.nodes[n].free)[: min(k, left)]
                    chosen.append((n, take))
                    left -= len(take)
                    if left == 0:
                        break
                if left == 0:
                    break
        for n, devs in chosen:
            node = self.nodes[n]
            self._set_free(node, node.free - set(devs))
        first = self.nodes[chosen[0][0]]
        pl = Placement(job_id=db_id, pool=self.pool_label(pool), site=first.site,
                       chip=self.cluster.pools[pool].chip_type, vendor=first.vendor,
                       nodes=[n for n, _ in chosen], devices=[d for _, d in chosen],
                       simulated=all(self.nodes[n].simulated for n, _ in chosen))
        self.held[db_id] = pl
        return pl

    def hold(self, db_id: int, nodes: list[str], devices: list[list[int]]) -> None:
        """Mark devices of an existing active allocation as busy (rebuild)."""
        for n, devs in zip(nodes, devices, strict=False):
            if n in self.nodes:
                node = self.nodes[n]
                self._set_free(node, node.free - set(devs))
        if nodes and nodes[0] in self.nodes:
            first = self.nodes[nodes[0]]
            self.held[db_id] = Placement(db_id, self.pool_label(first.pool), first.site,
                                         self.cluster.pools[first.pool].chip_type,
                                         first.vendor, nodes, devices, first.simulated)

    def release(self, db_id: int) -> None:
        pl = self.held.pop(db_id, None)
        if pl is None:
            return
        for n, devs in zip(pl.nodes, pl.devices, strict=False):
            if n in self.nodes:
                node = self.nodes[n]
                self._set_free(node, node.free | set(devs))

    def mark_running(self, db_id: int, pool_label: str, now: float) -> None:
        """Rebuild: the job already runs in ``pool_label``; tell the scheduler."""
        key = self.key_of.get(db_id)
        if key is None:
            return
        pool = next((p.index for p in self.cluster.pools if p.label == pool_label), None)
        if pool is None:
            return
        # None when over-committed after a fleet change: the scheduler will not count it
        self.sched.adopt_running(key, pool, now)

    def busy_by_pool(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for n in self.nodes.values():
            label = self.pool_label(n.pool)
            out[label] = out.get(label, 0) + n.devices - len(n.free)
        return out

    @property
    def pending(self) -> int:
        return len(self.sched.waiting)


def quota_or_none(q: float | None) -> float | None:
    return None if q is None or not math.isfinite(q) else q
