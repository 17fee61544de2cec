"""The planning MILP against brute-force enumeration, and its invariants (hypothesis)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suanli.plan.milp import Option, Pair, Problem, explain, solve


def _opt(i: int, site: int, capex: float, kw: float, vendor: str = "V") -> Option:
    return Option(name=f"o{i}", site=site, chip_id=f"c{i}", vendor=vendor, chips_per_node=8,
                  capex=capex, rent_hour=0.0, node_kw=kw, pue=1.2, electricity=0.5,
                  carbon=0.6, candidate=f"o{i}")


def _random_problem(rng: np.random.Generator, n_w: int, n_o: int, infer: bool = False,
                    power: bool = True) -> Problem:
    opts = [_opt(i, int(rng.integers(0, 2)), float(rng.uniform(0.5, 3.0)) * 1e6,
                 float(rng.uniform(3, 12))) for i in range(n_o)]
    pairs = []
    for w in range(n_w):
        for o in range(n_o):
            if rng.random() < 0.75:
                need = float(rng.uniform(0.3, 6.0)) if infer else float(rng.integers(1, 7))
                pairs.append(Pair(w, o, need, not infer))
        if not any(p.w == w for p in pairs):
            pairs.append(Pair(w, 0, float(rng.integers(1, 7)), not infer))
    cap = [float(rng.uniform(60, 200)) if power else None for _ in range(2)]
    return Problem(n_workloads=n_w, options=opts, pairs=pairs, n_sites=2, horizon_years=3.0,
                   power_cap_kw=cap, existing_kw=[0.0, 0.0], racks=[None, None],
                   mip_rel_gap=0.0)  # exact, to compare with enumeration


def _brute_train(p: Problem) -> float:
    """Min TCO by enumerating every assignment (nodes = ceil of the summed needs)."""
    per_w = [[pr for pr in p.pairs if pr.w == w] for w in range(p.n_workloads)]
    best = math.inf
    for combo in itertools.product(*per_w):
        need = np.zeros(len(p.options))
        for pr in combo:
            need[pr.o] += pr.need
        nodes = np.ceil(need - 1e-9)
        ok = True
        for s in range(p.n_sites):
            cap = p.power_cap_kw[s]
            if cap is None:
                continue
            kw = sum(nodes[o] * op.node_kw * op.pue for o, op in enumerate(p.options)
                     if op.site == s)
            ok &= kw <= cap + 1e-6
        if p.budget is not None:
            ok &= sum(nodes[o] * p.cost(op) for o, op in enumerate(p.options)) <= p.budget
        if ok:
            best = min(best, sum(nodes[o] * p.cost(op) for o, op in enumerate(p.options)))
    return best


@pytest.mark.parametrize("seed", range(25))
def test_training_plan_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = _random_problem(rng, n_w=int(rng.integers(1, 5)), n_o=int(rng.integers(1, 4)))
    brute = _brute_train(p)
    sol = solve(p)
    if math.isinf(brute):
        assert sol.status == "infeasible"
        return
    assert sol.ok
    cost = sum(sol.nodes[o] * p.cost(op) for o, op in enumerate(p.options))
    assert cost == pytest.approx(brute, rel=1e-6)
    assert sol.objective * 1e6 == pytest.approx(brute, rel=1e-6)


@pytest.mark.parametrize("seed", range(15))
def test_inference_split_matches_brute_force(seed: int) -> None:
    """One service split over chip types: min cost over node vectors with enough capacity."""
    rng = np.random.default_rng(100 + seed)
    p = _random_problem(rng, n_w=1, n_o=int(rng.integers(2, 4)), infer=True, power=False)
    need = {pr.o: pr.need for pr in p.pairs}
    best = math.inf
    ranges = [range(0, math.ceil(need[o]) + 1) if o in need else range(1)
              for o in range(len(p.options))]
    for nodes in itertools.product(*ranges):
        served = sum(nodes[o] / need[o] for o in need)
        if served >= 1 - 1e-9:
            best = min(best, sum(nodes[o] * p.cost(op) for o, op in enumerate(p.options)))
    sol = solve(p)
    assert sol.ok
    cost = sum(sol.nodes[o] * p.cost(op) for o, op in enumerate(p.options))
    assert cost == pytest.approx(best, rel=1e-6)


def test_infeasible_power_is_explained() -> None:
    p = Problem(n_workloads=1, options=[_opt(0, 0, 1e6, 10.0)], pairs=[Pair(0, 0, 20, True)],
                n_sites=1, power_cap_kw=[100.0], existing_kw=[0.0], racks=[None])
    assert solve(p).status == "infeasible"
    viol = explain(p)
    assert [v.tag for v in viol] == ["power:0"]
    assert viol[0].amount == pytest.approx(20 * 10 * 1.2 - 100)


def test_supply_and_share_constraints_bind() -> None:
    a, b = _opt(0, 0, 1e6, 5.0, vendor="A"), _opt(1, 0, 2e6, 5.0, vendor="B")
    a.intelligent_tflops, a.fp32eq_tflops = 0.0, 100.0  # general-purpose
    b.intelligent_tflops, b.fp32eq_tflops = 200.0, 100.0
    p = Problem(n_workloads=1, options=[a, b], pairs=[Pair(0, 0, 4, True), Pair(0, 1, 4, True)],
                n_sites=1, power_cap_kw=[None], existing_kw=[0.0], racks=[None])
    assert solve(p).nodes.tolist() == [4, 0]  # cheaper
    p.supply = {"A": 16}  # 2 nodes of A at most
    assert solve(p).nodes.tolist() == [0, 4]
    p.supply = {}
    p.share_min = 0.5
    sol = solve(p)
    assert sol.nodes.tolist() == [0, 4]  # share forces the intelligent part


small = st.integers(min_value=0, max_value=10_000)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=small, b1=st.floats(1e6, 2e7), extra=st.floats(0, 2e7))
def test_more_budget_never_lowers_throughput(seed: int, b1: float, extra: float) -> None:
    rng = np.random.default_rng(seed)
    p = _random_problem(rng, n_w=int(rng.integers(1, 4)), n_o=int(rng.integers(1, 4)),
                        power=False)
    p.objective = "max_throughput"
    p.budget = b1
    lo = solve(p)
    p.budget = b1 + extra
    hi = solve(p)
    assert lo.ok and hi.ok
    assert hi.served.sum() >= lo.served.sum() - 1e-6


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=small, drop=st.integers(0, 3))
def test_removing_a_candidate_never_lowers_cost(seed: int, drop: int) -> None:
    rng = np.random.default_rng(seed)
    p = _random_problem(rng, n_w=int(rng.integers(1, 4)), n_o=4)
    full = solve(p)
    keep = [o for o in range(4) if o != drop]
    remap = {o: i for i, o in enumerate(keep)}
    q = Problem(n_workloads=p.n_workloads, options=[p.options[o] for o in keep],
                pairs=[Pair(pr.w, remap[pr.o], pr.need, pr.integer) for pr in p.pairs
                       if pr.o != drop],
                n_sites=2, horizon_years=p.horizon_years, power_cap_kw=p.power_cap_kw,
                existing_kw=p.existing_kw, racks=p.racks, mip_rel_gap=0.0)
    if any(not any(pr.w == w for pr in q.pairs) for w in range(q.n_workloads)):
        return  # a workload lost its only option: infeasible by construction
    fewer = solve(q)
    if not full.ok:
        assert not fewer.ok
    elif fewer.ok:
        assert fewer.objective >= full.objective - 1e-6 * max(1.0, abs(full.objective))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=small, supply=st.booleans(), share=st.booleans(), existing=st.booleans())
def test_pruning_dominated_pairs_keeps_the_optimum(seed: int, supply: bool, share: bool,
                                                   existing: bool) -> None:
    from dataclasses import replace

    from suanli.plan.milp import dominated_pairs

    rng = np.random.default_rng(seed)
    p = _random_problem(rng, n_w=int(rng.integers(1, 5)), n_o=5)
    for i, op in enumerate(p.options):  # same site for all: dominance can apply
        op.site = 0
        op.vendor = "A" if i % 2 else "B"
        op.intelligent_tflops = float(rng.uniform(0, 100))
        op.fp32eq_tflops = float(rng.uniform(10, 100))
    p.power_cap_kw = [float(rng.uniform(60, 300)), None]
    if existing:
        p.options[0].new, p.options[0].existing, p.options[0].capex = False, 3, 0.0
    if supply:
        p.supply = {"A": int(rng.integers(8, 64))}
    if share:
        p.share_min = 0.3
    drop = dominated_pairs(p)
    q = replace(p, pairs=[pr for i, pr in enumerate(p.pairs) if i not in drop])
    a, b = solve(p), solve(q)
    assert a.ok == b.ok
    if a.ok:
        assert b.objective == pytest.approx(a.objective, rel=1e-9, abs=1e-9)
