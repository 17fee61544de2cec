"""Group commit for submissions: one writer thread, many requests per transaction.

The submit endpoints are ``async``: they validate the spec on the event loop and hand the
jobs to this queue. A single writer thread drains everything that is waiting, inserts it with
one multi-row ``INSERT .. RETURNING`` (jobs) and one multi-row insert (events), commits once
and only then answers every waiting request. An acknowledged job is therefore committed
(durable) exactly as before, but N concurrent submissions cost one transaction and a handful
of round trips instead of N of each; on SQLite the single writer also replaces the busy-wait
between competing writers.

On PostgreSQL the common case is one round trip: the writer keeps its own connection in
autocommit mode and sends the whole group as **one** statement (jobs from ``unnest`` of
arrays, their ids from the sequence, and their ``submitted`` events in a data-modifying CTE).
One statement is atomic, and in autocommit mode it is committed when the server answers, so
an acknowledged job is still committed. It carries no idempotency-key lookup: if a key
already exists, the unique index ``uq_jobs_tenant_idem`` fails the statement, nothing is
written, and the group takes the general path below (lookup, insert, commit in one
transaction), which answers retries with the existing job.

A problem with one request (an idempotency key reused for another spec) fails only that
request. When the transaction as a whole fails (a unique-key race with another replica), the
writer rolls back and replays the requests one transaction each, so each gets its own answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from suanli.service import models as m
from suanli.service.auth import Principal
from suanli.service.db import JobRow, utcnow

log = logging.getLogger("suanli.api")
MAX_GROUP_JOBS = 20_000  # jobs per transaction (a batch request is never split)
IDLE_PING_S = 1.0  # PostgreSQL: check the writer's connection after this long unused
COLS = ("tenant_id", "user_id", "name", "queue", "priority", "devices", "state", "reason",
        "spec", "idempotency_key", "submitted_at", "updated_at", "attempts", "failures",
        "cancel_requested")
# PostgreSQL: a whole group in one statement. The SQL text does not depend on the number of
# jobs (arrays, not a VALUES list), so psycopg prepares it once and parses no SQL per job;
# the arrays go in binary (%(x)b), which spares the per-element quoting of text arrays.
PG_INSERT = """
WITH v AS MATERIALIZED (
    SELECT nextval({seq}) AS id, u.*
    FROM unnest(%(tenant)b::int[], %(user)b::int[], %(name)b::text[], %(queue)b::text[],
                %(priority)b::float8[], %(devices)b::int[], %(spec)b::text[], %(key)b::text[])
         WITH ORDINALITY AS u(tenant_id, user_id, name, queue, priority, devices, spec, key, ord)
), ins AS (
    INSERT INTO jobs (id, tenant_id, user_id, name, queue, priority, devices, state, reason,
                      spec, idempotency_key, submitted_at, updated_at, attempts, failures,
                      cancel_requested)
    SELECT id, tenant_id, user_id, name, queue, priority, devices, 'pending', '', spec::json,
           key, %(now)b, %(now)b, 0, 0, false
    FROM v ORDER BY ord
    RETURNING id
), ev AS (
    INSERT INTO job_events (job_id, time, state, reason)
    SELECT id, %(now)b, 'pending', 'submitted' FROM ins
)
SELECT id FROM v ORDER BY ord
"""


@dataclass
class NewJob:
    """A row to insert (and the reply's source); ``id`` is set after the insert."""

    tenant_id: int
    user_id: int
    name: str
    queue: str
    priority: float
    devices: int
    spec_json: str  # the spec as JSON text, as stored
    idempotency_key: str | None
    submitted_at: Any
    state: str = m.JobState.PENDING.value
    reason: str = ""
    id: int = 0
    attempts: int = 0
    failures: int = 0
    cancel_requested: bool = False
    started_at: Any = None
    finished_at: Any = None
    exit_code: int | None = None

    @property
    def updated_at(self) -> Any:
        return self.submitted_at

    @property
    def spec(self) -> dict[str, Any]:
        return dict(json.loads(self.spec_json))


@dataclass
class _Request:
    principal: Principal
    subs: list[tuple[str, m.JobSpec, str | None]]  # (spec as JSON text, spec, key)
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[tuple[Any, bool]]]
    result: list[tuple[Any, bool]] | None = None
    error: BaseException | None = None
    rows: list[NewJob] = field(default_factory=list)


def spec_entry(spec: m.JobSpec, key: str | None) -> tuple[str, m.JobSpec, str | None]:
    """A submission for :meth:`SubmitQueue.submit`: the spec's JSON text (what is stored,
    without the unset optional fields), the spec and the idempotency key."""
    return spec.model_dump_json(exclude_none=True), spec, key


def _same_spec(old: Any, spec_json: str) -> bool:
    """Whether a stored job (a ``JobRow`` or a ``NewJob`` of this group) has this spec."""
    if isinstance(old, NewJob) and old.spec_json == spec_json:
        return True
    return bool(old.spec == json.loads(spec_json))


