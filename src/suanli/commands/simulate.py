"""`suanli simulate`: trace-driven simulation of scheduling policies on a fleet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from suanli.commands.common import CatalogOpt, JsonOpt, console, err_console, fmt, print_json
from suanli.errors import SuanliError
from suanli.sched.job import Queue
from suanli.sched.policies import get_policy, policy_names
from suanli.sim.engine import SimResult, run_simulation
from suanli.sim.setup import prepare


def register(app: typer.Typer) -> None:
    """Attach ``suanli simulate`` to the root app."""
    app.command(name="simulate")(simulate)


def simulate(
    fleet: Annotated[Path | None, typer.Option("--fleet", help="Fleet YAML (default: the "
                     "bundled demo fleet, or the trace's own cluster).")] = None,
    trace: Annotated[Path | None, typer.Option("--trace", help="Trace file (default: the "
                     "bundled demo trace).")] = None,
    trace_format: Annotated[str, typer.Option("--trace-format", help="philly | alibaba | "
                            "gavel | synthetic | auto.")] = "auto",
    throughputs: Annotated[Path | None, typer.Option("--throughputs", help="Measured "
                           "throughput matrix (Gavel JSON) instead of the performance model.")]
    = None,
    policy: Annotated[str, typer.Option("--policy", "-p", help="Scheduling policy; add "
                      "-agnostic for the heterogeneity-agnostic variant.")] = "max-min",
    compare: Annotated[list[str] | None, typer.Option("--compare", help="More policies to "
                       "run on the same input (repeatable).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for synthetic traces and "
                    "workload rules.")] = 0,
    scale_fleet: Annotated[float, typer.Option("--scale-fleet", help="Multiply node counts "
                           "by K.")] = 1.0,
    max_jobs: Annotated[int | None, typer.Option("--max-jobs", help="Only the first N jobs "
                        "(by arrival).")] = None,
    round_s: Annotated[float, typer.Option("--round", help="Round length in seconds for "
                       "preemptive policies.")] = 360.0,
    load: Annotated[float, typer.Option("--load", help="Multiply the trace's arrival rate "
                    "by K.")] = 1.0,
    quota: Annotated[list[str] | None, typer.Option("--quota", help="Queue quota NAME=N "
                     "accelerators (repeatable).")] = None,
    weight: Annotated[list[str] | None, typer.Option("--weight", help="Queue weight NAME=W "
                      "for the fairness policies (repeatable).")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write an HTML report here.")]
    = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Simulate scheduling policies on a fleet with a job trace and compare them.

    Policies: fifo, srpt, las, max-min (Gavel-style), ftf, min-makespan, max-throughput,
    min-cost, min-energy, min-carbon, balanced; each also as <name>-agnostic.
    """
    names = [policy, *(compare or [])]
    policies = [get_policy(n) for n in names]
    queues = parse_queues(quota or [], weight or [])
    setup = prepare(fleet=fleet, trace=trace, trace_format=trace_format,
                    throughputs=throughputs, seed=seed, scale_fleet=scale_fleet,
                    max_jobs=max_jobs, load=load, catalog_files=catalog)
    jobs = setup.trace.jobs
    results: list[SimResult] = []
    if json_out:
        for pol in policies:
            results.append(run_simulation(setup.cluster, jobs, pol, setup.provider,
                                          round_s=round_s, notes=setup.notes, queues=queues))
    else:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err_console, transient=False) as bar:
            for pol in policies:
                task = bar.add_task(f"simulating {pol.label}", total=len(jobs))

                def tick(done: int, total: int, task: Any = task) -> None:
                    bar.update(task, completed=done)

                results.append(run_simulation(setup.cluster, jobs, pol, setup.provider,
                                              round_s=round_s, notes=setup.notes,
                                              progress=tick, queues=queues))
    if html is not None:
        from suanli.report.sim import write_sim_html

        out = write_sim_html(results, html)
        if not json_out:
            err_console.print(f"wrote {out}")
    if json_out:
        print_json({
            "fleet": setup.cluster.fleet_name,
            "accelerators": setup.cluster.devices,
            "pools": [p.label for p in setup.cluster.pools],
            "trace": setup.trace.source,
            "trace_format": setup.trace.format,
            "jobs": len(jobs),
            "notes": setup.notes,
            "results": [r.metrics for r in results],
        })
        return
    _print_table(results, setup.cluster.fleet_name, setup.cluster.devices, setup.trace.source)
    from suanli.report.sim import preemption_lines

    for line in preemption_lines(results):
        console.print(line, highlight=False)
    for n in setup.notes:
        console.print(f"[dim]• {n}[/dim]", highlight=False)
    unr = results[0].metrics["unrunnable_reasons"]
    for u in unr[:3]:
        console.print(f"[yellow]{u['jobs']} job(s) cannot run:[/yellow] {u['reason']}",
                      highlight=False, markup=True)


def parse_queues(quotas: list[str], weights: list[str]) -> list[Queue]:
    """``--quota NAME=N`` and ``--weight NAME=W`` into queue definitions."""
    q: dict[str, float] = {}
    w: dict[str, float] = {}
    for opt, items, out in (("--quota", quotas, q), ("--weight", weights, w)):
        for item in items:
            name, sep, val = item.partition("=")
            try:
                num = float(val)
            except ValueError:
                num = -1.0
            if not sep or not name.strip() or num <= 0:
                raise SuanliError(f"expected NAME=number > 0, got '{item}'", field=opt)
            out[name.strip()] = num
    return [Queue(n, weight=w.get(n, 1.0), quota=q.get(n)) for n in sorted({*q, *w})]


def _print_table(results: list[SimResult], fleet: str, devices: int, source: str) -> None:
    from suanli.report.sim import COLUMNS, summary_rows

    t = Table(title=f"{len(results[0].jobs)} jobs from {Path(source).name} on {fleet} "
              f"({devices} accelerators)")
    for c in COLUMNS:
        if c == "policy":
            t.add_column(c, justify="left", no_wrap=True, min_width=16)
        else:
            t.add_column(c, justify="right")
    for row in summary_rows(results):
        cells = [str(row[0]), str(row[1]), str(row[2])]
        for v in row[3:]:
            cells.append(fmt(v, 2) if isinstance(v, float) else ("—" if v is None else str(v)))
        t.add_row(*cells)
    console.print(t)


__all__ = ["policy_names", "register", "simulate"]
