"""`suanli validate`: predict the published training measurements and report the error."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from suanli.catalog.loader import load_catalog
from suanli.commands.common import CatalogOpt, JsonOpt, console, fmt, print_json
from suanli.errors import SuanliError


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "—"
    return f"{x:+.1f} %" if signed else f"{x:.1f} %"


def group_table(groups: dict[str, dict[str, dict[str, Any]]]) -> Table:
    t = Table(title="validation by group (|error| median / p90, mean signed error)")
    for col in ("group", "value", "rows", "predicted", "median", "p90", "mean signed"):
        t.add_column(col, justify="left" if col in ("group", "value") else "right")
    for key, vals in groups.items():
        for v, st in vals.items():
            t.add_row(key, v, str(st["rows"]), str(st["predicted"]),
                      _pct(st["median_abs_error_pct"]), _pct(st["p90_abs_error_pct"]),
                      _pct(st["mean_signed_error_pct"], signed=True))
    return t


def summary_lines(rep: Any) -> list[str]:
    """One line per file plus the overall line (what the README quotes)."""
    lines = []
    for name, st in rep.groups()["file"].items():
        skipped = st["rows"] - st["predicted"]
        if not st["predicted"]:
            lines.append(f"{name}: 0 of {st['rows']} rows predicted")
            continue
        lines.append(
            f"{name}: {st['predicted']} of {st['rows']} rows predicted ({skipped} skipped): "
            f"median |error| {st['median_abs_error_pct']:.1f} %, p90 "
            f"{st['p90_abs_error_pct']:.1f} %, mean signed {st['mean_signed_error_pct']:+.1f} %"
        )
    s = rep.summary()
    if s["predicted"]:
        lines.append(
            f"all: {s['predicted']} rows predicted ({s['skipped']} skipped): median |error| "
            f"{s['median_abs_error_pct']:.1f} %, mean {s['mean_abs_error_pct']:.1f} %, "
            f"p90 {s['p90_abs_error_pct']:.1f} %, worst {s['worst_abs_error_pct']:.1f} %; "
            f"{s['within_15_pct']} within 15 %; mean signed error "
            f"{s['mean_signed_error_pct']:+.1f} % (target: median <= 10 % per file)"
        )
    return lines


def validate_cmd(
    data: Annotated[Path | None, typer.Option(help="Directory of validation CSVs.")] = None,
    file: Annotated[
        list[Path] | None, typer.Option("--file", help="Validate only these CSV files.")
    ] = None,
    catalog: CatalogOpt = None,
    rows: Annotated[bool, typer.Option("--rows/--no-rows", help="Print every row.")] = True,
    json: JsonOpt = False,
) -> None:
    """Predict every published measurement in ../shared/data/validation and report the error."""
    from suanli.perf.validate import run_validation

    cat = load_catalog(catalog or None)
    rep = run_validation(data, cat.get, files=file)
    summ = rep.summary()
    if json:
        print_json(rep.as_dict())
        return
    if rows:
        t = Table(title="validation: predicted vs measured tokens/s per device")
        for col in ("row", "chip", "predicted", "measured", "error"):
            t.add_column(col, justify="left" if col in ("row", "chip") else "right")
        for r in rep.rows:
            if r.predicted is None:
                t.add_row(f"{r.file}:{r.line} {r.label}", r.chip, "—", fmt(r.measured),
                          f"skipped: {r.problem}")
                continue
            t.add_row(f"{r.file}:{r.line} {r.label}", r.chip, fmt(r.predicted),
                      fmt(r.measured), f"{r.error_pct:+.1f} %")
        console.print(t)
    else:
        skipped = [r for r in rep.rows if r.predicted is None]
        if skipped:
            t = Table(title=f"rows not predicted ({len(skipped)})")
            for col in ("row", "reason"):
                t.add_column(col)
            for r in skipped:
                t.add_row(f"{r.file}:{r.line} {r.label}", str(r.problem))
            console.print(t)
    console.print(group_table(rep.groups()))
    if summ["predicted"] == 0:
        raise SuanliError("no row could be predicted (see the skipped reasons above)")
    for line in summary_lines(rep):
        console.print(line, highlight=False)
