"""A lost node's jobs go back to the queue: exactly the allocations that name the node
(a gang's allocation names all its nodes, not only the first), and no other whose node
list merely contains the name as a substring or matches it as a LIKE pattern. On SQLite
and on a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import insert, select

from service_support import DB_KINDS, database
from suanli.service import migrate as mig
from suanli.service.agents import AgentMonitor
from suanli.service.auth import bootstrap
from suanli.service.db import AllocationRow, JobRow, make_engine, session_factory, utcnow

NODE_LISTS = {
    "first": ["b", "c"],
    "second": ["a", "b"],
    "alone": ["b"],
    "substring": ["ab", "bb"],
    "pattern": ["a_b"],  # "_" is a LIKE wildcard
    "other": ["c"],
}


@pytest.mark.parametrize("kind", DB_KINDS)
@pytest.mark.parametrize("lost", ["b", "a_b", "%"])
def test_requeue_releases_exactly_the_allocations_on_the_node(kind: str, lost: str,
                                                              tmp_path: Path) -> None:
    with database(kind, tmp_path) as url:
        engine = make_engine(url)
        mig.upgrade(engine)
        sessions = session_factory(engine)
        now = utcnow()
        with sessions() as s:
            bootstrap(s)
            for name, nodes in NODE_LISTS.items():
                jid = s.execute(insert(JobRow).returning(JobRow.id).values(
                    tenant_id=1, user_id=1, name=name, queue="default", priority=1.0,
                    devices=len(nodes), state="running", reason="",
                    spec={"name": name, "command": ["true"]}, submitted_at=now,
                    updated_at=now, attempts=1, failures=0,
                    cancel_requested=name == "alone")).scalar_one()
                s.execute(insert(AllocationRow).values(
                    job_id=jid, attempt=1, launch_id=f"l-{name}", pool="p", site="s",
                    chip="nvidia_h800_sxm", nodes=nodes, node=nodes[0],
                    devices=[[0]] * len(nodes), active=True, launched=True))
            s.commit()
        with sessions() as s:
            n = AgentMonitor._requeue_jobs(None, s, lost, "node lost")  # type: ignore[arg-type]
            s.commit()
        want = {name for name, nodes in NODE_LISTS.items() if lost in nodes}
        with sessions() as s:
            rows = s.execute(select(JobRow.name, JobRow.state, AllocationRow.active)
                             .join(AllocationRow, AllocationRow.job_id == JobRow.id)).all()
        engine.dispose()
        assert n == len(want)
        for name, state, active in rows:
            if name in want:
                assert not active
                assert state == ("cancelled" if name == "alone" else "pending")
            else:
                assert active and state == "running", name
