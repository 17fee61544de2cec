"""Capacity planning: from a loaded plan to a solved, explained, robustness-checked plan.

:func:`make_problem` turns workloads x candidates x sites into the MILP of
:mod:`suanli.plan.milp` (node needs from :mod:`suanli.plan.capacity`), :func:`run_plan` solves
it and adds the robustness check, :func:`pareto` sweeps deadlines, :func:`plan_fleet` writes the
plan as a fleet that ``suanli meter`` and ``simulate`` accept.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from suanli.catalog.export_control import classify, load_rules
from suanli.catalog.loader import Catalog
from suanli.catalog.schema import Chip, Precision
from suanli.errors import SuanliError
from suanli.fleet.loader import ResolvedFleet, parse_fleet
from suanli.fleet.metering import ClassRule, ComputeClass, Conversion, class_peak_tflops
from suanli.plan.capacity import AnyWorkload, CapacityModel, Need, NodeConfig
from suanli.plan.loader import LoadedPlan, Priced
from suanli.plan.milp import Option, Pair, Problem, Solution, dominated_pairs, explain, solve
from suanli.plan.schema import (
    HpcWorkload,
    InferWorkload,
    PlanInput,
    PlanSite,
    TrainWorkload,
)

DOMESTIC_VENDORS = frozenset({"Huawei", "Hygon", "Cambricon", "Kunlunxin", "Iluvatar CoreX",
                              "MetaX", "Moore Threads", "Biren", "Enflame"})
US_VENDORS = frozenset({"NVIDIA", "AMD", "Intel"})
COMPAT_ORDER = {"native": 0, "binary": 1, "source": 2, "port": 3}
HOST_KW_EXISTING = 1.5


# -- availability ---------------------------------------------------------------------


def availability(chip: Chip, plan: PlanInput, catalog: Catalog) -> tuple[bool, str]:
    """(may we buy this chip under the plan's scenario, why not)."""
    deny = {catalog.get(n).id for n in plan.deny}
    if chip.id in deny:
        return False, "in the deny list"
    sc = plan.scenario
    if sc == "custom":
        allow = {catalog.get(n).id for n in plan.allow}
        return (chip.id in allow), "not in the allow list"
    if sc == "domestic-only":
        return (chip.vendor in DOMESTIC_VENDORS), f"{chip.vendor} is not a domestic vendor"
    if sc == "no-nvidia":
        return (chip.vendor != "NVIDIA"), "NVIDIA part"
    # as-today: US-origin parts that 3A090 controls (or that cannot be classified), and parts
    # under a licence notice, are not purchasable.
    if chip.vendor in US_VENDORS:
        info = classify(chip, plan.export_rule)
        if info.controlled is not False:
            return False, f"{info.eccn} under rule {info.rule} ({info.reason})"
        for n in load_rules().notices:
            if n.chip == chip.id:
                return False, f"licence notice since {n.effective}: {n.effect}"
    return True, ""


def stack_ok(w: AnyWorkload, chip: Chip) -> tuple[bool, str]:
    if w.stacks and chip.stack.name.casefold() not in {s.casefold() for s in w.stacks}:
        return False, f"stack {chip.stack.name} not in {', '.join(w.stacks)}"
    if w.cuda_compat and COMPAT_ORDER[chip.stack.cuda_compat] > COMPAT_ORDER[w.cuda_compat]:
        return False, f"CUDA compatibility '{chip.stack.cuda_compat}' below '{w.cuda_compat}'"
    return True, ""


def class_figures(chip: Chip, cpn: int) -> tuple[float, float]:
    """(intelligent TFLOPS, FP32-equivalent TFLOPS) per node, metering's class rule."""
    cls, _ = ClassRule().classify(chip)
    peak = class_peak_tflops(chip, cls) or 0.0
    fp32eq = peak * Conversion().factor(cls) * cpn
    return (peak * cpn if cls is ComputeClass.INTELLIGENT else 0.0), fp32eq


# -- problem construction ----------------------------------------------------------------


@dataclass
class Built:
    """The MILP plus what is needed to read its solution back."""

    problem: Problem
    workloads: list[AnyWorkload]
    sites: list[PlanSite]
    configs: list[NodeConfig]  # per option
    needs: list[Need]  # per pair
    excluded: dict[str, str]  # candidate -> why not purchasable
    unservable: dict[str, list[str]]  # workload -> reasons per configuration
    notes: list[str] = field(default_factory=list)


def make_problem(lp: LoadedPlan, catalog: Catalog, cap: CapacityModel, *,
                 deadline_scale: float = 1.0, derate: dict[str, float] | None = None,
                 workloads: list[AnyWorkload] | None = None) -> Built:
    plan = lp.plan
    wl: list[AnyWorkload] = list(workloads if workloads is not None else plan.workloads)
    sites = plan.sites
    site_idx = {s.name: i for i, s in enumerate(sites)}
    options: list[Option] = []
    configs: list[NodeConfig] = []
    leads: list[float] = []
    maxn: list[int] = []
    excluded: dict[str, str] = {}
    notes: list[str] = []
    pue_max = plan.constraints.pue_max
    for pc in lp.candidates:
        ok, why = availability(pc.chip, plan, catalog)
        if not ok:
            excluded[pc.cand.name] = f"{pc.chip.name}: {why}"
            continue
        i_tf, t_tf = class_figures(pc.chip, pc.cand.chips_per_node)
        for s_name in pc.cand.sites or [s.name for s in sites]:
            site = sites[site_idx[s_name]]
            if pue_max is not None and site.pue > pue_max:
                excluded.setdefault(f"site {site.name}",
                                    f"PUE {site.pue:g} > {pue_max:g}: no new nodes there")
                continue
            options.append(_option(pc, site, site_idx[s_name], i_tf, t_tf))
            configs.append(NodeConfig(pc.chip, pc.cand.chips_per_node, pc.cand.inter_node_gbps))
            leads.append(pc.cand.lead_time_weeks * 7.0)
            maxn.append(pc.cand.max_nodes if pc.cand.max_nodes is not None else 4096)
    existing_kw = [0.0] * len(sites)
    share_i = share_t = 0.0
    if lp.existing is not None:
        for g in lp.existing.groups():
            si = site_idx[g.site.name]
            site = sites[si]
            tdp = g.chip.tdp_w.value
            if tdp is None:
                notes.append(f"existing group {g.site.name}/{g.label}: TDP of {g.chip.name} "
                             "unknown; its power is not counted")
            kw = (g.group.chips_per_node * (tdp or 0.0)) / 1000.0 + HOST_KW_EXISTING
            i_tf, t_tf = class_figures(g.chip, g.group.chips_per_node)
            share_i += i_tf * g.group.nodes
            share_t += t_tf * g.group.nodes
            existing_kw[si] += kw * site.pue * g.group.nodes
            options.append(Option(
                name=f"{g.label} (existing)", site=si, chip_id=g.chip.id, vendor=g.chip.vendor,
                chips_per_node=g.group.chips_per_node, capex=0.0, rent_hour=0.0, node_kw=kw,
                pue=site.pue, electricity=site.electricity_cny_kwh,
                carbon=site.carbon_kg_per_kwh, existing=g.group.nodes, new=False,
                intelligent_tflops=i_tf, fp32eq_tflops=t_tf))
            configs.append(NodeConfig(g.chip, g.group.chips_per_node, g.group.inter_node_gbps))
            leads.append(0.0)
            maxn.append(g.group.nodes)
    pairs: list[Pair] = []
    needs: list[Need] = []
    unservable: dict[str, list[str]] = {}
    derate = derate or {}
    for wi, w in enumerate(wl):
        reasons: dict[str, str] = {}
        memo: dict[tuple[object, ...], Need] = {}
        for oi, (op, cfg) in enumerate(zip(options, configs, strict=True)):
            ok, why = stack_ok(w, cfg.chip)
            if not ok:
                reasons[op.name.split(" (")[0] if not op.new else op.candidate or op.name] = why
                continue
            key = (cfg.key, leads[oi], maxn[oi])
            nd = memo.get(key)
            if nd is None:
                nd = cap.need(w, cfg, lead_time_days=leads[oi], max_nodes=maxn[oi],
                              deadline_scale=deadline_scale, derate=derate.get(cfg.chip.id, 0.0))
                memo[key] = nd
            if not nd.ok:
                det = nd.detail.removeprefix(f"{cfg.chip.name}: ")
                reasons[op.candidate or op.name] = f"{cfg.chip.name}: {det}"
                continue
            pairs.append(Pair(wi, oi, nd.nodes, nd.integer))
            needs.append(nd)
        if not any(pr.w == wi for pr in pairs):
            unservable[w.name] = [f"{k}: {v}" for k, v in reasons.items()] or [
                "no candidate is available under the scenario"]
    cons = plan.constraints
    supply = {v: cap_v for v, cap_v in plan.supply_caps.items()}
    cand_caps = {pc.cand.name: pc.cand.max_nodes for pc in lp.candidates
                 if pc.cand.max_nodes is not None}
    prob = Problem(
        n_workloads=len(wl), options=options, pairs=pairs, n_sites=len(sites),
        horizon_years=plan.horizon_years, load_factor=plan.load_factor,
        objective=plan.objective, weights=[w.weight for w in wl],
        power_cap_kw=[s.power_cap_kw for s in sites], existing_kw=existing_kw,
        racks=[s.racks for s in sites], budget=cons.budget_cny, supply=supply,
        candidate_caps=cand_caps, share_min=cons.intelligent_share_min,
        share_existing=(share_i, share_t))
    drop = dominated_pairs(prob)
    if drop:
        prob.pairs = [pr for i, pr in enumerate(pairs) if i not in drop]
        needs = [nd for i, nd in enumerate(needs) if i not in drop]
    return Built(prob, wl, list(sites), configs, needs, excluded, unservable, notes)


def _option(pc: Priced, site: PlanSite, si: int, i_tf: float, t_tf: float) -> Option:
    return Option(
        name=f"{pc.cand.name}@{site.name}", site=si, chip_id=pc.chip.id, vendor=pc.chip.vendor,
        chips_per_node=pc.cand.chips_per_node, capex=pc.capex, rent_hour=pc.rent_hour,
        node_kw=pc.node_power_kw, pue=site.pue, electricity=site.electricity_cny_kwh,
        carbon=site.carbon_kg_per_kwh, new=True, candidate=pc.cand.name,
        nodes_per_rack=pc.cand.nodes_per_rack, intelligent_tflops=i_tf, fp32eq_tflops=t_tf)


# -- results ------------------------------------------------------------------------------


@dataclass
class PlanResult:
    name: str
    status: str
    objective: str
    scenario: str
    buys: list[dict[str, Any]]
    used_existing: list[dict[str, Any]]
    assignments: list[dict[str, Any]]
    totals: dict[str, Any]
    excluded: dict[str, str]
    infeasible: list[str] = field(default_factory=list)
    robustness: dict[str, Any] = field(default_factory=dict)
    confidence: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    solution: Solution | None = None
    built: Built | None = None

    @property
    def feasible(self) -> bool:
        return not self.infeasible and self.solution is not None and self.solution.ok

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "name", "status", "objective", "scenario", "buys", "used_existing", "assignments",
            "totals", "excluded", "infeasible", "robustness", "confidence", "notes")} | {
            "feasible": self.feasible}


