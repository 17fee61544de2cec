"""Group commit for submissions: one writer thread, many requests per transaction.

The submit endpoints are ``async``: they validate the spec on the event loop and hand the
jobs to this queue. A single writer thread drains everything that is waiting, inserts it with
one multi-row ``INSERT .. RETURNING`` (jobs) and one multi-row insert (events), commits once
and only then answers every waiting request. An acknowledged job is therefore committed
(durable) exactly as before, but N concurrent submissions cost one transaction and a handful
of round trips instead of N of each; on SQLite the single writer also replaces the busy-wait
between competing writers.

A problem with one request (an idempotency key reused for another spec) fails only that
request. When the transaction as a whole fails (a unique-key race with another replica), the
writer rolls back and replays the requests one transaction each, so each gets its own answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from suanli.service import models as m
from suanli.service.auth import Principal
from suanli.service.db import JobEventRow, JobRow, utcnow

log = logging.getLogger("suanli.api")
MAX_GROUP_JOBS = 20_000  # jobs per transaction (a batch request is never split)
COPY_MIN = 64  # PostgreSQL: from this many rows, COPY instead of a multi-row INSERT
COLS = ("tenant_id", "user_id", "name", "queue", "priority", "devices", "state", "reason",
        "spec", "idempotency_key", "submitted_at", "updated_at", "attempts", "failures",
        "cancel_requested")


@dataclass
class NewJob:
    """A row to insert (and the reply's source); ``id`` is set after the insert."""

    tenant_id: int
    user_id: int
    name: str
    queue: str
    priority: float
    devices: int
    spec: dict[str, Any]
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


@dataclass
class _Request:
    principal: Principal
    subs: list[tuple[dict[str, Any], m.JobSpec, str | None]]  # (spec json, spec, key)
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[tuple[Any, bool]]]
    result: list[tuple[Any, bool]] | None = None
    error: BaseException | None = None
    rows: list[NewJob] = field(default_factory=list)


def spec_entry(spec: m.JobSpec, key: str | None) -> tuple[dict[str, Any], m.JobSpec, str | None]:
    return spec.model_dump(mode="json", exclude_none=True), spec, key


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

    async def submit(self, p: Principal,
                     subs: list[tuple[dict[str, Any], m.JobSpec, str | None]]
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
        while True:
            group = [self._q.get()]
            n = len(group[0].subs)
            while n < MAX_GROUP_JOBS:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
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
                        if old.spec != spec:
                            raise HTTPException(409, f"idempotency key '{k}' was used for a "
                                                "different job spec",
                                                headers={"x-field": "idempotency_key"})
                        out.append((old, False))
                        continue
                    row = NewJob(tenant_id=r.principal.tenant_id, user_id=r.principal.user_id,
                                 name=sp.name, queue=sp.queue, priority=sp.priority,
                                 devices=sp.resources.devices, spec=spec, idempotency_key=k,
                                 submitted_at=now)
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
        if len(new_rows) >= COPY_MIN and s.get_bind().dialect.name == "postgresql":
            _copy_postgres(s, new_rows, now)
            return
        params = [{c: getattr(x, c) for c in COLS} for x in new_rows]
        if s.get_bind().dialect.name == "sqlite":
            # SQLite: explicit ids after the largest one and a plain executemany (the driver's
            # C loop); a multi-row INSERT .. RETURNING costs more in SQL expansion than the
            # database spends. Another writer taking the same ids fails the primary key and
            # the group is replayed (see _serve).
            top = s.scalar(select(func.max(JobRow.id))) or 0
            for n, (x, p) in enumerate(zip(new_rows, params, strict=True), start=top + 1):
                x.id = p["id"] = n
            s.execute(insert(JobRow), params)
        else:
            ids = s.execute(insert(JobRow).returning(JobRow.id, sort_by_parameter_order=True),
                            params).scalars().all()
            for x, i in zip(new_rows, ids, strict=True):
                x.id = i
        s.execute(insert(JobEventRow), [
            {"job_id": x.id, "time": now, "state": m.JobState.PENDING.value,
             "reason": "submitted"} for x in new_rows])


def _resolve(r: _Request) -> None:
    if r.future.done():  # the client went away; the jobs are committed all the same
        return
    if r.error is not None:
        r.future.set_exception(r.error)
    elif r.result is not None:
        r.future.set_result(r.result)
    else:
        r.future.set_exception(RuntimeError("submission was not processed"))


def _copy_postgres(s: Session, rows: list[NewJob], now: Any) -> None:
    """PostgreSQL: reserve the ids from the sequence in one query, then ``COPY`` the jobs and
    their events (psycopg parses a many-row INSERT's SQL text in Python: COPY skips that).
    The same transaction as the session's; the caller commits."""
    from psycopg.types.json import Json
    from sqlalchemy import text

    ids = sorted(s.execute(text("SELECT nextval(pg_get_serial_sequence('jobs', 'id')) "
                                "FROM generate_series(1, :n)"), {"n": len(rows)}).scalars())
    for x, i in zip(rows, ids, strict=True):
        x.id = i
    raw = s.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        with cur.copy(f"COPY jobs (id, {', '.join(COLS)}) FROM STDIN") as cp:
            for x in rows:
                cp.write_row((x.id, x.tenant_id, x.user_id, x.name, x.queue, x.priority,
                              x.devices, x.state, x.reason, Json(x.spec), x.idempotency_key,
                              x.submitted_at, x.updated_at, x.attempts, x.failures,
                              x.cancel_requested))
        with cur.copy("COPY job_events (job_id, time, state, reason) FROM STDIN") as cp:
            for x in rows:
                cp.write_row((x.id, now, m.JobState.PENDING.value, "submitted"))
