"""Simulator invariants (hypothesis): capacity, gangs, completion, work, determinism, filters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from needs import data_file
from sched_support import make_cluster
from suanli.perf.workload import Workload
from suanli.sched import Job, MeasuredThroughput, Queue
from suanli.sim.engine import run_simulation
from suanli.sim.setup import gavel_fleet
from suanli.sim.traces import load_gavel
from test_sched_policies import RATES, FixedRates

CLUSTER = make_cluster()
POLICIES = ["fifo", "fifo-agnostic", "srpt", "las", "max-min", "max-min-agnostic", "ftf",
            "min-makespan", "max-throughput", "min-cost", "min-energy-agnostic", "min-carbon"]
W_TRAIN, W_HPC = Workload(kind="train"), Workload(kind="hpc")

job_st = st.builds(
    lambda arr, gang, work, cuda, fp64, mem, frac, q, site: (arr, gang, work, cuda, fp64, mem,
                                                             frac, q, site),
    st.floats(0, 5000), st.sampled_from([1, 1, 2, 4, 8, 16, 32]), st.floats(1.0, 5e4),
    st.booleans(), st.booleans(), st.sampled_from([0.0, 16.0, 70.0]),
    st.sampled_from([1.0, 1.0, 0.5]), st.sampled_from(["a", "b"]),
    st.sampled_from([None, "east", "west"]),
)


def make_jobs(specs: list[tuple]) -> list[Job]:
    out = []
    for i, (arr, gang, work, cuda, fp64, mem, frac, q, site) in enumerate(specs):
        out.append(Job(
            id=f"j{i}", arrival=arr, gang=gang, work=work, queue=q,
            workload=W_HPC if fp64 else W_TRAIN, cuda_only=cuda, fp64=fp64, mem_gb=mem,
            gpu_fraction=frac if gang == 1 else 1.0, data_gb=50.0 if site else 0.0,
            home_site=site,
        ))
    return out


def check_invariants(res, jobs: list[Job]) -> None:
    cap = CLUSTER.capacity_milli
    used = np.zeros(len(cap), dtype=np.int64)
    where: dict[int, int] = {}
    by_id = {j.id: j for j in res.jobs}
    for t, action, i, pool, milli in res.decisions:
        job = res.jobs[i]
        if action == "start":
            assert i not in where, "job started twice"
            assert milli == job.demand_milli  # the whole gang, on one pool
            where[i] = pool
            used[pool] += milli
            assert used[pool] <= cap[pool], f"pool {pool} over-allocated at t={t}"
            p = CLUSTER.pools[pool]
            if job.cuda_only:
                assert p.chip.stack.cuda_compat in ("native", "binary")
            if job.fp64:
                assert p.chip.supports("fp64") is not False
            if job.mem_gb:
                assert job.mem_gb <= p.chip.memory_gb
        else:
            assert where.pop(i) == pool
            used[pool] -= milli
    assert not where and (used == 0).all()
    done = res.completed
    for i, j in enumerate(res.jobs):
        assert done[i] != (j.id in res.unrunnable), j.id
        if j.id in res.unrunnable:
            assert res.unrunnable[j.id]
    # no work lost or invented
    work = np.array([j.work for j in res.jobs])
    np.testing.assert_allclose(res.work_done[done], work[done], rtol=1e-9)
    assert res.work_done[~done].sum() == 0
    assert res.metrics["work_done"] == pytest.approx(work[done].sum(), rel=1e-9)
    assert len(by_id) == len(jobs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(job_st, min_size=1, max_size=40), policy=st.sampled_from(POLICIES),
       round_s=st.sampled_from([60.0, 360.0]))
def test_invariants_hold_for_any_trace_and_policy(specs: list[tuple], policy: str,
                                                  round_s: float) -> None:
    jobs = make_jobs(specs)
    res = run_simulation(CLUSTER, jobs, policy, FixedRates(RATES), round_s=round_s,
                         record_decisions=True)
    check_invariants(res, jobs)


@settings(max_examples=8, deadline=None)
@given(specs=st.lists(job_st, min_size=5, max_size=30), policy=st.sampled_from(POLICIES))
def test_same_input_same_result(specs: list[tuple], policy: str) -> None:
    jobs = make_jobs(specs)
    a = run_simulation(CLUSTER, jobs, policy, FixedRates(RATES), record_decisions=True)
    b = run_simulation(CLUSTER, jobs, policy, FixedRates(RATES), record_decisions=True)
    assert a.decisions == b.decisions
    np.testing.assert_array_equal(a.finish, b.finish)


def test_quota_never_exceeded_in_simulation() -> None:
    jobs = [Job(id=f"j{i}", arrival=float(i), gang=2, work=1000.0, queue="capped",
                workload=W_TRAIN) for i in range(20)]
    jobs.append(Job(id="huge", arrival=0.0, gang=8, work=10.0, queue="capped",
                    workload=W_TRAIN))
    res = run_simulation(CLUSTER, jobs, "las", FixedRates(RATES),
                         queues=[Queue("capped", quota=4)], record_decisions=True)
    held = 0
    for _, action, _, _, milli in res.decisions:
        held += milli if action == "start" else -milli
        assert held <= 4000
    assert res.metrics["completed"] == 20
    assert "never placed" in res.unrunnable["huge"]


def test_metrics_are_consistent() -> None:
    jobs = make_jobs([(float(i * 10), 4, 2e4, False, False, 0.0, 1.0, "a", None)
                      for i in range(30)])
    res = run_simulation(CLUSTER, jobs, "fifo", FixedRates(RATES))
    m = res.metrics
    assert m["completed"] == 30 and m["unrunnable"] == 0
    assert m["jct_s"]["median"] <= m["jct_s"]["p99"] <= m["jct_s"]["max"]
    assert 0 < m["utilisation"] <= 1
    assert m["energy_kwh"] > 0 and m["cost_cny"] > 0 and m["carbon_kg"] > 0
    assert sum(v["share"] for v in m["by_chip_type"].values()) == pytest.approx(1.0)
    assert m["fairness_rho"]["mean"] > 0


def test_gavel_heterogeneity_awareness_cuts_jct() -> None:
    """Direction of Gavel's result on its own trace and matrix at moderate load."""
    from suanli.sched.cluster import ClusterSpec

    tr = load_gavel(data_file("gavel_300jobs.trace"))
    jobs = [j.__class__(**{**{f: getattr(j, f) for f in j.__dataclass_fields__},
                           "arrival": j.arrival / 30}) for j in tr.jobs]
    cl = ClusterSpec.from_fleet(gavel_fleet(), None, opaque={"*"})
    tp = MeasuredThroughput.from_file(data_file("gavel_throughputs_solo.json"))
    aware = run_simulation(cl, jobs, "max-min", tp).metrics["jct_s"]["mean"]
    agnostic = run_simulation(cl, jobs, "max-min-agnostic", tp).metrics["jct_s"]["mean"]
    assert agnostic / aware > 1.2