def _power(kw: float) -> str:
    return f"{kw / 1000:.2f} MW" if kw >= 1000 else f"{kw:.1f} kW"


def _violation_text(tag: str, amount: float, b: Built) -> str:
    kind, _, key = tag.partition(":")
    p = b.problem
    if kind == "power":
        s = b.sites[int(key)]
        cap = p.power_cap_kw[int(key)] or 0.0
        return (f"power cap at site '{s.name}' exceeded by {_power(amount)} "
                f"(cap {_power(cap)} facility power)")
    if kind == "racks":
        return f"site '{b.sites[int(key)].name}' needs {amount:.1f} more racks"
    if kind == "budget":
        return f"budget exceeded by {amount:.1f} M CNY (budget {(p.budget or 0) / 1e6:.1f} M)"
    if kind == "supply":
        return f"supply cap for {key} exceeded by {amount:.0f} accelerators"
    if kind == "max_nodes":
        return f"candidate '{key}' needs {amount:.0f} nodes above its max_nodes"
    if kind == "share":
        return (f"intelligent-compute share below {100 * (p.share_min or 0):.0f} %: "
                f"{amount:,.0f} TFLOPS short")
    return f"{tag}: {amount:g}"


def read_solution(b: Built, sol: Solution, name: str, scenario: str) -> PlanResult:
    p = b.problem
    buys, used = [], []
    cost = capex = energy = carbon = kw_fac = acc = 0.0
    intel = fp32eq = 0.0
    for o, op in enumerate(p.options):
        n = int(sol.nodes[o])
        if not op.new:
            intel += op.intelligent_tflops * op.existing
            fp32eq += op.fp32eq_tflops * op.existing
        if n <= 0:
            continue
        row: dict[str, Any] = {
               "option": op.name, "candidate": op.candidate, "site": b.sites[op.site].name,
               "chip": op.chip_id, "nodes": n, "accelerators": n * op.chips_per_node,
               "capex_cny": n * op.capex, "tco_cny": n * p.cost(op),
               "it_kw": n * op.node_kw, "facility_kw": n * op.node_kw * op.pue,
               "energy_mwh_year": n * p.energy_kwh(op) / p.horizon_years / 1000,
               "carbon_t_year": n * p.carbon_t(op) / p.horizon_years}
        cost += row["tco_cny"]
        capex += row["capex_cny"]
        energy += row["energy_mwh_year"]
        carbon += row["carbon_t_year"]
        if op.new:
            kw_fac += row["facility_kw"]
            acc += row["accelerators"]
            intel += op.intelligent_tflops * n
            fp32eq += op.fp32eq_tflops * n
            buys.append(row)
        else:
            row["of"] = op.existing
            used.append(row)
    assigns: list[dict[str, Any]] = []
    for i, pr in enumerate(p.pairs):
        a = float(sol.assign[i])
        if a <= 1e-6:
            continue
        w = b.workloads[pr.w]
        nd = b.needs[i]
        op = p.options[pr.o]
        assigns.append({
            "workload": w.name, "kind": w.kind, "option": op.name, "chip": op.chip_id,
            "fraction": a, "nodes": nd.nodes * a,
            "finish_days": nd.finish_days, "rate": nd.rate, "how": nd.detail})
    served = {b.workloads[i].name: float(sol.served[i]) for i in range(p.n_workloads)}
    totals = {"tco_cny": cost, "capex_cny": capex, "energy_mwh_year": energy,
              "carbon_t_year": carbon, "new_facility_kw": kw_fac, "new_accelerators": acc,
              "horizon_years": p.horizon_years,
              "intelligent_share": (intel * Conversion().fp16_to_fp32 / fp32eq)
              if fp32eq else None,
              "served": served, "mip_gap": sol.gap,
              "makespan_days": max((a["finish_days"] for a in assigns
                                    if a["finish_days"] is not None), default=None)}
    return PlanResult(name, sol.status, p.objective, scenario, buys, used, assigns, totals,
                      b.excluded, solution=sol, built=b, notes=list(b.notes))


