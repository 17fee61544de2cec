"""The node monitor (a scheduler-loop hook) reads only what can have changed: the agent nodes
whose heartbeat deadline passed (index ``(agent, state, last_seen)``) and the nodes whose
state changed since its last check (index on ``state_changed_at``), not every node every
pass; and it turns drains, undrains and losses into the scheduler's node events. SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from service_support import DB_KINDS, agent_group, database

N = 400


@pytest.mark.parametrize("kind", DB_KINDS)
def test_monitor_reads_only_changed_nodes_and_reports_events(kind: str, tmp_path: Path) -> None:
    from sqlalchemy import select, update

    from suanli.service import migrate
    from suanli.service.agents import AgentMonitor
    from suanli.service.control import set_drain
    from suanli.service.db import NodeRow, make_engine, session_factory, utcnow

    with database(kind, tmp_path) as url:
        engine = make_engine(url)
        migrate.upgrade(engine)
        sessions = session_factory(engine)
        now = utcnow()
        with sessions() as s:
            gid = agent_group(s)
            s.add_all(NodeRow(name=f"agents/n{i:04d}", group_id=gid, devices=4, agent=True,
                              state="ready", last_seen=now, state_changed_at=now)
                      for i in range(N))
            s.commit()
        busy: set[str] = set()
        mon = AgentMonitor(sessions, heartbeat_s=1.0, lost_after=5,
                           busy=lambda n: n in busy, full_s=3600)
        assert mon() is False and mon.reads == N  # the first check reads the table once
        # nothing changed: nothing read (the changes window overlaps by OVERLAP_S, so
        # move the initial rows out of it first)
        with sessions() as s:
            s.execute(update(NodeRow).values(state_changed_at=now - timedelta(minutes=5)))
            s.commit()
        assert mon() is False and mon.reads == 0
        assert mon() is False and mon.reads == 0

        # one node silent past its deadline: it alone is read, lost, reported failed
        with sessions() as s:
            s.execute(update(NodeRow).where(NodeRow.name == "agents/n0007")
                      .values(last_seen=now - timedelta(seconds=60)))
            s.commit()
        assert mon() == [("failed", "agents/n0007")]
        assert mon.reads == 2  # the expired row, then the same row as changed
        with sessions() as s:
            assert s.scalar(select(NodeRow.state).where(NodeRow.name == "agents/n0007")) \
                == "lost"

        # a drain with work still there: drained for the scheduler, draining in the DB
        with sessions() as s:
            nid = s.scalar(select(NodeRow.id).where(NodeRow.name == "agents/n0100"))
            assert nid is not None
            busy.add("agents/n0100")
            set_drain(s, nid, True)
        events = mon()
        assert events == [("drained", "agents/n0100")], events
        assert mon.reads <= 3
        assert mon() is False
        with sessions() as s:
            assert s.scalar(select(NodeRow.state).where(NodeRow.id == nid)) == "draining"
        busy.clear()  # the last launch there ended
        assert mon() is False  # no scheduler event: it was already out of service
        with sessions() as s:
            assert s.scalar(select(NodeRow.state).where(NodeRow.id == nid)) == "drained"
            set_drain(s, nid, False)
        assert mon() == [("added", "agents/n0100")]
        # a drained node that goes silent is lost; when it comes back it is drained still
        with sessions() as s:
            set_drain(s, nid, True)
        assert mon() == [("drained", "agents/n0100")]
        with sessions() as s:
            s.execute(update(NodeRow).where(NodeRow.id == nid)
                      .values(last_seen=now - timedelta(seconds=60)))
            s.commit()
        assert mon() is False
        with sessions() as s:
            n = s.get(NodeRow, nid)
            assert n is not None and n.state == "lost" and n.drain
        # the safety net: a sweep in slices by node id, each node within full_s; nothing new
        assert 0 < mon.swept <= AgentMonitor.SWEEP_MAX
        mon.full_s = 0.0  # every node at once
        assert mon() is False and mon.swept == N
        engine.dispose()
