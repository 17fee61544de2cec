"""Scheduler events keyed by job id, restart costs, snapshot / restore with identical replay."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sched_support import make_cluster
from suanli.errors import SuanliError
from suanli.sched import Job, Scheduler, get_policy
from suanli.sched.job import job_from_plain, job_to_plain
from suanli.sched.scheduler import Decision, RestartCost, RetryPolicy
from suanli.sim.engine import run_simulation
from test_sched_policies import RATES, TRAIN, FixedRates, job

CLUSTER = make_cluster()  # east/fast_gpu 8, east/slow_dcu 8, west/mid_npu 16, west/fast_gpu 4
FAST_EAST = 0


def sched(policy: str = "fifo", **kw: object) -> Scheduler:
    return Scheduler(CLUSTER, get_policy(policy), FixedRates(RATES), **kw)  # type: ignore[arg-type]


def starts(ds: list[Decision]) -> dict[str, int]:
    return {d.job_id: d.pool for d in ds if d.action == "start"}


def test_cancel_waiting_and_running_jobs() -> None:
    s = sched()
    for i in range(3):
        s.submit(job(i, gang=8, work=1e6))
    placed = starts(s.schedule(0.0))
    assert set(placed) == {"j0", "j1", "j2"}  # 8 + 8 + 16 devices, two pools of 8
    s.submit(job(3, gang=8, work=1e6))
    assert s.schedule(1.0) == []
    assert s.job_state("j3") == "waiting"
    assert s.cancel("j3", 2.0) is None
    assert s.job_state("j3") == "cancelled" and s.waiting_ids() == []
    stop = s.cancel("j0", 3.0)
    assert stop is not None and stop.action == "stop" and stop.reason == "cancelled"
    assert stop.pool == placed["j0"]
    assert s.job_state("j0") == "cancelled"
    assert s.free[placed["j0"]] == s.capacity[placed["j0"]]  # its devices are free again
    assert s.cancel("j0", 4.0) is None  # over already: nothing to do
    with pytest.raises(SuanliError, match="unknown job id 'nope'"):
        s.cancel("nope", 5.0)


def test_start_failed_rolls_back_and_retries_with_backoff_then_gives_up() -> None:
    s = sched(retry=RetryPolicy(max_retries=2, backoff_s=10.0, factor=3.0))
    s.submit(job(0, gang=4))
    t = 0.0
    for k in (1, 2):
        (d,) = s.schedule(t)
        assert d.action == "start" and d.restart_s == 0.0  # a failed start is not a restart
        free_before = s.free.copy()
        assert s.on_start_failed("j0", t, "image pull failed") is True
        assert (s.free - free_before)[d.pool] == 4000  # rolled back
        assert s.job_state("j0") == "waiting" and s.waiting_ids() == []  # backing off
        assert s.next_wakeup(t) == pytest.approx(t + 10.0 * 3.0 ** (k - 1))
        assert s.schedule(t + 1.0) == []  # not before the backoff ends
        t = s.next_wakeup(t) or 0.0
    (d,) = s.schedule(t)
    assert s.on_start_failed("j0", t) is False  # third failure > max_retries = 2
    assert s.job_state("j0") == "failed" and s.failed["j0"] == "start failed"
    assert s.stats["failures"] == 3 and s.stats["retries"] == 2
    with pytest.raises(SuanliError, match="not running"):
        s.on_start_failed("j0", t)


def test_failure_loses_the_work_since_the_last_checkpoint() -> None:
    s = sched(checkpoint_every_s=100.0)
    s.submit(job(0, gang=1, work=1e6))
    (d,) = s.schedule(0.0)
    rate = d.rate  # fast_gpu: 4 units/s
    assert s.on_fail("j0", 250.0, "NCCL timeout") is True
    # 250 s of progress, checkpoints every 100 s: 200 s worth is kept
    assert s.view().remaining(np.array([0]), 250.0)[0] == pytest.approx(1e6 - 200 * rate)


def test_progress_reports_replace_the_estimate_and_teach_the_class_rate() -> None:
    s = sched(learn_rate=0.5)
    s.submit(job(0, gang=1, work=1e4))
    (d,) = s.schedule(0.0)
    assert d.rate == 4.0
    s.on_progress("j0", 100.0, 100.0)  # 1 unit/s measured, 4 expected
    assert s._class_rates[0][d.pool] == pytest.approx(2.5)  # halfway to the measurement
    assert s.view().remaining(np.array([0]), 200.0)[0] == pytest.approx(1e4 - 100 - 100 * 1.0)
    s.submit(job(1, gang=1, work=1e4))  # same class: sees the learnt rate
    (d1,) = s.schedule(201.0)
    assert d1.rate == pytest.approx(2.5 if d1.pool == d.pool else 4.0)
    with pytest.raises(SuanliError, match="outside"):
        s.on_progress("j0", 2e4, 300.0)


def test_node_events_change_capacity_and_failed_nodes_requeue_their_jobs() -> None:
    s = sched(checkpoint_every_s=60.0)
    assert "east/fast_gpu/0" in s.nodes and s.nodes["east/fast_gpu/0"][1] == 8
    for i in range(2):
        s.submit(job(i, gang=4, work=1e6, allowed_chips=frozenset({"fast_gpu"}),
                     allowed_sites=frozenset({"east"})))
    assert set(starts(s.schedule(0.0)).values()) == {FAST_EAST}
    lost = s.on_node_failed("east/fast_gpu/0", 130.0)
    assert sorted(lost) == ["j0", "j1"]
    assert s.capacity[FAST_EAST] == 0 and s.job_state("j0") == "waiting"
    assert s.view().remaining(np.array([0]), 130.0)[0] == pytest.approx(1e6 - 4 * 4.0 * 120)
    assert s.schedule(131.0) == []  # nowhere to go: only east fast_gpu allowed
    s.on_node_added("east/fast_gpu/9", "east/fast_gpu", 4, 140.0)
    d = s.schedule(141.0)
    assert len(starts(d)) == 1 and d[0].restart_s > 0  # a restart pays its cost
    s.on_node_drained("east/fast_gpu/9", 150.0)
    assert s.capacity[FAST_EAST] == 0 and s.job_state(d[0].job_id) == "running"
    with pytest.raises(SuanliError, match="not up"):
        s.on_node_failed("east/fast_gpu/9", 160.0)
    with pytest.raises(SuanliError, match="unknown pool"):
        s.on_node_added("x/1", "mars/fast_gpu", 8, 170.0)


def test_restart_cost_rule() -> None:
    rc = RestartCost(fixed_s=30.0, storage_gbs=2.0)
    assert rc.of(job(0)) > 30.0  # a training job writes and reads its checkpoint
    assert rc.of(Job(id="g", arrival=0, gang=1, work=1.0, job_type="A3C")) == 30.0
    assert rc.of(job(1, restart_s=5.0)) == 5.0


def test_preemptive_policies_pay_restart_costs_in_the_simulator() -> None:
    jobs = [job(i, gang=8, work=4e4, arrival=i * 50.0) for i in range(12)]
    free = run_simulation(CLUSTER, jobs, "las", FixedRates(RATES), round_s=120.0,
                          restart=RestartCost(fixed_s=0.0, storage_gbs=0.0))
    paid = run_simulation(CLUSTER, jobs, "las", FixedRates(RATES), round_s=120.0,
                          restart=RestartCost(fixed_s=60.0, storage_gbs=0.0))
    assert free.metrics["preemption"]["lost_acc_h"] == 0.0
    assert paid.stats["restarts"] > 0
    lost_h = paid.metrics["preemption"]["lost_acc_h"]
    # a job stopped again while still restoring loses less than its full restart
    assert 0.5 * paid.stats["restart_s"] * 8 / 3600 < lost_h <= paid.stats["restart_s"] * 8 / 3600
    assert paid.metrics["jct_s"]["mean"] > free.metrics["jct_s"]["mean"]
    np.testing.assert_allclose(paid.work_done, [j.work for j in paid.jobs])  # no work lost
    assert paid.metrics["preemption"]["total"] + paid.metrics["preemption"]["migrations"] > 0


def test_job_plain_round_trip() -> None:
    j = job(3, gang=2, allowed_chips=frozenset({"a", "b"}), restart_s=4.0, home_site="east")
    assert job_from_plain(json.loads(json.dumps(job_to_plain(j)))) == j


# ------------------------------------------------------------------ replay across a snapshot
EVENTS = st.lists(
    st.tuples(st.sampled_from(["submit", "submit", "submit", "fail", "cancel", "progress",
                               "node_fail", "node_add"]),
              st.floats(1.0, 400.0), st.integers(0, 10_000)),
    min_size=10, max_size=60)


def replay(events: list[tuple[str, float, int]], policy: str, cut: int | None
           ) -> list[tuple[float, str, str, int, str]]:
    """Drive a scheduler through ``events`` (a time step, a kind, a random number) and the
    completions the decisions imply; with ``cut``, snapshot to JSON and restore after that
    many events. Returns every decision."""
    opts = {"round_s": 120.0, "checkpoint_every_s": 90.0}
    s = Scheduler(CLUSTER, get_policy(policy), FixedRates(RATES), **opts)  # type: ignore[arg-type]
    now, n_jobs, added = 0.0, 0, 0
    eta: dict[str, float] = {}
    log: list[tuple[float, str, str, int, str]] = []

    def decide() -> None:
        for d in s.schedule(now):
            log.append((now, d.action, d.job_id, d.pool, d.reason))
            if d.action == "stop":
                eta.pop(d.job_id, None)
            else:
                eta[d.job_id] = now + d.stage_s + d.restart_s + 1e4 / d.rate

    for k, (kind, dt, r) in enumerate(events):
        if cut is not None and k == cut:
            data = json.loads(json.dumps(s.snapshot()))
            s = Scheduler.restore(data, CLUSTER, get_policy(policy), FixedRates(RATES),
                                  checkpoint_every_s=90.0)
        target = now + dt
        while True:  # completions and rounds up to the next event
            nxt = min([*eta.values(), s.next_wakeup(now) or np.inf])
            if nxt > target:
                break
            now = max(now, nxt)
            for jid in sorted(j for j, t in eta.items() if t <= now):
                del eta[jid]
                s.on_finish(jid, now)
            decide()
        now = target
        running = sorted(eta)
        if kind == "submit":
            s.submit(job(n_jobs, gang=[1, 2, 4, 8][r % 4], work=1e4, arrival=now), now)
            n_jobs += 1
        elif kind == "fail" and running:
            jid = running[r % len(running)]
            del eta[jid]
            s.on_fail(jid, now)
        elif kind == "cancel" and n_jobs:
            jid = f"j{r % n_jobs}"
            if s.cancel(jid, now) is not None:
                eta.pop(jid, None)
        elif kind == "progress" and running:
            jid = running[r % len(running)]
            done = 1e4 - (eta[jid] - now) * 4.0 * (r % 3 + 1) / 3
            if done > 0:
                s.on_progress(jid, min(done, 1e4), now)
        elif kind == "node_fail":
            up = sorted(n for n, v in s.nodes.items() if v[2] == "up")
            if len(up) > 2:
                for jid in s.on_node_failed(up[r % len(up)], now):
                    eta.pop(jid, None)
        elif kind == "node_add":
            s.on_node_added(f"new/{added}", r % CLUSTER.n_pools, 8, now)
            added += 1
        decide()
    return log


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=EVENTS, policy=st.sampled_from(["fifo", "max-min", "las", "max-min-agnostic",
                                              "ftf"]),
       cut=st.integers(0, 59))
def test_replay_across_a_snapshot_gives_identical_decisions(
    events: list[tuple[str, float, int]], policy: str, cut: int
) -> None:
    whole = replay(events, policy, None)
    assert whole == replay(events, policy, None)  # deterministic
    assert replay(events, policy, min(cut, len(events) - 1)) == whole


def test_snapshot_is_plain_json_and_checks_its_policy() -> None:
    s = sched("max-min")
    for i in range(5):
        s.submit(job(i, gang=4, work=1e5, workload=TRAIN))
    s.schedule(0.0)
    data = json.loads(json.dumps(s.snapshot()))
    with pytest.raises(SuanliError, match="policy"):
        Scheduler.restore(data, CLUSTER, get_policy("fifo"), FixedRates(RATES))
    r = Scheduler.restore(data, CLUSTER, get_policy("max-min"), FixedRates(RATES))
    assert [r.job_state(f"j{i}") for i in range(5)] == [s.job_state(f"j{i}") for i in range(5)]


def test_adopt_running_and_external_stop_for_a_rebuilding_driver() -> None:
    """The service rebuilds the scheduler from its database: jobs it knows run somewhere are
    adopted on that pool (if it has room); a backend-side stop makes the job wait again."""
    s = sched()
    s.submit(job(0, gang=8, work=1e6))
    s.submit(job(1, gang=8, work=1e6))
    d = s.adopt_running("j0", FAST_EAST, 0.0)
    assert d is not None and d.action == "start" and d.pool == FAST_EAST
    assert s.job_state("j0") == "running"
    assert s.free[FAST_EAST] == s.capacity[FAST_EAST] - 8 * 1000
    assert s.adopt_running("j0", FAST_EAST, 0.0) is None  # not waiting any more
    assert s.adopt_running("j1", FAST_EAST, 0.0) is None  # no room left there: not counted
    assert s.job_state("j1") == "waiting"
    stop = s.stopped_externally("j0", 100.0)
    assert stop is not None and stop.action == "stop" and s.job_state("j0") == "waiting"
    assert s.free[FAST_EAST] == s.capacity[FAST_EAST]
    assert s.stopped_externally("j0", 101.0) is None  # already waiting
    with pytest.raises(SuanliError, match="unknown job id"):
        s.adopt_running("nope", FAST_EAST, 0.0)