def infeasible_reasons(b: Built) -> list[str]:
    out = []
    for w, rs in b.unservable.items():
        wl = next(x for x in b.workloads if x.name == w)
        what = _describe_workload(wl)
        out.append(f"no permitted chip can serve '{w}' ({what}): " + "; ".join(rs))
    return out


def _describe_workload(w: AnyWorkload) -> str:
    if isinstance(w, InferWorkload):
        return (f"{w.model} at {w.requests_per_s:g} req/s within TTFT {w.ttft_ms:g} ms, "
                f"ITL {w.itl_ms:g} ms")
    if isinstance(w, TrainWorkload):
        if w.tokens_per_s is not None:
            return f"{w.model} at {w.tokens_per_s:.4g} tokens/s"
        return f"{w.model}, {w.tokens:.3g} tokens in {w.deadline_days:g} days"
    if w.fp64_tflops is not None:
        return f"HPL at {w.fp64_tflops:.4g} FP64 TFLOPS"
    return f"{w.fp64_tflop:.3g} FP64 TFLOP in {w.deadline_days:g} days"


def solve_built(b: Built, name: str, scenario: str) -> PlanResult:
    reasons = infeasible_reasons(b)
    if reasons:
        empty = Solution("infeasible", np.zeros(len(b.problem.options)), np.zeros(0),
                         np.zeros(b.problem.n_workloads), math.nan)
        return PlanResult(name, "infeasible", b.problem.objective, scenario, [], [], [], {},
                          b.excluded, infeasible=reasons, solution=empty, built=b,
                          notes=list(b.notes))
    sol = solve(b.problem)
    if not sol.ok:
        viol = explain(b.problem)
        texts = [_violation_text(v.tag, v.amount, b) for v in viol] or [
            f"solver status: {sol.status} ({sol.message})"]
        return PlanResult(name, sol.status, b.problem.objective, scenario, [], [], [], {},
                          b.excluded, infeasible=texts, solution=sol, built=b,
                          notes=list(b.notes))
    return read_solution(b, sol, name, scenario)


