"""The HTTP API (FastAPI, ``/api/v1``) and ``/metrics``.

Every endpoint except ``/api/v1/health`` needs ``Authorization: Bearer <token>``. Jobs are
always filtered by the caller's tenant: another tenant's job is "not found", never
"forbidden", so its existence does not leak either.
"""


import base64
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from suanli import __version__
from suanli.exec.base import Executor
from suanli.service import models as m
from suanli.service.auth import (
    Principal,
    authenticate,
    create_token,
    ensure_tenant,
    ensure_user,
    hash_token,
)
from suanli.service.db import (
    AllocationRow,
    ApiToken,
    JobEventRow,
    JobRow,
    NodeGroupRow,
    NodeRow,
    QueueRow,
    SiteRow,
    Tenant,
    User,
    as_utc,
    utcnow,
)

log = logging.getLogger("suanli.api")
JobId = Annotated[int, Path(ge=1, le=2**62)]
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": m.Problem, "description": "bad request"},
    401: {"model": m.Problem, "description": "missing or invalid token"},
    403: {"model": m.Problem, "description": "the token lacks the scope"},
    404: {"model": m.Problem, "description": "not found (or another tenant's)"},
    409: {"model": m.Problem, "description": "conflict"},
    413: {"model": m.Problem, "description": "request body too large"},
    422: {"model": m.Problem, "description": "invalid input: names the field"},
}


@dataclass
class ServiceState:
    sessions: sessionmaker[Session]
    executor: Executor
    executor_name: str
    database: str
    schema_revision: str | None
    max_batch: int = 10_000
    loop: Any | None = None  # SchedulerLoop
    metrics: Any | None = None
    # SQLite allows one writer: serialising writers in-process avoids its busy-wait sleeps
    write_lock: Any = field(default_factory=contextlib.nullcontext)
    # verified tokens, keyed by their SHA-256 hash (never the token itself), for auth_ttl_s:
    # a revocation here clears it at once, one through another replica counts after the TTL
    auth_ttl_s: float = 2.0
    _auth: dict[str, tuple[float, Principal]] = field(default_factory=dict)
    submitq: Any | None = None  # SubmitQueue (group commit of submissions)

    def cached_principal(self, token: str) -> Principal | None:
        """The cached principal of a verified ``token`` (looked up by its hash), or None."""
        hit = self._auth.get(hash_token(token))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def remember(self, token: str, p: Principal | None) -> None:
        """Cache a verification result under the token's hash (a failure forgets it)."""
        key = hash_token(token)
        if p is None:
            self._auth.pop(key, None)
            return
        if len(self._auth) > 10_000:
            self._auth.clear()
        self._auth[key] = (time.monotonic() + self.auth_ttl_s, p)
    _queues: tuple[float, set[str]] = (0.0, set())


