"""The scheduler loop re-reads the database in slices, a bounded number of rows per pass:
every active launch and every pending / waiting job is re-read within a bound (here, with
the slice fixed at 10 rows, ceil(n / 10) passes), so changes made in the database by
another replica are noticed: a cancel of a running job, an allocation ended elsewhere, a
waiting job cancelled, a pending job committed below the id watermark. On SQLite and on a
real PostgreSQL."""

from __future__ import annotations

import itertools
import math
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from service_support import DB_KINDS, database
from suanli.exec.base import ExecState
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
from test_service_loop_poll import CountingExecutor

SLICE = 10


def _job(i: int, devices: int = 1) -> dict[str, Any]:
    now = utcnow()
    return {"tenant_id": 1, "user_id": 1, "name": f"j{i}", "queue": "default",
            "priority": 1.0, "devices": devices, "state": "pending", "reason": "",
            "spec": {"name": f"j{i}", "command": ["true"], "duration_s": 600,
                     "resources": {"devices": devices}},
            "submitted_at": now, "updated_at": now, "attempts": 0, "failures": 0,
            "cancel_requested": False}


@pytest.fixture(params=DB_KINDS)
def setup(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Any:
    """80 running 1-device jobs on 10 8-device nodes, 30 waiting; slices of 10 rows."""
    monkeypatch.setattr(loop_mod, "RESYNC_MIN", SLICE)
    monkeypatch.setattr(loop_mod, "RESYNC_MAX", SLICE)
    with database(request.param, tmp_path) as url:
        engine = make_engine(url)
        mig.upgrade(engine)
        sessions = session_factory(engine)
        with sessions() as s:
            bootstrap(s)
            s.execute(insert(SiteRow).values(name="s"))
            sid = s.scalar(select(SiteRow.id))
            s.execute(insert(NodeGroupRow).values(site_id=sid, name="g",
                                                  chip="nvidia_h800_sxm", vendor="NVIDIA",
                                                  chips_per_node=8))
            gid = s.scalar(select(NodeGroupRow.id))
            s.execute(insert(NodeRow), [{"group_id": gid, "name": f"n{i}", "devices": 8,
                                         "simulated": True, "state": "ready"}
                                        for i in range(10)])
            s.execute(insert(JobRow), [_job(i) for i in range(110)])
            s.commit()
        ex = CountingExecutor()
        loop = loop_mod.SchedulerLoop(sessions, engine, ex, tmp_path, round_s=1e9,
                                      write_lock=threading.RLock())
        loop.rebuild()
        loop.run_pass()
        loop.run_pass()
        with sessions() as s:
            running = dict(s.execute(select(AllocationRow.launch_id, AllocationRow.job_id)
                                     .where(AllocationRow.active.is_(True))).all())
        assert len(running) == 80
        assert all(ex.state[lid] == ExecState.RUNNING for lid in running)
        try:
            yield loop, sessions, ex, running
        finally:
            loop.stop()
            engine.dispose()


def _settle(loop: loop_mod.SchedulerLoop) -> None:
    """Wait for the stops queued so far (the loop carries them out in a thread pool)."""
    deadline = time.monotonic() + 10
    while loop._stopping and time.monotonic() < deadline:
        time.sleep(0.01)


def test_slice_size_covers_every_row_within_the_period() -> None:
    for n in (1, 150, 2_000, 25_000, 49_000):
        for step in (0.01, 0.07, 0.5, 1.3):
            passes = math.ceil(loop_mod.RESYNC_S / step)
            covered = sum(loop_mod._slice(n, step) for _ in range(passes))
            if n <= loop_mod.RESYNC_MAX * passes:
                assert covered >= n, (n, step)  # a whole sweep within RESYNC_S
            else:  # beyond: RESYNC_MAX a pass, so within ceil(n / RESYNC_MAX) passes
                assert loop_mod._slice(n, step) == loop_mod.RESYNC_MAX
    # beyond what RESYNC_MAX rows a pass cover, a pass still reads at most RESYNC_MAX
    assert loop_mod._slice(10_000_000, 60.0) == loop_mod.RESYNC_MAX
    assert loop_mod._slice(0, 0.0) == loop_mod.RESYNC_MIN


def test_every_running_launch_reread_within_the_bound(setup: Any) -> None:
    """Cancels written to the database by another replica (no note to this process): each
    pass reads one slice, so they are carried out about 10 per pass, all within one sweep:
    ceil(n / 10) + 1 passes, n counting the launches active during it (the 80, and the 30
    waiting jobs that start as devices free up, above them in job-id order)."""
    loop, sessions, ex, running = setup
    with sessions() as s:
        s.execute(update(JobRow).where(JobRow.id.in_(list(running.values())))
                  .values(cancel_requested=True))
        s.commit()
    seen: list[int] = []
    for _ in range(math.ceil((80 + 30) / SLICE) + 1):
        loop.run_pass()
        _settle(loop)
        seen.append(sum(1 for lid in set(ex.cancelled) if lid in running))
    assert seen[0] <= SLICE + 1  # a bounded slice per pass, not all 80 at once
    assert seen[-1] == 80, seen  # every launch re-read within the bound
    assert all(b - a <= SLICE + 1 for a, b in itertools.pairwise(seen)), seen
    for _ in range(3):
        loop.run_pass()
    with sessions() as s:
        states = dict(s.execute(select(JobRow.id, JobRow.state)
                                .where(JobRow.id.in_(list(running.values())))).all())
    assert set(states.values()) == {"cancelled"}


def test_allocation_ended_elsewhere_is_dropped(setup: Any) -> None:
    loop, sessions, ex, running = setup
    lid, jid = next(iter(running.items()))
    with sessions() as s:
        aid = s.scalar(select(AllocationRow.id).where(AllocationRow.launch_id == lid))
        s.execute(update(AllocationRow).where(AllocationRow.id == aid).values(active=False))
        s.commit()
    assert aid in loop._mirror.rows
    for _ in range(math.ceil(80 / SLICE) + 1):
        loop.run_pass()
    assert aid not in loop._mirror.rows  # within one sweep
    assert len(loop._mirror) == 79
    ex.state[lid] = ExecState.SUCCEEDED  # not polled any more: nothing recorded twice
    for _ in range(3):
        loop.run_pass()
    with sessions() as s:
        assert s.scalar(select(JobRow.state).where(JobRow.id == jid)) == "running"


def test_waiting_jobs_resynced_within_the_bound(setup: Any) -> None:
    """A waiting job cancelled in the database by another replica is forgotten by the
    scheduler; a pending job committed below the watermark is taken in."""
    loop, sessions, _ex, _running = setup
    ad = loop.adapter
    with sessions() as s:
        waiting = list(s.scalars(select(JobRow.id).where(JobRow.state == "pending")
                                 .order_by(JobRow.id)))
        assert len(waiting) == 30
        victim = waiting[-1]
        s.execute(update(JobRow).where(JobRow.id == victim)
                  .values(state="cancelled", cancel_requested=True))
        late = s.execute(insert(JobRow).returning(JobRow.id), [_job(999)]).scalar_one()
        s.commit()
    loop._watermark = late + 100  # as if jobs above it had been taken in before it committed
    assert ad.knows(victim) and not ad.knows(late)
    bound = math.ceil(len(ad.key_of) / SLICE) + 1
    for n in range(bound):
        loop.run_pass()
        if n == 0:
            assert ad.knows(victim)  # one slice of the low ids first: not at once
    assert not ad.knows(victim)
    assert ad.knows(late)


def test_launch_unknown_to_the_mirror_found_and_jobs_never_split(setup: Any) -> None:
    """A launch written by another replica in the middle of the job-id range (the mirror
    does not know it) is read by the slice that covers its job, within one sweep; every
    slice holds all launches of each job it touches (a job's second launch is never left to
    the next slice)."""
    loop, sessions, ex, running = setup
    mid = sorted(running.values())[40]
    with sessions() as s:
        a = s.scalars(select(AllocationRow).where(AllocationRow.job_id == mid)).one()
        s.execute(insert(AllocationRow).values(
            job_id=mid, attempt=a.attempt, launch_id="other-replica", pool=a.pool,
            site=a.site, chip=a.chip, nodes=a.nodes, node=a.node, devices=a.devices,
            active=True, launched=True))
        s.commit()
        extra = s.scalar(select(AllocationRow.id)
                         .where(AllocationRow.launch_id == "other-replica"))
    ex.state["other-replica"] = ExecState.RUNNING
    assert extra not in loop._mirror.rows
    slices: list[list[Any]] = []
    orig = loop._reread_slice

    def spy(s: Any, q: Any, mirror: Any) -> None:
        lo = loop._launch_sweep[1]
        orig(s, q, mirror)
        hi = loop._launch_sweep[1] or 2**62
        slices.append([k for k in mirror.keys if lo < k[0] <= hi])

    loop._reread_slice = spy  # type: ignore[method-assign]
    for _ in range(math.ceil(81 / SLICE) + 1):
        loop.run_pass()
        if extra in loop._mirror.rows:
            break
    assert extra in loop._mirror.rows  # within one sweep
    assert loop._mirror.rows[extra][1] == "other-replica"
    both = [sl for sl in slices if any(j == mid for j, _ in sl)]
    assert len(both) == 1 and sum(j == mid for j, _ in both[0]) == 2
