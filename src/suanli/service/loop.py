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

import contextlib
import fcntl
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from suanli.exec.base import ExecState, Executor, LaunchSpec
from suanli.sched import Queue
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
FULL_RESYNC_S = 5.0
# polling: up to POLL_ALL launches, every one each pass; beyond, a rotating share per pass so
# that each is polled about every POLL_S (the cost per second stays the same, but a pass
# with tens of thousands of running jobs no longer polls them all)
POLL_ALL = 2000
POLL_S = 1.0


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
                 metrics: Any | None = None, write_lock: Any = None) -> None:
        self.sessions = sessions
        self.write_lock = write_lock if write_lock is not None else contextlib.nullcontext()
        self.engine = engine
        self.executor = executor
        self.home = home
        self.policy = policy
        self.round_s = round_s
        self.interval_s = interval_s
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
        self._lock = threading.Lock()
        self._watermark = 0
        self._last_full = 0.0
        self.passes = 0
        self.last_pass_s = 0.0
        # called by the leader before each pass; one returning True forces a rebuild from
        # the database (the agent monitor: nodes registered or lost)
        self.hooks: list[Any] = []
        # the active launches as last read or written by this leader (allocation id ->
        # [launch id, launched, stop reason, job id, job state, cancel requested]); re-read
        # from the database every FULL_RESYNC_S, after a rebuild and for noted cancels
        self._mirror: dict[int, list[Any]] | None = None
        self._mirror_at = 0.0
        self._cancels: set[int] = set()
        self._poll_at = 0.0
        self._poll_cursor = 0

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
            self._wake.wait(self.interval_s)
            self._wake.clear()

    # ------------------------------------------------------------------ state
    def rebuild(self) -> None:
        """Scheduler state from the database (desired and observed), never from memory."""
        self._mirror = None
        self._deferred: dict[int, Any] = {}  # starts decided by the previous scheduler: void
        with self.write_lock, self.sessions() as s:
            sites = {r.name: {"region": r.region, "pue": r.pue,
                              "electricity_price_cny_kwh": r.electricity_price_cny_kwh,
                              "carbon_kg_per_kwh": r.carbon_kg_per_kwh, "wan_gbps": r.wan_gbps}
                     for r in s.scalars(select(SiteRow))}
            nodes = [NodeInfo(name=n.name, site=site, chip=g.chip, vendor=g.vendor,
                              devices=n.devices, simulated=n.simulated)
                     for n, g, site in s.execute(
                         select(NodeRow, NodeGroupRow, SiteRow.name)
                         .join(NodeGroupRow, NodeGroupRow.id == NodeRow.group_id)
                         .join(SiteRow, SiteRow.id == NodeGroupRow.site_id)
                         .where(NodeRow.state == "ready").order_by(NodeRow.id))]
            queues = [Queue(q.name, q.weight, q.quota_devices)
                      for q in s.scalars(select(QueueRow))]
            ad = SchedAdapter(nodes, sites, queues, policy=self.policy, round_s=self.round_s)
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
            s.commit()
        self.adapter = ad
        self._last_full = time.monotonic()
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
        with self.sessions() as s:
            for kind, name in events:
                if kind == "failed":
                    for db_id in ad.node_failed(name, now):
                        deferred.pop(db_id, None)
                    for db_id in [j for j, pl in ad.held.items() if name in pl.nodes]:
                        ad.release(db_id)
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
        self._mirror = None  # the monitor changed allocations: re-read them
        log.info("node events: %s", ", ".join(f"{k} {n}" for k, n in events))

    # ------------------------------------------------------------------ one pass
    def run_pass(self) -> None:
        t0 = time.perf_counter()
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

        Every active launch is polled each pass, up to ``POLL_ALL`` of them; beyond, a
        rotating share (see :meth:`_to_poll`). What the database says about them is re-read
        (one light column query) every ``FULL_RESYNC_S``; in between, the launches come
        from this leader's own record of what it read and wrote, plus the jobs whose cancel
        was noted. Only the launches that need something done (launch, a state change, a
        cancel) are loaded as ORM objects, so a pass with thousands of running jobs and a
        few changes stays cheap.
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
            t = time.monotonic()
            if only is None and (mirror is None or (
                    t - self._mirror_at > FULL_RESYNC_S
                    and t - self._last_full <= FULL_RESYNC_S)):  # not with ingest's resync
                rows = [list(r) for r in s.execute(q).all()]
                mirror = self._mirror = {r[0]: r for r in rows}
                self._mirror_at = time.monotonic()
                # polled in this pass whatever their turn: the launches not in steady state
                rows = [r for r in rows if r[3] or r[6] or r[5] != running]
            else:
                ids = sorted(set(only or ()) | cancels)
                for i in range(0, len(ids), 500):
                    rows += [list(r) for r in
                             s.execute(q.where(AllocationRow.job_id.in_(ids[i:i + 500])))]
                if mirror is not None:
                    mirror.update((r[0], r) for r in rows)
            if only is None and mirror is not None:
                rows = self._to_poll(list(mirror.values()), {r[0] for r in rows})
            todo = [r[0] for r in rows if not r[2]]
            keep: list[Any] = []  # the session's identity map holds them weakly
            done: tuple[AllocationRow, JobRow] | None = None
            for i in range(0, len(todo), 500):  # the starts to launch: 500 per query
                keep += s.execute(select(AllocationRow, JobRow)
                          .join(JobRow, JobRow.id == AllocationRow.job_id)
                          .where(AllocationRow.id.in_(todo[i:i + 500]))).all()
            for aid, launch_id, launched, stop_reason, jid, jstate, cancel in rows:
                if done is not None and mirror is not None:
                    _remember(mirror, *done)
                done = None
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
                a = s.get(AllocationRow, aid)
                job = s.get(JobRow, jid)
                if a is None or job is None:
                    if mirror is not None:
                        mirror.pop(aid, None)
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
            if done is not None and mirror is not None:
                _remember(mirror, *done)
            s.commit()

    def _to_poll(self, rows: list[list[Any]], fresh: set[int]) -> list[list[Any]]:
        """The share of the active launches to poll in this pass (all of them up to
        ``POLL_ALL``), plus those just read (``fresh``) and those not in steady state (not
        launched yet, starting, stopping, cancel requested)."""
        t = time.monotonic()
        elapsed, self._poll_at = t - self._poll_at, t
        n = len(rows)
        if n <= POLL_ALL:
            return rows
        k = min(n, max(POLL_ALL, math.ceil(n * elapsed / POLL_S)))
        start = self._poll_cursor % n
        self._poll_cursor = start + k
        picked = rows[start:start + k] + rows[:max(0, start + k - n)]
        ids = {r[0] for r in picked}
        running = JobState.RUNNING.value  # not in steady state: polled every pass
        return picked + [r for r in rows if r[0] not in ids and (
            not r[2] or r[3] or r[6] or r[5] != running or r[0] in fresh)]

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
        """New pending jobs (by id watermark) and, every few seconds, a full resync."""
        full = time.monotonic() - self._last_full > FULL_RESYNC_S
        with self.write_lock, self.sessions() as s:
            pending = JobRow.state == JobState.PENDING.value
            if full:  # ids only; the specs of the jobs the scheduler does not know yet
                pending_ids = set(s.scalars(select(JobRow.id).where(pending)))
                self._watermark = max([self._watermark, *pending_ids])
                new = sorted(i for i in pending_ids if not ad.knows(i))
                rows: list[Any] = []
                for i in range(0, len(new), 500):
                    rows += s.execute(select(JobRow.id, JobRow.spec, JobRow.submitted_at)
                                      .where(JobRow.id.in_(new[i:i + 500]), pending)).all()
            else:
                rows = list(s.execute(select(JobRow.id, JobRow.spec, JobRow.submitted_at)
                                      .where(pending, JobRow.id > self._watermark)
                                      .order_by(JobRow.id)).all())
                pending_ids = set()
            for jid, spec, sub in rows:
                pending_ids.add(jid)
                self._watermark = max(self._watermark, jid)
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
            if full:
                self._last_full = time.monotonic()
                # jobs the scheduler waits for that are no longer pending (cancelled)
                for jid in [j for j in list(ad.key_of) if j not in pending_ids
                            and j not in ad.held]:
                    key = ad.key_of[jid]
                    if ad.sched.job_state(key) == "waiting":
                        st = s.scalar(select(JobRow.state).where(JobRow.id == jid))
                        if st != JobState.PENDING.value:
                            ad.forget(jid, now)
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
        with self.write_lock, self.sessions() as s:
            for db_id in stops:
                a = s.scalar(select(AllocationRow).where(AllocationRow.job_id == db_id,
                                                         AllocationRow.active.is_(True)))
                if a is not None and a.stop_reason is None:
                    a.stop_reason = "preempt"
            placed: list[int] = []
            ids = [i for i in self._deferred if i not in ad.held]
            jobs: dict[int, JobRow] = {}
            for i in range(0, len(ids), 500):  # one query per 500 starts, not one each
                jobs.update((j.id, j) for j in s.scalars(
                    select(JobRow).where(JobRow.id.in_(ids[i:i + 500]))))
            for db_id, d in list(self._deferred.items()):
                if db_id in ad.held:
                    continue  # its previous attempt has not stopped yet (migration)
                job = jobs.get(db_id)
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
                                    devices=pl.devices))
                _event(s, job, JobState.SCHEDULED, f"{pl.pool} ({self.policy})")
                placed.append(db_id)
            s.commit()  # decisions are durable before anything is carried out
        if placed or stops:
            self._observe(ad, now, placed + stops)  # carry them out now (launch / stop)


def _remember(mirror: dict[int, list[Any]], a: AllocationRow, job: JobRow) -> None:
    """Record in the loop's mirror what a pass did to a launch (ended: forgotten)."""
    if a.active:
        mirror[a.id] = [a.id, a.launch_id, a.launched, a.stop_reason, job.id, job.state,
                        job.cancel_requested]
    else:
        mirror.pop(a.id, None)


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
