"""The scheduler loop with many running jobs: beyond ``POLL_ALL`` active launches a pass polls
a rotating share (each launch about every ``POLL_S``), launches in no steady state and noted
cancels every pass; completions and cancels are still all carried out."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from suanli.exec.base import ExecState, ExecStatus, ExecutorFeatures
from suanli.service import loop as loop_mod
from suanli.service import migrate as mig
from suanli.service.auth import bootstrap
from suanli.service.db import (
    AllocationRow,
    JobRow,
    NodeGroupRow,
    NodeRow,
    SiteRow,
    make_engine,
    session_factory,
    utcnow,
)


class CountingExecutor:
    """Every launch runs until ``finish``; counts polls per launch."""

    name = "counting"

    def __init__(self) -> None:
        self.features = ExecutorFeatures()
        self.state: dict[str, ExecState] = {}
        self.polls: dict[str, int] = {}
        self.cancelled: list[str] = []

    def launch(self, spec: Any) -> ExecStatus:
        self.state.setdefault(spec.launch_id, ExecState.RUNNING)
        return self.poll(spec.launch_id)

    def poll(self, launch_id: str) -> ExecStatus:
        self.polls[launch_id] = self.polls.get(launch_id, 0) + 1
        st = self.state.get(launch_id, ExecState.LOST)
        return ExecStatus(launch_id=launch_id, state=st,
                          exit_code=0 if st == ExecState.SUCCEEDED else None)

    def cancel(self, launch_id: str, grace_s: float = 10.0) -> ExecStatus:
        self.cancelled.append(launch_id)
        self.state[launch_id] = ExecState.CANCELLED
        return self.poll(launch_id)

    def checkpoint(self, launch_id: str) -> bool:
        return False

    def log_paths(self, launch_id: str) -> dict[str, Path]:
        return {}

    def check(self) -> tuple[bool, str]:
        return True, ""


def test_many_running_jobs_are_polled_in_turns(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_mod, "POLL_ALL", 10)
    monkeypatch.setattr(loop_mod, "POLL_S", 0.4)
    engine = make_engine(f"sqlite:///{tmp_path / 'l.db'}")
    mig.upgrade(engine)
    sessions = session_factory(engine)
    now = utcnow()
    with sessions() as s:
        bootstrap(s)
        s.execute(insert(SiteRow).values(name="s"))
        sid = s.scalar(select(SiteRow.id))
        s.execute(insert(NodeGroupRow).values(site_id=sid, name="g", chip="nvidia_h800_sxm",
                                              vendor="NVIDIA", chips_per_node=8))
        gid = s.scalar(select(NodeGroupRow.id))
        s.execute(insert(NodeRow), [{"group_id": gid, "name": f"n{i}", "devices": 8,
                                     "simulated": True, "state": "ready"} for i in range(10)])
        s.execute(insert(JobRow), [
            {"tenant_id": 1, "user_id": 1, "name": f"j{i}", "queue": "default",
             "priority": 1.0, "devices": 1, "state": "pending", "reason": "",
             "spec": {"name": f"j{i}", "command": ["true"], "duration_s": 600},
             "submitted_at": now, "updated_at": now, "attempts": 0, "failures": 0,
             "cancel_requested": False} for i in range(60)])
        s.commit()
    ex = CountingExecutor()
    loop = loop_mod.SchedulerLoop(sessions, engine, ex, tmp_path, round_s=1e9,
                                  write_lock=threading.RLock())
    loop.rebuild()
    loop.run_pass()
    loop.run_pass()  # the starts are running now
    with sessions() as s:
        running = dict(s.execute(select(AllocationRow.launch_id, AllocationRow.job_id)
                                 .where(AllocationRow.active.is_(True))).all())
        assert s.scalar(select(func.count()).select_from(JobRow)
                        .where(JobRow.state == "running")) == 60
    assert len(running) == 60
    # passes in quick succession poll a share each, yet every launch within ~POLL_S
    ex.polls.clear()
    loop.run_pass()
    assert 10 <= sum(ex.polls.values()) < 60
    end = time.monotonic() + 0.6
    while time.monotonic() < end:
        loop.run_pass()
        time.sleep(0.02)
    assert set(ex.polls) == set(running)
    # completions are recorded (their turn comes), a noted cancel at once
    finished = list(running)[:5]
    for lid in finished:
        ex.state[lid] = ExecState.SUCCEEDED
    victim = list(running)[10]
    with sessions() as s:
        s.execute(JobRow.__table__.update().where(JobRow.id == running[victim])
                  .values(cancel_requested=True))
        s.commit()
    loop.note_cancel(running[victim])
    loop.run_pass()
    deadline = time.monotonic() + 5
    while victim not in ex.cancelled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert victim in ex.cancelled  # stopped in the pass right after the note
    end = time.monotonic() + 0.6
    while time.monotonic() < end:
        loop.run_pass()
        time.sleep(0.02)
    with sessions() as s:
        states = dict(s.execute(select(JobRow.id, JobRow.state)).all())
    assert all(states[running[lid]] == "succeeded" for lid in finished)
    assert states[running[victim]] == "cancelled"
    assert sum(1 for v in states.values() if v == "running") == 54
    loop.stop()
    engine.dispose()
