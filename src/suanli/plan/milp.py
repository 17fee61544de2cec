"""The planning MILP (scipy.optimize.milp / HiGHS) on plain numbers.

Variables: integer node counts ``n[o]`` per option (a node configuration at a site, bought new
or an existing node group), assignment ``a[p]`` per feasible (workload, option) pair -- binary
for training / HPC (a run uses one configuration), a fraction in [0, 1] for inference services
(replicas can spread over chip types) -- and, for ``max_throughput``, the served fraction
``s[w]``.

Constraints: every workload served (``sum a = 1``, or ``= s[w]``); capacity per option
``sum need[p] a[p] <= n[o]``; facility power per site; free racks per site; budget (capex +
opex over the horizon); supply per vendor; per-candidate node caps; intelligent-compute share.

Infeasibility: :func:`explain` re-solves with elastic slack on every resource row and reports
which constraints must be relaxed and by how much.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HOURS_PER_YEAR = 8760.0
COST_SCALE = 1e6  # the MILP works in million CNY


@dataclass
class Option:
    name: str  # candidate name or existing node-group label
    site: int
    chip_id: str
    vendor: str
    chips_per_node: int
    capex: float  # CNY per node (0 for existing)
    rent_hour: float  # CNY per node-hour
    node_kw: float  # IT kW per node at full load
    pue: float
    electricity: float  # CNY/kWh
    carbon: float  # kg/kWh
    existing: int = 0  # nodes already owned (existing options only)
    new: bool = True
    candidate: str | None = None  # for per-candidate caps
    nodes_per_rack: float = 4.0
    intelligent_tflops: float = 0.0  # per node, class precision
    fp32eq_tflops: float = 0.0  # per node, FP32-equivalent of its class


@dataclass
class Pair:
    w: int
    o: int
    need: float  # nodes per unit of assignment
    integer: bool


@dataclass
class Problem:
    n_workloads: int
    options: list[Option]
    pairs: list[Pair]
    n_sites: int
    horizon_years: float = 5.0
    load_factor: float = 0.7
    objective: str = "min_tco"
    weights: list[float] = field(default_factory=list)
    power_cap_kw: list[float | None] = field(default_factory=list)  # facility kW per site
    existing_kw: list[float] = field(default_factory=list)  # facility kW already installed
    racks: list[float | None] = field(default_factory=list)
    budget: float | None = None
    supply: dict[str, int] = field(default_factory=dict)  # vendor -> accelerators
    candidate_caps: dict[str, int] = field(default_factory=dict)
    share_min: float | None = None
    share_existing: tuple[float, float] = (0.0, 0.0)  # (intelligent, fp32eq) TFLOPS installed
    time_limit: float = 60.0
    mip_rel_gap: float = 1e-3  # 0.1 %: proving 1e-4 costs ~7x the time on large instances

    # -- per-node money, energy, carbon over the horizon -------------------------------
    def energy_kwh(self, o: Option) -> float:
        return o.node_kw * self.load_factor * o.pue * HOURS_PER_YEAR * self.horizon_years

    def cost(self, o: Option) -> float:
        return (o.capex + o.rent_hour * HOURS_PER_YEAR * self.horizon_years
                + self.energy_kwh(o) * o.electricity)

    def carbon_t(self, o: Option) -> float:
        return self.energy_kwh(o) * o.carbon / 1000.0


def dominated_pairs(p: Problem) -> set[int]:
    """Indices of training/HPC pairs that another pair of the same workload dominates.

    Exact for integer needs: a run on option ``o`` uses ``need x`` (cost, energy, carbon, site
    power, racks, vendor supply, accelerators) and adds ``need x`` its share term. A pair is
    dropped when another *new, uncapped* option at the same site uses no more of every
    resource, contributes no less to the intelligent share and is strictly better in one (ties:
    the lower index stays). Swapping the assignment never breaks a constraint nor raises the
    objective, so the optimum is unchanged. Fractional (inference) pairs are kept: rounding
    node counts couples them.
    """
    n_opts = len(p.options)
    if not p.pairs:
        return set()
    phi = p.share_min or 0.0
    capped_vendors = set(p.supply)
    res = np.zeros((n_opts, 8))
    eligible = np.zeros(n_opts, dtype=bool)  # may replace another option
    for o, op in enumerate(p.options):
        # existing nodes use no power or rack row (already installed): zero there
        res[o] = (p.cost(op), p.energy_kwh(op), p.carbon_t(op),
                  op.node_kw * op.pue if op.new else 0.0,
                  1.0 / op.nodes_per_rack if op.new else 0.0, float(op.chips_per_node),
                  -(op.intelligent_tflops - phi * op.fp32eq_tflops), op.site)
        eligible[o] = op.new and op.candidate not in p.candidate_caps
    by_key: dict[tuple[int, int], list[int]] = {}
    for i, pr in enumerate(p.pairs):
        if pr.integer:
            by_key.setdefault((pr.w, p.options[pr.o].site), []).append(i)
    drop: set[int] = set()
    for idx in by_key.values():
        if len(idx) < 2:
            continue
        opts = np.array([p.pairs[i].o for i in idx])
        need = np.array([p.pairs[i].need for i in idx])
        use = res[opts, :7] * need[:, None]
        # a dominates b: a <= b everywhere, < somewhere (or equal and a earlier)
        le = (use[:, None, :] <= use[None, :, :] + 1e-12).all(axis=2)
        lt = (use[:, None, :] < use[None, :, :] - 1e-12).any(axis=2)
        earlier = np.arange(len(idx))[:, None] < np.arange(len(idx))[None, :]
        dom = le & (lt | earlier)
        dom[~eligible[opts], :] = False
        if capped_vendors:
            vend = np.array([p.options[o].vendor for o in opts])
            capped = np.isin(vend, list(capped_vendors))
            # never move load onto another vendor's supply cap
            dom &= ~((vend[:, None] != vend[None, :]) & capped[:, None])
        np.fill_diagonal(dom, False)
        for b in np.nonzero(dom.any(axis=0))[0]:
            drop.add(idx[b])
    return drop


@dataclass
class Solution:
    status: str  # "optimal", "infeasible", "time limit", ...
    nodes: np.ndarray  # per option
    assign: np.ndarray  # per pair
    served: np.ndarray  # per workload
    objective: float
    gap: float | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("optimal", "time limit (feasible)")


def _rows() -> dict[str, list[Any]]:
    return {"r": [], "c": [], "v": [], "lo": [], "hi": [], "tag": []}


def build(p: Problem, elastic: bool = False, fixed_nodes: np.ndarray | None = None,
          ) -> tuple[Any, ...]:
    """(c, integrality, bounds, A, lo, hi, tags, n_base_vars) for scipy.optimize.milp."""
    from scipy.sparse import coo_matrix

    n_o, P, W = len(p.options), len(p.pairs), p.n_workloads
    maxthr = p.objective == "max_throughput" or fixed_nodes is not None
    nv = n_o + P + (W if maxthr else 0)
    R = _rows()
    row = 0
    slack_rows: list[tuple[int, float, str]] = []  # (row, sign, tag)

    def add(entries: list[tuple[int, float]], lo: float, hi: float, tag: str,
            slack_sign: float = 0.0) -> None:
        nonlocal row
        for c, v in entries:
            R["r"].append(row)
            R["c"].append(c)
            R["v"].append(v)
        R["lo"].append(lo)
        R["hi"].append(hi)
        R["tag"].append(tag)
        if elastic and slack_sign:
            slack_rows.append((row, slack_sign, tag))
        row += 1

    by_w: list[list[int]] = [[] for _ in range(W)]
    by_o: list[list[int]] = [[] for _ in range(n_o)]
    for i, pr in enumerate(p.pairs):
        by_w[pr.w].append(i)
        by_o[pr.o].append(i)
    for w in range(W):
        ent = [(n_o + i, 1.0) for i in by_w[w]]
        if maxthr:
            add([*ent, (n_o + P + w, -1.0)], 0.0, 0.0, f"serve:{w}")
        else:
            add(ent, 1.0, 1.0, f"serve:{w}")
    for o in range(n_o):
        ent = [(n_o + i, p.pairs[i].need) for i in by_o[o]]
        if ent:
            add([*ent, (o, -1.0)], -np.inf, 0.0, f"capacity:{o}")
    for s in range(p.n_sites):
        cap = p.power_cap_kw[s] if s < len(p.power_cap_kw) else None
        if cap is not None:
            ent = [(o, op.node_kw * op.pue) for o, op in enumerate(p.options)
                   if op.site == s and op.new]
            add(ent, -np.inf, cap - p.existing_kw[s], f"power:{s}", -1.0)
        rk = p.racks[s] if s < len(p.racks) else None
        if rk is not None:
            ent = [(o, 1.0 / op.nodes_per_rack) for o, op in enumerate(p.options)
                   if op.site == s and op.new]
            add(ent, -np.inf, rk, f"racks:{s}", -1.0)
    if p.budget is not None:
        ent = [(o, p.cost(op) / COST_SCALE) for o, op in enumerate(p.options)]
        add(ent, -np.inf, p.budget / COST_SCALE, "budget", -1.0)
    for vendor, cap_v in p.supply.items():
        ent = [(o, float(op.chips_per_node)) for o, op in enumerate(p.options)
               if op.new and op.vendor == vendor]
        if ent:
            add(ent, -np.inf, float(cap_v), f"supply:{vendor}", -1.0)
    for cand, cap_c in p.candidate_caps.items():
        ent = [(o, 1.0) for o, op in enumerate(p.options) if op.new and op.candidate == cand]
        if ent:
            add(ent, -np.inf, float(cap_c), f"max_nodes:{cand}", -1.0)
    if p.share_min is not None:
        phi = p.share_min
        ent = [(o, op.intelligent_tflops - phi * op.fp32eq_tflops)
               for o, op in enumerate(p.options) if op.new]
        i0, t0 = p.share_existing
        add(ent, -(i0 - phi * t0), np.inf, "share", 1.0)

    n_slack = len(slack_rows)
    for k, (r, sign, _tag) in enumerate(slack_rows):
        R["r"].append(r)
        R["c"].append(nv + k)
        R["v"].append(sign)  # <= rows: -slack; >= rows: +slack
    total = nv + n_slack
    A = coo_matrix((R["v"], (R["r"], R["c"])), shape=(row, total)).tocsr()

    # objective
    c = np.zeros(total)
    if elastic:
        for k, (r, _s, _t) in enumerate(slack_rows):
            scale = max(abs(R["hi"][r]) if np.isfinite(R["hi"][r]) else abs(R["lo"][r]), 1.0)
            c[nv + k] = 1.0 / scale
    elif fixed_nodes is not None:
        c[n_o + P:n_o + P + W] = -1.0
    elif p.objective == "max_throughput":
        w_arr = np.asarray(p.weights or [1.0] * W, dtype=float)
        c[n_o + P:n_o + P + W] = -w_arr
        costs = np.array([p.cost(op) for op in p.options]) / COST_SCALE
        c[:n_o] = 1e-6 * costs / max(1.0, (p.budget or 1.0) / COST_SCALE)
    else:
        for o, op in enumerate(p.options):
            if p.objective == "min_tco":
                c[o] = p.cost(op) / COST_SCALE
            elif p.objective == "min_energy":
                c[o] = p.energy_kwh(op) / 1e6 + 1e-9 * p.cost(op) / COST_SCALE
            elif p.objective == "min_carbon":
                c[o] = p.carbon_t(op) / 1e3 + 1e-9 * p.cost(op) / COST_SCALE
            else:
                raise ValueError(p.objective)

    integrality = np.zeros(total)
    integrality[:n_o] = 1
    for i, pr in enumerate(p.pairs):
        integrality[n_o + i] = 1 if pr.integer else 0
    lb = np.zeros(total)
    ub = np.full(total, np.inf)
    for o, op in enumerate(p.options):
        if not op.new:
            ub[o] = float(op.existing)
    if fixed_nodes is not None:
        lb[:n_o] = ub[:n_o] = fixed_nodes
    ub[n_o:n_o + P] = 1.0
    if maxthr:
        ub[n_o + P:n_o + P + W] = 1.0
    return c, integrality, (lb, ub), A, np.array(R["lo"]), np.array(R["hi"]), R["tag"], \
        slack_rows, nv


def solve(p: Problem, fixed_nodes: np.ndarray | None = None) -> Solution:
    """Solve the plan (or, with ``fixed_nodes``, the largest served fraction on those nodes)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    n_o, P, W = len(p.options), len(p.pairs), p.n_workloads
    c, integ, (lb, ub), A, lo, hi, _tags, _sr, _nv = build(p, fixed_nodes=fixed_nodes)
    cons = [LinearConstraint(A, lo, hi)] if A.shape[0] else []
    res = milp(c, integrality=integ, bounds=Bounds(lb, ub), constraints=cons,
               options={"time_limit": p.time_limit, "mip_rel_gap": p.mip_rel_gap,
                        "presolve": True})
    status = {0: "optimal", 1: "time limit", 2: "infeasible", 3: "unbounded"}.get(
        res.status, f"status {res.status}")
    if res.x is None:
        return Solution(status, np.zeros(n_o), np.zeros(P), np.zeros(W), math.nan,
                        message=str(res.message))
    if res.status == 1:
        status = "time limit (feasible)"
    x = np.asarray(res.x)
    nodes = np.round(x[:n_o])
    assign = x[n_o:n_o + P]
    with_served = p.objective == "max_throughput" or fixed_nodes is not None
    served = x[n_o + P:n_o + P + W] if with_served else np.ones(W)
    gap = getattr(res, "mip_gap", None)
    return Solution(status, nodes, assign, np.clip(served, 0, 1), float(res.fun),
                    None if gap is None else float(gap), str(res.message))


@dataclass
class Violation:
    tag: str
    amount: float  # by how much the constraint must be relaxed (its own unit)


def explain(p: Problem) -> list[Violation]:
    """Elastic re-solve: the smallest relaxations (normalised) that make the plan feasible."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    c, integ, (lb, ub), A, lo, hi, _tags, slack_rows, nv = build(p, elastic=True)
    if not slack_rows:
        return []
    res = milp(c, integrality=integ, bounds=Bounds(lb, ub),
               constraints=[LinearConstraint(A, lo, hi)],
               options={"time_limit": p.time_limit, "mip_rel_gap": 1e-3})
    if res.x is None:
        return []
    out = []
    for k, (_r, _sign, tag) in enumerate(slack_rows):
        v = float(res.x[nv + k])
        if v > 1e-6:
            out.append(Violation(tag, v))
    return out
