"""What the dashboard pages show, read from the control plane's database.

Everything a tenant sees about jobs is filtered by its tenant id here (never in templates).
The fleet (sites, nodes, devices) is shared by every tenant; busy devices are shown in total,
but only the caller's own jobs are named.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from suanli.service.auth import Principal
from suanli.service.db import (
    AllocationRow,
    JobEventRow,
    JobRow,
    NodeGroupRow,
    NodeRow,
    QueueRow,
    SiteRow,
    as_utc,
    ts,
    utcnow,
)
from suanli.service.models import ACTIVE, TERMINAL, JobState

LOST_STATES = frozenset({"lost", "down", "drained", "unreachable"})
HEARTBEAT_COLUMNS = ("last_heartbeat", "heartbeat_at", "last_heartbeat_at", "last_seen")
WHATIF_MAX_JOBS = 500
WHATIF_TIMEOUT_S = 20.0


# ---------------------------------------------------------------------------- fleet
@dataclass
class PoolRow:
    site: str
    chip: str
    vendor: str | None
    nodes: int = 0
    devices: int = 0
    busy: int = 0
    lost: int = 0

    @property
    def idle(self) -> int:
        return max(self.devices - self.busy - self.lost, 0)


@dataclass
class SiteView:
    name: str
    region: str | None
    pue: float
    pools: list[PoolRow] = field(default_factory=list)

    @property
    def devices(self) -> int:
        return sum(p.devices for p in self.pools)

    @property
    def busy(self) -> int:
        return sum(p.busy for p in self.pools)

    @property
    def lost(self) -> int:
        return sum(p.lost for p in self.pools)

    @property
    def idle(self) -> int:
        return sum(p.idle for p in self.pools)


def busy_by_node(s: Session) -> tuple[dict[str, int], dict[str, list[tuple[int, int]]]]:
    """Busy devices per node and (job id, tenant id) of the active allocations per node."""
    busy: dict[str, int] = defaultdict(int)
    jobs: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for a_nodes, a_devs, job_id, tenant_id in s.execute(
            select(AllocationRow.nodes, AllocationRow.devices, AllocationRow.job_id,
                   JobRow.tenant_id)
            .join(JobRow, JobRow.id == AllocationRow.job_id)
            .where(AllocationRow.active.is_(True))):
        for n, d in zip(a_nodes, a_devs, strict=False):
            busy[n] += len(d)
            jobs[n].append((job_id, tenant_id))
    return busy, jobs


def fleet_view(s: Session) -> list[SiteView]:
    busy, _ = busy_by_node(s)
    sites: dict[str, SiteView] = {}
    pools: dict[tuple[str, str], PoolRow] = {}
    for site in s.scalars(select(SiteRow).order_by(SiteRow.id)):
        sites[site.name] = SiteView(site.name, site.region, site.pue)
    rows = s.execute(select(NodeRow.name, NodeRow.devices, NodeRow.state, NodeGroupRow.chip,
                            NodeGroupRow.vendor, SiteRow.name)
                     .join(NodeGroupRow, NodeGroupRow.id == NodeRow.group_id)
                     .join(SiteRow, SiteRow.id == NodeGroupRow.site_id)
                     .order_by(NodeRow.id))
    for name, devices, state, chip, vendor, site_name in rows:
        key = (site_name, chip)
        p = pools.get(key)
        if p is None:
            p = pools[key] = PoolRow(site_name, chip, vendor)
            sites.setdefault(site_name, SiteView(site_name, None, 1.3)).pools.append(p)
        p.nodes += 1
        p.devices += devices
        if state in LOST_STATES:
            p.lost += devices
        else:
            p.busy += min(busy.get(name, 0), devices)
    return [v for v in sites.values() if v.pools]


_meter_cache: dict[str, tuple[float, Any, Any]] = {}
_meter_lock = threading.Lock()


def metering(s: Session) -> tuple[Any, list[str]]:
    """:func:`suanli.fleet.metering.meter` of the nodes in the database (cached 30 s).

    Each node group becomes a fleet node group with as many nodes as the database holds, so
    the national-unit figures are those of the registered fleet, not of a YAML file."""
    key = str(getattr(s.get_bind(), "url", "db"))
    now = time.monotonic()
    with _meter_lock:
        hit = _meter_cache.get(key)
        if hit is not None and now - hit[0] < 30.0:
            return hit[1], hit[2]
    from suanli.catalog.loader import load_catalog
    from suanli.errors import SuanliError
    from suanli.fleet.loader import resolve_fleet
    from suanli.fleet.metering import meter
    from suanli.fleet.schema import Fleet, NodeGroup, Site

    catalog = load_catalog()
    skipped: list[str] = []
    groups: dict[int, list[Any]] = defaultdict(list)
    counts = dict(s.execute(select(NodeRow.group_id, func.count())
                            .group_by(NodeRow.group_id)).all())
    for g in s.scalars(select(NodeGroupRow).order_by(NodeGroupRow.id)):
        n = counts.get(g.id, 0)
        if n == 0:
            continue
        try:
            catalog.get(g.chip)
        except SuanliError:
            skipped.append(f"{g.name} ({g.chip}: not in the catalogue)")
            continue
        groups[g.site_id].append(NodeGroup(name=g.name, chip=g.chip,
                                           chips_per_node=max(g.chips_per_node, 1), nodes=n))
    sites = []
    for site in s.scalars(select(SiteRow).order_by(SiteRow.id)):
        if groups.get(site.id):
            sites.append(Site(name=site.name, region=site.region, pue=float(site.pue),
                              electricity_price_cny_kwh=float(site.electricity_price_cny_kwh),
                              carbon_kg_per_kwh=float(site.carbon_kg_per_kwh),
                              wan_gbps=float(site.wan_gbps), node_groups=groups[site.id]))
    result = None
    if sites:
        result = meter(resolve_fleet(Fleet(name="registered nodes", sites=sites), catalog))
    with _meter_lock:
        _meter_cache[key] = (now, result, skipped)
    return result, skipped


# ---------------------------------------------------------------------------- nodes
def heartbeat_of(node: Any) -> datetime | None:
    for col in HEARTBEAT_COLUMNS:
        v = getattr(node, col, None)
        if isinstance(v, datetime):
            return as_utc(v)
    return None


def has_heartbeat_column() -> bool:
    return any(hasattr(NodeRow, c) for c in HEARTBEAT_COLUMNS)


def nodes_view(s: Session, p: Principal, site: str | None = None, chip: str | None = None,
               limit: int = 500) -> tuple[list[dict[str, Any]], int]:
    busy, jobs = busy_by_node(s)
    q = (select(NodeRow, NodeGroupRow.chip, NodeGroupRow.vendor, SiteRow.name)
         .join(NodeGroupRow, NodeGroupRow.id == NodeRow.group_id)
         .join(SiteRow, SiteRow.id == NodeGroupRow.site_id))
    if site:
        q = q.where(SiteRow.name == site)
    if chip:
        q = q.where(NodeGroupRow.chip == chip)
    total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
    out = []
    for n, chip_id, vendor, site_name in s.execute(q.order_by(NodeRow.id).limit(limit)):
        mine = sorted(j for j, t in jobs.get(n.name, []) if t == p.tenant_id)
        others = sum(1 for _, t in jobs.get(n.name, []) if t != p.tenant_id)
        out.append({"name": n.name, "site": site_name, "chip": chip_id, "vendor": vendor,
                    "devices": n.devices, "busy": busy.get(n.name, 0), "state": n.state,
                    "simulated": n.simulated, "heartbeat": heartbeat_of(n),
                    "my_jobs": mine, "other_jobs": others})
    return out, total


# ---------------------------------------------------------------------------- jobs
def jobs_view(s: Session, p: Principal, state: str | None = None, queue: str | None = None,
              chip: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    q = select(JobRow).where(JobRow.tenant_id == p.tenant_id)
    if state:
        q = q.where(JobRow.state == state)
    if queue:
        q = q.where(JobRow.queue == queue)
    rows = list(s.scalars(q.order_by(JobRow.id.desc()).limit(limit if not chip else 5000)))
    allocs: dict[int, AllocationRow] = {}
    if rows:
        for a in s.scalars(select(AllocationRow).where(
                AllocationRow.job_id.in_([j.id for j in rows])).order_by(AllocationRow.id)):
            allocs[a.job_id] = a  # the latest wins
    out = []
    for j in rows:
        al = allocs.get(j.id)
        allowed = (j.spec.get("resources") or {}).get("chips") or []
        if chip and not ((al is not None and al.chip == chip) or chip in allowed):
            continue
        out.append({"id": j.id, "name": j.name, "state": j.state, "queue": j.queue,
                    "devices": j.devices, "reason": j.reason or "",
                    "submitted_at": as_utc(j.submitted_at), "chip": al.chip if al else None,
                    "where": al.pool if al else None, "attempts": j.attempts,
                    "exit_code": j.exit_code})
        if len(out) >= limit:
            break
    return out


def get_job(s: Session, p: Principal, job_id: int) -> JobRow | None:
    return s.scalar(select(JobRow).where(JobRow.id == job_id, JobRow.tenant_id == p.tenant_id))


def job_detail(s: Session, job: JobRow) -> dict[str, Any]:
    events = list(s.scalars(select(JobEventRow).where(JobEventRow.job_id == job.id)
                            .order_by(JobEventRow.id)))
    allocs = list(s.scalars(select(AllocationRow).where(AllocationRow.job_id == job.id)
                            .order_by(AllocationRow.id)))
    return {"events": [{"time": as_utc(e.time), "state": e.state, "reason": e.reason or ""}
                       for e in events],
            "allocations": allocs,
            "estimates": estimates(s, job, allocs)}


def estimates(s: Session, job: JobRow, allocs: list[AllocationRow]) -> dict[str, Any]:
    """The performance model's rate per chip type in the fleet for a job with a workload,
    next to the measured rate (work / running time) of its finished attempt, if any."""
    wl = job.spec.get("workload")
    if not wl:
        return {"workload": None, "rows": [], "measured": None}
    from suanli.catalog.loader import load_catalog
    from suanli.catalog.schema import Precision
    from suanli.errors import SuanliError
    from suanli.perf import job_rate
    from suanli.perf.workload import Workload

    cat = load_catalog()
    w = Workload(kind=wl["kind"], model=wl.get("model"),
                 precision=Precision(wl.get("precision", "bf16")),
                 seq_len=int(wl.get("seq_len", 2048)), batch=int(wl.get("batch", 256)),
                 hpc_kernel=wl.get("hpc_kernel", "hpl"))
    work = float(wl["work"])
    n = job.devices
    rows = []
    chips = sorted(set(s.scalars(select(NodeGroupRow.chip).distinct())))
    for cid in chips:
        try:
            chip = cat.get(cid)
        except SuanliError:
            continue
        try:
            rate = float(job_rate(w, chip, n))
            reason = ""
        except SuanliError as exc:
            rate, reason = float("nan"), str(exc.problem if hasattr(exc, "problem") else exc)
        except Exception as exc:  # the model cannot price it: say why
            rate, reason = float("nan"), f"{type(exc).__name__}: {exc}"
        ok = math.isfinite(rate) and rate > 0
        rows.append({"chip": cid, "name": chip.name, "rate": rate if ok else None,
                     "time_s": work / rate if ok else None, "reason": reason[:200]})
    measured = None
    done = [a for a in allocs if a.released_at is not None and a.exit_code == 0]
    if done and job.state == JobState.SUCCEEDED.value:
        a = done[-1]
        run_s = ts(a.released_at) - ts(a.created_at)  # type: ignore[arg-type]
        if run_s > 0:
            measured = {"chip": a.chip, "rate": work / run_s, "run_s": run_s}
    return {"workload": wl, "unit": getattr(w, "unit", "units"), "work": work, "rows": rows,
            "measured": measured}


def queues_view(s: Session, p: Principal) -> list[dict[str, Any]]:
    counts: Counter[tuple[str, str]] = Counter()
    for qn, st, c in s.execute(select(JobRow.queue, JobRow.state, func.count())
                               .where(JobRow.tenant_id == p.tenant_id)
                               .group_by(JobRow.queue, JobRow.state)):
        counts[(qn, st)] = c
    return [{"name": q.name, "weight": q.weight, "quota": q.quota_devices,
             "pending": counts[(q.name, "pending")],
             "running": sum(counts[(q.name, a.value)] for a in ACTIVE)}
            for q in s.scalars(select(QueueRow).order_by(QueueRow.name))]


def state_counts(s: Session, p: Principal) -> dict[str, int]:
    return {st: c for st, c in s.execute(
        select(JobRow.state, func.count()).where(JobRow.tenant_id == p.tenant_id)
        .group_by(JobRow.state))}


# ---------------------------------------------------------------------------- plots
def series(s: Session, p: Principal, max_points: int = 400) -> dict[str, Any]:
    """Utilisation of the fleet over time (all tenants' allocations: devices are shared),
    the tenant's queue length over time and its jobs' completion times."""
    total_devices = s.scalar(select(func.coalesce(func.sum(NodeRow.devices), 0))) or 0
    now = ts(utcnow())
    deltas: list[tuple[float, int]] = []
    for created, released, devs in s.execute(
            select(AllocationRow.created_at, AllocationRow.released_at, AllocationRow.devices)
            .order_by(AllocationRow.id.desc()).limit(20_000)):
        d = sum(len(x) for x in devs)
        deltas.append((ts(created), d))
        if released is not None:
            deltas.append((ts(released), -d))
    util = _steps(deltas, now, total_devices or 1, max_points)
    evs = [(ts(t), job_id, st) for job_id, t, st in s.execute(
        select(JobEventRow.job_id, JobEventRow.time, JobEventRow.state)
        .join(JobRow, JobRow.id == JobEventRow.job_id)
        .where(JobRow.tenant_id == p.tenant_id)
        .order_by(JobEventRow.id.desc()).limit(50_000))]
    evs.sort()
    waiting: set[int] = set()
    qdeltas: list[tuple[float, int]] = []
    for t, job_id, st in evs:
        if st == "pending" and job_id not in waiting:
            waiting.add(job_id)
            qdeltas.append((t, 1))
        elif st != "pending" and job_id in waiting:
            waiting.discard(job_id)
            qdeltas.append((t, -1))
    queue = _steps(qdeltas, now, 1, max_points)
    jct = [ts(f) - ts(sub) for sub, f in s.execute(  # type: ignore[arg-type]
        select(JobRow.submitted_at, JobRow.finished_at)
        .where(JobRow.tenant_id == p.tenant_id, JobRow.state == JobState.SUCCEEDED.value,
               JobRow.finished_at.is_not(None))
        .order_by(JobRow.id.desc()).limit(10_000))]
    return {"util": util, "queue": queue, "jct": jct, "devices": total_devices}


def _steps(deltas: list[tuple[float, int]], now: float, scale: float, max_points: int
           ) -> list[tuple[float, float]]:
    if not deltas:
        return []
    deltas.sort()
    out: list[tuple[float, float]] = []
    level = 0
    for t, d in deltas:
        level += d
        out.append((t, max(level, 0) / scale))
    out.append((now, out[-1][1]))
    if len(out) > max_points:  # keep the shape: the max of each bucket
        step = math.ceil(len(out) / max_points)
        out = [max(out[i:i + step], key=lambda x: x[1]) for i in range(0, len(out), step)]
        out.sort()
    return out


# ---------------------------------------------------------------------------- what-if
def whatif(s: Session, p: Principal, policies: list[str], source: str = "queue",
           max_jobs: int = WHATIF_MAX_JOBS, round_s: float = 60.0,
           timeout_s: float = WHATIF_TIMEOUT_S) -> dict[str, Any]:
    """Replay the tenant's jobs in :mod:`suanli.sim` on the registered nodes under each
    policy. ``source="queue"``: the waiting and running jobs, all arriving now (running ones
    with their whole work again); ``"history"``: the latest jobs with their real submission
    times. Capped at ``max_jobs``; each run in a worker thread with ``timeout_s``."""
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as FutTimeout

    from suanli.sched import Queue
    from suanli.sched.policies import get_policy
    from suanli.service.sched_adapter import NodeInfo, SchedAdapter, ServiceThroughput
    from suanli.sim import run_simulation

    for pol in policies:
        get_policy(pol)  # raises SuanliError / KeyError naming it
    nodes = [NodeInfo(name=n.name, site=site, chip=chip, vendor=vendor, devices=n.devices,
                      simulated=n.simulated)
             for n, chip, vendor, site in s.execute(
                 select(NodeRow, NodeGroupRow.chip, NodeGroupRow.vendor, SiteRow.name)
                 .join(NodeGroupRow, NodeGroupRow.id == NodeRow.group_id)
                 .join(SiteRow, SiteRow.id == NodeGroupRow.site_id)
                 .where(NodeRow.state.not_in([*LOST_STATES, "draining"])))]
    if not nodes:
        return {"error": "no nodes are registered", "results": [], "jobs": 0}
    sites = {x.name: {"region": x.region, "pue": x.pue,
                      "electricity_price_cny_kwh": x.electricity_price_cny_kwh,
                      "carbon_kg_per_kwh": x.carbon_kg_per_kwh, "wan_gbps": x.wan_gbps}
             for x in s.scalars(select(SiteRow))}
    queues = [Queue(name=q.name, weight=q.weight, quota=q.quota_devices)
              for q in s.scalars(select(QueueRow))]
    q = select(JobRow).where(JobRow.tenant_id == p.tenant_id)
    if source == "queue":
        q = q.where(JobRow.state.in_(["pending", *(a.value for a in ACTIVE)]))
    else:
        q = q.where(JobRow.state.not_in(["unrunnable", "cancelled"]))
    rows = list(s.scalars(q.order_by(JobRow.id.desc()).limit(max_jobs + 1)))
    capped = len(rows) > max_jobs
    rows = list(reversed(rows[:max_jobs]))
    if not rows:
        return {"error": "no jobs to replay (submit some, or pick 'recent jobs')",
                "results": [], "jobs": 0}
    adapter = SchedAdapter(nodes, sites, queues, policy=policies[0], round_s=round_s)
    t0 = min(ts(j.submitted_at) for j in rows)
    jobs = []
    for j in rows:
        arrival = 0.0 if source == "queue" else ts(j.submitted_at) - t0
        jobs.append(adapter.to_job(j.id, j.spec, arrival))
    chips = {pl.chip_type: pl.chip for pl in adapter.cluster.pools}
    results: list[dict[str, Any]] = []
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="suanli-whatif")
    try:
        for pol in policies:
            fut = pool.submit(run_simulation, adapter.cluster, jobs, pol,
                              ServiceThroughput(chips), round_s=round_s, queues=queues)
            try:
                res = fut.result(timeout=timeout_s)
            except FutTimeout:
                results.append({"policy": pol, "error": f"took longer than {timeout_s:g} s"})
                continue
            m = res.metrics or {}
            if not m:
                from suanli.sim.metrics import summarize
                m = summarize(res)
            arr = [float(jb.arrival) for jb in res.jobs]
            finish = [float(x) for x in res.finish]
            results.append({"policy": pol, "metrics": m,
                            "jct": [f - a for f, a in zip(finish, arr, strict=True)
                                    if math.isfinite(f)]})
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return {"results": results, "jobs": len(jobs), "capped": capped, "source": source,
            "max_jobs": max_jobs, "error": None}


def terminal_states() -> list[str]:
    return sorted(x.value for x in TERMINAL)
