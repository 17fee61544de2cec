"""`suanli plan`: which chips to buy, where, under export controls, budget and power.

    suanli plan                                   # the bundled example
    suanli plan run PLAN.yaml [--scenario domestic-only] [--objective min_tco] [--json]
        [--fleet-out planned.yaml] [--html plan.html] [--pareto]
    suanli plan substitute --from FLEET.yaml --scenario domestic-only [--plan PLAN.yaml]
    suanli plan pareto [PLAN.yaml] [--html pareto.html]
    suanli plan schema                            # JSON Schema of the plan file
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from suanli.commands.common import (
    CatalogOpt,
    JsonOpt,
    console,
    fmt,
    num_option,
    out_file_option,
    print_json,
)
from suanli.errors import SuanliError

plan_app = typer.Typer(
    name="plan",
    help="Capacity planner: which chips to buy, where, under export controls, budget and "
    "power (MILP over the performance model). Without a subcommand: the bundled example.",
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(plan_app, name="plan")


PlanArg = Annotated[Path | None, typer.Argument(help="Plan YAML (default: bundled example).")]
ScenarioOpt = Annotated[str | None, typer.Option(
    "--scenario", help="as-today | no-nvidia | domestic-only | custom (overrides the file).")]
ObjectiveOpt = Annotated[str | None, typer.Option(
    "--objective", help="min_tco | max_throughput | min_energy | min_carbon.")]
RuleOpt = Annotated[str | None, typer.Option(
    "--export-rule", help="3A090 rule version (2022-10, 2023-10, 2024-12, 2026-01) or a date.")]
BudgetOpt = Annotated[float | None, num_option("--budget", help="Budget in CNY (capex + "
                                               "opex over the horizon).", gt=0)]
HtmlOpt = Annotated[Path | None, out_file_option("--html", help="Write an HTML report here.")]
FleetOutOpt = Annotated[Path | None, out_file_option(
    "--fleet-out", help="Write the planned fleet (existing + bought) as fleet YAML.")]


def _load(path: Path | None, catalog: list[Any] | None, scenario: str | None = None,
          objective: str | None = None, rule: str | None = None,
          budget: float | None = None) -> Any:
    from suanli.catalog.loader import load_catalog
    from suanli.plan.loader import example_plan_path, load_plan, resolve_plan, validate
    from suanli.plan.schema import PlanInput

    cat = load_catalog(catalog or None)
    p = path or example_plan_path()
    lp = load_plan(p, cat)
    upd: dict[str, Any] = {}
    if scenario is not None:
        upd["scenario"] = scenario
    if objective is not None:
        upd["objective"] = objective
    if rule is not None:
        upd["export_rule"] = rule
    if budget is not None:
        upd["constraints"] = {**lp.plan.constraints.model_dump(), "budget_cny": budget}
    if upd:
        data = {**lp.plan.model_dump(mode="json"), **upd}
        plan = validate(PlanInput, data, "command line")
        lp = resolve_plan(plan, cat, p)
    if lp.plan.export_rule:
        from suanli.catalog.export_control import load_rules
        load_rules().version(lp.plan.export_rule)  # unknown versions fail early
    return lp, cat


@plan_app.callback()
def _default(ctx: typer.Context) -> None:
    """Without a subcommand: plan the bundled example."""
    if ctx.invoked_subcommand is None:
        run_cmd(None)


@plan_app.command("run")
def run_cmd(
    plan: PlanArg = None,
    scenario: ScenarioOpt = None,
    objective: ObjectiveOpt = None,
    export_rule: RuleOpt = None,
    budget: BudgetOpt = None,
    as_json: JsonOpt = False,
    html: HtmlOpt = None,
    fleet_out: FleetOutOpt = None,
    with_pareto: Annotated[bool, typer.Option("--pareto", help="Also sweep deadlines "
                                              "(cost vs time) into the report/JSON.")] = False,
    robust: Annotated[bool, typer.Option("--robust/--no-robust",
                                         help="Re-check with pessimistic rates.")] = True,
    catalog: CatalogOpt = None,
) -> None:
    """Solve a capacity plan: what to buy where, cost, power, time per workload."""
    from suanli.plan.capacity import CapacityModel
    from suanli.plan.planner import pareto, plan_fleet, run_plan

    lp, cat = _load(plan, catalog, scenario, objective, export_rule, budget)
    cap = CapacityModel(lp.plan.infer_headroom)
    res = run_plan(lp, cat, cap, robust=robust)
    pts = pareto(lp, cat, cap) if with_pareto else None
    if fleet_out is not None and res.feasible:
        fleet_out.parent.mkdir(parents=True, exist_ok=True)
        fleet_out.write_text(yaml.safe_dump(plan_fleet(res, lp), allow_unicode=True,
                                            sort_keys=False), encoding="utf-8")
    if html is not None:
        from suanli.report.plan import write_plan_html
        write_plan_html(res, html, pts)
    if as_json:
        out = res.as_dict()
        if pts is not None:
            out["pareto"] = pts
        print_json(out)
    else:
        _print_plan(res)
        if pts:
            _print_pareto(pts)
        if fleet_out is not None and res.feasible:
            console.print(f"planned fleet written to {fleet_out}", highlight=False)
        if html is not None:
            console.print(f"report written to {html}", highlight=False)
    if not res.feasible:
        raise typer.Exit(1)


def _print_plan(res: Any) -> None:
    console.print(f"[bold]{res.name}[/bold]: objective {res.objective}, scenario "
                  f"{res.scenario}, status {res.status}", highlight=False)
    if not res.feasible:
        console.print("[bold red]infeasible[/bold red]:")
        for line in res.infeasible:
            console.print(f"  - {line}", highlight=False, markup=False)
        return
    t = res.totals
    tb = Table(title="what to buy, where", title_justify="left")
    for c in ("candidate", "site", "chip", "nodes", "accel.", "capex M CNY", "facility kW"):
        tb.add_column(c, justify="left" if c in ("candidate", "site", "chip") else "right")
    for b in res.buys:
        tb.add_row(b["candidate"], b["site"], b["chip"], str(b["nodes"]),
                   f"{b['accelerators']:,}", fmt(b["capex_cny"] / 1e6), fmt(b["facility_kw"], 0))
    if not res.buys:
        tb.add_row("(nothing: the existing fleet suffices)", "", "", "", "", "", "")
    console.print(tb)
    if res.used_existing:
        tu = Table(title="existing nodes used", title_justify="left")
        for c in ("group", "site", "chip", "used", "of"):
            tu.add_column(c)
        for u in res.used_existing:
            tu.add_row(u["option"], u["site"], u["chip"], str(u["nodes"]), str(u["of"]))
        console.print(tu)
    tw = Table(title="workloads", title_justify="left")
    for c in ("workload", "on", "share", "nodes", "finish d", "how"):
        tw.add_column(c)
    for a in res.assignments:
        tw.add_row(a["workload"], a["option"], f"{a['fraction']:.2f}", fmt(a["nodes"]),
                   fmt(a["finish_days"]), a["how"])
    console.print(tw)
    share = t["intelligent_share"]
    console.print(
        f"TCO {fmt(t['tco_cny'] / 1e6)} M CNY over {t['horizon_years']:g} years (capex "
        f"{fmt(t['capex_cny'] / 1e6)} M); {t['new_accelerators']:,.0f} new accelerators, "
        f"{fmt(t['new_facility_kw'] / 1000, 2)} MW new facility power; energy "
        f"{fmt(t['energy_mwh_year'], 0)} MWh/yr, {fmt(t['carbon_t_year'], 0)} t CO2/yr; "
        f"intelligent share {'?' if share is None else f'{100 * share:.0f} %'}; makespan "
        f"{fmt(t['makespan_days'])} days", highlight=False)
    for k, v in res.excluded.items():
        console.print(f"not purchasable: {k}: {v}", highlight=False, markup=False)
    r = res.robustness
    if r:
        holds = r.get("plan_holds")
        pp = r.get("pessimistic_plan")
        extra = (f"; a plan for pessimistic rates costs {fmt(pp['tco_cny'] / 1e6)} M CNY "
                 f"({pp['new_accelerators']:,.0f} new accelerators)") if pp else ""
        short = ", ".join(f"{k} {100 * v:.0f} % served" for k, v in (r.get("short") or {}).items())
        ms = [100 * v for v in (r.get("margins") or {}).values()]
        span = ("-" if not ms else f"{max(ms):.0f} %" if round(min(ms)) == round(max(ms))
                else f"{min(ms):.0f}-{max(ms):.0f} %")
        console.print(f"robustness (rates at the low end of the model's likely range, "
                      f"-{span}): plan "
                      f"{'holds' if holds else 'does NOT hold'}"
                      + (f" ({short})" if short else "") + extra, highlight=False)
    for c in res.confidence:
        console.print(f"model confidence {c['name']}: {c['efficiency']}; margin "
                      f"{100 * c['pessimistic_margin']:.0f} %; peak figure confidence "
                      f"{c['peak_confidence']}", highlight=False, markup=False)
    for n in res.notes:
        console.print(f"note: {n}", highlight=False, markup=False)


def _print_pareto(pts: list[dict[str, Any]]) -> None:
    tb = Table(title="cost vs time to finish (deadlines scaled, min TCO)", title_justify="left")
    for c in ("deadline x", "TCO M CNY", "makespan d", "new accel.", "Pareto", "holds if "
              "pessimistic", "pessimistic TCO"):
        tb.add_column(c, justify="right")
    for p in pts:
        if not p["feasible"]:
            tb.add_row(f"{p['deadline_scale']:g}", "infeasible", "", "", "", "", "")
            continue
        pt = p.get("pessimistic_tco_cny")
        tb.add_row(f"{p['deadline_scale']:g}", fmt(p["tco_cny"] / 1e6), fmt(p["makespan_days"]),
                   f"{p['new_accelerators']:,.0f}", "yes" if p["pareto"] else "",
                   "yes" if p["robust"] else "no",
                   "infeasible" if pt is None else fmt(pt / 1e6))
    console.print(tb)


@plan_app.command("pareto")
def pareto_cmd(
    plan: PlanArg = None,
    scenario: ScenarioOpt = None,
    html: HtmlOpt = None,
    as_json: JsonOpt = False,
    catalog: CatalogOpt = None,
) -> None:
    """Cost vs time to finish: min-TCO plans with every deadline scaled (x2 ... x0.8)."""
    from suanli.plan.planner import pareto, pareto_figure

    lp, cat = _load(plan, catalog, scenario)
    pts = pareto(lp, cat)
    if html is not None:
        from suanli.report.html import Report
        rep = Report(f"suanli plan pareto: {lp.plan.name}")
        rep.figure(pareto_figure(pts))
        rep.write(html)
    if as_json:
        print_json(pts)
        return
    _print_pareto(pts)


@plan_app.command("substitute")
def substitute_cmd(
    source: Annotated[Path | None, typer.Option(
        "--from", help="Fleet YAML to replace (default: bundled 1,024 x H800).")] = None,
    scenario: Annotated[str, typer.Option(
        "--scenario", help="Which chips may replace it: domestic-only | no-nvidia | "
        "as-today | custom.")] = "domestic-only",
    plan: Annotated[Path | None, typer.Option(
        "--plan", help="Plan YAML giving the workload mix and prices (default: bundled).")] = None,
    as_json: JsonOpt = False,
    html: HtmlOpt = None,
    catalog: CatalogOpt = None,
) -> None:
    """What permitted chips match a fleet on a workload mix, at what power and cost."""
    from importlib import resources

    from suanli.fleet.loader import load_fleet
    from suanli.plan.planner import substitute

    lp, cat = _load(plan, catalog)
    src = source or Path(str(resources.files("suanli.plan") / "data" / "h800_fleet.yaml"))
    fleet = load_fleet(src, cat)
    if scenario not in ("domestic-only", "no-nvidia", "as-today", "custom"):
        raise SuanliError(f"unknown scenario {scenario!r}; one of domestic-only, no-nvidia, "
                          "as-today, custom", field="--scenario")
    sub = substitute(fleet, lp, cat, scenario)
    if html is not None:
        from suanli.report.plan import write_substitution_html
        write_substitution_html(sub, html)
    if as_json:
        print_json(sub.as_dict())
    else:
        console.print(sub.sentence, highlight=False, markup=False)
        tt = Table(title="throughput targets: what the source delivers on each workload's "
                   "share", title_justify="left")
        for c in ("workload", "share", "target", "unit"):
            tt.add_column(c)
        for t in sub.targets:
            tt.add_row(t["workload"], fmt(t.get("share"), 2), f"{t['target']:.4g}",
                       t.get("unit", t.get("note", "")))
        console.print(tt)
        _print_plan(sub.plan)
        for conf in sub.confidence[:len(sub.source_chips)]:
            console.print(f"model confidence (source) {conf['name']}: {conf['efficiency']}; "
                          f"peak figure confidence {conf['peak_confidence']}", highlight=False,
                          markup=False)
    if not sub.plan.feasible:
        raise typer.Exit(1)


@plan_app.command("schema")
def schema_cmd() -> None:
    """Print the JSON Schema of the plan file."""
    from suanli.plan.schema import PlanInput

    print(json.dumps(PlanInput.model_json_schema(), indent=2))