def chip_confidence(chips: list[Chip], cap: CapacityModel) -> list[dict[str, Any]]:
    out = []
    for c in chips:
        src, margin = cap.confidence(c)
        fig = c.peak[Precision.BF16] if c.peak[Precision.BF16].known else c.peak[Precision.FP16]
        _ref, conf = c.source_of(fig)
        out.append({"chip": c.id, "name": c.name, "efficiency": src,
                    "pessimistic_margin": margin, "peak_confidence": conf})
    return out


def run_plan(lp: LoadedPlan, catalog: Catalog, cap: CapacityModel | None = None,
             robust: bool = True) -> PlanResult:
    """Solve the plan, explain infeasibility, and check robustness to pessimistic rates."""
    cap = cap or CapacityModel(lp.plan.infer_headroom)
    b = make_problem(lp, catalog, cap)
    res = solve_built(b, lp.plan.name, lp.plan.scenario)
    chips = {catalog.get(a["chip"]).id: catalog.get(a["chip"]) for a in res.assignments}
    res.confidence = chip_confidence(list(chips.values()), cap)
    if robust and res.feasible and res.solution is not None:
        res.robustness = robustness(lp, catalog, cap, b, res.solution)
    return res


def robustness(lp: LoadedPlan, catalog: Catalog, cap: CapacityModel, b: Built,
               sol: Solution, deadline_scale: float = 1.0) -> dict[str, Any]:
    """Re-check the plan with every rate derated by its chip's pessimistic margin."""
    chips = {cfg.chip.id: cfg.chip for cfg in b.configs}
    derate = {cid: cap.confidence(c)[1] for cid, c in chips.items()}
    pb = make_problem(lp, catalog, cap, derate=derate, deadline_scale=deadline_scale,
                      workloads=b.workloads)
    out: dict[str, Any] = {"margins": derate}
    if infeasible_reasons(pb):
        out["plan_holds"] = False
        out["pessimistic_plan"] = None
        out["unservable"] = infeasible_reasons(pb)
        return out
    fixed = solve(pb.problem, fixed_nodes=sol.nodes)
    short = {pb.workloads[i].name: float(fixed.served[i])
             for i in range(pb.problem.n_workloads) if fixed.served[i] < 1 - 1e-6}
    out["plan_holds"] = fixed.ok and not short
    out["short"] = short  # workload -> fraction still served on the chosen nodes
    robust_plan = solve_built(pb, lp.plan.name + " (pessimistic)", lp.plan.scenario)
    out["pessimistic_plan"] = None if not robust_plan.feasible else {
        "tco_cny": robust_plan.totals["tco_cny"], "capex_cny": robust_plan.totals["capex_cny"],
        "new_accelerators": robust_plan.totals["new_accelerators"]}
    if not robust_plan.feasible:
        out["pessimistic_infeasible"] = robust_plan.infeasible
    return out


