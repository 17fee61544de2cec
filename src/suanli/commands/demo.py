"""`suanli demo`: the main job, end to end on bundled data.

Meter the bundled demo fleet, estimate a training run and an inference deployment on every chip
type in it (plus an FP64 HPC kernel), replay the bundled demo trace through the scheduler with a
heterogeneity-aware and an agnostic policy, and write one HTML report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from suanli.commands.common import (
    CatalogOpt,
    JsonOpt,
    console,
    err_console,
    fmt,
    layout_text,
    out_dir_option,
    print_json,
)
from suanli.commands.meter import run_meter
from suanli.errors import CannotRun

if TYPE_CHECKING:  # everything heavy (numpy, scipy, plotly) loads when the demo runs
    from suanli.catalog import Chip
    from suanli.sim.engine import SimResult

TRAIN_MODEL = "llama3-70b"
TRAIN_DEVICES = 1024
TRAIN_TOKENS = 1.0e12
INFER_MODEL = "llama2-70b"
INFER_DEVICES = 8
SIM_POLICIES = ("max-min", "max-min-agnostic", "fifo", "min-cost")


def _demo_chips(catalog: Any) -> list[Chip]:
    from suanli.fleet import demo_fleet_path, load_fleet

    resolved = load_fleet(demo_fleet_path(), catalog)
    seen: dict[str, Chip] = {}
    for key in sorted(resolved.chips):
        chip = resolved.chips[key]
        seen.setdefault(chip.id, chip)
    return list(seen.values())


def _per_chip(chips: list[Chip], estimate: Callable[[Chip], Any]) -> list[dict[str, Any]]:
    """One row per chip: the estimate's fields, or why the job cannot run there."""
    rows = []
    for chip in chips:
        row: dict[str, Any] = {"chip": chip.name, "chip_id": chip.id}
        try:
            rows.append({**row, "ok": True, **estimate(chip).as_dict()})
        except CannotRun as exc:
            rows.append({**row, "ok": False, "reason": exc.problem})
    return rows


def _train_rows(chips: list[Chip]) -> list[dict[str, Any]]:
    from suanli.perf.estimate import estimate_train

    return _per_chip(chips, lambda chip: estimate_train(
        TRAIN_MODEL, chip, TRAIN_DEVICES, seq_len=8192, global_batch=512, tokens=TRAIN_TOKENS,
        search_layouts=True, top_k=1))


def _infer_rows(chips: list[Chip]) -> list[dict[str, Any]]:
    from suanli.perf.estimate import estimate_infer

    return _per_chip(chips, lambda chip: estimate_infer(
        INFER_MODEL, chip, INFER_DEVICES, batch=32, prompt=2048, output=512))


def _hpc_rows(chips: list[Chip]) -> list[dict[str, Any]]:
    from suanli.perf.hpc import estimate_hpc

    return _per_chip(chips, lambda chip: estimate_hpc(chip, 64, "hpl"))


def _simulate(catalog: list[Path] | None) -> tuple[Any, list[SimResult]]:
    from suanli.sched.policies import get_policy
    from suanli.sim.engine import run_simulation
    from suanli.sim.setup import prepare
    from suanli.sim.traces import check_job_names

    setup = prepare(catalog_files=catalog)
    check_job_names(setup.trace.jobs, setup.cluster.pools)
    results = [run_simulation(setup.cluster, setup.trace.jobs, get_policy(name), setup.provider,
                              notes=setup.notes) for name in SIM_POLICIES]
    return setup, results


def _layout(r: dict[str, Any]) -> str:
    return layout_text(r["layout"])


def _train_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    headers = ["chip", "layout (searched)", "tokens/s", "MFU %", "bottleneck",
               "mem GB/dev", "days for 1T tokens", "MWh"]
    out = []
    for r in rows:
        if not r["ok"]:
            out.append([r["chip"], f"cannot run: {r['reason']}", None, None, None, None, None,
                        None])
            continue
        out.append([r["chip"], _layout(r), r["tokens_per_s"], 100 * r["mfu"], r["bottleneck"],
                    r["memory_gb"].get("total"), r["days"],
                    None if r["energy_kwh"] is None else r["energy_kwh"] / 1000])
    return headers, out


