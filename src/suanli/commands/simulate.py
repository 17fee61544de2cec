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
    from rich.progress import Progress

    from suanli.sched.job import Queue
    from suanli.sim.engine import SimResult
    from suanli.sim.setup import SimSetup
    from suanli.sim.sweep import RunConfig, SweepPoint

# Parameters of suanli.sim.setup.prepare (named in its errors) -> the flags that set them
FLAGS = {"fleet": "--fleet", "trace": "--trace", "trace_format": "--trace-format",
         "throughputs": "--throughputs", "seed": "--seed", "scale_fleet": "--scale-fleet",
         "max_jobs": "--max-jobs", "load": "--load", "jitter": "--jitter", "sweep": "--sweep",
         "ray": "--ray"}



def _progress_bar() -> Progress:
    """The progress bar of long simulations and sweeps (on stderr; rich imported lazily)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err_console)


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
    jitter: Annotated[float | None, num_option("--jitter", help="Multiply each inter-arrival "
                      "gap by a factor uniform in [1-J, 1+J], drawn with --seed (default 0; "
                      "0.2 in a sweep over several seeds).", ge=0, le=1)] = None,
    quota: Annotated[list[str] | None, typer.Option("--quota", help="Queue quota NAME=N "
                     "accelerators (repeatable).")] = None,
    weight: Annotated[list[str] | None, typer.Option("--weight", help="Queue weight NAME=W "
                      "for the fairness policies (repeatable).")] = None,
    html: Annotated[Path | None, out_file_option("--html", help="Write an HTML report here.")]
    = None,
    sweep: Annotated[list[str] | None, typer.Option("--sweep", help="Run a grid and compare: "
                     "AXIS=V1,V2;AXIS=... with axes policy, load, seed, scale-fleet, round, "
                     "jitter (repeatable), e.g. 'policy=fifo,max-min;load=1,5;seed=1,2,3'.")]
    = None,
    n_jobs: Annotated[int | None, count_option("--jobs", "-j", help="Sweep: local worker "
                      "processes (default: one per core).", le=1024)] = None,
    ray: Annotated[str | None, typer.Option("--ray", help="Sweep: run the points as tasks on "
                   "the Ray cluster at ADDRESS (host:port of the head, or 'auto'; needs the "
                   "optional ray extra).")] = None,
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
    if (n_jobs is not None or ray) and not sweep:
        raise SuanliError("only with --sweep", field="--jobs" if n_jobs is not None else "--ray")
    jitter_given = jitter is not None
    if sweep:
        from suanli.sim.sweep import SweepPoint, grid, parse_sweep

        try:
            axes = parse_sweep(sweep)
        except SuanliError as exc:
            raise flag_errors(exc) from None
        axes = {"policy": axes.pop("policy", names), **axes}
        base = SweepPoint(policy=policy, load=load, seed=seed, scale_fleet=scale_fleet,
                          round=round_s, jitter=jitter or 0.0)
        first = grid(axes, base, jitter_given=jitter_given)[0]
        seed, load, scale_fleet, jitter = first.seed, first.load, first.scale_fleet, first.jitter
    try:  # the inputs are checked here, before any worker starts
        setup = prepare(fleet=fleet, trace=trace, trace_format=trace_format,
                        throughputs=throughputs, seed=seed, scale_fleet=scale_fleet,
                        max_jobs=max_jobs, load=load, jitter=jitter or 0.0,
                        catalog_files=catalog)
    except SuanliError as exc:
        raise flag_errors(exc) from None
    jobs = setup.trace.jobs
    check_job_names(jobs, setup.cluster.pools, load_catalog(catalog or None))
    trace_queues = sorted({j.queue for j in jobs})
    check_names([q.name for q in queues], trace_queues, "--quota/--weight", "queue")
    if sweep:
        from suanli.sim.sweep import RunConfig

        cfg = RunConfig(fleet=str(fleet) if fleet else None, trace=str(trace) if trace else None,
                        trace_format=trace_format,
                        throughputs=str(throughputs) if throughputs else None,
                        max_jobs=max_jobs, catalog_files=tuple(str(c) for c in catalog or ()),
                        queues=tuple((q.name, q.weight, q.quota) for q in queues))
        _sweep(cfg, axes, base, jitter_given, n_jobs, ray, setup, out, html, wide)
        return
    results: list[SimResult] = []
    if out != "table":
        for pol in policies:
            results.append(run_simulation(setup.cluster, jobs, pol, setup.provider,
                                          round_s=round_s, notes=setup.notes, queues=queues))
    else:
        with _progress_bar() as bar:
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
    print_sim_table(results, setup.cluster.fleet_name, setup.cluster.devices, setup.trace.source,
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


def _sweep(cfg: RunConfig, axes: dict[str, list[Any]], base: SweepPoint, jitter_given: bool,
           n_jobs: int | None, ray: str | None, setup: SimSetup, out: str, html: Path | None,
           wide: bool) -> None:
    """Run the grid (processes or Ray) and print / write the comparison."""
    from suanli.sim.sweep import default_jobs, grid, sweep

    n = len(grid(axes, base, jitter_given))
    where = f"Ray at {ray}" if ray else f"{min(n_jobs or default_jobs(), n)} process(es)"
    source = Path(setup.trace.source).name
    if setup.trace.format == "synthetic" and len(axes.get("seed", ())) > 1:
        source = "a synthetic trace per seed"
    title = (f"{n} runs ({' x '.join(f'{len(v)} {k}' for k, v in axes.items())}) of "
             f"{len(setup.trace.jobs)} jobs from {source} on "
             f"{setup.cluster.fleet_name} ({setup.cluster.devices} accelerators), {where}")
    kw: dict[str, Any] = {"jitter_given": jitter_given, "jobs": n_jobs or default_jobs(),
                          "ray_address": ray}
    try:
        if out == "table":
            with _progress_bar() as bar:
                task = bar.add_task(f"sweep on {where}", total=n)

                def tick(done: int, total: int) -> None:
                    bar.update(task, completed=done)

                res = sweep(cfg, axes, base, progress=tick, **kw)
        else:
            res = sweep(cfg, axes, base, **kw)
    except SuanliError as exc:
        raise flag_errors(exc) from None
    if html is not None:
        from suanli.report.sweep import write_sweep_html

        written = write_sweep_html(res, html, title)
        if out == "table":
            err_console.print(f"wrote {written}")
    from suanli.report.sweep import summary_table

    if out == "json":
        print_json({"title": title, "fleet": setup.cluster.fleet_name,
                    "accelerators": setup.cluster.devices, "trace": setup.trace.source,
                    "trace_format": setup.trace.format, "jobs": len(setup.trace.jobs),
                    "axes": res.axes, "summary": res.summary, "points": res.points,
                    "notes": res.notes})
        return
    if out == "csv":
        from suanli.sim.sweep import FIGURES

        axes_cols = ["policy", "load", "scale_fleet", "round", "jitter"]
        print_csv([*axes_cols, "seeds", *[f"{k}_{w}" for k, _, _ in FIGURES
                                          for w in ("mean", "ci95")]],
                  [[*(s[a] for a in axes_cols), len(s["seeds"]),
                    *[s[k][w] for k, _, _ in FIGURES for w in ("mean", "ci95")]]
                   for s in res.summary])
        return
    heads, rows = summary_table(res, wide=wide)
    t = Table(title=title + "; mean ± 95 % CI across seeds")
    for i, h in enumerate(heads):
        t.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for r in rows:
        t.add_row(*r)
    print_table(t, wide=wide)
    for note in res.notes:
        console.print(f"[dim]• {note}[/dim]", highlight=False)


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


def print_sim_table(results: list[SimResult], fleet: str, devices: int, source: str,
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