# -- Pareto -------------------------------------------------------------------------------

DEADLINE_SCALES = (2.0, 1.6, 1.3, 1.15, 1.0, 0.9, 0.8)


def pareto(lp: LoadedPlan, catalog: Catalog, cap: CapacityModel | None = None,
           scales: tuple[float, ...] = DEADLINE_SCALES) -> list[dict[str, Any]]:
    """Cost vs time to finish: min TCO with every deadline scaled (x2 ... x0.8).

    Non-dominated points are flagged, with whether each plan still holds with pessimistic
    rates and what a plan sized for pessimistic rates would cost."""
    cap = cap or CapacityModel(lp.plan.infer_headroom)
    plan = lp.plan.model_copy(update={"objective": "min_tco"})
    lp2 = replace(lp, plan=plan)
    pts: list[dict[str, Any]] = []
    for f in scales:
        b = make_problem(lp2, catalog, cap, deadline_scale=f)
        r = solve_built(b, plan.name, plan.scenario)
        if not r.feasible:
            pts.append({"deadline_scale": f, "feasible": False, "why": r.infeasible[:2]})
            continue
        rob = robustness(lp2, catalog, cap, b, r.solution, f) if r.solution is not None else {}
        if r.totals["makespan_days"] is None:
            raise SuanliError("pareto needs workloads with deadlines (training or HPC)")
        pts.append({"deadline_scale": f, "feasible": True, "tco_cny": r.totals["tco_cny"],
                    "capex_cny": r.totals["capex_cny"],
                    "makespan_days": r.totals["makespan_days"],
                    "energy_mwh_year": r.totals["energy_mwh_year"],
                    "new_accelerators": r.totals["new_accelerators"],
                    "robust": rob.get("plan_holds"),
                    "pessimistic_tco_cny": (rob.get("pessimistic_plan") or {}).get("tco_cny")})
    ok = [p for p in pts if p["feasible"]]
    for p in ok:
        p["pareto"] = not any(
            q is not p and q["tco_cny"] <= p["tco_cny"] and q["makespan_days"] <= p["makespan_days"]
            and (q["tco_cny"] < p["tco_cny"] or q["makespan_days"] < p["makespan_days"])
            for q in ok)
    return pts


