"""The node agent against a fake control plane served over real HTTP on 127.0.0.1, with a
small subprocess executor (the real local executor belongs to the control-plane work)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from suanli.agent import Agent, HttpControlPlane
from suanli.agent.client import Unreachable
from suanli.errors import SuanliError
from suanli.exec.base import ExecState, ExecStatus, ExecutorFeatures, LaunchSpec
from suanli.probes.base import Device

TOKEN = "node-secret"


class ProcExecutor:
    """Minimal Executor: one subprocess per launch, logs to files."""

    name = "test-proc"
    features = ExecutorFeatures()

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.specs: dict[str, LaunchSpec] = {}
        self.cancelled: set[str] = set()

    def launch(self, spec: LaunchSpec) -> ExecStatus:
        if spec.launch_id not in self.procs:
            spec.log_dir.mkdir(parents=True, exist_ok=True)
            out = (spec.log_dir / f"{spec.launch_id}.out").open("wb")
            self.procs[spec.launch_id] = subprocess.Popen(spec.command, stdout=out,
                                                          stderr=subprocess.STDOUT)
            self.specs[spec.launch_id] = spec
        return self.poll(spec.launch_id)

    def poll(self, launch_id: str) -> ExecStatus:
        p = self.procs.get(launch_id)
        if p is None:
            return ExecStatus(launch_id=launch_id, state=ExecState.LOST)
        rc = p.poll()
        if rc is None:
            return ExecStatus(launch_id=launch_id, state=ExecState.RUNNING)
        if launch_id in self.cancelled:
            return ExecStatus(launch_id=launch_id, state=ExecState.CANCELLED, exit_code=rc)
        state = ExecState.SUCCEEDED if rc == 0 else ExecState.FAILED
        return ExecStatus(launch_id=launch_id, state=state, exit_code=rc)

    def cancel(self, launch_id: str, grace_s: float = 10.0) -> ExecStatus:
        self.cancelled.add(launch_id)
        self.procs[launch_id].send_signal(signal.SIGTERM)
        self.procs[launch_id].wait(timeout=grace_s)
        return self.poll(launch_id)

    def checkpoint(self, launch_id: str) -> bool:
        return False

    def log_paths(self, launch_id: str) -> dict[str, Path]:
        spec = self.specs.get(launch_id)
        return {"stdout": spec.log_dir / f"{launch_id}.out"} if spec else {}

    def check(self) -> tuple[bool, str]:
        return True, "ok"


class FakePlane:
    """State of the fake control plane: queued launches and cancels, what nodes reported."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.registered: list[dict[str, Any]] = []
        self.beats: list[dict[str, Any]] = []
        self.to_launch: list[dict[str, Any]] = []
        self.to_cancel: list[str] = []
        self.final: dict[str, dict[str, Any]] = {}
        self.tails: dict[str, str] = {}
        self.auth_failures = 0
        self.seen: set[str] = set()
        self.history: dict[str, list[tuple[str, str | None]]] = {}