class SubmitQueue:
    """The writer thread and its queue (started on first use)."""

    def __init__(self, sessions: sessionmaker[Session], write_lock: Any = None) -> None:
        self.sessions = sessions
        self.write_lock = write_lock if write_lock is not None else contextlib.nullcontext()
        self._q: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.transactions = 0  # for tests and benchmarks: how many commits served the jobs
        self.jobs = 0
        self.fast = 0  # of which single-statement (PostgreSQL autocommit) ones
        self._raw: Any = None  # PostgreSQL: the writer's own connection (pool-checked-out)
        self._raw_used = 0.0
        self._pg_sql: str | None = None
        self._closed = False

    def close(self) -> None:
        """Stop the writer thread (after the queued requests) and return its connection."""
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            self._q.put(None)  # type: ignore[arg-type]
            self._thread.join(10)
        self._drop_raw()

    async def submit(self, p: Principal,
                     subs: list[tuple[str, m.JobSpec, str | None]]
                     ) -> list[tuple[Any, bool]]:
        """Insert ``subs`` for ``p``; returns (row, created) per job once committed."""
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="suanli-submit",
                                                    daemon=True)
                    self._thread.start()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[tuple[Any, bool]]] = loop.create_future()
        self._q.put(_Request(p, subs, loop, fut))
        return await fut

    # ---------------------------------------------------------------- writer thread
    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._q.get()
            if first is None:
                break
            group = [first]
            n = len(first.subs)
            while n < MAX_GROUP_JOBS:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
                n += len(nxt.subs)
            try:
                self._serve(group)
            except BaseException as exc:  # never let the writer die silently
                log.exception("submission writer failed")
                for r in group:
                    if r.result is None and r.error is None:
                        r.error = exc
            for r in group:
                r.loop.call_soon_threadsafe(_resolve, r)

    def _serve(self, group: list[_Request]) -> None:
        with self.write_lock:
            if self._fast_postgres(group):
                return
            try:
                self._transaction(group)
                return
            except IntegrityError:
                pass
            # a concurrent writer (another replica) inserted one of our idempotency keys
            # first: answer each request from its own transaction; a replay finds its row
            for r in group:
                for attempt in range(2):
                    r.result, r.error, r.rows = None, None, []
                    try:
                        self._transaction([r])
                        break
                    except IntegrityError:
                        if attempt == 1:
                            raise

    # ------------------------------------------------------------ PostgreSQL, one statement
    def _drop_raw(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.invalidate()  # closed, never handed out again (it was in autocommit)

    def _pg_connection(self) -> Any:
        """The writer's autocommit connection: checked after ``IDLE_PING_S`` unused (as
        ``pool_pre_ping`` would, but not once per group), replaced when broken."""
        raw = self._raw
        if raw is not None:
            dc = raw.driver_connection
            try:
                if dc.closed or dc.broken:
                    raise ConnectionError("closed")
                if time.monotonic() - self._raw_used > IDLE_PING_S:
                    dc.execute("SELECT 1")
            except Exception:
                self._drop_raw()
                raw = None
        if raw is None:
            engine = self.sessions.kw["bind"]
            raw = engine.raw_connection()
            dc = raw.driver_connection
            dc.rollback()
            dc.autocommit = True
            if self._pg_sql is None:
                from psycopg import sql

                seq = dc.execute("SELECT pg_get_serial_sequence('jobs', 'id')").fetchone()[0]
                self._pg_sql = PG_INSERT.replace(
                    "{seq}", sql.Literal(seq).as_string(dc) + "::regclass")
            self._raw = raw
        return raw.driver_connection

    def _fast_postgres(self, group: list[_Request]) -> bool:
        """One autocommit statement for the whole group, when that is possible: PostgreSQL,
        and no idempotency key twice in the group. False (nothing written) when the general
        path must answer: a key that exists already fails the statement on the unique index.
        """
        if self._closed or self.sessions.kw["bind"].dialect.name != "postgresql":
            return False
        seen: set[tuple[int, str]] = set()
        rows: list[NewJob] = []
        now = utcnow()
        for r in group:
            t, u = r.principal.tenant_id, r.principal.user_id
            for spec, sp, k in r.subs:
                if k is not None:
                    if (t, k) in seen:
                        return False
                    seen.add((t, k))
                rows.append(NewJob(tenant_id=t, user_id=u, name=sp.name, queue=sp.queue,
                                   priority=sp.priority, devices=sp.resources.devices,
                                   spec_json=spec, idempotency_key=k, submitted_at=now))
        import psycopg

        dc = self._pg_connection()
        try:
            ids = _pg_insert(dc, self._pg_sql or "", rows, now)
        except psycopg.IntegrityError:
            return False  # an existing idempotency key: nothing was written
        except Exception:
            if dc.broken or dc.closed:
                self._drop_raw()
            raise
        finally:
            self._raw_used = time.monotonic()
        it = iter(zip(rows, ids, strict=True))
        for r in group:
            r.rows = []
            for _ in r.subs:
                x, i = next(it)
                x.id = i
                r.rows.append(x)
            r.result = [(x, True) for x in r.rows]
        self.transactions += 1
        self.fast += 1
        self.jobs += len(rows)
        return True

    def _transaction(self, group: list[_Request]) -> None:
        with self.sessions() as s:
            try:
                self._insert(s, group)
                s.commit()
            except BaseException:
                s.rollback()
                for r in group:
                    r.result = None
                raise
        self.transactions += 1
        self.jobs += sum(len(r.rows) for r in group)

    def _insert(self, s: Session, group: list[_Request]) -> None:
        keys: dict[int, set[str]] = {}
        for r in group:
            for _, _, k in r.subs:
                if k:
                    keys.setdefault(r.principal.tenant_id, set()).add(k)
        existing: dict[tuple[int, str], Any] = {}
        for tenant_id, ks in keys.items():  # one indexed lookup per tenant (uq_jobs_tenant_idem)
            for j in s.scalars(select(JobRow).where(JobRow.tenant_id == tenant_id,
                                                    JobRow.idempotency_key.in_(sorted(ks)))):
                existing[(tenant_id, j.idempotency_key or "")] = j
        now = utcnow()
        new_rows: list[NewJob] = []
        for r in group:
            r.rows = []
            out: list[tuple[Any, bool]] = []
            claimed: dict[tuple[int, str], Any] = {}
            try:
                for spec, sp, k in r.subs:
                    ek = (r.principal.tenant_id, k or "")
                    old = (claimed.get(ek) or existing.get(ek)) if k else None
                    if old is not None:
                        if not _same_spec(old, spec):
                            raise HTTPException(409, f"idempotency key '{k}' was used for a "
                                                "different job spec",
                                                headers={"x-field": "idempotency_key"})
                        out.append((old, False))
                        continue
                    row = NewJob(tenant_id=r.principal.tenant_id, user_id=r.principal.user_id,
                                 name=sp.name, queue=sp.queue, priority=sp.priority,
                                 devices=sp.resources.devices, spec_json=spec,
                                 idempotency_key=k, submitted_at=now)
                    if k:
                        claimed[ek] = row
                    r.rows.append(row)
                    out.append((row, True))
            except HTTPException as exc:
                r.error, r.rows = exc, []
                continue
            existing.update(claimed)
            r.result = out
            new_rows.extend(r.rows)
        if not new_rows:
            return
        if s.get_bind().dialect.name == "postgresql":
            import psycopg

            raw = s.connection().connection.driver_connection
            if self._pg_sql is None:
                self._pg_connection()  # resolves the sequence name once
            try:
                ids = _pg_insert(raw, self._pg_sql or "", new_rows, now)
            except psycopg.IntegrityError as exc:  # a racing replica: replayed by _serve
                raise IntegrityError("INSERT INTO jobs", None, exc) from exc
            for x, i in zip(new_rows, ids, strict=True):
                x.id = i
            return
        # SQLite: explicit ids after the largest one and the driver's executemany with
        # tuples (no per-row SQLAlchemy processing: the spec is JSON text already and the
        # timestamp is converted once). Another writer taking the same ids fails the primary
        # key and the group is replayed (see _serve).
        top = s.scalar(select(func.max(JobRow.id))) or 0
        conn = s.connection()
        dt_type = JobRow.__table__.c.submitted_at.type
        ts = dt_type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        stamp = ts(now) if ts is not None else now
        params = []
        for n, x in enumerate(new_rows, start=top + 1):
            x.id = n
            params.append((n, x.tenant_id, x.user_id, x.name, x.queue, x.priority, x.devices,
                           x.state, x.reason, x.spec_json, x.idempotency_key, stamp, stamp,
                           0, 0, 0))
        conn.exec_driver_sql(f"INSERT INTO jobs (id, {', '.join(COLS)}) VALUES "
                             f"({', '.join('?' * (len(COLS) + 1))})", params)
        conn.exec_driver_sql("INSERT INTO job_events (job_id, time, state, reason) "
                             "VALUES (?, ?, 'pending', 'submitted')",
                             [(x.id, stamp) for x in new_rows])


def _resolve(r: _Request) -> None:
    if r.future.done():  # the client went away; the jobs are committed all the same
        return
    if r.error is not None:
        r.future.set_exception(r.error)
    elif r.result is not None:
        r.future.set_result(r.result)
    else:
        r.future.set_exception(RuntimeError("submission was not processed"))


def _pg_insert(dc: Any, sql: str, rows: list[NewJob], now: Any) -> list[int]:
    """Insert ``rows`` and their events with :data:`PG_INSERT` on the psycopg connection
    ``dc`` (in its transaction, or committed at once in autocommit mode); their new ids."""
    cur = dc.execute(sql, {
        "tenant": [x.tenant_id for x in rows], "user": [x.user_id for x in rows],
        "name": [x.name for x in rows], "queue": [x.queue for x in rows],
        "priority": [x.priority for x in rows], "devices": [x.devices for x in rows],
        "spec": [x.spec_json for x in rows], "key": [x.idempotency_key for x in rows],
        "now": now})
    return [i for (i,) in cur.fetchall()]
