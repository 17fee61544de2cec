"""An agent's heartbeat and the agent executor's view read only the allocations they are
about (index ``(node, active)`` on ``allocations.node``, migration 0005), not every active
allocation of the cluster: with 300 active launches on the fleet's (local) nodes, two on
agent node ``a`` and one on agent node ``b``, the allocation queries of ``a``'s heartbeat
return ``a``'s two rows and the executor's view the three agent rows. Both databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from service_support import DB_KINDS, live_service

LOCAL = 300


def _device(i: int) -> dict[str, Any]:
    return {"vendor": "NVIDIA", "index": i, "name": "H800", "chip_id": "nvidia_h800_sxm",
            "memory_mib": 81920, "driver_version": "simulated"}


class Capture:
    """The statements on ``allocations`` an engine runs while on, re-run to count rows."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.on = False
        self.stmts: list[tuple[str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._hook)

    def _hook(self, conn: Any, cursor: Any, stmt: str, params: Any, ctx: Any,
              many: bool) -> None:
        if self.on and stmt.lstrip().upper().startswith("SELECT") and "allocations" in stmt:
            self.stmts.append((stmt, params))

    def rows(self) -> list[int]:
        out = []
        with self.engine.connect() as c:
            for stmt, params in self.stmts:
                out.append(len(c.exec_driver_sql(stmt, params).fetchall()))
        return out


@pytest.mark.parametrize("kind", DB_KINDS)
def test_heartbeat_and_executor_view_read_only_their_allocations(kind: str,
                                                                 tmp_path: Path) -> None:
    from suanli.service.agents import AgentRouting
    from suanli.service.db import AllocationRow, JobRow

    with live_service(kind, tmp_path) as live:
        assert live.svc.loop is not None
        live.svc.loop.stop()  # nothing else touches the rows below
        tok = live.token_for("agent", ["node"])
        h = {"Authorization": f"Bearer {tok}"}
        ids = {}
        for host in ("a", "b"):
            r = httpx.post(live.url + "/api/v1/agent/register", headers=h, json={
                "hostname": host, "devices": [_device(i) for i in range(4)],
                "executor": "local", "features": {}, "agent_version": "0", "site": "lab"})
            assert r.status_code == 200, r.text
            ids[host] = r.json()["node_id"]
        where = [("site-a/h800/000", i) for i in range(LOCAL)] + \
            [("lab/a", 0), ("lab/a", 1), ("lab/b", 0)]
        with live.svc.sessions() as s:
            for k, (node, dev) in enumerate(where):
                job = JobRow(tenant_id=1, user_id=1, name=f"j{k}", queue="default",
                             devices=1, state="scheduled", spec={"command": ["true"]})
                s.add(job)
                s.flush()
                s.add(AllocationRow(job_id=job.id, attempt=1, launch_id=f"L{k}", pool="p",
                                    site="x", chip="nvidia_h800_sxm", nodes=[node],
                                    node=node, devices=[[dev]], launched=True))
            s.commit()

        cap = Capture(live.svc.engine)
        cap.on = True
        r = httpx.post(live.url + f"/api/v1/agent/{ids['a']}/heartbeat", headers=h,
                       json={"statuses": []})
        cap.on = False
        assert r.status_code == 200, r.text
        got = r.json()
        assert sorted(x["launch_id"] for x in got["launch"]) == [f"L{LOCAL}", f"L{LOCAL + 1}"]
        assert got["cancel"] == []
        n = cap.rows()
        assert n and max(n) == 2, n  # a's own launches, never the cluster's

        cap.stmts.clear()
        cap.on = True
        view = AgentRouting(live.svc.executor, live.svc.sessions, tmp_path, 1.0)
        v = view._agent_launches(fresh=True)
        cap.on = False
        assert sorted(v) == [f"L{LOCAL}", f"L{LOCAL + 1}", f"L{LOCAL + 2}"]
        assert v[f"L{LOCAL + 2}"] == (None, None, "", "ready")
        n = cap.rows()
        assert n and max(n) == 3, n


@pytest.mark.parametrize("kind", DB_KINDS)
def test_migration_0005_backfills_the_head_node_of_active_allocations(kind: str,
                                                                     tmp_path: Path) -> None:
    from sqlalchemy import text

    from service_support import database
    from suanli.service import migrate
    from suanli.service.db import make_engine

    with database(kind, tmp_path) as url:
        engine = make_engine(url)
        assert migrate.upgrade(engine, "0004")[1] == "0004"
        with engine.begin() as c:
            c.execute(text("INSERT INTO jobs (tenant_id, user_id, name, queue, priority, "
                           "devices, state, reason, spec, submitted_at, updated_at, attempts, "
                           "failures, cancel_requested) VALUES (1, 1, 'j', 'default', 1, 1, "
                           "'running', '', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1, 0, "
                           "false)"))
            jid = c.execute(text("SELECT id FROM jobs")).scalar()
            for lid, nodes, active in (("A", '["s/n1", "s/n2"]', True),
                                       ("B", '["s/n3"]', False)):
                c.execute(text("INSERT INTO allocations (job_id, attempt, launch_id, pool, "
                               "site, chip, nodes, devices, active, launched, created_at) "
                               "VALUES (:j, 1, :l, 'p', 's', 'c', :n, '[[0]]', :a, true, "
                               "CURRENT_TIMESTAMP)"),
                          {"j": jid, "l": lid, "n": nodes, "a": active})
        assert migrate.upgrade(engine)[1] == "0005"
        with engine.connect() as c:
            got = dict(c.execute(text("SELECT launch_id, node FROM allocations")).all())
        assert got == {"A": "s/n1", "B": None}
        assert migrate.downgrade(engine, "0004") == "0004"
        with engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM allocations")).scalar() == 2
        engine.dispose()
