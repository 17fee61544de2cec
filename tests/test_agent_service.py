"""The control plane's side of the node agent, end to end with real processes: `suanli serve`
(SQLite) on 127.0.0.1 and `suanli agent --executor local --simulate CHIP:COUNT` processes.
A job runs through an agent; an agent killed with SIGKILL mid-job makes the server mark its
node lost and requeue the job, which runs again once another agent registers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service_support import free_port, wait_state

HB = "0.3"  # heartbeat period told to the agents (s)
LOST_AFTER = "4"  # missed heartbeats -> lost (1.2 s)


class Proc:
    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        self._out = open(log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "suanli.cli", *args], env=env,
                                     stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def kill9(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()


class Plane:
    def __init__(self, tmp: Path, lost_after: str = LOST_AFTER) -> None:
        self.tmp = tmp
        self.home = tmp / "home"
        self.home.mkdir()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SUANLI_")}
        server_env = {**self.env, "SUANLI_HOME": str(self.home), "SUANLI_INTERVAL_S": "0.1",
                      "SUANLI_GRACE_S": "1", "SUANLI_AGENT_HEARTBEAT_S": HB,
                      "SUANLI_AGENT_LOST_AFTER": lost_after}
        self.server = Proc(["serve", "--port", str(port), "--db",
                            f"sqlite:///{self.home / 'suanli.db'}", "--migrate",
                            "--log-level", "info"], tmp / "server.log", server_env)
        self.agents: list[Proc] = []
        end = time.monotonic() + 30
        while True:
            assert self.server.proc.poll() is None, (tmp / "server.log").read_text()[-2000:]
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < end, "server did not start"
            time.sleep(0.1)
        token = (self.home / "admin.token").read_text().strip()
        self.admin = httpx.Client(base_url=self.url + "/api/v1", timeout=30,
                                  headers={"Authorization": f"Bearer {token}"})
        r = self.admin.post("/tokens", json={"user": "agents", "scopes": ["node"]})
        assert r.status_code == 201, r.text
        self.node_token = r.json()["token"]

    def agent(self, host: str, simulate: str = "H800:4") -> Proc:
        env = {**self.env, "SUANLI_HOME": str(self.tmp / f"agent-{host}")}
        p = Proc(["agent", "--server", self.url, "--token", self.node_token, "--executor",
                  "local", "--simulate", simulate, "--hostname", host, "--site", "lab"],
                 self.tmp / f"agent-{host}.log", env)
        self.agents.append(p)
        return p

    def node(self, name: str, state: str, timeout: float = 30) -> dict[str, Any]:
        end = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while time.monotonic() < end:
            seen = self.admin.get("/nodes").json()["items"]
            for n in seen:
                if n["name"] == name and n["state"] == state:
                    return dict(n)
            time.sleep(0.1)
        raise AssertionError(f"node {name} not {state}: {seen}; agent logs: " + " | ".join(
            a.log.read_text()[-500:] for a in self.agents))

    def close(self) -> None:
        for a in self.agents:
            a.stop()
        self.server.stop()


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    p = Plane(tmp_path)
    try:
        yield p
    finally:
        p.close()


def test_job_runs_via_agent_then_agent_killed_job_requeued_and_rerun(plane: Plane,
                                                                     tmp_path: Path) -> None:
    t0 = time.monotonic()
    # 1. a short job submitted before any node exists waits, then runs through the agent;
    # its log tail reaches the server
    r = plane.admin.post("/jobs", json={
        "name": "hello", "resources": {"devices": 2},
        "command": ["sh", "-c", "echo hello from $SUANLI_CHIP on devices $SUANLI_DEVICES"]})
    assert r.status_code == 201, r.text
    time.sleep(0.5)
    assert plane.admin.get(f"/jobs/{r.json()['id']}").json()["state"] == "pending"
    plane.agent("node-a")
    node = plane.node("lab/node-a", "ready")
    assert node["chip"] == "nvidia_h800_sxm" and node["devices"] == 4
    assert node["site"] == "lab" and node["simulated"] is True
    assert node["agent"] is True and node["driver_version"] == "simulated"
    assert node["last_seen"] is not None
    j = wait_state(plane.admin, r.json()["id"], {"succeeded", "failed"}, timeout=30)
    assert j["state"] == "succeeded", j
    assert j["allocation"]["nodes"] == ["lab/node-a"]
    log = plane.admin.get(f"/jobs/{j['id']}/logs").json()
    assert "hello from nvidia_h800_sxm on devices 0,1" in log["data"], log
    assert (tmp_path / "agent-node-a" / "agent" / "runs" / j["allocation"]["launch_id"]
            / "stdout.log").is_file()  # it really ran on the agent's side

    # 2. a longer job; the agent dies (SIGKILL) while it runs
    marker = tmp_path / "attempts.txt"
    r = plane.admin.post("/jobs", json={
        "name": "long", "resources": {"devices": 4},
        "command": ["sh", "-c", f"echo $SUANLI_LAUNCH_ID >> {marker}; sleep 3; echo done"]})
    jid = r.json()["id"]
    j = wait_state(plane.admin, jid, {"running"}, timeout=30)
    end = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < end:
        time.sleep(0.05)
    assert marker.read_text().split() == [f"job{jid}-a1"]
    plane.agents[0].kill9()
    t_kill = time.monotonic()
    plane.node("lab/node-a", "lost", timeout=15)
    j = wait_state(plane.admin, jid, {"pending"}, timeout=15)
    lost_after_s = time.monotonic() - t_kill
    assert "lost" in j["reason"], j
    events = plane.admin.get(f"/jobs/{jid}/events").json()
    assert [e["state"] for e in events][-2:] == ["running", "pending"], events

    # 3. another agent registers: the job runs again there and finishes once
    plane.agent("node-b")
    j = wait_state(plane.admin, jid, {"succeeded", "failed"}, timeout=40)
    assert j["state"] == "succeeded", j
    assert j["attempts"] == 2 and j["allocation"]["nodes"] == ["lab/node-b"], j
    assert marker.read_text().split() == [f"job{jid}-a1", f"job{jid}-a2"]
    nodes = {n["name"]: n["state"] for n in plane.admin.get("/nodes").json()["items"]}
    assert nodes == {"lab/node-a": "lost", "lab/node-b": "ready"}
    print(f"lost detected and requeued {lost_after_s:.1f} s after kill -9; "
          f"whole test {time.monotonic() - t0:.1f} s")


def test_node_scope_is_required_and_separate(plane: Plane) -> None:
    admin_tok = (plane.home / "admin.token").read_text().strip()
    body = {"hostname": "x", "devices": [], "executor": "local", "features": {},
            "agent_version": "0"}
    r = httpx.post(plane.url + "/api/v1/agent/register", json=body,
                   headers={"Authorization": f"Bearer {admin_tok}"})
    assert r.status_code == 403 and "node" in r.json()["detail"]
    node_h = {"Authorization": f"Bearer {plane.node_token}"}
    r = httpx.post(plane.url + "/api/v1/agent/register", json=body, headers=node_h)
    assert r.status_code == 422 and r.json()["field"] == "devices", r.text
    # a node token cannot read or submit jobs
    r = httpx.get(plane.url + "/api/v1/jobs", headers=node_h)
    assert r.status_code == 403
    r = httpx.post(plane.url + "/api/v1/agent/99/heartbeat", json={}, headers=node_h)
    assert r.status_code == 404


def test_restarted_agent_reports_leftover_launch_and_server_cancels_it(plane: Plane,
                                                                       tmp_path: Path) -> None:
    """kill -9 leaves the job's process running; the node is lost and the job requeued. An
    agent restarted on the same host (same work directory) reports that leftover launch and
    the server cancels it, while the job's new attempt runs there."""
    plane.agent("node-a")
    plane.node("lab/node-a", "ready")
    marker = tmp_path / "attempts.txt"
    r = plane.admin.post("/jobs", json={"name": "sticky", "resources": {"devices": 4},
                                        "command": ["sh", "-c",
                                                    f"echo $SUANLI_LAUNCH_ID >> {marker}; "
                                                    "case $SUANLI_LAUNCH_ID in *-a1) sleep 60;; "
                                                    "*) sleep 1;; esac"]})
    jid = r.json()["id"]
    wait_state(plane.admin, jid, {"running"}, timeout=30)
    plane.agents[0].kill9()
    plane.node("lab/node-a", "lost", timeout=15)
    wait_state(plane.admin, jid, {"pending"}, timeout=15)
    a1 = tmp_path / "agent-node-a" / "agent" / "launches" / f"job{jid}-a1"
    assert not (a1 / "exit").exists()  # the orphan still runs
    plane.agent("node-a")  # same host, same work directory
    j = wait_state(plane.admin, jid, {"succeeded", "failed"}, timeout=40)
    assert j["state"] == "succeeded" and j["attempts"] == 2, j
    end = time.monotonic() + 20
    while not (a1 / "exit").exists() and time.monotonic() < end:
        time.sleep(0.1)
    assert (a1 / "cancelled").exists(), sorted(p.name for p in a1.iterdir())
    assert marker.read_text().split() == [f"job{jid}-a1", f"job{jid}-a2"]
    # cancelling a job that runs through an agent stops its process
    r = plane.admin.post("/jobs", json={"name": "to-cancel", "command": ["sleep", "60"]})
    cid = r.json()["id"]
    j = wait_state(plane.admin, cid, {"running"}, timeout=30)
    t_cancel = time.monotonic()
    plane.admin.post(f"/jobs/{cid}/cancel")
    j = wait_state(plane.admin, cid, {"cancelled"}, timeout=20)
    assert time.monotonic() - t_cancel < 15
    launch = tmp_path / "agent-node-a" / "agent" / "launches" / j["allocation"]["launch_id"]
    assert (launch / "cancelled").exists() and (launch / "exit").exists()


def test_agent_restarted_in_time_reattaches_without_a_second_run(tmp_path: Path) -> None:
    """An agent killed and restarted before its node counts as lost re-attaches to the running
    launch: the job finishes with one attempt and ran once."""
    plane = Plane(tmp_path, lost_after="100")  # 30 s
    try:
        plane.agent("node-a")
        plane.node("lab/node-a", "ready")
        marker = tmp_path / "runs.txt"
        r = plane.admin.post("/jobs", json={"name": "steady", "command": [
            "sh", "-c", f"echo $SUANLI_LAUNCH_ID >> {marker}; sleep 4; echo finished"]})
        jid = r.json()["id"]
        wait_state(plane.admin, jid, {"running"}, timeout=30)
        plane.agents[0].kill9()
        plane.agent("node-a")
        j = wait_state(plane.admin, jid, {"succeeded", "failed"}, timeout=40)
        assert j["state"] == "succeeded" and j["attempts"] == 1, j
        assert marker.read_text().split() == [f"job{jid}-a1"]
        assert plane.node("lab/node-a", "ready")
        assert "finished" in plane.admin.get(f"/jobs/{jid}/logs").json()["data"]
    finally:
        plane.close()
