"""Database: SQLAlchemy 2 ORM tables and the engine (SQLite WAL or PostgreSQL).

The schema is created and upgraded only by the Alembic migrations in
``suanli/service/migrations`` (``suanli db upgrade``); these classes mirror it.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

log = logging.getLogger("suanli.db")

# BIGINT on PostgreSQL, INTEGER (= rowid alias, autoincrement) on SQLite
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(DateTime):
    """Timezone-aware UTC datetimes on both SQLite (naive storage) and PostgreSQL."""

    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    root: Mapped[bool] = mapped_column(Boolean, default=False)  # may create other tenants
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_users_tenant_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class QueueRow(Base):
    __tablename__ = "queues"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    quota_devices: Mapped[float | None] = mapped_column(Float, nullable=True)


class SiteRow(Base):
    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    region: Mapped[str | None] = mapped_column(String(300), nullable=True)
    pue: Mapped[float] = mapped_column(Float, default=1.3)
    electricity_price_cny_kwh: Mapped[float] = mapped_column(Float, default=0.5)
    carbon_kg_per_kwh: Mapped[float] = mapped_column(Float, default=0.55)
    wan_gbps: Mapped[float] = mapped_column(Float, default=100.0)


class NodeGroupRow(Base):
    __tablename__ = "node_groups"
    __table_args__ = (UniqueConstraint("site_id", "name", name="uq_node_groups_site_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    name: Mapped[str] = mapped_column(String(200))
    chip: Mapped[str] = mapped_column(String(100))  # catalogue id
    vendor: Mapped[str | None] = mapped_column(String(100), nullable=True)
    chips_per_node: Mapped[int] = mapped_column(Integer)


class NodeRow(Base):
    __tablename__ = "nodes"
    # lost-node detection reads only the agent nodes of a state whose heartbeat is older
    # than the deadline (migration 0003); node events read only what changed
    __table_args__ = (Index("ix_nodes_agent_state_seen", "agent", "state", "last_seen"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("node_groups.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    devices: Mapped[int] = mapped_column(Integer)
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(20), default="ready")
    # agent-managed nodes (migration 0002): registered by `suanli agent`, lost when silent
    agent: Mapped[bool] = mapped_column(Boolean, default=False)
    tenant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hostname: Mapped[str | None] = mapped_column(String(200), nullable=True)
    executor: Mapped[str | None] = mapped_column(String(50), nullable=True)
    memory_mib: Mapped[float | None] = mapped_column(Float, nullable=True)
    driver_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    stack_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    device_indices: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # migration 0003: the operator's drain (``suanli nodes drain``; the state is then
    # ``draining`` until nothing runs there, then ``drained``) and when the state last changed
    drain: Mapped[bool] = mapped_column(Boolean, default=False)
    state_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True,
                                                              index=True)


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_idem"),
        Index("ix_jobs_tenant_state_id", "tenant_id", "state", "id"),
        Index("ix_jobs_state_id", "state", "id"),
        Index("ix_jobs_tenant_id", "tenant_id", "id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # no foreign keys on the submission path (migration 0004: their per-row triggers were
    # half of a batch insert on PostgreSQL); the authenticated token's tenant and user
    tenant_id: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    queue: Mapped[str] = mapped_column(String(100))
    priority: Mapped[float] = mapped_column(Float, default=1.0)
    devices: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # launches so far
    failures: Mapped[int] = mapped_column(Integer, default=0)  # failed attempts (retries)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)


class JobEventRow(Base):
    __tablename__ = "job_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(BigId, index=True)  # no foreign key: migration 0004
    time: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")


class AllocationRow(Base):
    __tablename__ = "allocations"
    __table_args__ = (Index("ix_allocations_active", "active", "job_id"),
                      Index("ix_allocations_node_active", "node", "active"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    launch_id: Mapped[str] = mapped_column(String(100), unique=True)
    pool: Mapped[str] = mapped_column(String(300))
    site: Mapped[str] = mapped_column(String(200))
    chip: Mapped[str] = mapped_column(String(100))
    nodes: Mapped[list[str]] = mapped_column(JSON)
    # migration 0005: nodes[0], indexed, so that a node's (agent's) allocations are read alone
    node: Mapped[str | None] = mapped_column(String(200), nullable=True)
    devices: Mapped[list[list[int]]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    launched: Mapped[bool] = mapped_column(Boolean, default=False)  # executor.launch returned
    stop_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)  # cancel|preempt
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # what a node agent last reported for this launch (agent-managed nodes only)
    observed_state: Mapped[str | None] = mapped_column(String(20), nullable=True)
    observed_exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    observed_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


def make_engine(url: str, *, background_checkpoint: bool = False, **kw: Any) -> Engine:
    """Engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys (and, with
    ``background_checkpoint``, no checkpoints in commits: see :class:`WalCheckpointer`)."""
    if url.startswith("sqlite"):
        kw.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kw)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            if background_checkpoint:
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        return engine
    kw.setdefault("pool_pre_ping", True)
    kw.setdefault("pool_size", 10)
    kw.setdefault("max_overflow", 20)
    return create_engine(url, **kw)


class WalCheckpointer:
    """SQLite in WAL mode copies the log back into the database file in a checkpoint, and
    by default the commit that takes the log past 1,000 pages does it, with an fsync: that
    commit took 24-113 ms instead of 1-7 ms in the scheduling-pass benchmark at load 3-5.
    A server's engine (``make_engine(..., background_checkpoint=True)``) turns that off and
    this thread checkpoints every ``every_s`` instead (PASSIVE: it never waits for readers
    or writers; what readers still need is copied by a later one). A failed checkpoint is
    logged and retried; the log only grows while none succeeds. No-op on other databases."""

    def __init__(self, engine: Engine, every_s: float = 1.0) -> None:
        self.engine = engine
        self.every_s = every_s
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (busy, pages in the log, pages copied)."""
        with self.engine.connect() as c:
            busy, log_pages, done = c.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        self.checkpoints += 1
        return int(busy), int(log_pages), int(done)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.checkpoint()
            except Exception as exc:  # a locked or gone file: say so, try again
                log.warning("SQLite checkpoint failed: %s", exc)

    def start(self) -> None:
        if self.engine.dialect.name != "sqlite" or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="suanli-wal-checkpoint",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(10)
        self._thread = None
        try:
            self.checkpoint()  # leave a short log behind
        except Exception as exc:
            log.warning("SQLite checkpoint failed: %s", exc)


def session_factory(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine, expire_on_commit=False)


def as_utc(dt: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; they were stored as UTC."""
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def ts(dt: datetime) -> float:
    """POSIX seconds of a stored (UTC) datetime."""
    return (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).timestamp()