class BodyLimit:
    """Reject request bodies over ``limit`` bytes with 413 (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    too_big = int(v) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    await _problem(send, 413, f"request body over {self.limit} bytes")
                    return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited, tracking_send)
        except _TooLarge:
            if not started:
                await _problem(send, 413, f"request body over {self.limit} bytes")


class _TooLarge(Exception):
    pass


class Timing:
    """API latency per method and route (a plain ASGI middleware: Starlette's
    ``BaseHTTPMiddleware`` costs a task group and a stream per request)."""

    def __init__(self, app: ASGIApp, metrics: Any) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "other")
            self.metrics.api_latency.labels(scope["method"], path).observe(
                time.perf_counter() - t0)


async def _problem(send: Send, status: int, detail: str) -> None:
    import json

    body = json.dumps({"detail": detail, "field": None}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _loc(loc: Any) -> str:
    parts = [str(p) for p in loc if p != "[key]"]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] if parts[0] == "body" else parts
    return ".".join(parts) or "(body)"


def create_app(state: ServiceState, max_body_bytes: int = 1_048_576) -> FastAPI:
    app = FastAPI(
        title="suanli control plane",
        version=__version__,
        description="Jobs, queues, nodes and tokens of a suanli deployment.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.svc = state

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid input"}
        where = _loc(err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "missing":
            msg = "required field is missing"
        elif err.get("type") == "extra_forbidden":
            msg = "unknown field"
        text = f"{where}: {msg}".replace("\n", " ")
        return JSONResponse({"detail": text, "field": where}, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(_req: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        field = (exc.headers or {}).get("x-field")
        headers = {k: v for k, v in (exc.headers or {}).items() if k != "x-field"}
        return JSONResponse({"detail": detail, "field": field}, status_code=exc.status_code,
                            headers=headers or None)

    if state.metrics is not None:
        metrics = state.metrics

        app.add_middleware(Timing, metrics=metrics)

    app.add_middleware(BodyLimit, limit=max_body_bytes)
    app.include_router(_router(state))
    from suanli.service.dashboard import mount as mount_dashboard  # the web UI at /ui

    mount_dashboard(app, state)
    return app


def _router(state: ServiceState) -> APIRouter:
    r = APIRouter(prefix="/api/v1", responses=ERRORS)

    def db() -> Iterator[Session]:
        with state.sessions() as s:
            yield s

    Db = Annotated[Session, Depends(db)]

    def lookup(token: str) -> Principal | None:
        with state.sessions() as s:
            return authenticate(s, token)

    async def principal(authorization: Annotated[str | None, Header()] = None) -> Principal:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        token = authorization[7:].strip()
        p = state.cached_principal(token)
        if p is not None:
            return p
        p = await run_in_threadpool(lookup, token)
        state.remember(token, p)
        if p is None:
            raise HTTPException(401, "invalid or revoked token",
                                headers={"WWW-Authenticate": "Bearer"})
        return p

    def scope(name: str) -> Any:
        async def check(p: Annotated[Principal, Depends(principal)]) -> Principal:
            if not p.can(name):
                raise HTTPException(403, f"this token lacks the '{name}' scope")
            return p

        return check

    Reader = Annotated[Principal, Depends(scope("read"))]
    Submitter = Annotated[Principal, Depends(scope("submit"))]
    Admin = Annotated[Principal, Depends(scope("admin"))]

    # ------------------------------------------------------------------ health
    @r.get("/health", response_model=m.Health, tags=["meta"])
    def health() -> m.Health:
        loop = state.loop
        return m.Health(version=__version__, schema_revision=state.schema_revision,
                        database=state.database,
                        scheduler_leader=bool(loop is not None and loop.leader),
                        executor=state.executor_name)

    # ------------------------------------------------------------------ jobs
    def job_out(j: Any, tenant: str, user: str, s: Session | None = None,
                full: bool = False) -> m.Job:
        alloc = None
        if full and s is not None:
            a = s.scalar(select(AllocationRow).where(AllocationRow.job_id == j.id)
                         .order_by(AllocationRow.id.desc()).limit(1))
            if a is not None:
                alloc = m.Allocation(launch_id=a.launch_id, attempt=a.attempt, pool=a.pool,
                                     chip=a.chip, site=a.site, nodes=a.nodes,
                                     devices=a.devices, active=a.active,
                                     created_at=as_utc(a.created_at),  # type: ignore[arg-type]
                                     released_at=as_utc(a.released_at), exit_code=a.exit_code)
        return m.Job(id=j.id, name=j.name, tenant=tenant, user=user, queue=j.queue,
                     priority=j.priority, state=m.JobState(j.state), reason=j.reason or "",
                     devices=j.devices,
                     submitted_at=as_utc(j.submitted_at),  # type: ignore[arg-type]
                     updated_at=as_utc(j.updated_at),  # type: ignore[arg-type]
                     started_at=as_utc(j.started_at), finished_at=as_utc(j.finished_at),
                     exit_code=j.exit_code, attempts=j.attempts,
                     idempotency_key=j.idempotency_key,
                     spec=m.JobSpec.model_validate(j.spec) if full else None,
                     allocation=alloc)

    def get_job(s: Session, p: Principal, job_id: int) -> JobRow:
        j = s.scalar(select(JobRow).where(JobRow.id == job_id, JobRow.tenant_id == p.tenant_id))
        if j is None:
            raise HTTPException(404, f"job {job_id} not found")
        return j

    def queue_names() -> set[str]:
        t, names = state._queues
        if time.monotonic() - t < 2.0:
            return names
        with state.sessions() as s:
            names = set(s.scalars(select(QueueRow.name)))
        state._queues = (time.monotonic(), names)
        return names

    async def check_queues(specs: list[m.JobSpec]) -> None:
        known = state._queues[1]
        if time.monotonic() - state._queues[0] >= 2.0 or any(
                sp.queue not in known for sp in specs):
            known = await run_in_threadpool(queue_names)
        for i, sp in enumerate(specs):
            if sp.queue not in known:
                where = "queue" if len(specs) == 1 else f"jobs.{i}.spec.queue"
                raise HTTPException(422, f"{where}: unknown queue '{sp.queue}' "
                                    f"(known: {', '.join(sorted(known))})",
                                    headers={"x-field": where})

    def submitq() -> Any:
        if state.submitq is None:
            from suanli.service.submitq import SubmitQueue

            wl = state.write_lock
            state.submitq = SubmitQueue(state.sessions,
                                        None if isinstance(wl, contextlib.nullcontext) else wl)
        return state.submitq

    @r.post("/jobs", response_model=m.Job, status_code=201, tags=["jobs"],
            responses={200: {"model": m.Job,
                             "description": "a retry with the same Idempotency-Key: the job "
                                            "it created first"}})
    async def submit(spec: m.JobSpec, p: Submitter,
                     idempotency_key: Annotated[str | None,
                                                Header(min_length=1, max_length=200)] = None
                     ) -> JSONResponse:
        """Submit one job. With an ``Idempotency-Key`` header a retry returns the same job
        (200) instead of creating a second one (201). Answered once committed."""
        from suanli.service.submitq import spec_entry

        await check_queues([spec])
        (row, created), = await submitq().submit(p, [spec_entry(spec, idempotency_key)])
        if state.loop is not None:
            state.loop.wake()
        return JSONResponse(fast_job(row, p), status_code=201 if created else 200)

    @r.post("/jobs/batch", response_model=list[m.Job], status_code=201, tags=["jobs"])
    async def submit_batch(batch: m.BatchSubmit, p: Submitter) -> JSONResponse:
        """Submit many jobs in one transaction (idempotency keys per job)."""
        from suanli.service.submitq import spec_entry

        if len(batch.jobs) > state.max_batch:
            raise HTTPException(422, f"jobs: at most {state.max_batch} jobs per batch",
                                headers={"x-field": "jobs"})
        await check_queues([x.spec for x in batch.jobs])
        rows = await submitq().submit(p, [spec_entry(x.spec, x.idempotency_key)
                                          for x in batch.jobs])
        if state.loop is not None:
            state.loop.wake()
        stamps: dict[datetime, str | None] = {}  # the jobs of a group share their times
        # pydantic-core's serialiser: 7 ms for 5,000 jobs where json.dumps took 25 ms
        from pydantic_core import to_json

        return Response(to_json([fast_job(j, p, stamps) for j, _ in rows]), status_code=201,
                        media_type="application/json")  # type: ignore[return-value]

    def fast_job(j: Any, p: Principal, stamps: dict[datetime, str | None] | None = None
                 ) -> dict[str, Any]:
        """The ``Job`` JSON of a row without building the pydantic model (batch replies)."""
        def iso(dt: datetime | None) -> str | None:
            if not dt:
                return None
            if stamps is None:
                return as_utc(dt).isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]
            out = stamps.get(dt)
            if out is None:
                out = stamps[dt] = as_utc(dt).isoformat().replace(  # type: ignore[union-attr]
                    "+00:00", "Z")
            return out

        return {"id": j.id, "name": j.name, "tenant": p.tenant, "user": p.user,
                "queue": j.queue, "priority": float(j.priority), "state": j.state,
                "reason": j.reason or "", "devices": j.devices,
                "submitted_at": iso(j.submitted_at), "updated_at": iso(j.updated_at),
                "started_at": iso(j.started_at), "finished_at": iso(j.finished_at),
                "exit_code": j.exit_code, "attempts": j.attempts,
                "idempotency_key": j.idempotency_key, "spec": None, "allocation": None}

    @r.get("/jobs", response_model=m.Page[m.Job], tags=["jobs"])
    def list_jobs(
        s: Db, p: Reader,
        state_: Annotated[m.JobState | None, Query(alias="state")] = None,
        queue: Annotated[str | None, Query(max_length=100)] = None,
        name: Annotated[str | None, Query(max_length=200)] = None,
        sort: m.SortKey = "-id",
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        total: bool = False,
    ) -> m.Page[m.Job]:
        """Jobs of your tenant, filtered by state / queue / name, sorted, keyset-paginated
        (pass ``next_cursor`` back as ``cursor``)."""
        q = select(JobRow).where(JobRow.tenant_id == p.tenant_id)
        if state_ is not None:
            q = q.where(JobRow.state == state_.value)
        if queue:
            q = q.where(JobRow.queue == queue)
        if name:
            q = q.where(JobRow.name == name)
        count = s.scalar(select(func.count()).select_from(q.subquery())) if total else None
        desc = sort.startswith("-")
        col_name = sort.lstrip("-")
        col = {"id": JobRow.id, "submitted_at": JobRow.submitted_at,
               "priority": JobRow.priority}[col_name]
        if cursor:
            try:
                raw = base64.urlsafe_b64decode(cursor.encode() + b"==").decode()
                cval_s, cid_s = raw.rsplit("|", 1)
                cid = int(cid_s)
                cval: Any = (int(cval_s) if col_name == "id" else
                             float(cval_s) if col_name == "priority" else
                             datetime.fromisoformat(cval_s))
            except (ValueError, UnicodeDecodeError):
                raise HTTPException(422, "cursor: not a cursor from this API",
                                    headers={"x-field": "cursor"}) from None
            if col_name == "submitted_at" and s.get_bind().dialect.name == "sqlite":
                cval = cval.astimezone(UTC).replace(tzinfo=None)
            if desc:
                q = q.where((col < cval) | ((col == cval) & (JobRow.id < cid)))
            else:
                q = q.where((col > cval) | ((col == cval) & (JobRow.id > cid)))
        order: list[Any] = ([col.desc(), JobRow.id.desc()] if desc
                            else [col.asc(), JobRow.id.asc()])
        if col_name == "id":
            order = order[:1]
        rows = s.scalars(q.order_by(*order).limit(limit + 1)).all()
        nxt = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            v = getattr(last, col_name)
            if col_name == "submitted_at":
                v = as_utc(v).isoformat()  # type: ignore[union-attr]
            nxt = base64.urlsafe_b64encode(f"{v}|{last.id}".encode()).decode().rstrip("=")
        users = dict(s.execute(select(User.id, User.name).where(
            User.id.in_({j.user_id for j in rows}))).all()) if rows else {}
        page = m.Page[m.Job](items=[job_out(j, p.tenant, users.get(j.user_id, "?"))
                                    for j in rows], total=count, next_cursor=nxt)
        # already validated: skip FastAPI's second pass over the response model
        return JSONResponse(page.model_dump(mode="json"))  # type: ignore[return-value]

    @r.get("/jobs/{job_id}", response_model=m.Job, tags=["jobs"])
    def job(job_id: JobId, s: Db, p: Reader) -> m.Job:
        j = get_job(s, p, job_id)
        user = s.scalar(select(User.name).where(User.id == j.user_id)) or "?"
        return job_out(j, p.tenant, user, s, full=True)

    @r.get("/jobs/{job_id}/events", response_model=list[m.JobEvent], tags=["jobs"])
    def events(job_id: JobId, s: Db, p: Reader) -> list[m.JobEvent]:
        get_job(s, p, job_id)
        rows = s.scalars(select(JobEventRow).where(JobEventRow.job_id == job_id)
                         .order_by(JobEventRow.id)).all()
        return [m.JobEvent(id=e.id, job_id=e.job_id, time=as_utc(e.time),  # type: ignore[arg-type]
                           state=m.JobState(e.state), reason=e.reason or "") for e in rows]

    @r.post("/jobs/{job_id}/cancel", response_model=m.Job, tags=["jobs"])
    def cancel(job_id: JobId, s: Db, p: Submitter) -> m.Job:
        """Cancel: a waiting job at once; a running one is stopped (SIGTERM, grace, SIGKILL)."""
        from suanli.service.control import request_cancel

        j = get_job(s, p, job_id)  # the tenant check; its state may change until the write
        now = utcnow()
        with state.write_lock:
            request_cancel(s, j.id, p.user, now)
        if state.loop is not None:
            state.loop.note_cancel(job_id)
        s.refresh(j)
        return job_out(j, p.tenant, p.user, s, full=True)

    @r.get("/jobs/{job_id}/logs", response_model=m.LogChunk, tags=["jobs"])
    def logs(job_id: JobId, s: Db, p: Reader,
             stream: Literal["stdout", "stderr"] = "stdout",
             offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
             limit: Annotated[int, Query(ge=1, le=1_048_576)] = 65_536,
             attempt: Annotated[int | None, Query(ge=1, le=100_000)] = None) -> m.LogChunk:
        """A chunk of a job attempt's log from byte ``offset``; follow by passing the
        returned ``offset`` back until ``eof``."""
        j = get_job(s, p, job_id)
        q = select(AllocationRow).where(AllocationRow.job_id == job_id)
        if attempt is not None:
            q = q.where(AllocationRow.attempt == attempt)
        a = s.scalar(q.order_by(AllocationRow.id.desc()).limit(1))
        terminal = m.JobState(j.state).terminal or j.state == m.JobState.UNRUNNABLE.value
        if a is None:
            return m.LogChunk(data="", offset=offset, eof=terminal, state=m.JobState(j.state),
                              attempt=None)
        try:
            path = state.executor.log_paths(a.launch_id)[stream]
        except Exception:
            path = None
        data = b""
        if path is not None and path.is_file():
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(limit)
        finished = terminal or (not a.active)
        return m.LogChunk(data=data.decode("utf-8", errors="replace"),
                          offset=offset + len(data), eof=finished and len(data) < limit,
                          state=m.JobState(j.state), attempt=a.attempt)

    # ------------------------------------------------------------------ cluster
    @r.get("/nodes", response_model=m.Page[m.Node], tags=["cluster"])
    def nodes(s: Db, p: Reader, site: Annotated[str | None, Query(max_length=200)] = None,
              chip: Annotated[str | None, Query(max_length=100)] = None,
              limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
              offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> m.Page[m.Node]:
        busy: dict[str, int] = {}
        for a_nodes, a_devs in s.execute(select(AllocationRow.nodes, AllocationRow.devices)
                                         .where(AllocationRow.active.is_(True))):
            for n, d in zip(a_nodes, a_devs, strict=False):
                busy[n] = busy.get(n, 0) + len(d)
        q = (select(NodeRow, NodeGroupRow, SiteRow.name)
             .join(NodeGroupRow, NodeGroupRow.id == NodeRow.group_id)
             .join(SiteRow, SiteRow.id == NodeGroupRow.site_id))
        if site:
            q = q.where(SiteRow.name == site)
        if chip:
            q = q.where(NodeGroupRow.chip == chip)
        total = s.scalar(select(func.count()).select_from(q.subquery()))
        rows = s.execute(q.order_by(NodeRow.id).offset(offset).limit(limit)).all()
        return m.Page[m.Node](items=[node_out(n, g, site_name, busy.get(n.name, 0))
                                     for n, g, site_name in rows], total=total)

    def node_out(n: NodeRow, g: NodeGroupRow, site_name: str, busy: int) -> m.Node:
        return m.Node(id=n.id, name=n.name, site=site_name, group=g.name, chip=g.chip,
                      vendor=g.vendor, devices=n.devices, devices_busy=busy,
                      simulated=n.simulated, state=n.state, drain=bool(n.drain),
                      agent=bool(n.agent), last_seen=as_utc(n.last_seen),
                      driver_version=n.driver_version)

    NodeRef = Annotated[str, Path(min_length=1, max_length=400,
                                  description="the node's name (site/group/index, slashes "
                                  "included) or its numeric id")]

    def drain_or_undrain(ref: str, s: Session, p: Principal, drain: bool) -> m.Node:
        from suanli.service.control import set_drain

        q = select(NodeRow).where(NodeRow.name == ref)
        node = s.scalar(q)
        if node is None and ref.isdigit() and len(ref) < 12:
            node = s.get(NodeRow, int(ref))
        if node is None:
            raise HTTPException(404, f"node '{ref}' not found")
        if not p.tenant_root and node.tenant_id != p.tenant_id:
            raise HTTPException(403, "nodes are shared: only the root tenant's admins drain "
                                "them (other admins: their own agent nodes)")
        with state.write_lock:
            set_drain(s, node.id, drain)
        if state.loop is not None:
            state.loop.wake()
        s.refresh(node)
        g = s.get(NodeGroupRow, node.group_id)
        site_name = s.scalar(select(SiteRow.name).where(SiteRow.id == g.site_id)) if g else ""
        busy = sum(len(d) for a_nodes, a_devs in s.execute(
            select(AllocationRow.nodes, AllocationRow.devices)
            .where(AllocationRow.active.is_(True)))
            for n, d in zip(a_nodes, a_devs, strict=False) if n == node.name)
        assert g is not None
        return node_out(node, g, site_name or "", busy)

    @r.post("/nodes/{node:path}/drain", response_model=m.Node, tags=["cluster"])
    def drain(node: NodeRef, s: Db, p: Admin) -> m.Node:
        """Drain a node: no new job is placed there, the jobs running there finish; its state
        is ``draining`` until nothing runs there, then ``drained``. Survives restarts."""
        return drain_or_undrain(node, s, p, True)

    @r.post("/nodes/{node:path}/undrain", response_model=m.Node, tags=["cluster"])
    def undrain(node: NodeRef, s: Db, p: Admin) -> m.Node:
        """Undrain a node: it takes new work again (``ready``; a lost node stays lost)."""
        return drain_or_undrain(node, s, p, False)

    @r.get("/queues", response_model=list[m.Queue], tags=["cluster"])
    def queues(s: Db, p: Reader) -> list[m.Queue]:
        counts: dict[tuple[str, str], int] = {}
        for qn, st, c in s.execute(
                select(JobRow.queue, JobRow.state, func.count())
                .where(JobRow.tenant_id == p.tenant_id,
                       JobRow.state.in_([m.JobState.PENDING.value, m.JobState.RUNNING.value]))
                .group_by(JobRow.queue, JobRow.state)):
            counts[(qn, st)] = c
        return [m.Queue(name=q.name, weight=q.weight, quota_devices=q.quota_devices,
                        pending=counts.get((q.name, "pending"), 0),
                        running=counts.get((q.name, "running"), 0))
                for q in s.scalars(select(QueueRow).order_by(QueueRow.name))]

    @r.put("/queues/{name}", response_model=m.Queue, tags=["cluster"])
    def put_queue(
        name: Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")],
        body: m.QueueIn, s: Db, p: Admin,
    ) -> m.Queue:
        """Create or change a queue (weights and quotas apply when the scheduler rebuilds)."""
        if body.name != name:
            raise HTTPException(422, "name: must equal the queue name in the path",
                                headers={"x-field": "name"})
        if not p.tenant_root:
            raise HTTPException(403, "queues are shared: only the root tenant's admins "
                                "change them")
        q = s.scalar(select(QueueRow).where(QueueRow.name == name))
        if q is None:
            q = QueueRow(name=name)
            s.add(q)
        q.weight = body.weight
        q.quota_devices = body.quota_devices
        with state.write_lock:
            s.commit()
        state._queues = (0.0, set())
        return m.Queue(name=q.name, weight=q.weight, quota_devices=q.quota_devices)

    # ------------------------------------------------------------------ tokens
    def token_out(t: ApiToken, tenant: str, user: str) -> m.Token:
        return m.Token(id=t.id, tenant=tenant, user=user, scopes=t.scopes.split(","),
                       name=t.name, prefix=t.prefix,
                       created_at=as_utc(t.created_at),  # type: ignore[arg-type]
                       revoked_at=as_utc(t.revoked_at))

    @r.get("/tokens", response_model=list[m.Token], tags=["tokens"])
    def tokens(s: Db, p: Admin) -> list[m.Token]:
        rows = s.execute(select(ApiToken, User.name).join(User, User.id == ApiToken.user_id)
                         .where(ApiToken.tenant_id == p.tenant_id).order_by(ApiToken.id)).all()
        return [token_out(t, p.tenant, u) for t, u in rows]

    @r.post("/tokens", response_model=m.TokenCreated, status_code=201, tags=["tokens"])
    def new_token(body: m.TokenIn, s: Db, p: Admin) -> m.TokenCreated:
        """Create a token (shown once). Admins of the root tenant may name another tenant
        (created if new); other admins only their own."""
        tenant_name = body.tenant or p.tenant
        if tenant_name != p.tenant and not p.tenant_root:
            raise HTTPException(403, "only the root tenant's admins create other tenants' "
                                "tokens")
        try:
            # the whole write under the lock: ensure_* flush, which takes SQLite's write lock;
            # flushing first and then waiting for ours would deadlock with a writer holding
            # ours and waiting for SQLite's (until the 30 s busy timeout)
            with state.write_lock:
                tenant = ensure_tenant(s, tenant_name)
                user = ensure_user(s, tenant, body.user)
                row, token = create_token(s, tenant, user, list(body.scopes), body.name)
                s.commit()
        except IntegrityError:
            s.rollback()
            raise HTTPException(409, "conflict creating the token; retry") from None
        return m.TokenCreated(**token_out(row, tenant.name, user.name).model_dump(),
                              token=token)

    @r.delete("/tokens/{token_id}", response_model=m.Token, tags=["tokens"])
    def revoke(token_id: JobId, s: Db, p: Admin) -> m.Token:
        """Revoke a token of your tenant (root tenant admins: of any tenant)."""
        q = select(ApiToken).where(ApiToken.id == token_id)
        if not p.tenant_root:
            q = q.where(ApiToken.tenant_id == p.tenant_id)
        t = s.scalar(q)
        if t is None:
            raise HTTPException(404, f"token {token_id} not found")
        if t.revoked_at is None:
            t.revoked_at = utcnow()
            with state.write_lock:
                s.commit()
            state._auth.clear()
        user = s.scalar(select(User.name).where(User.id == t.user_id)) or "?"
        tenant = s.scalar(select(Tenant.name).where(Tenant.id == t.tenant_id)) or "?"
        return token_out(t, tenant, user)

    @r.get("/metrics", tags=["meta"], response_model=str,
           responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    def metrics(p: Admin) -> PlainTextResponse:
        """Prometheus text format (admin token)."""
        if state.metrics is None:
            raise HTTPException(404, "metrics are off")
        data, ctype = state.metrics.render()
        return PlainTextResponse(data, media_type=ctype)

    @r.get("/tenant", tags=["meta"], response_model=dict[str, str])
    def whoami(p: Reader, s: Db) -> dict[str, str]:
        t = s.get(Tenant, p.tenant_id)
        return {"tenant": p.tenant, "user": p.user, "scopes": ",".join(sorted(p.scopes)),
                "root": str(bool(t and t.root)).lower()}

    return r
