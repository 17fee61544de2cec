"""Assemble and run the control plane: database, bootstrap, fleet import, executor, scheduler
loop, HTTP server."""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from suanli.errors import SuanliError
from suanli.service.control import DRAIN_STATES, state_after_contact
from suanli.service.db import (
    NodeGroupRow,
    NodeRow,
    SiteRow,
    WalCheckpointer,
    make_engine,
    session_factory,
    utcnow,
)
from suanli.service.settings import ServiceSettings

log = logging.getLogger("suanli.server")


def import_fleet(sessions: sessionmaker[Session], path: str | Path, simulated: bool) -> int:
    """Upsert the sites, node groups and nodes of a fleet YAML; returns the node count.

    Node names: ``<site>/<group>/<index>``. Groups without a name are named ``<chip>-<n>``."""
    from suanli.catalog.loader import load_catalog
    from suanli.fleet import load_fleet

    catalog = load_catalog()
    fleet = load_fleet(path, catalog)
    count = 0
    with sessions() as s:
        for rg in fleet.groups():
            site = s.scalar(select(SiteRow).where(SiteRow.name == rg.site.name))
            if site is None:
                site = SiteRow(name=rg.site.name)
                s.add(site)
            site.region = rg.site.region
            site.pue = rg.site.pue
            site.electricity_price_cny_kwh = rg.site.electricity_price_cny_kwh
            site.carbon_kg_per_kwh = rg.site.carbon_kg_per_kwh
            site.wan_gbps = rg.site.wan_gbps
            s.flush()
            gname = rg.group.name or f"{rg.chip.id}-{rg.group_index + 1}"
            group = s.scalar(select(NodeGroupRow).where(NodeGroupRow.site_id == site.id,
                                                        NodeGroupRow.name == gname))
            if group is None:
                group = NodeGroupRow(site_id=site.id, name=gname, chip=rg.chip.id,
                                     chips_per_node=rg.group.chips_per_node)
                s.add(group)
            group.chip = rg.chip.id
            group.vendor = rg.chip.vendor
            group.chips_per_node = rg.group.chips_per_node
            s.flush()
            devices = rg.group.chips_per_node * (rg.chip.devices_per_part or 1)
            for i in range(rg.group.nodes):
                name = f"{site.name}/{gname}/{i:03d}"
                node = s.scalar(select(NodeRow).where(NodeRow.name == name))
                if node is None:
                    node = NodeRow(name=name, group_id=group.id, devices=devices)
                    s.add(node)
                node.devices = devices
                node.simulated = simulated
                # a drain outlives restarts: only the operator's undrain ends it
                if node.state not in DRAIN_STATES:
                    node.state = state_after_contact(bool(node.drain))
                    node.state_changed_at = utcnow()
                count += 1
        s.commit()
    return count


def _with_agents(state: Any, app: Any, settings: ServiceSettings, sessions: Any, loop: Any,
                 write_lock: Any) -> None:
    """Node agents: their endpoints, their launches routed to them, lost-node detection."""
    from suanli.service.agents import AgentMonitor, AgentRouting, agent_router

    hb = settings.agent_heartbeat_s
    routed = AgentRouting(state.executor, sessions, settings.home, hb)
    state.executor = routed
    if loop is not None:
        loop.executor = routed
        loop.hooks.append(AgentMonitor(sessions, hb, settings.agent_lost_after, write_lock,
                                       busy=loop.node_busy))
    app.include_router(agent_router(state, settings.home, hb))


def tune_gc(gen0: int = 50_000) -> None:
    """For a server process, once everything is loaded: move the objects that live as long as
    the process (modules, ORM mappings, the app, ~165,000 of them) out of the cyclic
    collector's reach with ``gc.freeze()``, and run the youngest generation every ``gen0``
    allocations instead of 700.

    Measured (docs/service.md, Performance): a 5,000-job batch allocates a few hundred
    thousand objects; with the defaults the collector ran dozens of times per batch and
    every older-generation pass walked the whole heap, which took more CPU than parsing and
    validating the jobs. Reference counting still frees everything acyclic at once; cyclic
    garbage is collected, only less often."""
    import gc

    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0, gen1, gen2)