def pareto_figure(points: list[dict[str, Any]]) -> Any:
    import plotly.graph_objects as go

    ok = [p for p in points if p["feasible"]]
    fig = go.Figure()
    for flag, name, sym in ((True, "Pareto-optimal", "circle"), (False, "dominated", "x")):
        sel = [p for p in ok if p.get("pareto") == flag]
        fig.add_trace(go.Scatter(
            x=[p["makespan_days"] for p in sel], y=[p["tco_cny"] / 1e6 for p in sel],
            mode="markers+text", name=name, marker={"symbol": sym, "size": 11},
            text=[f"x{p['deadline_scale']:g}" + ("" if p.get("robust") else " (fragile)")
                  for p in sel], textposition="top center"))
    fig.update_layout(title="Cost vs time to finish (deadlines scaled)",
                      xaxis_title="makespan (days, incl. lead time)",
                      yaxis_title="TCO (M CNY)")
    return fig


# -- fleet output -------------------------------------------------------------------------


def plan_fleet(res: PlanResult, lp: LoadedPlan) -> dict[str, Any]:
    """The planned fleet (existing + bought nodes) as fleet-YAML data (validated)."""
    b = res.built
    if b is None or not res.feasible:
        raise SuanliError("the plan is infeasible: no fleet to write")
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if lp.existing is not None:
        for g in lp.existing.groups():
            groups[g.site.name].append(g.group.model_dump(exclude_none=True))
    cand = {pc.cand.name: pc for pc in lp.candidates}
    for row in res.buys:
        pc = cand[row["candidate"]]
        groups[row["site"]].append({
            "name": f"{pc.cand.name}-new", "chip": pc.chip.id,
            "chips_per_node": pc.cand.chips_per_node, "nodes": row["nodes"],
            "inter_node_gbps": pc.cand.inter_node_gbps})
    sites = []
    for s in lp.plan.sites:
        if not groups.get(s.name):
            continue
        d: dict[str, Any] = {"name": s.name, "pue": s.pue,
                             "electricity_price_cny_kwh": s.electricity_cny_kwh,
                             "carbon_kg_per_kwh": s.carbon_kg_per_kwh,
                             "node_groups": groups[s.name]}
        if s.region:
            d["region"] = s.region
        sites.append(d)
    data = {"name": f"{lp.plan.name} (planned {dt.date.today().isoformat()})", "sites": sites}
    parse_fleet(data)  # must be a valid fleet
    return data


# -- substitution ---------------------------------------------------------------------------


