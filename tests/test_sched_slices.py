"""Rounds in slices (``Scheduler(round_slice=...)``): a preemptive policy's round spread over
consecutive ``schedule()`` calls, each doing a bounded amount of work (issue 8, section 4: no
pass of the live service may take long, and a round of 100,000 jobs took 0.5-1.1 s).

What must hold: with nothing happening between the calls, the decisions are exactly those of
the whole round; with jobs ending, arriving, being cancelled or failing between the calls, the
scheduler's invariants hold, nothing ended is started or stopped again, and no job is lost; a
node event gives the round up; a snapshot in the middle restores to a round due at once."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suanli.errors import CannotRun, SuanliError
from suanli.sched import Decision, Job, Queue, Scheduler, get_policy
from suanli.sched.cluster import ClusterSpec, Pool
from suanli.sched.scheduler import APPLY_CHUNK
from test_sched_nodes import check

PREEMPTIVE = ["srpt", "las", "max-min", "ftf", "min-makespan", "max-throughput",
              "srpt-agnostic", "max-min-agnostic"]


class Rates:
    """Speeds per chip type, varied per job type (deterministic: crc32, not hash())."""

    name = "slices"

    def __init__(self, rates: dict[str, float]) -> None:
        self.rates = rates

    def key(self, job: Job) -> object:
        return job.job_type

    def rate(self, job_class: object, chip_type: str, n: int) -> float:
        r = self.rates[chip_type] * (1.0 + 0.2 * (zlib.crc32(str(job_class).encode()) % 3))
        if r <= 0:
            raise CannotRun(f"no rate on {chip_type}")
        return r * n


def cluster(nodes: int = 36, per_node: int = 8) -> tuple[ClusterSpec, Rates]:
    chips = ["a", "b", "c"]
    pools = []
    for k in range(6):
        n = nodes // 6
        pools.append(Pool(index=k, site=f"s{k % 2}", region=None, chip_type=chips[k // 2],
                          chip=None, devices=n * per_node, pue=1.2, price_cny_kwh=0.5,
                          carbon_kg_kwh=0.5, wan_gbps=100.0, power_w=400.0, power_known=False,
                          nodes=(per_node,) * n))
    return ClusterSpec(pools=pools), Rates({c: 1.0 + i for i, c in enumerate(chips)})


def random_job(rng: np.random.Generator, i: int, t: float) -> Job:
    gang = int(rng.choice([1, 1, 1, 2, 4, 8, 8, 16]))
    chips = None
    if rng.random() < 0.3:
        chips = frozenset(str(c) for c in rng.choice(["a", "b", "c"], size=2, replace=False))
    return Job(id=f"j{i}", arrival=t, gang=gang, work=float(rng.uniform(1e2, 1e5)),
               queue=f"q{int(rng.integers(2))}", job_type=f"t{int(rng.integers(4))}",
               allowed_chips=chips)


def make(policy: str, round_slice: float | None, nodes: int = 36) -> Scheduler:
    cl, rates = cluster(nodes)
    return Scheduler(cl, get_policy(policy), rates, round_s=60.0, round_slice=round_slice,
                     queues=[Queue("q0"), Queue("q1")])


def crowded(policy: str, seed: int, jobs: int = 500) -> Scheduler:
    """A sliced scheduler (one step per call) with ``jobs`` submitted and placed at 0 s."""
    s = make(policy, 1.0)
    rng = np.random.default_rng(seed)
    for i in range(jobs):
        s.submit(random_job(rng, i, 0.0), 0.0)
    until_done(s, 0.0)
    return s


def key(d: Decision) -> tuple[object, ...]:
    return (d.action, d.job_id, d.pool, d.demand_milli, d.rate, d.reason, d.placement)


def until_done(s: Scheduler, now: float) -> tuple[list[Decision], int]:
    """Every call of the round under way (if any) at one time: its decisions and calls."""
    out = s.schedule(now)
    calls = 1
    while s.round_in_progress:
        assert s.next_wakeup(now) == now
        out += s.schedule(now)
        calls += 1
    return out, calls


@pytest.mark.parametrize("policy", PREEMPTIVE)
def test_a_round_in_slices_decides_exactly_what_the_whole_round_decides(policy: str) -> None:
    whole, sliced = make(policy, None), make(policy, 20.0)
    rng = np.random.default_rng(zlib.crc32(policy.encode()))
    n, now, most = 0, 0.0, 0
    for step in range(40):
        for s in (whole, sliced):
            assert sorted(s.running) == sorted(whole.running)
        fin = sorted(whole.jobs[x].id for x in whole.running)
        for j in ([fin[int(k)] for k in rng.choice(len(fin), size=min(3, len(fin)),
                                                   replace=False)] if fin else []):
            whole.on_finish(j, now)
            sliced.on_finish(j, now)
        for _ in range(40 if step == 0 else 6):
            job = random_job(rng, n, now)
            whole.submit(job, now)
            sliced.submit(job, now)
            n += 1
        a = whole.schedule(now)
        b, calls = until_done(sliced, now)
        most = max(most, calls)
        assert [key(d) for d in b] == [key(d) for d in a], (policy, step)
        assert whole.next_wakeup(now) == sliced.next_wakeup(now)
        now += 15.0
    assert whole.stats["rounds"] >= 5
    assert whole.stats["rounds"] == sliced.stats["rounds"]
    assert most > 3, "the rounds were never cut into slices"


def test_each_call_of_a_round_in_slices_does_a_bounded_share() -> None:
    """With the smallest budget a call carries out at most one chunk of stops or starts
    (the back-fill after the round included)."""
    s = make("las", 1.0, nodes=240)
    rng = np.random.default_rng(3)
    for i in range(3000):
        s.submit(random_job(rng, i, 0.0), 0.0)
    s.round_slice = None
    s.schedule(0.0)
    s.round_slice = 1.0
    now = 60.0
    s.submit(random_job(rng, 10_000, now), now)  # a round is due and someone waits
    assert s.next_wakeup(now) == now
    sizes = []
    out = s.schedule(now)
    sizes.append(len(out))
    while s.round_in_progress:
        sizes.append(len(s.schedule(now)))
    assert len(sizes) > 20
    assert max(sizes) <= APPLY_CHUNK
    assert sum(sizes) > APPLY_CHUNK  # LAS turns the cluster over: there was work to spread


def plan_of(s: Scheduler, now: float) -> list[Decision]:
    """What the round due at ``now`` decides, on a copy (a restored snapshot)."""
    policy = get_policy(s.policy.label)
    cp = Scheduler.restore(s.snapshot(), s.cluster, policy, s.matrix)
    return cp.schedule(now)


def test_jobs_that_end_or_are_cancelled_mid_round_are_neither_started_nor_stopped() -> None:
    s = crowded("srpt", 5, jobs=600)
    now = 60.0
    for i in range(600, 700):  # short jobs arrive: SRPT preempts long ones for them
        s.submit(Job(id=f"j{i}", arrival=now, gang=1, work=10.0, job_type="t0"), now)
    plan = plan_of(s, now)
    starts = [d.job_id for d in plan if d.action == "start"]
    stops = [d.job_id for d in plan if d.action == "stop" and d.reason == "preempted"]
    assert starts and stops
    first = s.schedule(now)
    assert s.round_in_progress and not first
    s.cancel(starts[0], now)  # waiting, planned to start
    s.on_finish(stops[0], now)  # running, planned to be preempted
    later, _ = until_done(s, now)
    assert starts[0] not in {d.job_id for d in later}
    assert stops[0] not in {d.job_id for d in later}
    assert s.job_state(starts[0]) == "cancelled"
    assert s.job_state(stops[0]) == "done"
    check(s)
    # and the rest of the plan was carried out (a start whose gang no longer fits the real
    # nodes waits, as after any round: the two events changed which devices are free)
    done = {d.job_id for d in later if d.action == "start"} & set(starts[1:])
    assert len(done) >= 0.9 * len(starts[1:]), (len(done), len(starts))


def test_a_node_event_gives_the_round_up_and_a_new_one_is_due_at_once() -> None:
    s = crowded("max-min", 8)
    now = 60.0
    s.schedule(now)
    assert s.round_in_progress
    node = next(iter(s.nodes))
    s.on_node_failed(node, now)
    assert not s.round_in_progress
    assert s.next_wakeup(now) == now
    rounds = s.stats["rounds"]
    until_done(s, now)
    assert s.stats["rounds"] == rounds + 1
    check(s)


def test_a_snapshot_mid_round_restores_to_a_round_due_at_once() -> None:
    s = crowded("las", 9)
    now = 60.0
    s.schedule(now)
    s.schedule(now)
    assert s.round_in_progress
    cl, rates = cluster()
    r = Scheduler.restore(s.snapshot(), cl, get_policy("las"), rates, round_slice=1.0)
    assert not r.round_in_progress
    assert r.next_wakeup(now + 1) == now  # due (since the round's start)
    until_done(r, now + 1)
    check(r)
    assert sorted(r.running) == sorted(r.placement)


@pytest.mark.parametrize("bad", [0.0, -5.0, float("nan"), float("inf")])
def test_a_nonsense_slice_is_refused(bad: float) -> None:
    with pytest.raises(SuanliError, match="round slice"):
        make("las", bad)


# ------------------------------------------------------------------ invariants (hypothesis)
EVENTS = st.lists(st.tuples(
    st.sampled_from(["submit", "submit", "finish", "finish", "cancel", "fail", "slice", "slice",
                     "slice", "tick", "fail_node", "add_node"]),
    st.integers(0, 10_000)), min_size=10, max_size=90)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=EVENTS, policy=st.sampled_from(["srpt", "las", "max-min", "ftf"]))
def test_invariants_hold_with_events_between_the_slices_of_a_round(
        events: list[tuple[str, int]], policy: str) -> None:
    s = make(policy, 30.0)
    rng = np.random.default_rng(11)
    for i in range(120):  # a crowded cluster: rounds have work to do
        s.submit(random_job(rng, i, 0.0), 0.0)
    until_done(s, 0.0)
    n, now, added = 120, 0.0, 0
    ended: set[str] = set()
    for kind, r in events:
        if kind == "tick":
            now += 20.0
        running = sorted(s.jobs[x].id for x in s.running)
        waiting = sorted(s.waiting_ids())
        if kind == "submit":
            s.submit(random_job(rng, n, now), now)
            n += 1
        elif kind == "finish" and running:
            j = running[r % len(running)]
            s.on_finish(j, now)
            ended.add(j)
        elif kind == "cancel" and (running or waiting):
            pick = (running + waiting)[r % (len(running) + len(waiting))]
            s.cancel(pick, now)
            ended.add(pick)
        elif kind == "fail" and running:
            s.on_fail(running[r % len(running)], now, "test")
        elif kind == "fail_node":
            up = sorted(k for k, v in s.nodes.items() if v[2] == "up")
            if len(up) > 3:
                s.on_node_failed(up[r % len(up)], now)
        elif kind == "add_node":
            s.on_node_added(f"new/{added}", r % s.P, 8, now)
            added += 1
        out = s.schedule(now)
        assert not ({d.job_id for d in out} & ended), "an ended job was started or stopped"
        for d in out:
            if d.action == "start":
                assert s.job_state(d.job_id) == "running"
        check(s)
        # every job is in exactly one place
        states = [s.job_state(j.id) for j in s.jobs]
        assert len(states) == n
        assert sum(st_ == "running" for st_ in states) == len(s.running)
    until_done(s, now)
    check(s)


def test_a_driver_cost_per_decision_means_fewer_decisions_per_call() -> None:
    """``decision_us`` (the driver's own work per decision) shrinks what one call carries out,
    and the decisions stay those of the whole round."""
    whole = crowded("las", 12)
    whole.round_slice = None
    sliced = crowded("las", 12)
    sliced.round_slice, sliced.decision_us = 2_000.0, 400.0
    now = 60.0
    for s in (whole, sliced):
        s.submit(Job(id="late", arrival=now, gang=1, work=10.0, job_type="t0"), now)
    a = whole.schedule(now)
    got = sliced.schedule(now)
    sizes = [len(got)]
    while sliced.round_in_progress:
        out = sliced.schedule(now)
        got += out
        sizes.append(len(out))
    assert [key(d) for d in got] == [key(d) for d in a]
    assert len(a) > 40 and max(sizes) <= 2 * 16


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_a_nonsense_decision_cost_is_refused(bad: float) -> None:
    cl, rates = cluster()
    with pytest.raises(SuanliError, match="decision cost"):
        Scheduler(cl, get_policy("las"), rates, round_slice=100.0, decision_us=bad)
