"""A heartbeat that commits while the node monitor decides that the node is silent wins:
the monitor marks a node lost with one conditional UPDATE (``last_seen`` still older than
the deadline, state still live) and acts on its row count, so a node that just heartbeated
is never marked lost and its jobs are not requeued. Deterministic on both databases: the
heartbeat commits in the window between the monitor's read and its mark (a test seam), and
(second test) holds the node row while the mark runs, committing only once the monitor
waits for it (PostgreSQL: seen in ``pg_stat_activity``)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from service_support import DB_KINDS, agent_group, database


def _setup(url: str) -> tuple[Any, Any, int, int]:
    from suanli.service import migrate
    from suanli.service.db import (
        AllocationRow,
        JobRow,
        NodeRow,
        make_engine,
        session_factory,
        utcnow,
    )

    engine = make_engine(url)
    migrate.upgrade(engine)
    sessions = session_factory(engine)
    old = utcnow() - timedelta(seconds=60)
    with sessions() as s:
        node = NodeRow(name="agents/n1", group_id=agent_group(s), devices=4, agent=True,
                       tenant_id=1, state="ready", last_seen=old, state_changed_at=old)
        job = JobRow(tenant_id=1, user_id=1, name="j", queue="default", devices=1,
                     state="running", spec={"command": ["true"]})
        s.add_all([node, job])
        s.flush()
        s.add(AllocationRow(job_id=job.id, attempt=1, launch_id="L1", pool="p",
                            site="agents", chip="nvidia_h800_sxm", nodes=["agents/n1"],
                            devices=[[0]], launched=True, observed_state="running"))
        s.commit()
        return engine, sessions, node.id, job.id


def _state(sessions: Any, node_id: int, job_id: int) -> tuple[str, str, bool, int]:
    from sqlalchemy import func, select

    from suanli.service.db import AllocationRow, JobEventRow, JobRow, NodeRow

    with sessions() as s:
        return (s.scalar(select(NodeRow.state).where(NodeRow.id == node_id)) or "",
                s.scalar(select(JobRow.state).where(JobRow.id == job_id)) or "",
                bool(s.scalar(select(AllocationRow.active)
                              .where(AllocationRow.job_id == job_id))),
                s.scalar(select(func.count()).select_from(JobEventRow)
                         .where(JobEventRow.job_id == job_id)) or 0)


def _age(sessions: Any, node_id: int) -> None:
    from sqlalchemy import update

    from suanli.service.db import NodeRow, utcnow

    with sessions() as s:
        s.execute(update(NodeRow).where(NodeRow.id == node_id)
                  .values(last_seen=utcnow() - timedelta(seconds=60)))
        s.commit()


@pytest.mark.parametrize("kind", DB_KINDS)
def test_heartbeat_committed_after_the_read_keeps_the_node(kind: str, tmp_path: Path) -> None:
    from suanli.service.agents import AgentMonitor, touch_node

    with database(kind, tmp_path) as url:
        engine, sessions, node_id, job_id = _setup(url)
        mon = AgentMonitor(sessions, heartbeat_s=1.0, lost_after=5)
        calls: list[int] = []

        def heartbeat() -> None:
            calls.append(1)
            with sessions() as s:
                touch_node(s, node_id)
                s.commit()

        mon.before_mark = heartbeat
        assert mon() is False  # first call: the silent node was read, then it heartbeated
        assert calls == [1] and mon.reads >= 1
        assert _state(sessions, node_id, job_id) == ("ready", "running", True, 0)

        # the control: silent again and no heartbeat this time -> lost, job requeued
        mon.before_mark = None
        _age(sessions, node_id)
        assert mon() == [("failed", "agents/n1")]
        assert _state(sessions, node_id, job_id) == ("lost", "pending", False, 1)

        # a heartbeat of a lost node brings it back in the same statement
        with sessions() as s:
            touch_node(s, node_id)
            s.commit()
        assert _state(sessions, node_id, job_id)[0] == "ready"
        engine.dispose()


@pytest.mark.parametrize("kind", DB_KINDS)
def test_heartbeat_holding_the_row_while_the_monitor_marks(kind: str, tmp_path: Path) -> None:
    from sqlalchemy import text

    from suanli.service.agents import AgentMonitor, touch_node

    with database(kind, tmp_path) as url:
        engine, sessions, node_id, job_id = _setup(url)
        mon = AgentMonitor(sessions, heartbeat_s=1.0, lost_after=5)
        waited: list[bool] = []
        errors: list[BaseException] = []
        hb = sessions()

        def commit_when_monitor_waits() -> None:
            try:
                seen = False
                end = time.monotonic() + 10
                while kind == "postgres" and not seen and time.monotonic() < end:
                    with engine.connect() as c:
                        seen = bool(c.execute(text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND wait_event_type = 'Lock' "
                            "AND query LIKE 'UPDATE nodes%'")).scalar())
                    time.sleep(0.02)
                if kind != "postgres":
                    time.sleep(0.3)  # SQLite: the mark waits on the database lock
                waited.append(seen)
                hb.commit()
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        t = threading.Thread(target=commit_when_monitor_waits)

        def heartbeat_in_flight() -> None:
            touch_node(hb, node_id)  # the row is written (locked), not committed yet
            hb.flush()
            t.start()

        mon.before_mark = heartbeat_in_flight
        assert mon() is False
        t.join(15)
        hb.close()
        assert not errors, errors
        if kind == "postgres":
            assert waited == [True], "the monitor's mark never waited for the heartbeat"
        assert _state(sessions, node_id, job_id) == ("ready", "running", True, 0)
        engine.dispose()
