"""The agent loop: register, then heartbeat; start and cancel what the server says; report."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

from suanli import __version__
from suanli.agent.client import (
    Assignment,
    ControlPlane,
    Heartbeat,
    HttpControlPlane,
    NodeRegistration,
    Unreachable,
)
from suanli.catalog import Catalog
from suanli.exec.base import ExecState, ExecStatus, Executor, LaunchSpec, get_executor
from suanli.probes import probe_all
from suanli.probes.base import Device

TAIL_BYTES = 4096


def tail(path: Path, limit: int = TAIL_BYTES) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


class Agent:
    """One node's agent. ``step()`` is one heartbeat round; ``run()`` loops over it."""

    def __init__(
        self,
        plane: ControlPlane,
        executor: Executor,
        devices: list[Device],
        hostname: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        site: str | None = None,
        work_dir: Path | None = None,
    ) -> None:
        self.plane = plane
        self.executor = executor
        self.devices = devices
        self.hostname = hostname or socket.gethostname()
        self.sleep = sleep
        self.node_id: str | None = None
        self.heartbeat_s = 5.0
        self.active: dict[str, LaunchSpec] = {}  # launches this agent holds
        self.unreported: dict[str, ExecStatus] = {}  # terminal, not yet acknowledged
        self.tails: dict[str, str] = {}  # log tails of unreported launches
        self.finished: dict[str, None] = {}  # recently acknowledged launches (insertion order)
        self.errors = 0
        self.site = site
        self.work_dir = work_dir  # relative log dirs of assigned launches go under it

    def register(self) -> str:
        reg = self.plane.register(NodeRegistration(
            hostname=self.hostname, devices=self.devices, executor=self.executor.name,
            features=self.executor.features, agent_version=__version__, site=self.site,
        ))
        self.node_id, self.heartbeat_s = reg.node_id, reg.heartbeat_s
        self.adopt()
        return reg.node_id

    def adopt(self) -> int:
        """Hold the unfinished launches an earlier agent left in the executor's records (an
        agent killed and restarted with the same work directory): the next heartbeat reports
        them, and the server either keeps them (re-attached) or cancels them (its job went
        elsewhere meanwhile). Returns how many were adopted."""
        known = getattr(self.executor, "known", None)
        if known is None:
            return 0
        n = 0
        for lid in known():
            if lid in self.active or lid in self.unreported or lid in self.finished:
                continue
            if self.executor.poll(lid).state.terminal:
                continue
            spec_of = getattr(self.executor, "spec_of", None)
            spec = spec_of(lid) if spec_of is not None else None
            if spec is None:
                continue
            self.active[lid] = spec
            n += 1
        return n

    def observe(self) -> Heartbeat:
        statuses: list[ExecStatus] = []
        for lid in list(self.active):
            st = self.executor.poll(lid)
            statuses.append(st)
            if st.state.terminal:
                self.unreported[lid] = st
                del self.active[lid]
                paths = self.executor.log_paths(lid)
                if "stdout" in paths:
                    self.tails[lid] = tail(paths["stdout"])
        statuses += [s for lid, s in self.unreported.items()
                     if all(x.launch_id != lid for x in statuses)]
        return Heartbeat(statuses=statuses, log_tails=dict(self.tails))

    def apply(self, todo: Assignment) -> None:
        for lid in todo.cancel:
            if lid in self.active:
                st = self.executor.cancel(lid)
                if st.state.terminal:
                    self.unreported[lid] = st
                    self.active.pop(lid, None)
        for spec in todo.launch:
            lid = spec.launch_id
            if lid in self.active or lid in self.unreported or lid in self.finished:
                continue  # the server repeats assignments until it sees them: no-op
            if self.work_dir is not None and not spec.log_dir.is_absolute():
                spec = spec.model_copy(update={"log_dir": self.work_dir / spec.log_dir})
            st = self.executor.launch(spec)
            if st.state.terminal:
                self.unreported[spec.launch_id] = st
            else:
                self.active[spec.launch_id] = spec

    def step(self) -> bool:
        """One round; False when the control plane could not be reached (jobs keep running)."""
        try:
            if self.node_id is None:
                self.register()
            beat = self.observe()
            assert self.node_id is not None
            todo = self.plane.heartbeat(self.node_id, beat)
        except Unreachable:
            self.errors += 1
            return False
        # the server has seen these terminal statuses now
        for st in beat.statuses:
            if st.state.terminal:
                self.unreported.pop(st.launch_id, None)
                self.tails.pop(st.launch_id, None)
                self.finished[st.launch_id] = None
        while len(self.finished) > 10000:
            del self.finished[next(iter(self.finished))]
        self.errors = 0
        self.apply(todo)
        return True

    def run(self, rounds: int | None = None) -> None:
        n = 0
        while rounds is None or n < rounds:
            ok = self.step()
            n += 1
            backoff = min(60.0, self.heartbeat_s * (2 ** min(self.errors, 4))) if not ok else 0
            self.sleep(backoff or self.heartbeat_s)


def simulated_devices(catalog: Catalog, spec: str) -> list[Device]:
    """``--simulate CHIP:COUNT`` (e.g. ``H800:8``): devices of a catalogue chip that are not
    there, for tests and demos (``driver_version`` is ``simulated``)."""
    from suanli.errors import SuanliError

    chip_name, sep, count_s = spec.rpartition(":")
    if not sep or not chip_name:
        raise SuanliError(f"--simulate: expected CHIP:COUNT, got {spec!r}", field="--simulate")
    try:
        count = int(count_s)
    except ValueError:
        count = -1
    if not 1 <= count <= 1024:
        raise SuanliError(f"--simulate: COUNT must be 1..1024, got {count_s!r}",
                          field="--simulate")
    chip = catalog.get(chip_name)
    mem = chip.memory_gb / chip.devices_per_part * 1024 if chip.memory_gb else None
    return [Device(vendor=chip.vendor, index=i, name=chip.name, chip_id=chip.id,
                   memory_mib=mem, driver_version="simulated", note="simulated")
            for i in range(count)]


def run_agent(server: str, token: str, catalog: Catalog, executor: str = "local",
              simulate: str | None = None, site: str | None = None,
              hostname: str | None = None, work_dir: Path | None = None) -> None:
    """``suanli agent --server URL --token T``: probe, register, loop until interrupted."""
    from suanli.exec.plugins import load_executors
    from suanli.service.settings import default_home

    load_executors()
    if simulate:
        devices = simulated_devices(catalog, simulate)
    else:
        devices = [d for r in probe_all(catalog) for d in r.devices]
    work_dir = (work_dir or default_home() / "agent").resolve()
    options: dict[str, object] = {}
    if executor == "local":
        options = {"root": work_dir / "launches"}
    agent = Agent(HttpControlPlane(server, token), get_executor(executor, **options), devices,
                  hostname=hostname, site=site, work_dir=work_dir)
    try:
        agent.run()
    except KeyboardInterrupt:
        return


__all__ = ["Agent", "ExecState", "run_agent"]
