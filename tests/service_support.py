"""Shared helpers for the control-plane tests: databases (SQLite and a real PostgreSQL), a
small simulated fleet, an in-process service and a subprocess server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from needs import need

PG_ENV = "SUANLI_TEST_POSTGRES_URL"
DB_KINDS = ("sqlite", "postgres")

FLEET = """\
name: test fleet
sites:
  - name: site-a
    region: test region
    node_groups:
      - name: h800
        chip: nvidia_h800_sxm
        chips_per_node: 4
        nodes: 2
      - name: ascend
        chip: ascend_910b
        chips_per_node: 8
        nodes: 1
  - name: site-b
    node_groups:
      - name: k100
        chip: hygon_k100_ai
        chips_per_node: 2
        nodes: 1
"""


def write_fleet(d: Path) -> Path:
    p = d / "fleet.yaml"
    p.write_text(FLEET, encoding="utf-8")
    return p


def pg_url() -> str | None:
    return os.environ.get(PG_ENV) or None


@contextmanager
def database(kind: str, tmp: Path) -> Iterator[str]:
    """A fresh, empty database of ``kind``; PostgreSQL gets its own database per use."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'suanli.db'}"
        return
    base = pg_url()
    need(base is not None, f"a PostgreSQL server (${PG_ENV}, started by "
         ".ci/setup.d/10-postgres.sh)")
    assert base is not None
    from sqlalchemy import create_engine, text

    name = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as c:
            c.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"))
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


class Live:
    """An in-process service (HTTP on a free port + scheduler loop) for tests."""

    def __init__(self, url_db: str, home: Path, fleet: Path, **settings: Any) -> None:
        from suanli.service.server import Running, build
        from suanli.service.settings import ServiceSettings

        settings = {"interval_s": 0.1, "grace_s": 2.0, **settings}
        st = ServiceSettings(home=home, database_url=url_db, port=0, fleet=fleet, **settings)
        self.svc = build(st, simulated=True, migrate=True)
        self.run = Running(self.svc)
        self.url = self.run.start()
        self.token = self.svc.new_admin_token or (home / "admin.token").read_text().strip()
        self.admin = self.client(self.token)

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=30)

    def token_for(self, user: str, scopes: list[str], tenant: str | None = None) -> str:
        body: dict[str, Any] = {"user": user, "scopes": scopes}
        if tenant:
            body["tenant"] = tenant
        r = self.admin.post("/tokens", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def stop(self) -> None:
        self.run.stop()


@contextmanager
def live_service(kind: str, tmp: Path, **settings: Any) -> Iterator[Live]:
    with database(kind, tmp) as url:
        live = Live(url, tmp / "home", write_fleet(tmp), **settings)
        try:
            yield live
        finally:
            live.stop()


def wait_state(c: httpx.Client, job_id: int, states: set[str], timeout: float = 30.0
               ) -> dict[str, Any]:
    end = time.monotonic() + timeout
    j: dict[str, Any] = {}
    while time.monotonic() < end:
        j = c.get(f"/jobs/{job_id}").json()
        if j["state"] in states:
            return j
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {j.get('state')} after {timeout}s: {j}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``suanli serve`` as a real subprocess (for kill -9 and failover tests)."""

    def __init__(self, db_url: str, home: Path, fleet: Path, port: int | None = None,
                 log: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log or home / f"server-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUANLI_")}
        env.update(SUANLI_HOME=str(home), SUANLI_INTERVAL_S="0.1", SUANLI_GRACE_S="1")
        home.mkdir(parents=True, exist_ok=True)
        self._out = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "suanli.cli", "serve", "--port", str(self.port), "--db",
             db_url, "--fleet", str(fleet), "--simulated", "--migrate",
             "--log-level", "info"],
            env=env, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready: {self.log.read_text()[-2000:]}")

    def health(self) -> dict[str, Any] | None:
        try:
            return dict(httpx.get(self.url + "/api/v1/health", timeout=2).json())
        except (httpx.HTTPError, ValueError):
            return None

    def kill9(self) -> None:
        # only the server: its jobs run in their own sessions and survive, as in production
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._out.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self._out.closed:
            self._out.close()


def agent_group(s: Any) -> int:
    """Add the site ``agents`` and its node group ``agent-h800`` (4 x H800 per node), as an
    agent's registration would; returns the group id (flushed, not committed)."""
    from suanli.service.db import NodeGroupRow, SiteRow

    site = SiteRow(name="agents")
    s.add(site)
    s.flush()
    g = NodeGroupRow(site_id=site.id, name="agent-h800", chip="nvidia_h800_sxm",
                     vendor="NVIDIA", chips_per_node=4)
    s.add(g)
    s.flush()
    return int(g.id)
