"""The scheduler loop: observe -> ingest -> decide -> commit -> carry out, once per pass.

Only the leader runs passes. Leadership: a PostgreSQL session-level advisory lock held on a
dedicated connection (it is released when the holder dies, so another replica takes over on
its next attempt), or an exclusive ``flock`` on ``$SUANLI_HOME/scheduler.lock`` for SQLite.

Crash safety (level-triggered): every start is committed as an *allocation* with a unique
``launch_id`` before the executor is asked to launch it; launching a known ``launch_id`` is a
no-op in every executor. After a crash the new leader rebuilds the scheduler from the
database, re-issues ``launch`` for allocations not yet marked launched (no-op if they were)
and polls the rest, so a crash between any two steps heals and nothing starts twice.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import logging
import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from suanli.exec.base import ExecState, Executor, LaunchSpec
from suanli.sched import Queue
from suanli.service.control import DRAIN_STATES
from suanli.service.db import (
    AllocationRow,
    JobEventRow,
    JobRow,
    NodeGroupRow,
    NodeRow,
    QueueRow,
    SiteRow,
    ts,
    utcnow,
)
from suanli.service.models import ACTIVE, JobState
from suanli.service.sched_adapter import NodeInfo, SchedAdapter

log = logging.getLogger("suanli.scheduler")
LOCK_KEY = 0x5355414E4C49  # "SUANLI"
# The database is re-read in slices, a bounded number of rows per pass (keyset pagination by
# job id), so that no pass does work proportional to the number of running or pending jobs.
# Each sweep (the active launches; the pending jobs; the jobs the scheduler waits for) takes
# ceil(n * seconds since the last slice / RESYNC_S) rows per pass, at least RESYNC_MIN and at
# most RESYNC_MAX: every row is re-read within RESYNC_S as long as RESYNC_MAX rows per pass
# cover n in RESYNC_S (at 2 passes/s: 10,000), beyond that within ceil(n / RESYNC_MAX) passes.
# (The caps keep a slow pass from making the next one slower: at 5,000 rows, passes slowed
# by a loaded machine grew their slices to the cap and took 0.5-0.8 s each.)
RESYNC_S = 5.0
RESYNC_MIN = 200
RESYNC_MAX = 1000
# new pending jobs (above the id watermark) taken in by one pass at most; the rest next pass
INGEST_MAX = 5000
# polling: up to POLL_ALL launches, every one each pass; beyond, a rotating share per pass so
# that each is polled about every POLL_S, at most POLL_MAX per pass (beyond POLL_MAX * passes
# per POLL_S launches, each within ceil(n / POLL_MAX) passes), plus every launch not in a
# steady state (not launched, starting, stopping, cancel requested) each pass
POLL_ALL = 2000
POLL_S = 1.0
# starts committed (and launched) per pass at most; more wait for the next pass, which follows
# at once (a round's stops can free the devices of thousands of deferred starts together)
STARTS_PER_PASS = 64
# the loop's own work per start or stop it carries out (allocation and event rows, state
# updates, the launch or the stop), by database: ~0.3 ms on SQLite and ~1 ms on PostgreSQL
# (a round trip per statement; bench_service.py --db-pass with rounds); told to the
# scheduler so that a pass of a round makes ~10-25 decisions
DECISION_US = {"sqlite": 400.0, "postgresql": 1_000.0}
POLL_MAX = 2000


_TOP = 2**63  # above every allocation id


def _slice(n: int, elapsed: float, period: float | None = None, lo: int | None = None,
           hi: int | None = None) -> int:
    """Rows for this pass's slice of a sweep over ``n`` rows, ``elapsed`` s after the last
    (by default each row within ``RESYNC_S``, ``RESYNC_MIN`` to ``RESYNC_MAX`` rows)."""
    period = RESYNC_S if period is None else period
    lo = RESYNC_MIN if lo is None else lo
    hi = RESYNC_MAX if hi is None else hi
    return max(lo, min(hi, math.ceil(n * max(elapsed, 0.0) / period)))


class _Mirror:
    """The active launches as last read or written by the leader: allocation id -> [alloc id,
    launch id, launched, stop reason, job id, job state, cancel requested]; their
    (job id, alloc id) keys in order, for the sliced re-read and the polling in turns; and
    the launches not in a steady state (polled every pass)."""

    def __init__(self) -> None:
        self.rows: dict[int, list[Any]] = {}
        self.keys: list[tuple[int, int]] = []
        self.unsteady: set[int] = set()

    def __len__(self) -> int:
        return len(self.rows)

    def put(self, r: list[Any]) -> None:
        aid = r[0]
        old = self.rows.get(aid)
        if old is None:
            key = (r[4], aid)
            if not self.keys or key > self.keys[-1]:
                self.keys.append(key)
            else:
                bisect.insort(self.keys, key)
        self.rows[aid] = r
        if r[2] and not r[3] and not r[6] and r[5] == JobState.RUNNING.value:
            self.unsteady.discard(aid)
        else:
            self.unsteady.add(aid)

    def pop(self, aid: int) -> None:
        r = self.rows.pop(aid, None)
        if r is None:
            return
        self.unsteady.discard(aid)
        key = (r[4], aid)
        i = bisect.bisect_left(self.keys, key)
        if i < len(self.keys) and self.keys[i] == key:
            del self.keys[i]

    def between(self, lo: tuple[int, int], hi: tuple[int, int] | None) -> list[int]:
        """Allocation ids with ``lo < (job id, alloc id) <= hi`` (no ``hi``: to the end)."""
        i = bisect.bisect_right(self.keys, lo)
        j = len(self.keys) if hi is None else bisect.bisect_right(self.keys, hi)
        return [k[1] for k in self.keys[i:j]]

    def turn(self, start: int, k: int) -> list[list[Any]]:
        """``k`` launches from position ``start`` on, wrapping around."""
        n = len(self.keys)
        keys = self.keys[start:start + k] + self.keys[:max(0, start + k - n)]
        return [self.rows[a] for _, a in keys]


class Leadership:
    """Who may run scheduling passes."""

    def __init__(self, engine: Engine, home: Path) -> None:
        self.engine = engine
        self.home = home
        self._conn: Connection | None = None
        self._fd: int | None = None

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def acquire(self) -> bool:
        """Try to become (or check that we still are) the leader."""
        if self.postgres:
            from sqlalchemy import text

            if self._conn is not None:
                try:
                    self._conn.execute(text("SELECT 1"))
                    return True
                except Exception:  # connection gone: the lock is gone with it
                    self.release()
                    return False
            try:
                conn = self.engine.connect()
                got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY})
                if got.scalar():
                    conn.commit()
                    self._conn = conn
                    return True
                conn.rollback()
                conn.close()
            except Exception as exc:
                log.warning("leader election failed: %s", exc)
            return False
        if self._fd is not None:
            return True
        import os

        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.home / "scheduler.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        if self._fd is not None:
            import os

            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
            self._fd = None


def _event(s: Session, job: JobRow, state: JobState, reason: str = "") -> None:
    job.state = state.value
    job.reason = reason
    job.updated_at = utcnow()
    s.add(JobEventRow(job_id=job.id, state=state.value, reason=reason[:2000]))


class SchedulerLoop:
    """Runs passes in a thread while this process is the leader."""

    def __init__(self, sessions: sessionmaker[Session], engine: Engine, executor: Executor,
                 home: Path, policy: str = "max-min", round_s: float = 60.0,
                 interval_s: float = 0.5, grace_s: float = 10.0,
                 metrics: Any | None = None, write_lock: Any = None,
                 round_slice_us: float | None = 10_000.0) -> None:
        self.sessions = sessions
        self.write_lock = write_lock if write_lock is not None else contextlib.nullcontext()
        self.engine = engine
        self.executor = executor
        self.home = home
        self.policy = policy
        self.round_s = round_s
        self.interval_s = interval_s
        # a round of a preemptive policy is spread over passes of about this much work,
        # run back to back (Scheduler round_slice): no pass holds the loop for long
        self.round_slice_us = round_slice_us
        self.grace_s = grace_s
        self.metrics = metrics
        self.leadership = Leadership(engine, home)
        self.leader = False
        self.adapter: SchedAdapter | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="suanli-stop")
        self._stopping: set[str] = set()
        self._more_starts = False  # the last pass left placeable starts for the next one
        self._lock = threading.Lock()
        # held for a pass (hooks + run_pass) and for a rebuild: a rebuild asked for from
        # another thread (tests, benchmarks) waits for the pass instead of swapping the
        # scheduler state under it (that pass then committed starts the new state did not
        # know, booking the same devices twice). Reentrant: a pass may rebuild.
        self._pass_lock = threading.RLock()
        self._watermark = 0
        self.passes = 0
        self.last_pass_s = 0.0
        # called by the leader before each pass; one returning True forces a rebuild from
        # the database (the agent monitor: nodes registered or lost)
        self.hooks: list[Any] = []
        # the active launches as last read or written by this leader; read whole after a
        # rebuild, then re-read in slices (each within RESYNC_S), and at once for the jobs
        # just decided and those whose cancel was noted through this process
        self._mirror: _Mirror | None = None
        self._cancels: set[int] = set()
        self._poll_at = 0.0
        self._poll_cursor = 0
        # sweep cursors: (last time, last job id) of the active launches and of the pending
        # jobs and the jobs the scheduler knows
        self._launch_sweep: tuple[float, int] = (0.0, 0)
        self._pending_sweep: tuple[float, int] = (0.0, 0)
        self._pending_n = 0  # pending jobs counted by the last whole pending sweep
        self._pending_count = 0

    # ------------------------------------------------------------------ thread
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="suanli-scheduler", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def note_cancel(self, job_id: int) -> None:
        """A cancel was requested through this process: read that job on the next pass
        (one made through another replica is seen by the periodic re-read)."""
        with self._lock:
            self._cancels.add(job_id)
        self._wake.set()

    def node_busy(self, name: str) -> bool:
        """Does a launch still hold a device on node ``name`` (as this leader knows; True
        when it does not know yet)? The node monitor finishes drains with it."""
        ad = self.adapter
        return ad is None or not self.leader or ad.node_busy(name)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=False)
        self.leadership.release()
        self.leader = False

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.leadership.acquire():
                    with self._pass_lock:
                        if not self.leader:
                            log.info("became the scheduling leader")
                            self.leader = True
                            self.rebuild()
                        self._node_changes([h() for h in self.hooks])
                        self.run_pass()
                else:
                    if self.leader:
                        log.warning("lost scheduling leadership")
                    self.leader = False
                    self.adapter = None
            except Exception:
                log.exception("scheduler pass failed; rebuilding from the database")
                self.adapter = None
                self.leader = False
                self.leadership.release()
                self._stop.wait(1.0)
            ad = self.adapter
            if ad is not None and self.leader and (ad.sched.round_in_progress
                                                   or self._more_starts):
                continue  # the round's next slice at once (the passes between stay short)
            self._wake.wait(self.interval_s)
            self._wake.clear()

    # ------------------------------------------------------------------ state
    def rebuild(self) -> None:
        """Scheduler state from the database (desired and observed), never from memory.
        Safe from any thread: waits for a pass in progress."""
        with self._pass_lock:
            self._rebuild()

    def _rebuild(self) -> None:
        self._mirror = None
        self._deferred: dict[int, Any] = {}  # starts decided by the previous scheduler: void
        with self.write_lock, self.sessions() as s:
            sites = {r.name: {"region": r.region, "pue": r.pue,
                              "electricity_price_cny_kwh": r.electricity_price_cny_kwh,
                              "carbon_kg_per_kwh": r.carbon_kg_per_kwh, "wan_gbps": r.wan_gbps}
                     for r in s.scalars(select(SiteRow))}
            # ready nodes, and drained / draining ones: built up so that the launches
            # running there are adopted onto their devices, then drained below
            nodes: list[NodeInfo] = []
            drained: list[str] = []
            for n, g, site in s.execute(
                    select(NodeRow, NodeGroupRow, SiteRow.name)
                    .join(NodeGroupRow, NodeGroupRow.id == NodeRow.group_id)
                    .join(SiteRow, SiteRow.id == NodeGroupRow.site_id)
                    .where(NodeRow.state.in_(["ready", *DRAIN_STATES])).order_by(NodeRow.id)):
                nodes.append(NodeInfo(name=n.name, site=site, chip=g.chip, vendor=g.vendor,
                                      devices=n.devices, simulated=n.simulated))
                if n.state != "ready":
                    drained.append(n.name)
            queues = [Queue(q.name, q.weight, q.quota_devices)
                      for q in s.scalars(select(QueueRow))]
            ad = SchedAdapter(nodes, sites, queues, policy=self.policy, round_s=self.round_s,
                              round_slice=self.round_slice_us,
                              decision_us=DECISION_US.get(self.engine.dialect.name, 1_000.0))
            now = time.time()
            allocs = {a.job_id: a for a in s.scalars(
                select(AllocationRow).where(AllocationRow.active.is_(True)))}
            jobs = s.scalars(select(JobRow).where(JobRow.state.in_(
                [JobState.PENDING.value, JobState.UNRUNNABLE.value,
                 *(x.value for x in ACTIVE)])).order_by(JobRow.id)).all()
            for j in jobs:
                reason = ad.submit(j.id, j.spec, ts(j.submitted_at))
                a = allocs.get(j.id)
                if a is not None:
                    ad.adopt(j.id, a.pool, a.nodes, a.devices, now)  # its recorded devices
                elif reason and j.state != JobState.UNRUNNABLE.value:
                    _event(s, j, JobState.UNRUNNABLE, reason)
                elif not reason and j.state == JobState.UNRUNNABLE.value:
                    _event(s, j, JobState.PENDING, "runnable with the current fleet")
                self._watermark = max(self._watermark, j.id)
            for name in drained:
                ad.node_drained(name, now)
            s.commit()
        self.adapter = ad
        t = time.monotonic()
        self._launch_sweep = (t, 0)
        self._pending_sweep = (t, 0)
        self._pending_n = self._pending_count = 0
        log.info("rebuilt: %d nodes, %d active jobs, %d allocations",
                 len(nodes), len(jobs), len(allocs))

    def _node_changes(self, results: list[Any]) -> None:
        """What the hooks reported: True = rebuild from the database; a list of
        ``(kind, node name)`` = the scheduler's node events, same node ids (the node names):
        ``failed`` (:meth:`Scheduler.on_node_failed`: exactly the jobs holding a device there
        wait again, from their last checkpoint; the agent monitor has already released their
        allocations and put them back to pending), ``drained``, ``added`` (a node of a pool
        the scheduler does not have yet rebuilds it)."""
        if any(r is True for r in results):
            self.rebuild()
            return
        events = [e for r in results if isinstance(r, list) for e in r]
        ad = self.adapter
        if not events or ad is None:
            return
        now = time.time()
        deferred: dict[int, Any] = getattr(self, "_deferred", {})
        touched: set[int] = set()  # jobs whose allocations the monitor may have released
        with self.sessions() as s:
            for kind, name in events:
                if kind == "failed":
                    for db_id in ad.node_failed(name, now):
                        deferred.pop(db_id, None)
                        touched.add(db_id)
                    for db_id in [j for j, pl in ad.held.items() if name in pl.nodes]:
                        ad.release(db_id)
                        touched.add(db_id)
                elif kind == "drained":
                    ad.node_drained(name, now)
                else:
                    row = s.execute(select(NodeRow, NodeGroupRow, SiteRow.name)
                                    .join(NodeGroupRow, NodeGroupRow.id == NodeRow.group_id)
                                    .join(SiteRow, SiteRow.id == NodeGroupRow.site_id)
                                    .where(NodeRow.name == name, NodeRow.state == "ready")
                                    ).first()
                    if row is not None:
                        n, g, site = row
                        info = NodeInfo(name=n.name, site=site, chip=g.chip, vendor=g.vendor,
                                        devices=n.devices, simulated=n.simulated)
                        if not ad.node_added(info, now):
                            self.rebuild()  # a new pool (site x chip type)
                            return
        # the monitor released the allocations of the jobs on a lost node: drop those jobs'
        # launches from the mirror and re-read them on the next pass (what is still active
        # comes back; anything else the periodic re-read heals), rather than re-reading
        # every active launch (25,000 rows) after each node event
        mirror = self._mirror
        if touched and mirror is not None:
            for aid in [a for a, r in mirror.rows.items() if r[4] in touched]:
                mirror.pop(aid)
            with self._lock:
                self._cancels |= touched
        log.info("node events: %s", ", ".join(f"{k} {n}" for k, n in events))

    # ------------------------------------------------------------------ one pass
    def run_pass(self) -> None:
        t0 = time.perf_counter()
        with self._pass_lock:
            ad = self.adapter
            assert ad is not None
            now = time.time()
            self._observe(ad, now)
            self._ingest(ad, now)
            self._decide(ad, now)
        self.passes += 1
        self.last_pass_s = time.perf_counter() - t0
        if self.metrics is not None:
            self.metrics.sched_pass.observe(self.last_pass_s)

    def _spec(self, job: JobRow, a: AllocationRow) -> LaunchSpec:
        from suanli.service.models import JobSpec

        spec = JobSpec.model_validate(job.spec)
        return LaunchSpec(
            launch_id=a.launch_id, job_id=str(job.id), command=spec.argv, env=spec.env,
            workdir=Path(spec.workdir) if spec.workdir else None,
            log_dir=self.home / "runs" / a.launch_id, chip_id=a.chip,
            vendor=ad_vendor(self.adapter, a), nodes=a.nodes, devices=a.devices,
            time_limit_s=spec.time_limit_s, checkpoint_command=spec.checkpoint_command,
            extra={"simulated": ad_simulated(self.adapter, a)})

    def _observe(self, ad: SchedAdapter, now: float, only: list[int] | None = None) -> None:
        """Launch what is committed but not launched; record what executors report (of the
        jobs ``only``, if given: the starts and stops just decided).

        The active launches come from the leader's mirror of what it read and wrote. After a
        rebuild it is read whole; then each pass re-reads one slice of the active launches
        in job-id order (see :func:`_slice`: each launch within ``RESYNC_S``), so a change
        made by another replica (a cancel) is noticed within that bound, plus at once the
        jobs just decided and those whose cancel was noted through this process. Each pass
        polls a rotating share of the launches (see :meth:`_to_poll`). Only the launches
        that need something done (launch, a state change, a cancel) are loaded as ORM
        objects, so a pass with thousands of running jobs and a few changes stays cheap.
        """
        running = JobState.RUNNING.value
        q = (select(AllocationRow.id, AllocationRow.launch_id, AllocationRow.launched,
                    AllocationRow.stop_reason, JobRow.id, JobRow.state, JobRow.cancel_requested)
             .join(JobRow, JobRow.id == AllocationRow.job_id)
             .where(AllocationRow.active.is_(True)))
        with self._lock:
            cancels, self._cancels = self._cancels, set()
        with self.write_lock, self.sessions() as s:
            rows: list[Any] = []
            mirror = self._mirror
            if mirror is None:  # after a rebuild: all of them, once
                mirror = self._mirror = _Mirror()
                for r in s.execute(q.order_by(AllocationRow.job_id, AllocationRow.id)):
                    mirror.put(list(r))
                self._launch_sweep = (time.monotonic(), 0)
            ids = sorted(set(only or ()) | cancels)
            for i in range(0, len(ids), 500):
                rows += [list(r) for r in
                         s.execute(q.where(AllocationRow.job_id.in_(ids[i:i + 500])))]
            for r in rows:
                mirror.put(r)
            if only is None:
                self._reread_slice(s, q, mirror)
                rows = self._to_poll(mirror)
            # poll first; then load the launches that need something done, 500 per query
            changed: list[tuple[int, int, Any]] = []
            for aid, launch_id, launched, stop_reason, jid, jstate, cancel in rows:
                st = None
                if launched:
                    st = self.executor.poll(launch_id)
                    if stop_reason and not st.state.terminal:
                        self._stop_async(launch_id, stop_reason)
                        continue
                    if not (cancel and stop_reason is None) and (
                            st.state == ExecState.STARTING
                            or (st.state == ExecState.RUNNING and jstate == running)):
                        continue  # nothing changed
                changed.append((aid, jid, st))
            keep: list[Any] = []  # the session's identity map holds them weakly
            for i in range(0, len(changed), 500):
                keep += s.execute(select(AllocationRow, JobRow)
                                  .join(JobRow, JobRow.id == AllocationRow.job_id)
                                  .where(AllocationRow.id.in_(
                                      [c[0] for c in changed[i:i + 500]]))).all()
            done: tuple[AllocationRow, JobRow] | None = None
            for aid, jid, st in changed:
                if done is not None:
                    _remember(mirror, *done)
                done = None
                a = s.get(AllocationRow, aid)
                job = s.get(JobRow, jid)
                if a is None or job is None or not a.active:  # ended meanwhile
                    mirror.pop(aid)
                    continue
                done = (a, job)
                if not a.launched:
                    try:
                        st = self.executor.launch(self._spec(job, a))
                    except Exception as exc:  # bad workdir, executor down, ...
                        log.warning("launch %s failed: %s", a.launch_id, exc)
                        a.launched = True
                        self._apply(s, ad, job, a, ExecState.FAILED, None,
                                    f"launch failed: {type(exc).__name__}: {exc}"[:500], now)
                        continue
                    # launching a known launch id is a no-op: a crash before the commit
                    # below only makes the next leader launch it again, harmlessly
                    a.launched = True
                    if job.state == JobState.SCHEDULED.value:
                        _event(s, job, JobState.STARTING, f"launch {a.launch_id}")
                    if st.state == ExecState.STARTING:
                        continue
                assert st is not None
                if job.cancel_requested and a.stop_reason is None:
                    a.stop_reason = "cancel"
                    s.commit()  # recorded before the stop is carried out
                if a.stop_reason and not st.state.terminal:
                    self._stop_async(a.launch_id, a.stop_reason)
                    continue
                self._apply(s, ad, job, a, st.state, st.exit_code, st.message, now)
            if done is not None:
                _remember(mirror, *done)
            s.commit()

    def _reread_slice(self, s: Session, q: Any, mirror: _Mirror) -> None:
        """Re-read the next slice of the active launches (keyset by job id on the index
        ``ix_allocations_active``); the mirror's launches in the slice's range that are no
        longer active are dropped. A job's launches are never split between two slices.

        The slice is the job-id range ``(lo, hi]`` that holds the mirror's next ``k``
        launches, read whole (launches another replica wrote in that range come too). Only
        the last slice, with no upper bound, is a keyset query with a limit. A bounded range
        keeps the plan cheap whatever the statistics say: right after a mass start (25,000
        launches before autovacuum analysed the table) PostgreSQL planned the open-ended
        ``job_id > lo ... LIMIT`` query as a bitmap scan of every launch above ``lo`` plus a
        sort, 30-60 ms a pass instead of ~1 ms."""
        t = time.monotonic()
        last_t, lo = self._launch_sweep
        k = _slice(len(mirror), t - last_t)
        keys = mirror.keys
        i = bisect.bisect_right(keys, (lo, _TOP))
        hi: int | None = None
        if i + k < len(keys):
            hi = keys[i + k - 1][0]  # the job of the k-th launch, all of its launches
            # (the bound is given on both sides of the join, so that a merge join does not
            # scan the jobs' primary key from the first id)
            got = [list(r) for r in s.execute(
                q.where(AllocationRow.job_id > lo, AllocationRow.job_id <= hi,
                        JobRow.id > lo, JobRow.id <= hi))]
        else:
            got = [list(r) for r in s.execute(
                q.where(AllocationRow.job_id > lo, JobRow.id > lo)
                .order_by(AllocationRow.job_id).limit(k + 1))]
            if len(got) == k + 1:  # more than the mirror knew: leave the last job to the next
                hi = got[-1][4]
                cut = [r for r in got if r[4] != hi]
                if cut:
                    got, hi = cut, cut[-1][4]
        seen = {r[0] for r in got}
        for aid in mirror.between((lo, _TOP), None if hi is None else (hi, _TOP)):
            if aid not in seen:
                mirror.pop(aid)
        for r in got:
            mirror.put(r)
        self._launch_sweep = (t, hi if hi is not None else 0)

    def _to_poll(self, mirror: _Mirror) -> list[list[Any]]:
        """The share of the active launches to poll in this pass (all of them up to
        ``POLL_ALL``; beyond, each about every ``POLL_S``, at most ``POLL_MAX``), plus those
        not in steady state (not launched, starting, stopping, cancel requested)."""
        t = time.monotonic()
        elapsed, self._poll_at = t - self._poll_at, t
        n = len(mirror)
        if n <= POLL_ALL:
            return list(mirror.rows.values())
        k = min(n, _slice(n, elapsed, POLL_S, POLL_ALL, POLL_MAX))
        start = self._poll_cursor % n
        self._poll_cursor = start + k
        picked = mirror.turn(start, k)
        ids = {r[0] for r in picked}
        return picked + [mirror.rows[a] for a in mirror.unsteady if a not in ids]

    def _apply(self, s: Session, ad: SchedAdapter, job: JobRow, a: AllocationRow,
               state: ExecState, exit_code: int | None, message: str, now: float) -> None:
        if state == ExecState.STARTING:
            return
        if state == ExecState.RUNNING:
            if job.state != JobState.RUNNING.value:
                job.started_at = job.started_at or utcnow()
                _event(s, job, JobState.RUNNING, f"on {','.join(a.nodes)} devices "
                       f"{';'.join(','.join(map(str, d)) for d in a.devices)}")
            return
        # terminal: release the allocation first, then decide the job's fate
        a.active = False
        a.released_at = utcnow()
        a.exit_code = exit_code
        job.exit_code = exit_code
        spec_ts = ts(job.submitted_at)
        preempted = state == ExecState.PREEMPTED or a.stop_reason == "preempt"
        if job.cancel_requested or (state == ExecState.CANCELLED and not preempted):
            job.finished_at = utcnow()
            _event(s, job, JobState.CANCELLED, message or "cancelled")
            ad.forget(job.id, now)
        elif preempted:
            _event(s, job, JobState.PENDING, "preempted (checkpointed)" if
                   a.stop_reason == "preempt" else f"preempted by the backend: {message}")
            if a.stop_reason == "preempt":
                ad.release(job.id)  # the scheduler already counts it as waiting
            else:
                ad.stopped(job.id, now)
        elif state == ExecState.SUCCEEDED:
            job.finished_at = utcnow()
            _event(s, job, JobState.SUCCEEDED, "exit code 0")
            ad.forget(job.id, now)
        elif state == ExecState.LOST:
            reason = ad.requeue(job.id, job.spec, spec_ts, now)
            _event(s, job, JobState.UNRUNNABLE if reason else JobState.PENDING,
                   reason or f"lost ({message}); back to the queue")
        else:  # FAILED
            job.failures += 1
            retries = int(job.spec.get("max_retries", 0))
            if job.failures <= retries:
                reason = ad.requeue(job.id, job.spec, spec_ts, now)
                _event(s, job, JobState.UNRUNNABLE if reason else JobState.PENDING,
                       reason or f"{message}; retry {job.failures}/{retries}")
            else:
                job.finished_at = utcnow()
                _event(s, job, JobState.FAILED, message)
                ad.forget(job.id, now)

    def _stop_async(self, launch_id: str, why: str) -> None:
        with self._lock:
            if launch_id in self._stopping:
                return
            self._stopping.add(launch_id)

        def work() -> None:
            try:
                if why == "preempt":
                    self.executor.checkpoint(launch_id)
                    stop = getattr(self.executor, "preempt", None)
                    if stop is not None:
                        stop(launch_id, self.grace_s)
                    else:
                        self.executor.cancel(launch_id, self.grace_s)
                else:
                    self.executor.cancel(launch_id, self.grace_s)
            except Exception:
                log.exception("stopping %s failed", launch_id)
            finally:
                with self._lock:
                    self._stopping.discard(launch_id)
                self.wake()

        self._pool.submit(work)

    def _ingest(self, ad: SchedAdapter, now: float) -> None:
        """New pending jobs (above the id watermark, at most ``INGEST_MAX`` a pass), and one
        slice of a sweep over job ids (see :func:`_slice`; each job within ``RESYNC_S``)
        comparing the pending jobs in the database with the jobs the scheduler knows: a
        pending job it does not know (committed late below the watermark, as a PostgreSQL
        sequence allows) is taken in, a job it waits for that is no longer pending (a
        waiting job cancelled through any replica) is forgotten."""
        pending = JobRow.state == JobState.PENDING.value
        cols = select(JobRow.id, JobRow.spec, JobRow.submitted_at)
        t = time.monotonic()
        with self.write_lock, self.sessions() as s:
            rows = list(s.execute(cols.where(pending, JobRow.id > self._watermark)
                                  .order_by(JobRow.id).limit(INGEST_MAX)).all())
            if rows:
                self._watermark = rows[-1][0]
            # one slice of the sweep over job ids: the pending ids in the database and the
            # ids the scheduler knows, both in (lo, hi] and at most k of each
            last_t, lo = self._pending_sweep
            k = _slice(max(self._pending_n, len(ad.key_of)), t - last_t)
            known = ad.known_from(lo, k)
            hi = known[-1] if len(known) == k else None
            qp = select(JobRow.id).where(pending, JobRow.id > lo)
            if hi is not None:
                qp = qp.where(JobRow.id <= hi)
            ids = list(s.scalars(qp.order_by(JobRow.id).limit(k)))
            if len(ids) == k:
                hi = ids[-1] if hi is None else min(hi, ids[-1])
            self._pending_count += len(ids)
            if hi is not None:
                self._pending_sweep = (t, hi)
            else:  # the end: start over
                self._pending_sweep = (t, 0)
                self._pending_n, self._pending_count = self._pending_count, 0
            # pending jobs the scheduler does not know (committed late below the watermark)
            seen = {r[0] for r in rows}
            new = [i for i in ids if not ad.knows(i) and i not in seen]
            for i in range(0, len(new), 500):
                rows += s.execute(cols.where(JobRow.id.in_(new[i:i + 500]), pending)).all()
            # jobs the scheduler waits for that are no longer pending (cancelled)
            still = set(ids)
            for jid in known:
                if hi is not None and jid > hi:
                    break
                if jid not in still and jid not in ad.held and jid in ad.key_of and \
                        ad.sched.job_state(ad.key_of[jid]) == "waiting":
                    ad.forget(jid, now)
            for jid, spec, sub in rows:
                if ad.knows(jid):
                    continue
                reason = ad.submit(jid, spec, ts(sub))
                if reason:
                    s.execute(update(JobRow).where(JobRow.id == jid, JobRow.state ==
                                                   JobState.PENDING.value)
                              .values(state=JobState.UNRUNNABLE.value, reason=reason,
                                      updated_at=utcnow()))
                    s.add(JobEventRow(job_id=jid, state=JobState.UNRUNNABLE.value,
                                      reason=reason[:2000]))
            s.commit()

    def _decide(self, ad: SchedAdapter, now: float) -> None:
        decisions = ad.schedule(now)
        self._deferred = getattr(self, "_deferred", {})
        for db_id, d in decisions:
            if d.action == "stop":
                self._deferred.pop(db_id, None)
        starts = {db_id: d for db_id, d in decisions if d.action == "start"}
        stops = [db_id for db_id, d in decisions if d.action == "stop"]
        self._deferred.update(starts)
        if not stops and not self._deferred:
            return
        self._more_starts = False
        with self.write_lock, self.sessions() as s:
            # one statement per 500 stops (a round of a preemptive policy stops hundreds per
            # pass), not one query each; the database evaluates the WHERE (no stale objects)
            for i in range(0, len(stops), 500):
                s.execute(update(AllocationRow)
                          .where(AllocationRow.job_id.in_(stops[i:i + 500]),
                                 AllocationRow.active.is_(True),
                                 AllocationRow.stop_reason.is_(None))
                          .values(stop_reason="preempt")
                          .execution_options(synchronize_session=False))
            placed: list[int] = []
            # its previous attempt has not stopped yet (migration): it waits
            ids = [i for i in self._deferred if i not in ad.held]
            # one query per STARTS_PER_PASS starts, not one each. FOR UPDATE (PostgreSQL;
            # SQLite has the write lock): a cancel committed after this read would otherwise
            # be overwritten by the start below (cancelled -> scheduled); with the row locked
            # it waits for this commit and then records ``cancel_requested`` on the scheduled
            # job. At most STARTS_PER_PASS are committed per pass (the rest in the next
            # passes, run back to back): a round's starts freed all at once by its stops do
            # not make one long pass
            for db_id, job in self._deferred_batch(s, ids, placed):
                d = self._deferred[db_id]
                if job is None or job.state != JobState.PENDING.value or job.cancel_requested:
                    self._deferred.pop(db_id)
                    ad.forget(db_id, now)
                    continue
                pl = ad.place(db_id, d)  # the scheduler's devices (Decision.placement)
                if pl is None:
                    continue  # devices still held by a stopping job
                self._deferred.pop(db_id)
                job.attempts += 1
                launch_id = f"job{db_id}-a{job.attempts}"
                s.add(AllocationRow(job_id=db_id, attempt=job.attempts, launch_id=launch_id,
                                    pool=pl.pool, site=pl.site, chip=pl.chip, nodes=pl.nodes,
                                    node=pl.nodes[0] if pl.nodes else None,
                                    devices=pl.devices))
                _event(s, job, JobState.SCHEDULED, f"{pl.pool} ({self.policy})")
                placed.append(db_id)
            s.commit()  # decisions are durable before anything is carried out
        if placed or stops:
            self._observe(ad, now, placed + stops)  # carry them out now (launch / stop)


    def _deferred_batch(self, s: Session, ids: list[int], placed: list[int]
                        ) -> Iterator[tuple[int, JobRow | None]]:
        """The deferred starts ``ids`` in order with their job rows (None: gone), locked and
        read STARTS_PER_PASS at a time; stops once ``placed`` holds STARTS_PER_PASS
        (``_more_starts``: the loop runs its next pass at once)."""
        for i in range(0, len(ids), STARTS_PER_PASS):
            chunk = ids[i:i + STARTS_PER_PASS]
            jobs = {j.id: j for j in s.scalars(
                select(JobRow).where(JobRow.id.in_(chunk)).order_by(JobRow.id)
                .with_for_update())}
            for db_id in chunk:
                if len(placed) >= STARTS_PER_PASS:
                    self._more_starts = True
                    return
                yield db_id, jobs.get(db_id)


def _remember(mirror: _Mirror, a: AllocationRow, job: JobRow) -> None:
    """Record in the loop's mirror what a pass did to a launch (ended: forgotten)."""
    if a.active:
        mirror.put([a.id, a.launch_id, a.launched, a.stop_reason, job.id, job.state,
                    job.cancel_requested])
    else:
        mirror.pop(a.id)


def ad_vendor(ad: SchedAdapter | None, a: AllocationRow) -> str | None:
    if ad is not None and a.nodes and a.nodes[0] in ad.nodes:
        return ad.nodes[a.nodes[0]].vendor
    return None


def ad_simulated(ad: SchedAdapter | None, a: AllocationRow) -> bool:
    if ad is not None and a.nodes and a.nodes[0] in ad.nodes:
        return ad.nodes[a.nodes[0]].simulated
    return False


def shutdown_jobs(sessions: sessionmaker[Session], executor: Executor, grace_s: float) -> int:
    """Cancel every active launch (``suanli up`` on Ctrl-C); returns how many."""
    n = 0
    with sessions() as s:
        rows = s.execute(select(AllocationRow, JobRow).join(JobRow, JobRow.id ==
                                                            AllocationRow.job_id)
                         .where(AllocationRow.active.is_(True))).all()
        for a, job in rows:
            st = executor.cancel(a.launch_id, grace_s)
            a.active = False
            a.released_at = utcnow()
            a.exit_code = st.exit_code
            job.cancel_requested = True
            job.finished_at = datetime.now(UTC)
            _event(s, job, JobState.CANCELLED, "the platform was stopped")
            n += 1
        s.commit()
    return n
