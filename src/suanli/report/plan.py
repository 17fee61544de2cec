"""HTML report of a capacity plan (and of a substitution)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from suanli.plan.planner import PlanResult, Substitution, pareto_figure
from suanli.report.html import Report


def _m(x: float | None) -> float | None:
    return None if x is None else x / 1e6


def plan_section(res: PlanResult, rep: Report) -> None:
    if not res.feasible:
        rep.heading("Infeasible")
        for line in res.infeasible:
            rep.text(line)
        return
    t = res.totals
    rep.heading("Totals")
    rep.table(["figure", "value"], [
        ["TCO over horizon (M CNY)", _m(t["tco_cny"])], ["capex (M CNY)", _m(t["capex_cny"])],
        ["new accelerators", t["new_accelerators"]],
        ["new facility power (kW)", t["new_facility_kw"]],
        ["energy (MWh/year)", t["energy_mwh_year"]], ["carbon (t/year)", t["carbon_t_year"]],
        ["intelligent share", t["intelligent_share"]],
        ["makespan (days)", t["makespan_days"]]])
    rep.heading("What to buy, where")
    rep.table(["candidate", "site", "chip", "nodes", "accelerators", "capex M CNY",
               "facility kW"],
              [[b["candidate"], b["site"], b["chip"], b["nodes"], b["accelerators"],
                _m(b["capex_cny"]), b["facility_kw"]] for b in res.buys])
    if res.used_existing:
        rep.heading("Existing nodes used")
        rep.table(["group", "site", "chip", "nodes used", "of"],
                  [[u["option"], u["site"], u["chip"], u["nodes"], u["of"]]
                   for u in res.used_existing])
    rep.heading("Workloads")
    rep.table(["workload", "kind", "on", "share", "nodes", "finish (days)", "how"],
              [[a["workload"], a["kind"], a["option"], a["fraction"], a["nodes"],
                a["finish_days"], a["how"]] for a in res.assignments])
    if res.excluded:
        rep.heading("Not purchasable under the scenario")
        rep.table(["candidate", "why"], [[k, v] for k, v in res.excluded.items()])
    if res.robustness:
        r = res.robustness
        rep.heading("Robustness (pessimistic rates)")
        rep.text(f"plan holds with every rate derated by its chip's margin: "
                 f"{r.get('plan_holds')}; short: {r.get('short')}; "
                 f"pessimistic plan: {r.get('pessimistic_plan')}")
    if res.confidence:
        rep.heading("Model confidence of the chips involved")
        rep.table(["chip", "efficiency factors", "margin", "peak confidence"],
                  [[c["name"], c["efficiency"], c["pessimistic_margin"], c["peak_confidence"]]
                   for c in res.confidence])
    for n in res.notes:
        rep.text(n, note=True)


def write_plan_html(res: PlanResult, path: str | Path,
                    pareto: list[dict[str, Any]] | None = None) -> Path:
    rep = Report(f"suanli plan: {res.name}",
                 f"objective {res.objective}, scenario {res.scenario}, status {res.status}")
    plan_section(res, rep)
    if pareto:
        rep.heading("Cost vs time to finish")
        rep.figure(pareto_figure(pareto))
    return rep.write(path)


def write_substitution_html(sub: Substitution, path: str | Path) -> Path:
    rep = Report(f"suanli plan substitute ({sub.scenario})", sub.sentence)
    rep.heading("Source fleet")
    rep.table(["site", "group", "chip", "accelerators", "IT kW", "capex M CNY"],
              [[s["site"], s["group"], s["chip"], s["accelerators"], s["it_kw"],
                _m(s["capex_cny"])] for s in sub.source])
    rep.heading("Throughput targets (what the source delivers on the mix)")
    rep.table(["workload", "share", "target", "unit"],
              [[t["workload"], t.get("share"), t["target"], t.get("unit", "")]
               for t in sub.targets])
    rep.heading("Ratios (replacement / source)")
    rep.table(["figure", "ratio"], [[k, v] for k, v in sub.ratios.items()])
    plan_section(sub.plan, rep)
    return rep.write(path)
