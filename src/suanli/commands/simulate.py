"""`suanli simulate`: trace-driven simulation of scheduling policies on a fleet."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from suanli.commands.common import (
    MAX_COUNT,
    CatalogOpt,
    FormatOpt,
    JsonOpt,
    WideOpt,
    check_names,
    console,
    count_option,
    err_console,
    fmt,
    in_file_option,
    num_option,
    out_file_option,
    output_format,
    print_csv,
    print_json,
    print_table,
)
from suanli.errors import SuanliError

if TYPE_CHECKING:  # the scheduler (numpy, scipy) loads only when a simulation runs
    from suanli.sched.job import Queue
    from suanli.sim.engine import SimResult

# Parameters of suanli.sim.setup.prepare (named in its errors) -> the flags that set them
FLAGS = {"fleet": "--fleet", "trace": "--trace", "trace_format": "--trace-format",
         "throughputs": "--throughputs", "seed": "--seed", "scale_fleet": "--scale-fleet",
         "max_jobs": "--max-jobs", "load": "--load", "jitter": "--jitter"}


def flag_errors(exc: SuanliError) -> SuanliError:
    """A library error naming a parameter, re-worded to name the flag that sets it."""
    if exc.field in FLAGS and (exc.file is None or exc.field == "trace_format"):
        return SuanliError(exc.problem, file=exc.file, where=exc.where, field=FLAGS[exc.field])
    return exc


def register(app: typer.Typer) -> None:
    """Attach ``suanli simulate`` to the root app."""
    app.command(name="simulate")(simulate)


def simulate(
    fleet: Annotated[Path | None, typer.Option("--fleet", help="Fleet YAML (default: the "
                     "bundled demo fleet, or the trace's own cluster).")] = None,
    trace: Annotated[Path | None, in_file_option("--trace", help="Trace file (default: the "
                     "bundled demo trace).")] = None,
    trace_format: Annotated[str, typer.Option("--trace-format", help="suanli (own CSV) | "
                            "philly | alibaba | alibaba-untimed | gavel | auto; synthetic "
                            "without --trace generates jobs.")] = "auto",
    throughputs: Annotated[Path | None, in_file_option("--throughputs", help="Measured "
                           "throughput matrix (Gavel JSON) instead of the performance model.")]
    = None,
    policy: Annotated[str, typer.Option("--policy", "-p", help="Scheduling policy; add "
                      "-agnostic for the heterogeneity-agnostic variant.")] = "max-min",
    compare: Annotated[list[str] | None, typer.Option("--compare", help="More policies to "
                       "run on the same input (repeatable).")] = None,
    seed: Annotated[int, count_option("--seed", help="Seed for synthetic traces, workload "
                    "rules, untimed Alibaba durations and --jitter.", ge=0, le=2**32 - 1)] = 0,
    scale_fleet: Annotated[float, num_option("--scale-fleet", help="Multiply node counts "
                           "by K.", gt=0, le=1000)] = 1.0,
    max_jobs: Annotated[int | None, count_option("--max-jobs", help="Only the first N jobs "
                        "(by arrival).", le=MAX_COUNT)] = None,
    round_s: Annotated[float, num_option("--round", help="Round length in seconds for "
                       "preemptive policies.", ge=1, le=7 * 86400)] = 360.0,
    load: Annotated[float, num_option("--load", help="Multiply the trace's arrival rate "
                    "by K.", gt=0, le=1e4)] = 1.0,
    jitter: Annotated[float, num_option("--jitter", help="Multiply each inter-arrival gap by "
                      "a factor uniform in [1-J, 1+J], drawn with --seed.", ge=0, le=1)] = 0.0,
    quota: Annotated[list[str] | None, typer.Option("--quota", help="Queue quota NAME=N "
                     "accelerators (repeatable).")] = None,
    weight: Annotated[list[str] | None, typer.Option("--weight", help="Queue weight NAME=W "
                      "for the fairness policies (repeatable).")] = None,
    html: Annotated[Path | None, out_file_option("--html", help="Write an HTML report here.")]
    = None,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
    out_format: FormatOpt = None,
    wide: WideOpt = False,
) -> None:
    """Simulate scheduling policies on a fleet with a job trace and compare them.

    Policies: fifo, srpt, las, max-min (Gavel-style), ftf, min-makespan, max-throughput,
    min-cost, min-energy, min-carbon, balanced; each also as <name>-agnostic.
    """
    from suanli.catalog.loader import load_catalog
    from suanli.sched.policies import get_policy
    from suanli.sim.engine import run_simulation
    from suanli.sim.setup import prepare
    from suanli.sim.traces import check_job_names

    out = output_format(out_format, json_out)
    names = [policy, *(compare or [])]
    policies = [get_policy(n) for n in names]
    queues = parse_queues(quota or [], weight or [])
    try:
        setup = prepare(fleet=fleet, trace=trace, trace_format=trace_format,
                        throughputs=throughputs, seed=seed, scale_fleet=scale_fleet,
                        max_jobs=max_jobs, load=load, jitter=jitter, catalog_files=catalog)
    except SuanliError as exc:
        raise flag_errors(exc) from None
    jobs = setup.trace.jobs
    check_job_names(jobs, setup.cluster.pools, load_catalog(catalog or None))
    trace_queues = sorted({j.queue for j in jobs})
    check_names([q.name for q in queues], trace_queues, "--quota/--weight", "queue")
    results: list[SimResult] = []
    if out != "table":
        for pol in policies:
            results.append(run_simulation(setup.cluster, jobs, pol, setup.provider,
                                          round_s=round_s, notes=setup.notes, queues=queues))
    else:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

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

        written = write_sim_html(results, html)
        if out == "table":
            err_console.print(f"wrote {written}")
    if out == "csv":
        from suanli.report.sim import COLUMNS, summary_rows

        print_csv(list(COLUMNS), summary_rows(results))
        return
    if out == "json":
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
    _print_table(results, setup.cluster.fleet_name, setup.cluster.devices, setup.trace.source,
                 wide=wide)
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
    import math

    from suanli.sched.job import Queue

    q: dict[str, float] = {}
    w: dict[str, float] = {}
    for opt, items, out in (("--quota", quotas, q), ("--weight", weights, w)):
        for item in items:
            name, sep, val = item.partition("=")
            try:
                num = float(val)
            except ValueError:
                num = -1.0
            if not sep or not name.strip() or not (math.isfinite(num) and num > 0):
                raise SuanliError(f"expected NAME=number > 0, got '{item}'", field=opt)
            out[name.strip()] = num
    return [Queue(n, weight=w.get(n, 1.0), quota=q.get(n)) for n in sorted({*q, *w})]


# the default table fits 100 columns; --wide shows every column of report.sim.COLUMNS
NARROW = {"policy": "policy", "done": "done", "unrunnable": "unrun", "mean JCT h": "JCT h",
          "p99 JCT h": "p99 h", "mean wait h": "wait h", "util %": "util %",
          "energy MWh": "MWh", "cost kCNY": "kCNY", "JCT vs first": "JCT ×"}


def _print_table(results: list[SimResult], fleet: str, devices: int, source: str,
                 wide: bool = False) -> None:
    from suanli.report.sim import COLUMNS, summary_rows

    t = Table(title=f"{len(results[0].jobs)} jobs from {Path(source).name} on {fleet} "
              f"({devices} accelerators)")
    keep = [i for i, c in enumerate(COLUMNS) if wide or c in NARROW]
    for i in keep:
        c = COLUMNS[i] if wide else NARROW[COLUMNS[i]]
        if i == 0:
            t.add_column(c, justify="left", no_wrap=True, min_width=16)
        else:
            t.add_column(c, justify="right", overflow="fold")
    for row in summary_rows(results):
        cells = [str(row[0]), str(row[1]), str(row[2])]
        for v in row[3:]:
            cells.append(fmt(v, 2) if isinstance(v, float) else ("—" if v is None else str(v)))
        t.add_row(*[cells[i] for i in keep])
    print_table(t, wide=wide)


__all__ = ["register", "simulate"]
