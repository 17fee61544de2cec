"""Scheduler, filters, throughput matrix and allocation LPs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from needs import DATA
from sched_support import make_catalog, make_cluster
from suanli.errors import CannotRun, SuanliError
from suanli.perf.workload import Workload
from suanli.sched import (
    ClusterState,
    Job,
    MeasuredThroughput,
    ModelThroughput,
    Queue,
    Scheduler,
    ThroughputMatrix,
    get_policy,
    lp,
    policy_names,
)
from suanli.sched.cluster import ClusterSpec

GAVEL_TP = DATA / "gavel_throughputs_solo.json"
TRAIN = Workload(kind="train")
HPC = Workload(kind="hpc")


class FixedRates:
    """Provider with hand-set rates per chip type (linear in n), counting calls."""

    name = "fixed"

    def __init__(self, rates: dict[str, float]) -> None:
        self.rates = rates
        self.calls = 0

    def key(self, job: Job) -> object:
        return job.workload

    def rate(self, job_class: object, chip_type: str, n: int) -> float:
        self.calls += 1
        r = self.rates.get(chip_type, 0.0)
        if r <= 0:
            raise CannotRun(f"no rate on {chip_type}")
        return r * n


RATES = {"fast_gpu": 4.0, "mid_npu": 2.0, "slow_dcu": 1.0}


def job(i: int, gang: int = 1, work: float = 100.0, **kw: object) -> Job:
    return Job(id=f"j{i}", arrival=float(kw.pop("arrival", 0.0)), gang=gang, work=work,
               workload=kw.pop("workload", TRAIN), **kw)  # type: ignore[arg-type]


def sched(policy: str = "fifo", **kw: object) -> Scheduler:
    return Scheduler(make_cluster(), get_policy(policy), FixedRates(RATES), **kw)  # type: ignore[arg-type]


def test_policy_registry() -> None:
    names = policy_names()
    for n in ("fifo", "srpt", "las", "max-min", "ftf", "min-makespan", "max-throughput",
              "min-cost", "min-energy", "min-carbon", "balanced"):
        assert n in names and f"{n}-agnostic" in names
    assert get_policy("gavel").name == "max-min"
    assert not get_policy("max-min-agnostic").aware
    with pytest.raises(SuanliError, match="unknown policy 'nope'"):
        get_policy("nope")


def test_fifo_places_on_fastest_pool_and_agnostic_balances() -> None:
    s = sched("fifo")
    s.submit(job(0, gang=4), 0.0)
    (d,) = s.schedule(0.0)
    assert d.action == "start" and s.cluster.pools[d.pool].chip_type == "fast_gpu"
    assert d.rate == pytest.approx(16.0)
    a = sched("fifo-agnostic")
    a.submit(job(0, gang=4), 0.0)
    (d,) = a.schedule(0.0)
    # agnostic: every allowed pool looks equal; the emptiest (by free fraction) wins, ties by
    # pool order -> the first pool; a second job then goes elsewhere
    a.submit(job(1, gang=4), 0.0)
    (d2,) = a.schedule(0.0)
    assert d2.pool != d.pool


def test_filters_cuda_fp64_memory_allowed_sites() -> None:
    s = sched("fifo")
    cuda = s.submit(job(0, gang=8, cuda_only=True), 0.0)
    fp64 = s.submit(job(1, gang=8, fp64=True, workload=HPC,
                        allowed_chips=frozenset({"mid_npu", "slow_dcu"})), 0.0)
    big = s.submit(job(2, mem_gb=70.0), 0.0)
    only = s.submit(job(3, allowed_chips=frozenset({"mid_npu"})), 0.0)
    west = s.submit(job(4, allowed_sites=frozenset({"west"})), 0.0)
    assert (cuda, fp64, big, only, west) == (None,) * 5
    types = {d.job_id: s.cluster.pools[d.pool] for d in s.schedule(0.0)}
    assert types["j0"].chip.stack.cuda_compat in ("native", "binary")
    assert types["j1"].chip_type == "slow_dcu"  # the NPU has no FP64
    assert types["j2"].chip_type == "fast_gpu"  # only the 80 GB chip fits 70 GB
    assert types["j3"].chip_type == "mid_npu"
    assert types["j4"].site == "west"


def test_unrunnable_jobs_get_a_reason() -> None:
    s = sched("fifo")
    r = s.submit(job(0, gang=64), 0.0)
    assert r is not None and "gang of 64" in r
    r2 = s.submit(job(1, fp64=True, cuda_only=True, workload=HPC,
                      allowed_chips=frozenset({"mid_npu"})), 0.0)
    assert r2 is not None and "no pool can run it" in r2
    assert set(s.unrunnable) == {"j0", "j1"}
    assert s.schedule(0.0) == []


def test_throughput_matrix_is_built_once_per_class() -> None:
    prov = FixedRates(RATES)
    s = Scheduler(make_cluster(), get_policy("fifo"), prov)
    for i in range(50):
        s.submit(job(i, gang=2), float(i))
        s.schedule(float(i))
    assert prov.calls == len(s.cluster.chip_types)  # one row, for the one (class, gang)


def test_gang_all_or_nothing_and_capacity() -> None:
    s = sched("fifo-agnostic")
    for i in range(6):
        s.submit(job(i, gang=8), 0.0)
    starts = s.schedule(0.0)
    assert all(d.demand_milli == 8000 for d in starts)
    used = np.zeros(s.P, dtype=int)
    for d in starts:
        used[d.pool] += d.demand_milli
    assert (used <= s.capacity).all()
    # 8 fast(east) + 8 slow + 16 npu + 4 fast(west, too small for 8): 4 gangs of 8 fit
    assert len(starts) == 4 and len(s.waiting) == 2


def test_patience_waits_for_a_much_faster_pool() -> None:
    s = sched("fifo")
    s.submit(job(0, gang=8), 0.0)
    s.submit(job(1, gang=8), 0.0)
    starts = s.schedule(0.0)
    # j1 could run on the NPUs (2x slower than the free... busy fast GPUs) -> within patience 3
    assert {d.job_id: s.cluster.pools[d.pool].chip_type for d in starts} == {
        "j0": "fast_gpu", "j1": "mid_npu"}
    s2 = sched("fifo")
    s2.submit(job(0, gang=8, allowed_chips=frozenset({"fast_gpu", "slow_dcu"})), 0.0)
    s2.submit(job(1, gang=8, allowed_chips=frozenset({"fast_gpu", "slow_dcu"})), 0.0)
    starts = s2.schedule(0.0)
    # the DCU is 4x slower than the fast GPU: j1 waits for it instead (patience 3)
    assert [d.job_id for d in starts] == ["j0"] and list(s2.waiting) == [1]


def test_quota_caps_a_queue() -> None:
    s = sched("fifo", queues=[Queue("small", quota=4)])
    for i in range(5):
        s.submit(job(i, gang=2, queue="small"), 0.0)
    starts = s.schedule(0.0)
    assert sum(d.demand_milli for d in starts) == 4000


def test_cluster_state_limits_free_capacity() -> None:
    s = sched("fifo")
    free = s.capacity.copy()
    free[:] = 0
    free[2] = 2000  # only 2 NPUs reported free by the executors
    s.submit(job(0, gang=2), 0.0)
    s.submit(job(1, gang=2), 0.0)
    starts = s.schedule(0.0, ClusterState(free_milli=free))
    assert [(d.job_id, d.pool) for d in starts] == [("j0", 2)]


def test_preemptive_round_and_finish() -> None:
    s = sched("srpt", round_s=100.0)
    s.submit(job(0, gang=8, work=1e6), 0.0)
    s.submit(job(1, gang=8, work=1e6), 0.0)
    s.submit(job(2, gang=8, work=1e6), 0.0)
    s.submit(job(3, gang=8, work=1e6), 0.0)
    s.submit(job(4, gang=16, work=1e6), 0.0)
    s.schedule(0.0)
    assert s.next_wakeup(0.0) == pytest.approx(100.0)  # someone waits -> a round is due
    s.submit(job(5, gang=8, work=10.0), 50.0)
    s.schedule(50.0)
    out = s.schedule(100.0)
    stops = [d for d in out if d.action == "stop"]
    starts = [d for d in out if d.action == "start"]
    assert any(d.job_id == "j5" for d in starts) and stops  # the short job preempts
    s.on_finish("j5", 120.0)
    assert s.job_state("j5") == "done"


def test_data_staging_time_when_running_away_from_home() -> None:
    s = sched("fifo")
    s.submit(job(0, gang=8, data_gb=100.0, home_site="west",
                 allowed_sites=frozenset({"east"})), 0.0)
    (d,) = s.schedule(0.0)
    assert s.cluster.pools[d.pool].site == "east"
    assert d.stage_s == pytest.approx(100.0 * 8 / 10)  # east WAN is 10 Gbps


def test_max_min_lp_gives_each_job_its_comparative_advantage() -> None:
    R = np.array([[1.0, 1.0], [1.0, 4.0]])
    X = lp.max_min(R, np.ones(2), np.ones(2), np.ones(2), np.array([1.0, 1.0]))
    assert X[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert X[1, 1] == pytest.approx(1.0, abs=1e-6)
    # agnostic rates (equal) give the same total but no reason to prefer pools
    assert X.sum() == pytest.approx(2.0, abs=1e-6)


def test_share_lps_respect_capacity_and_one_place_at_a_time() -> None:
    rng = np.random.default_rng(3)
    R = rng.uniform(0, 5, (12, 4)) * (rng.random((12, 4)) > 0.2)
    m = rng.integers(1, 5, 12).astype(float)
    g = rng.choice([1.0, 2.0, 4.0], 12)
    cap = np.array([8.0, 4.0, 16.0, 2.0])
    for X in (
        lp.max_min(R, m, g, np.ones(12), cap),
        lp.max_throughput(R, m, g, cap),
        lp.min_makespan(R, m, g, cap, rng.uniform(1, 10, 12)),
        lp.water_fill(R, m, g, np.ones(12), cap),
    ):
        assert (X >= -1e-9).all() and (X.sum(axis=1) <= 1 + 1e-6).all()
        assert ((m * g) @ X <= cap + 1e-6).all()
        assert (X[R <= 0] == 0).all()


def test_max_min_heuristic_is_used_for_huge_problems() -> None:
    R = np.ones((30, 3))
    X = lp.max_min(R, np.ones(30), np.ones(30), np.ones(30), np.array([5.0, 5.0, 5.0]),
                   max_vars=10)
    assert X.sum() == pytest.approx(15.0)


def test_measured_throughputs_from_gavel_matrix() -> None:
    tp = MeasuredThroughput.from_file(GAVEL_TP)
    r_k80 = tp.rate("ResNet-50 (batch size 64)", "nvidia_k80", 1)
    r_v100 = tp.rate("ResNet-50 (batch size 64)", "v100", 1)
    assert 0 < r_k80 < r_v100
    assert tp.rate("ResNet-50 (batch size 64)", "nvidia_v100", 4) > r_v100
    with pytest.raises(CannotRun):
        tp.rate("ResNet-50 (batch size 64)", "ascend_910b", 1)
    with pytest.raises(CannotRun):
        tp.rate("A3C", "k80", 8)


def test_measured_matrix_bad_file(tmp_path: Path) -> None:
    p = tmp_path / "tp.json"
    p.write_text('{"k80": {"not a tuple": {"null": 1}}}')
    with pytest.raises(SuanliError, match=r"tp.json: gpu 'k80': not a tuple"):
        MeasuredThroughput.from_file(p)


def test_model_throughput_uses_perf_model() -> None:
    cat = make_catalog()
    cl = ClusterSpec.from_fleet(
        __import__("sched_support").make_fleet(), cat
    )
    tp = ModelThroughput({p.chip_type: p.chip for p in cl.pools})
    m = ThroughputMatrix(tp, cl.chip_types)
    rates, reasons = m.row(job(0, workload=Workload(kind="hpc")))
    i_npu = cl.chip_types.index("mid_npu")
    assert rates[i_npu] == 0 and reasons[i_npu]  # no FP64 on the NPU
    assert rates[cl.chip_types.index("fast_gpu")] > 0


def test_site_choice_weighs_price_and_data_movement() -> None:
    # both sites have fast GPUs (east: 8, west: 4); west power is cheaper
    only_fast = frozenset({"fast_gpu"})
    s = sched("min-cost")
    s.submit(job(0, gang=4, work=1e5, allowed_chips=only_fast), 0.0)
    (d,) = s.schedule(0.0)
    assert s.cluster.pools[d.pool].site == "west"
    # balanced: cheap electricity is not worth moving 50 TB out of east over its 10 Gbps WAN
    b = sched("balanced")
    b.submit(job(0, gang=4, work=1e5, allowed_chips=only_fast, data_gb=50_000.0,
                 home_site="east"), 0.0)
    (d,) = b.schedule(0.0)
    assert s.cluster.pools[d.pool].site == "east" and d.stage_s == 0
    # without data to move, balanced also goes west
    b2 = sched("balanced")
    b2.submit(job(0, gang=4, work=1e7, allowed_chips=only_fast), 0.0)
    (d,) = b2.schedule(0.0)
    assert s.cluster.pools[d.pool].site == "west"


def test_region_names_allowed() -> None:
    from sched_support import make_fleet
    from suanli.fleet.schema import Fleet

    data = make_fleet().model_dump()
    data["sites"][1]["region"] = "hub-west"
    cl = ClusterSpec.from_fleet(Fleet.model_validate(data), make_catalog())
    s = Scheduler(cl, get_policy("fifo"), FixedRates(RATES))
    s.submit(job(0, allowed_sites=frozenset({"hub-west"})), 0.0)
    (d,) = s.schedule(0.0)
    assert cl.pools[d.pool].site == "west"


def test_cluster_state_hides_capacity_for_one_call_only() -> None:
    s = sched("fifo-agnostic")
    none_free = np.zeros(s.P, dtype=np.int64)
    s.submit(job(0, gang=2), 0.0)
    assert s.schedule(0.0, ClusterState(free_milli=none_free)) == []
    assert (s.free == s.capacity).all()
    (d,) = s.schedule(1.0)
    assert d.job_id == "j0"


def test_register_a_custom_policy() -> None:
    from suanli.sched import Policy, register_policy
    from suanli.sched.policies import POLICIES

    @register_policy
    class Biggest(Policy):
        name = "biggest-first"

        def queue_order(self, view, slots, now):
            return -view.gang(slots)

    try:
        s = Scheduler(make_cluster(), get_policy("biggest-first"), FixedRates(RATES))
        s.submit(job(0, gang=1), 0.0)
        s.submit(job(1, gang=8), 0.0)
        s.submit(job(2, gang=8), 0.0)
        starts = s.schedule(0.0)
        assert [d.job_id for d in starts][:2] == ["j1", "j2"]
    finally:
        POLICIES.pop("biggest-first")


def test_support_builds_a_cluster() -> None:
    c = make_cluster()
    assert [p.label for p in c.pools] == [
        "east/fast_gpu",
        "east/slow_dcu",
        "west/mid_npu",
        "west/fast_gpu",
    ]
    assert c.devices == 8 + 8 + 16 + 4