def serve(plane: FakePlane, port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def do_POST(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                plane.auth_failures += 1
                self.send_response(401)
                self.end_headers()
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with plane.lock:
                if self.path == "/api/v1/agent/register":
                    plane.registered.append(body)
                    # a (re)registered node gets every unfinished launch again
                    plane.seen = {lid for lid in plane.seen if lid in plane.final}
                    answer: dict[str, Any] = {"node_id": "n1", "heartbeat_s": 0.05}
                elif self.path == "/api/v1/agent/n1/heartbeat":
                    plane.beats.append(body)
                    for st in body["statuses"]:
                        plane.history.setdefault(st["launch_id"], []).append(
                            (st["state"], st.get("backend_id")))
                    for st in body["statuses"]:
                        if st["state"] in ("succeeded", "failed", "cancelled", "lost"):
                            plane.final[st["launch_id"]] = st
                    plane.tails.update(body["log_tails"])
                    plane.seen |= {s["launch_id"] for s in body["statuses"]}
                    # repeat a launch until the agent reports it (idempotence is tested)
                    answer = {"launch": [s for s in plane.to_launch
                                         if s["launch_id"] not in plane.seen],
                              "cancel": list(plane.to_cancel)}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def plane() -> Any:
    p = FakePlane()
    server = serve(p)
    p.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield p
    server.shutdown()
    server.server_close()


def spec(tmp: Path, lid: str, code: str) -> dict[str, Any]:
    return LaunchSpec(launch_id=lid, job_id=f"job-{lid}", command=[sys.executable, "-c", code],
                      log_dir=tmp).model_dump(mode="json")


def run_until(agent: Agent, cond: Any, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not cond() and time.monotonic() < deadline:
        agent.step()
        time.sleep(0.05)
    assert cond()


def test_agent_registers_runs_reports_and_cancels(plane: Any, tmp_path: Path) -> None:
    dev = Device(vendor="NVIDIA", index=0, name="NVIDIA H800", chip_id="nvidia_h800_sxm")
    ex = ProcExecutor()
    agent = Agent(HttpControlPlane(plane.url, TOKEN), ex, [dev], hostname="node-a")
    plane.to_launch = [spec(tmp_path, "ok", "print('hello from job')"),
                       spec(tmp_path, "bad", "import sys; print('dying'); sys.exit(7)"),
                       spec(tmp_path, "long", "import time; time.sleep(60)")]
    run_until(agent, lambda: {"ok", "bad"} <= set(plane.final))
    reg = plane.registered[0]
    assert reg["hostname"] == "node-a" and reg["devices"][0]["chip_id"] == "nvidia_h800_sxm"
    assert reg["executor"] == "test-proc" and "features" in reg
    assert plane.final["ok"]["state"] == "succeeded" and plane.final["ok"]["exit_code"] == 0
    assert plane.final["bad"]["state"] == "failed" and plane.final["bad"]["exit_code"] == 7
    assert "hello from job" in plane.tails["ok"] and "dying" in plane.tails["bad"]
    assert len(ex.procs) == 3  # repeated assignments did not start anything twice
    assert "long" in agent.active
    plane.to_cancel = ["long"]
    run_until(agent, lambda: "long" in plane.final)
    assert plane.final["long"]["state"] == "cancelled"
    assert not agent.active and not agent.unreported
    # a late duplicate assignment of a finished launch is ignored by the agent itself
    from suanli.agent import Assignment

    agent.apply(Assignment(launch=[LaunchSpec.model_validate(plane.to_launch[0])]))
    assert not agent.active and len(ex.procs) == 3


def test_agent_survives_an_unreachable_plane_and_reports_later(tmp_path: Path) -> None:
    p = FakePlane()
    server = serve(p)
    port = server.server_address[1]
    url = f"http://127.0.0.1:{port}"
    ex = ProcExecutor()
    agent = Agent(HttpControlPlane(url, TOKEN, timeout_s=2), ex, [])
    p.to_launch = [spec(tmp_path, "j", "import time; time.sleep(0.5); print('done')")]
    run_until(agent, lambda: "j" in agent.active)
    server.shutdown()
    server.server_close()
    time.sleep(1.0)  # the job finishes while the plane is down
    assert agent.step() is False and agent.errors == 1
    assert "j" in agent.unreported  # kept until the plane acknowledges it
    # the plane comes back on the same port
    p2 = FakePlane()
    server2 = serve(p2, port)
    try:
        run_until(agent, lambda: "j" in p2.final)
        assert p2.final["j"]["state"] == "succeeded" and "done" in p2.tails["j"]
        assert not agent.unreported and agent.errors == 0
    finally:
        server2.shutdown()
        server2.server_close()


def test_bad_token_is_a_user_error(plane: Any) -> None:
    agent = Agent(HttpControlPlane(plane.url, "wrong"), ProcExecutor(), [])
    with pytest.raises(SuanliError, match="token"):
        agent.step()
    assert plane.auth_failures == 1


def test_client_rejects_non_http_urls_and_reports_unreachable() -> None:
    with pytest.raises(SuanliError, match="http"):
        HttpControlPlane("ftp://x", TOKEN)
    from suanli.agent.client import NodeRegistration

    reg = NodeRegistration(hostname="h", executor="x", features=ExecutorFeatures(),
                           agent_version="0")
    with pytest.raises(Unreachable):
        HttpControlPlane("http://127.0.0.1:9", TOKEN, timeout_s=2).register(reg)


def test_killed_agent_restarts_and_reattaches_to_its_slurm_job(plane: Any,
                                                               tmp_path: Path) -> None:
    """`suanli agent --executor slurm` as a real process: kill it mid-job; a new agent
    re-attaches to the same Slurm job (found by its name) instead of starting it twice."""
    import os

    from needs import need

    need(os.environ.get("SUANLI_TEST_SLURM") == "1",
         "a running Slurm (.ci/setup.d/20-slurm.sh sets SUANLI_TEST_SLURM=1)")
    lid = f"agent-{time.time_ns()}"
    plane.to_launch = [spec(tmp_path, lid, "import time; time.sleep(6); print('finished once')")]
    cmd = [sys.executable, "-m", "suanli.cli", "agent", "--server", plane.url,
           "--token", TOKEN, "--executor", "slurm"]

    def running() -> bool:
        return any(s == "running" for s, _ in plane.history.get(lid, []))

    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not running() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert running(), first.stderr.read().decode() if first.poll() is not None else ""
    finally:
        first.kill()
        first.wait()
    job_ids = {b for s, b in plane.history[lid]}
    second = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while lid not in plane.final and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        second.kill()
        second.wait()
    assert plane.final[lid]["state"] == "succeeded", plane.history[lid]
    assert len(plane.registered) == 2
    assert {b for s, b in plane.history[lid]} == job_ids and len(job_ids) == 1
    assert plane.tails[lid].count("finished once") == 1
