"""Draining nodes (issue 8 §2, issue 9): ``POST /nodes/{name}/drain`` and ``/undrain``. Jobs
running on a drained node finish; no new job is placed there; undrain makes it usable again;
a drain survives a server restart (also with a job still running there). SQLite and
PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service_support import DB_KINDS, Live, database, live_service, wait_state, write_fleet

H800 = ["nvidia_h800_sxm"]  # the test fleet: two H800 nodes of 4 devices in site-a


@pytest.fixture(params=DB_KINDS)
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    with live_service(request.param, tmp_path) as lv:
        yield lv


def _until_file(path: Path, name: str, devices: int = 4) -> dict[str, Any]:
    """A job that runs until ``path`` exists, on ``devices`` H800s."""
    return {"name": name, "command": ["sh", "-c", f"while [ ! -e {path} ]; do sleep 0.05; "
                                      "done; echo finished"],
            "resources": {"devices": devices, "chips": H800}}


def _node(c: httpx.Client, name: str) -> dict[str, Any]:
    items = c.get("/nodes").json()["items"]
    return next(n for n in items if n["name"] == name)


def _wait_node(c: httpx.Client, name: str, state: str, timeout: float = 20) -> dict[str, Any]:
    end = time.monotonic() + timeout
    n: dict[str, Any] = {}
    while time.monotonic() < end:
        n = _node(c, name)
        if n["state"] == state:
            return n
        time.sleep(0.1)
    raise AssertionError(f"node {name} still {n.get('state')} after {timeout}s")


def _stays_pending(c: httpx.Client, jid: int, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        j = c.get(f"/jobs/{jid}").json()
        assert j["state"] == "pending" and j["allocation"] is None, j
        time.sleep(0.1)


def test_drain_lets_running_jobs_finish_places_nothing_new_and_undrain(
        live: Live, tmp_path: Path) -> None:
    c = live.admin
    a = c.post("/jobs", json=_until_file(tmp_path / "a.done", "a")).json()["id"]
    ja = wait_state(c, a, {"running"})
    node = ja["allocation"]["nodes"][0]
    other = ({"site-a/h800/000", "site-a/h800/001"} - {node}).pop()
    # the other H800 node is filled, so a new H800 job could only go to the drained one
    b = c.post("/jobs", json=_until_file(tmp_path / "b.done", "b")).json()["id"]
    assert wait_state(c, b, {"running"})["allocation"]["nodes"] == [other]

    r = c.post(f"/nodes/{node}/drain")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "draining" and r.json()["drain"] is True
    assert r.json()["devices_busy"] == 4
    # by id as well (idempotent)
    assert c.post(f"/nodes/{r.json()['id']}/drain").json()["state"] == "draining"
    assert _node(c, other)["state"] == "ready"

    w = c.post("/jobs", json=_until_file(tmp_path / "w.done", "w")).json()["id"]
    _stays_pending(c, w, 1.5)

    # the job on the drained node finishes normally (not stopped); the node is then drained
    (tmp_path / "a.done").touch()
    ja = wait_state(c, a, {"succeeded", "failed", "cancelled"})
    assert ja["state"] == "succeeded", ja
    assert c.get(f"/jobs/{a}/logs").json()["data"] == "finished\n"
    _wait_node(c, node, "drained")
    _stays_pending(c, w, 1.0)

    # undrain: the waiting job goes there
    r = c.post(f"/nodes/{node}/undrain")
    assert r.json()["state"] == "ready" and r.json()["drain"] is False
    jw = wait_state(c, w, {"running"})
    assert jw["allocation"]["nodes"] == [node]
    for f in ("b.done", "w.done"):
        (tmp_path / f).touch()
    for j in (b, w):
        assert wait_state(c, j, {"succeeded", "failed"})["state"] == "succeeded"


def test_undrain_before_the_drain_completes_keeps_the_running_job_on_its_devices(
        live: Live, tmp_path: Path) -> None:
    """Undrained while a job still runs there: the scheduler must not count the node as free
    (the loop rebuilds instead of adding it back empty), so a job that needs those devices
    waits until the running one ends, then goes there."""
    c = live.admin
    a = c.post("/jobs", json=_until_file(tmp_path / "a.done", "a")).json()["id"]
    node = wait_state(c, a, {"running"})["allocation"]["nodes"][0]
    b = c.post("/jobs", json=_until_file(tmp_path / "b.done", "b")).json()["id"]
    wait_state(c, b, {"running"})
    assert c.post(f"/nodes/{node}/drain").json()["state"] == "draining"
    time.sleep(0.5)  # the loop drains it in the scheduler
    assert c.post(f"/nodes/{node}/undrain").json()["state"] == "ready"
    w = c.post("/jobs", json=_until_file(tmp_path / "w.done", "w")).json()["id"]
    _stays_pending(c, w, 1.5)  # node's devices are all held by job a
    assert c.get(f"/jobs/{a}").json()["state"] == "running"
    (tmp_path / "a.done").touch()
    assert wait_state(c, a, {"succeeded", "failed"})["state"] == "succeeded"
    assert wait_state(c, w, {"running"})["allocation"]["nodes"] == [node]
    for f in ("b.done", "w.done"):
        (tmp_path / f).touch()
    for j in (b, w):
        assert wait_state(c, j, {"succeeded", "failed"})["state"] == "succeeded"


def test_drain_needs_admin_and_a_known_node(live: Live) -> None:
    reader = live.client(live.token_for("reader", ["read", "submit"]))
    assert reader.post("/nodes/site-a/h800/000/drain").status_code == 403
    assert live.admin.post("/nodes/site-a/nope/drain").status_code == 404
    assert live.admin.post("/nodes/999999/undrain").status_code == 404
    # another tenant's admin cannot drain the shared fleet
    other = live.client(live.token_for("boss", ["admin"], tenant="other"))
    assert other.post("/nodes/site-a/h800/000/drain").status_code == 403
    assert _node(live.admin, "site-a/h800/000")["state"] == "ready"


@pytest.mark.parametrize("kind", DB_KINDS)
def test_drain_survives_a_restart_with_a_job_running_there(kind: str, tmp_path: Path) -> None:
    fleet = write_fleet(tmp_path)
    home = tmp_path / "home"
    with database(kind, tmp_path) as url:
        lv = Live(url, home, fleet)
        try:
            c = lv.admin
            a = c.post("/jobs", json=_until_file(tmp_path / "a.done", "a")).json()["id"]
            node = wait_state(c, a, {"running"})["allocation"]["nodes"][0]
            # the other H800 node is filled, so a new job could only go to the drained one
            b = c.post("/jobs", json=_until_file(tmp_path / "b.done", "b")).json()["id"]
            wait_state(c, b, {"running"})
            assert c.post(f"/nodes/{node}/drain").json()["state"] == "draining"
        finally:
            lv.stop()  # the server stops; the jobs' processes run on

        lv = Live(url, home, fleet)  # imports the fleet file again, rebuilds from the DB
        try:
            c = lv.admin
            assert _node(c, node)["state"] == "draining"
            w = c.post("/jobs", json=_until_file(tmp_path / "w.done", "w")).json()["id"]
            _stays_pending(c, w, 1.5)
            (tmp_path / "a.done").touch()
            assert wait_state(c, a, {"succeeded", "failed"})["state"] == "succeeded"
            _wait_node(c, node, "drained")
            _stays_pending(c, w, 1.0)
        finally:
            lv.stop()

        lv = Live(url, home, fleet)  # drained stays drained, until undrained
        try:
            c = lv.admin
            assert _node(c, node)["state"] == "drained"
            _stays_pending(c, w, 1.0)
            c.post(f"/nodes/{node}/undrain")
            assert wait_state(c, w, {"running"})["allocation"]["nodes"] == [node]
            for f in ("b.done", "w.done"):
                (tmp_path / f).touch()
            for j in (b, w):
                assert wait_state(c, j, {"succeeded", "failed"})["state"] == "succeeded"
        finally:
            lv.stop()


@pytest.mark.parametrize("kind", DB_KINDS)
def test_migrations_0003_0004_keep_rows_and_go_back(kind: str, tmp_path: Path) -> None:
    """0003 (node drain) and 0004 (no foreign keys on the submission path) up and down over
    existing nodes, jobs and events."""
    from sqlalchemy import text

    from suanli.service import migrate
    from suanli.service.db import make_engine

    with database(kind, tmp_path) as url:
        engine = make_engine(url)
        assert migrate.upgrade(engine, "0002")[1] == "0002"
        with engine.begin() as c:
            c.execute(text("INSERT INTO sites (name, pue, electricity_price_cny_kwh, "
                           "carbon_kg_per_kwh, wan_gbps) VALUES ('s', 1.3, 0.5, 0.5, 100)"))
            sid = c.execute(text("SELECT id FROM sites")).scalar()
            c.execute(text("INSERT INTO node_groups (site_id, name, chip, chips_per_node) "
                           "VALUES (:s, 'g', 'nvidia_h800_sxm', 8)"), {"s": sid})
            gid = c.execute(text("SELECT id FROM node_groups")).scalar()
            c.execute(text("INSERT INTO nodes (group_id, name, devices, simulated, state, agent) "
                           "VALUES (:g, 's/g/000', 8, false, 'lost', true)"), {"g": gid})
            c.execute(text("INSERT INTO tenants (name, root, created_at) "
                           "VALUES ('t', false, CURRENT_TIMESTAMP)"))
            tid = c.execute(text("SELECT id FROM tenants")).scalar()
            c.execute(text("INSERT INTO users (tenant_id, name, created_at) "
                           "VALUES (:t, 'u', CURRENT_TIMESTAMP)"), {"t": tid})
            uid = c.execute(text("SELECT id FROM users")).scalar()
            c.execute(text("INSERT INTO jobs (tenant_id, user_id, name, queue, priority, "
                           "devices, state, reason, spec, submitted_at, updated_at, attempts, "
                           "failures, cancel_requested) VALUES (:t, :u, 'j', 'default', 1, 1, "
                           "'pending', '', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0, 0, "
                           "false)"), {"t": tid, "u": uid})
            jid = c.execute(text("SELECT id FROM jobs")).scalar()
            c.execute(text("INSERT INTO job_events (job_id, time, state, reason) "
                           "VALUES (:j, CURRENT_TIMESTAMP, 'pending', 'submitted')"),
                      {"j": jid})
        assert migrate.upgrade(engine)[1] == migrate.head_revision(engine)
        with engine.connect() as c:
            row = c.execute(text("SELECT state, drain, state_changed_at FROM nodes")).one()
            assert c.execute(text("SELECT count(*) FROM job_events WHERE job_id = :j"),
                             {"j": jid}).scalar() == 1
        assert row[0] == "lost" and not row[1] and row[2] is None
        from sqlalchemy import inspect

        fks = {t: [fk["referred_table"] for fk in inspect(engine).get_foreign_keys(t)]
               for t in ("jobs", "job_events", "allocations")}
        assert fks == {"jobs": [], "job_events": [], "allocations": ["jobs"]}
        assert migrate.downgrade(engine, "0002") == "0002"
        with engine.connect() as c:
            assert c.execute(text("SELECT state FROM nodes")).scalar() == "lost"
            assert c.execute(text("SELECT count(*) FROM jobs")).scalar() == 1
        fks2 = {t: sorted(fk["referred_table"] for fk in inspect(engine).get_foreign_keys(t))
                for t in ("jobs", "job_events")}
        assert fks2 == {"jobs": ["tenants", "users"], "job_events": ["jobs"]}
        engine.dispose()
