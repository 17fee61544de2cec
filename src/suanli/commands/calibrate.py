"""`suanli calibrate RUNS.csv`: fit per-chip efficiency factors to measured runs."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from suanli.catalog.loader import load_catalog
from suanli.commands.common import (
    CatalogOpt,
    JsonOpt,
    check_in_file,
    console,
    in_file_option,
    out_file_option,
    print_json,
)
from suanli.errors import SuanliError


def _holdout(paths: list[Path], catalog: list[Path] | None, overlay_path: Path
             ) -> dict[str, Any]:
    from suanli.perf.validate import run_validation

    out: dict[str, Any] = {}
    for label, extra in (("before", list(catalog or [])),
                         ("after", [*(catalog or []), overlay_path])):
        cat = load_catalog(extra or None)
        rep = run_validation(None, cat.get, files=paths)
        out[label] = rep.summary()
    return out


def calibrate_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Measured runs (validation CSV format).")],
    out: Annotated[Path | None, out_file_option(
        "--out", "-o", help="Write the catalogue overlay YAML here.")] = None,
    holdout: Annotated[list[Path] | None, in_file_option(
        "--holdout", help="Runs to predict before/after with the fitted overlay.")] = None,
    loo: Annotated[bool, typer.Option("--loo/--no-loo",
                                      help="Leave-one-out error (refits once per run).")] = True,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """Fit compute / memory / link efficiency per chip to measured runs; write an overlay."""
    from suanli.perf.calibrate import calibrate, load_runs, overlay, write_overlay

    for p in runs:
        check_in_file(p, "RUNS")
    cat = load_catalog(catalog or None)
    rs, skipped = load_runs(list(runs), cat.get)
    if not rs:
        raise SuanliError(f"no run could be predicted ({len(skipped)} skipped"
                          + (f"; first: {skipped[0][0]}:{skipped[0][1]} {skipped[0][2]}"
                             if skipped else "") + ")")
    fits = calibrate(rs, leave_one_out=loo)
    data = overlay(fits, ", ".join(p.name for p in runs))
    result: dict[str, Any] = {"chips": [f.as_dict() for f in fits],
                              "skipped": [{"file": f, "line": ln, "reason": r}
                                          for f, ln, r in skipped]}
    if out is not None:
        write_overlay(data, out)
        result["overlay"] = str(out)
    if holdout:
        if out is not None:
            result["holdout"] = _holdout(list(holdout), catalog, out)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                p = Path(tmp) / "overlay.yaml"
                write_overlay(data, p)
                result["holdout"] = _holdout(list(holdout), catalog, p)
    if json:
        print_json(result)
        return
    t = Table(title="calibration: efficiency factors per chip (prior -> fitted)")
    for col in ("chip", "runs", "compute", "memory", "link", "LOO median |error| before",
                "after"):
        t.add_column(col, justify="left" if col == "chip" else "right")
    for f in fits:
        d = f.as_dict()
        b, a = d["loo_median_abs_error_before_pct"], d["loo_median_abs_error_after_pct"]
        t.add_row(f.chip.name, str(len(f.runs)),
                  *[f"{f.prior[k]:.3f} -> {f.fitted[k]:.3f}" for k in ("compute", "memory",
                                                                       "link")],
                  f"{b:.1f} %" if b is not None else "—", f"{a:.1f} %" if a is not None else "—")
    console.print(t)
    if skipped:
        console.print(f"{len(skipped)} run(s) skipped (not predictable), e.g. "
                      f"{skipped[0][0]}:{skipped[0][1]}: {skipped[0][2]}", highlight=False)
    if "holdout" in result:
        h = result["holdout"]
        console.print(
            f"holdout ({h['before']['predicted']} runs): median |error| "
            f"{h['before']['median_abs_error_pct']:.1f} % -> "
            f"{h['after']['median_abs_error_pct']:.1f} %, mean signed "
            f"{h['before']['mean_signed_error_pct']:+.1f} % -> "
            f"{h['after']['mean_signed_error_pct']:+.1f} %", highlight=False)
    if out is not None:
        console.print(f"overlay written to {out} (use with --catalog {out})", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate_cmd)
