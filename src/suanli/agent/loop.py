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

    def register(self) -> str:
        reg = self.plane.register(NodeRegistration(
            hostname=self.hostname, devices=self.devices, executor=self.executor.name,
            features=self.executor.features, agent_version=__version__,
        ))
        self.node_id, self.heartbeat_s = reg.node_id, reg.heartbeat_s
        return reg.node_id

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


def run_agent(server: str, token: str, catalog: Catalog, executor: str = "local") -> None:
    """``suanli agent --server URL --token T``: probe, register, loop until interrupted."""
    from suanli.exec.plugins import load_executors

    load_executors()
    devices = [d for r in probe_all(catalog) for d in r.devices]
    agent = Agent(HttpControlPlane(server, token), get_executor(executor), devices)
    try:
        agent.run()
    except KeyboardInterrupt:
        return


__all__ = ["Agent", "ExecState", "run_agent"]