@dataclass
class Substitution:
    scenario: str
    source: list[dict[str, Any]]
    targets: list[dict[str, Any]]
    plan: PlanResult
    ratios: dict[str, float | None]
    source_totals: dict[str, float]
    sentence: str
    confidence: list[dict[str, Any]]  # source chips first, then the replacement's
    source_chips: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "source": self.source, "targets": self.targets,
                "ratios": self.ratios, "source_totals": self.source_totals,
                "sentence": self.sentence, "confidence": self.confidence,
                "plan": self.plan.as_dict()}


def _shares(wl: list[AnyWorkload]) -> list[float]:
    raw = [w.share if w.share is not None else 1.0 for w in wl]
    tot = sum(raw)
    return [r / tot for r in raw]


def substitute(source: ResolvedFleet, lp: LoadedPlan, catalog: Catalog, scenario: str,
               cap: CapacityModel | None = None) -> Substitution:
    """What permitted chips match what ``source`` delivers on the plan's workload mix.

    Each workload gets its ``share`` (default equal) of every source node group; the rate the
    group delivers on that share (tokens/s, requests/s within the SLOs, FP64 flop/s) becomes a
    throughput target; the planner then buys the cheapest (TCO) permitted mix meeting every
    target at the source fleet's sites, without power or rack caps.
    """
    from suanli.plan.loader import price_for
    from suanli.plan.schema import Candidate

    cap = cap or CapacityModel(lp.plan.infer_headroom)
    wl = list(lp.plan.workloads)
    shares = _shares(wl)
    targets: list[AnyWorkload] = []
    tgt_rows = []
    src_rows = []
    src_capex = src_kw = 0.0
    src_acc = 0
    for g in source.groups():
        p = price_for(g.chip, g.group.chips_per_node, lp.prices, catalog)
        if p is None or p.capex_cny_per_node is None:
            raise SuanliError(
                f"no capex price for {g.chip.name} ({g.chip.id}) in a "
                f"{g.group.chips_per_node}-chip node: add it to the price file to compare "
                "costs", file=lp.price_file, field="prices")
        tdp = g.chip.tdp_w.value
        if tdp is None:
            raise SuanliError(f"TDP of {g.chip.name} is unknown: cannot compare power",
                              where=f"node group '{g.label}'", field="chip")
        kw = g.group.chips_per_node * tdp / 1000.0 + HOST_KW_EXISTING
        src_capex += p.capex_cny_per_node * g.group.nodes
        src_kw += kw * g.group.nodes
        src_acc += g.accelerators
        src_rows.append({"site": g.site.name, "group": g.label, "chip": g.chip.id,
                         "accelerators": g.accelerators, "nodes": g.group.nodes,
                         "it_kw": kw * g.group.nodes,
                         "capex_cny": p.capex_cny_per_node * g.group.nodes})
    for w, sh in zip(wl, shares, strict=True):
        total = 0.0
        for g in source.groups():
            cfg = NodeConfig(g.chip, g.group.chips_per_node, g.group.inter_node_gbps)
            nodes = max(1, round(sh * g.group.nodes))
            total += _delivered(cap, w, cfg, nodes)
        if total <= 0:
            tgt_rows.append({"workload": w.name, "target": 0.0, "note": "source cannot run it"})
            continue
        t = _as_target(w, total)
        targets.append(t)
        tgt_rows.append({"workload": w.name, "share": sh, "target": total,
                         "unit": _unit(w)})
    if not targets:
        raise SuanliError("the source fleet cannot run any workload of the mix")
    # candidates: every priced configuration in the price file
    cands = []
    for p in lp.prices:
        chip = catalog.get(p.chip)
        cands.append(Candidate(name=f"{chip.id}-x{p.chips_per_node}", chip=chip.id,
                               chips_per_node=p.chips_per_node,
                               inter_node_gbps=p.inter_node_gbps,
                               node_power_kw=p.node_power_kw))
    from suanli.plan.loader import price_candidate

    priced = [price_candidate(c, catalog.get(c.chip), lp.prices, catalog, lp.file,
                              lp.price_file) for c in cands]
    sites = [PlanSite(name=s.name, region=s.region, pue=s.pue,
                      electricity_cny_kwh=s.electricity_price_cny_kwh,
                      carbon_kg_per_kwh=s.carbon_kg_per_kwh) for s in source.fleet.sites]
    plan = lp.plan.model_copy(update={
        "name": f"substitute {source.fleet.name} ({scenario})", "scenario": scenario,
        "objective": "min_tco", "sites": sites, "existing_fleet": None, "supply_caps": {},
        "constraints": lp.plan.constraints.model_copy(update={"budget_cny": None,
                                                              "pue_max": None}),
        "workloads": targets})
    sub_lp = LoadedPlan(plan, lp.file, priced, None, lp.prices, lp.price_file)
    res = run_plan(sub_lp, catalog, cap)
    src_tco = 0.0
    if res.feasible:
        hp = plan.horizon_years * 8760.0 * plan.load_factor
        for g in source.groups():
            p = price_for(g.chip, g.group.chips_per_node, lp.prices, catalog)
            assert p is not None and p.capex_cny_per_node is not None
            kw = g.group.chips_per_node * (g.chip.tdp_w.value or 0.0) / 1000 + HOST_KW_EXISTING
            src_tco += g.group.nodes * (p.capex_cny_per_node + kw * hp * g.site.pue
                                        * g.site.electricity_price_cny_kwh)
    new_kw = sum(r["it_kw"] for r in res.buys) if res.feasible else 0.0
    ratios: dict[str, float | None] = {
        "accelerators": (res.totals["new_accelerators"] / src_acc) if res.feasible else None,
        "it_power": (new_kw / src_kw) if res.feasible and src_kw else None,
        "capex": (res.totals["capex_cny"] / src_capex) if res.feasible and src_capex else None,
        "tco": (res.totals["tco_cny"] / src_tco) if res.feasible and src_tco else None,
    }
    src_desc = " + ".join(f"{r['accelerators']:,} x {r['chip']}" for r in src_rows)
    if res.feasible:
        by_chip: dict[str, int] = defaultdict(int)
        for r in res.buys:
            by_chip[r["chip"]] += int(r["accelerators"])
        new_desc = " + ".join(f"{n:,} x {c}" for c, n in sorted(by_chip.items(),
                                                               key=lambda kv: -kv[1]))
        sentence = (f"{src_desc} are matched for this workload mix by {new_desc} "
                    f"({scenario}), at {ratios['it_power']:.2f}x the IT power, "
                    f"{ratios['capex']:.2f}x the capex and {ratios['tco']:.2f}x the "
                    f"{plan.horizon_years:g}-year TCO")
    else:
        sentence = f"{src_desc} cannot be matched under {scenario}: " + "; ".join(res.infeasible)
    src_chips = {g.chip.id: g.chip for g in source.groups()}
    conf = chip_confidence(list(src_chips.values()), cap) + res.confidence
    return Substitution(scenario, src_rows, tgt_rows, res, ratios,
                        {"accelerators": float(src_acc), "it_kw": src_kw,
                         "capex_cny": src_capex, "tco_cny": src_tco}, sentence, conf,
                        list(src_chips))


def _unit(w: AnyWorkload) -> str:
    return {"train": "tokens/s", "infer": "requests/s", "hpc": "FP64 flop/s"}[w.kind]


def _delivered(cap: CapacityModel, w: AnyWorkload, cfg: NodeConfig, nodes: int) -> float:
    """Rate ``nodes`` of ``cfg`` deliver on ``w`` (0 when it cannot run there)."""
    if isinstance(w, InferWorkload):
        per_node, _ = cap.infer_capacity(w, cfg)
        return per_node * nodes
    r = cap.train_rate(w, cfg, nodes) if isinstance(w, TrainWorkload) else cap.hpc_rate(cfg, nodes)
    return r if isinstance(r, float) else 0.0


def _as_target(w: AnyWorkload, rate: float) -> AnyWorkload:
    if isinstance(w, InferWorkload):
        return w.model_copy(update={"requests_per_s": rate})
    if isinstance(w, TrainWorkload):
        return w.model_copy(update={"tokens_per_s": rate, "tokens": None,
                                    "deadline_days": None})
    assert isinstance(w, HpcWorkload)
    return w.model_copy(update={"fp64_tflops": rate / 1e12, "fp64_tflop": None,
                                "deadline_days": None})