@dataclass
class Service:
    settings: ServiceSettings
    engine: Engine
    sessions: sessionmaker[Session]
    executor: Any
    app: Any
    loop: Any | None
    new_admin_token: str | None
    checkpointer: WalCheckpointer | None = None


def build(settings: ServiceSettings, *, simulated: bool = False, migrate: bool = False
          ) -> Service:
    """Everything but the HTTP listener; refuses an old schema unless ``migrate``."""
    from suanli.exec.base import get_executor
    from suanli.service import migrate as mig
    from suanli.service.app import ServiceState, create_app
    from suanli.service.auth import bootstrap
    from suanli.service.loop import SchedulerLoop
    from suanli.service.metrics import ServiceMetrics

    if settings.executor == "local":
        import suanli.exec.local  # noqa: F401  (registers the executor)

    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url(), background_checkpoint=True)
    if migrate:
        mig.upgrade(engine)
    revision = mig.check_schema(engine)
    sessions = session_factory(engine)
    with sessions() as s:
        token = bootstrap(s)
    if token is not None:
        tok_file = settings.home / "admin.token"
        fd = os.open(tok_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(token + "\n")
    if settings.fleet is not None:
        n = import_fleet(sessions, settings.fleet, simulated)
        log.info("imported %d nodes from %s", n, settings.fleet)
    options: dict[str, Any] = {}
    if settings.executor == "local":
        options = {"root": settings.runs_dir, "grace_s": settings.grace_s}
    executor = get_executor(settings.executor, **options)
    metrics = ServiceMetrics(sessions)
    write_lock: Any = threading.RLock() if engine.dialect.name == "sqlite" else None
    loop = None
    if settings.scheduler:
        loop = SchedulerLoop(sessions, engine, executor, settings.home, policy=settings.policy,
                             round_s=settings.round_s, interval_s=settings.interval_s,
                             round_slice_us=settings.round_slice_us,
                             grace_s=settings.grace_s, metrics=metrics, write_lock=write_lock)
    state = ServiceState(sessions=sessions, executor=executor, executor_name=settings.executor,
                         database=engine.dialect.name, schema_revision=revision,
                         max_batch=settings.max_batch, loop=loop, metrics=metrics)
    if write_lock is not None:
        state.write_lock = write_lock
    app = create_app(state, max_body_bytes=settings.max_body_bytes)
    _with_agents(state, app, settings, sessions, loop, write_lock)
    return Service(settings, engine, sessions, executor, app, loop, token,
                   WalCheckpointer(engine))


class Running:
    """A started service: uvicorn in a thread plus the scheduler loop."""

    def __init__(self, svc: Service, log_level: str = "warning") -> None:
        import uvicorn

        self.svc = svc
        cfg = uvicorn.Config(svc.app, host=svc.settings.host, port=svc.settings.port,
                             log_level=log_level, access_log=False, lifespan="off")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, name="suanli-http", daemon=True)

    def start(self, timeout: float = 20.0) -> str:
        import time

        if self.svc.checkpointer is not None:
            self.svc.checkpointer.start()
        if self.svc.loop is not None:
            self.svc.loop.start()
        self.thread.start()
        end = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > end:
                raise SuanliError(f"the HTTP server did not start on {self.svc.settings.host}:"
                                  f"{self.svc.settings.port} (port in use?)", field="--port")
            time.sleep(0.02)
        port = self.svc.settings.port
        for srv in getattr(self.server, "servers", []):
            for sock in srv.sockets:
                port = sock.getsockname()[1]
        self.url = f"http://{self.svc.settings.host}:{port}"
        info = self.svc.settings.home / "server.json"
        info.write_text(json.dumps({"url": self.url, "pid": str(os.getpid())}),
                        encoding="utf-8")
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        if self.svc.loop is not None:
            self.svc.loop.stop()
        submitq = getattr(self.svc.app.state.svc, "submitq", None)
        if submitq is not None:
            submitq.close()
        info = self.svc.settings.home / "server.json"
        try:
            if json.loads(info.read_text(encoding="utf-8")).get("pid") == str(os.getpid()):
                info.unlink()
        except (OSError, ValueError):
            pass
        if self.svc.checkpointer is not None:
            self.svc.checkpointer.stop()
        self.svc.engine.dispose()