def test_jobs_without_work_are_rejected() -> None:
    from suanli.errors import SuanliError

    j = Job(id="x", arrival=0.0, gang=1, work=0.0, workload=W_TRAIN, duration_ref=10.0,
            origin="t.csv row 2")
    with pytest.raises(SuanliError, match=r"t.csv row 2: job has no work"):
        run_simulation(CLUSTER, [j], "fifo", FixedRates(RATES))


def test_energy_leaves_out_chips_with_unknown_tdp() -> None:
    """Unknown TDP is never guessed into the energy figures: those busy hours are reported."""
    from sched_support import make_chip, make_fleet
    from suanli.catalog.loader import Catalog
    from suanli.sched.cluster import ClusterSpec

    catalog = Catalog([
        make_chip("fast_gpu", 900.0, mem_gb=80, tdp=700),
        make_chip("mid_npu", 300.0, fp64=None, mem_gb=64, tdp=350, compat="port"),
        make_chip("slow_dcu", 150.0, fp64=20.0, mem_gb=32, tdp=None, compat="source"),
    ])
    cluster = ClusterSpec.from_fleet(make_fleet(), catalog)
    jobs = make_jobs([(float(i), 8, 5e4, False, False, 0.0, 1.0, "a", None) for i in range(40)])
    res = run_simulation(cluster, jobs, "max-min", FixedRates(RATES))
    m = res.metrics
    unknown = [p.index for p in cluster.pools if p.chip_type == "slow_dcu"]
    assert m["energy_unknown_for"] == ["slow_dcu"]
    assert m["energy_excluded_busy_dev_h"] > 0  # the chip did run jobs
    assert m["energy_excluded_busy_dev_h"] == pytest.approx(
        sum(res.busy_dev_s[i] for i in unknown) / 3600)
    expected = sum(res.busy_dev_s[p.index] / 3600 * p.power_w / 1000 * p.pue
                   for p in cluster.pools if p.index not in unknown)
    assert m["energy_kwh"] == pytest.approx(expected)
