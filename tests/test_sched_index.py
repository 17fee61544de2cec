"""The back-fill index (suanli.sched.waitindex) must decide exactly what planning every waiting
job decides: same starts, same pools, same order, on random small instances (hypothesis)."""

from __future__ import annotations

from unittest import mock

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import suanli.sched.scheduler as scheduler_mod
from suanli.sched import Queue, Scheduler, get_policy
from suanli.sched.policies import Policy
from suanli.sim.engine import SimResult, run_simulation
from test_sched_policies import RATES, FixedRates
from test_sim_engine import CLUSTER, job_st, make_jobs

POLICIES = ["fifo", "fifo-agnostic", "srpt", "las", "max-min", "max-min-agnostic", "ftf",
            "min-makespan", "max-throughput-agnostic", "min-cost", "balanced"]


def simulate(specs: list[tuple], policy: str, quota: float | None, indexed: bool) -> SimResult:
    jobs = make_jobs(specs)
    queues = [Queue("a", 1.0, quota), Queue("b", 2.0)]
    if indexed:  # the index for every queue length (normally from ELIG_MIN_QUEUE waiting)
        patch = mock.patch.object(scheduler_mod, "ELIG_MIN_QUEUE", 0)
    else:  # the reference: plan every waiting job at every back-fill
        patch = mock.patch.object(Policy, "fixed_while_waiting", False)
    with patch:
        return run_simulation(CLUSTER, jobs, policy, FixedRates(RATES), round_s=120.0,
                              queues=queues, record_decisions=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(job_st, min_size=5, max_size=50), policy=st.sampled_from(POLICIES),
       squeeze=st.sampled_from([1.0, 0.01]), quota=st.sampled_from([None, 8.0, 12.5]))
def test_indexed_backfill_decides_like_planning_every_waiting_job(
    specs: list[tuple], policy: str, squeeze: float, quota: float | None
) -> None:
    specs = [(s[0] * squeeze, *s[1:]) for s in specs]  # squeeze: deep queues
    fast = simulate(specs, policy, quota, indexed=True)
    ref = simulate(specs, policy, quota, indexed=False)
    assert fast.decisions == ref.decisions
    np.testing.assert_array_equal(fast.finish, ref.finish)
    within_quota(fast, quota)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(job_st, min_size=5, max_size=50),
       policy=st.sampled_from(["srpt", "las", "srpt-agnostic", "las-agnostic", "ftf", "fifo"]),
       squeeze=st.sampled_from([1.0, 0.01]))
def test_refiling_the_index_in_place_after_a_round_decides_like_a_rebuild(
    specs: list[tuple], policy: str, squeeze: float
) -> None:
    """After a round the index is re-filed in place (jobs whose order key and scores did not
    change keep their entries; entries of jobs that no longer wait are dropped) unless most
    entries change. Forced always in place (huge INDEX_SLACK) and always rebuilt (negative
    INDEX_SLACK): the same decisions."""
    specs = [(s[0] * squeeze, *s[1:]) for s in specs]
    out = []
    for slack in (10**9, -10**9):
        with mock.patch.object(scheduler_mod, "INDEX_SLACK", slack):
            out.append(simulate(specs, policy, None, indexed=True))
    assert out[0].decisions == out[1].decisions
    np.testing.assert_array_equal(out[0].finish, out[1].finish)


def within_quota(res: SimResult, quota: float | None) -> None:
    """Queue "a" never holds more than its quota. (Planning every job broke this once: the
    second, rate-scored pass of share policies started from the running use, not counting
    what the first pass had just placed.)"""
    used = 0
    for _, action, i, _, milli in res.decisions:
        if res.jobs[i].queue != "a":
            continue
        used += milli if action == "start" else -milli
        assert quota is None or used <= quota * 1000


def test_a_deep_queue_uses_the_index_and_skips_groups_that_cannot_start() -> None:
    """76 waiting 8-GPU jobs and one 1-GPU job behind them: a freed GPU starts the small job
    without visiting the big ones one by one (they are one group)."""
    from test_sched_policies import job

    s = Scheduler(CLUSTER, get_policy("fifo"), FixedRates(RATES))
    for i in range(80):
        s.submit(job(i, gang=8, work=1e6))
    s.schedule(0.0)  # fills every pool that takes 8
    s.submit(job(99, gang=1, work=10.0))
    assert len(s.waiting) > scheduler_mod.ELIG_MIN_QUEUE
    (d,) = s.schedule(1.0)
    assert d.job_id == "j99" and d.action == "start"
    ix = s._index[0]
    assert len(ix.heaps) == 2  # (8 GPUs, queue) and (1 GPU, queue): same eligible pools
    assert sorted(len(h) for h in ix.heaps) == [0, len(s.waiting)]