def _infer_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    headers = ["chip", "output tok/s", "TTFT s", "TPOT ms", "decode bound", "mem GB/dev"]
    out = []
    for r in rows:
        if not r["ok"]:
            out.append([r["chip"], f"cannot run: {r['reason']}", None, None, None, None])
            continue
        out.append([r["chip"], r["output_tokens_per_s"], r["ttft_s"], 1000 * r["tpot_s"],
                    r["decode_bound"], r["memory_gb"]["total"]])
    return headers, out


def _hpc_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    headers = ["chip", "HPL TFLOPS (64 devices)", "time s"]
    out = []
    for r in rows:
        if not r["ok"]:
            out.append([r["chip"], f"cannot run: {r['reason']}", None])
            continue
        out.append([r["chip"], r["rate"] / 1e12, r["time_s"]])
    return headers, out


def _print(title: str, headers: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i in (0, 1) else "right")
    for r in rows:
        table.add_row(*[c if isinstance(c, str) else fmt(c, 2) for c in r])
    console.print(table)


def _bar(rows: list[dict[str, Any]], key: str, title: str, scale: float = 1.0) -> Any:
    import plotly.graph_objects as go

    ok = [r for r in rows if r["ok"]]
    fig = go.Figure(go.Bar(x=[r["chip"] for r in ok], y=[r[key] * scale for r in ok]))
    fig.update_layout(title=title, height=380, margin={"t": 50, "b": 120})
    return fig


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        out: Annotated[Path, out_dir_option("--out", help="Folder for the HTML report "
                                            "(created if missing).")] = Path("out"),
        catalog: CatalogOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """The main job on bundled data: meter the demo fleet, estimate training, inference
        and HPC on each of its chips, simulate scheduling policies on the demo trace, and
        write out/report.html."""
        from suanli.catalog import load_catalog
        from suanli.report.html import Report
        from suanli.report.meter import meter_report
        from suanli.report.sim import sim_report

        t0 = time.perf_counter()
        cat = load_catalog(catalog)
        metered = run_meter(None, catalog)
        chips = _demo_chips(cat)
        train = _train_rows(chips)
        infer = _infer_rows(chips)
        hpc = _hpc_rows(chips)
        setup, sims = _simulate(catalog)

        report = Report(
            title="算力 suanli — demo report",
            subtitle="Bundled demo fleet and catalogue. Figures are model estimates from "
            "dense peak specifications and documented efficiency factors.",
        )
        meter_report(metered, report)
        report.heading(f"Training {TRAIN_MODEL} on {TRAIN_DEVICES} chips of each type")
        report.text("Global batch 512 x 8192 tokens, BF16; the fastest layout that fits "
                    "is searched per chip.", note=True)
        report.table(*_train_table(train))
        report.figure(_bar(train, "tokens_per_s", "Training throughput (tokens/s)"))
        report.heading(f"Serving {INFER_MODEL} on {INFER_DEVICES} chips (batch 32, "
                       "2048-token prompt, 512 output tokens)")
        report.table(*_infer_table(infer))
        report.figure(_bar(infer, "output_tokens_per_s", "Inference output tokens/s"))
        report.heading("HPC: HPL-like FP64 on 64 chips")
        report.table(*_hpc_table(hpc))
        sim_report(sims, report)
        path = report.write(out / "report.html")
        elapsed = time.perf_counter() - t0

        if json_out:
            print_json({"meter": metered.as_dict(), "train": train, "infer": infer,
                        "hpc": hpc, "simulate": [r.metrics for r in sims],
                        "report": str(path), "seconds": elapsed})
            return
        for line in metered_summary(metered):
            console.print(line, highlight=False)
        _print(f"Training {TRAIN_MODEL} on {TRAIN_DEVICES} chips, 1T tokens",
               *_train_table(train))
        _print(f"Inference {INFER_MODEL} on {INFER_DEVICES} chips", *_infer_table(infer))
        _print("HPL-like FP64 on 64 chips", *_hpc_table(hpc))
        print_sim_table(sims, setup.cluster.fleet_name, setup.cluster.devices,
                        setup.trace.source)
        err_console.print(f"report written to {path} ({elapsed:.1f} s)")


def print_sim_table(sims: list[SimResult], fleet: str, devices: int, source: str) -> None:
    from suanli.commands.simulate import print_sim_table

    print_sim_table(sims, fleet, devices, source)


def metered_summary(metered: Any) -> list[str]:
    from suanli.report.meter import summary_lines

    return list(summary_lines(metered))
