"""`suanli chips coverage`: which critical figures of each chip are known, derived or missing.

Declared in :mod:`suanli.commands.chips` (``chips coverage``); imported when it runs.
"""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text

from suanli.catalog.coverage import CRITICAL, LABELS, FigureCoverage, coverage
from suanli.catalog.loader import load_catalog
from suanli.commands.common import console, print_json

STYLE = {"known": "", "derived": "cyan", "unsupported": "dim", "missing": "bold red"}


def _cell(f: FigureCoverage) -> Text:
    if f.status == "missing":
        return Text("missing", style=STYLE["missing"])
    if f.status == "unsupported":
        return Text("— unsupported", style=STYLE["unsupported"])
    assert f.value is not None
    mark = "derived " if f.status == "derived" else ""
    prec = f" {f.path.split('.')[-1]}" if f.key == "half" else ""
    return Text(f"{mark}{f.value:g}{prec} ({f.confidence or '?'})", style=STYLE[f.status])


def coverage_cmd(vendor: str | None = None, gaps: bool = False, as_json: bool = False,
                 catalog: list[Path] | None = None) -> None:
    """`suanli chips coverage` (options: see suanli.commands.chips)."""
    chips = list(load_catalog(catalog))
    if vendor:
        chips = [c for c in chips if vendor.casefold() in (c.vendor.casefold(),
                                                           (c.vendor_zh or "").casefold())]
    report = coverage(chips)
    rows = [r for r in report.chips if not (gaps and r.complete)]
    if as_json:
        data = report.as_dict()
        data["chips"] = [r.as_dict() for r in rows]
        print_json(data)
        return
    table = Table(title="critical figures (value (confidence); cyan = derived)",
                  title_justify="left")
    table.add_column("chip", no_wrap=True)
    table.add_column("vendor")
    for key in CRITICAL:
        table.add_column(LABELS[key])
    table.add_column("ok")
    for r in rows:
        table.add_row(r.chip_id, r.vendor, *[_cell(f) for f in r.figures],
                      "yes" if r.complete else "no")
    console.print(table)
    if gaps:
        for r in rows:
            for f in r.figures:
                if f.status in ("missing", "unsupported"):
                    console.print(f"{r.chip_id} {LABELS[f.key]}: {f.status}: {f.note or ''}",
                                  highlight=False, markup=False)
    t = report.totals
    console.print(
        f"complete: {t['complete']} of {t['chips']} chips ({t['complete_pct']:g} %); "
        f"derived figures: {t['derived_figures']}",
        highlight=False, markup=False,
    )
    for key in CRITICAL:
        c = t["figures"][key]
        console.print(
            f"  {LABELS[key]}: known {c['known']}, derived {c['derived']}, "
            f"unsupported {c['unsupported']}, missing {c['missing']}",
            highlight=False, markup=False,
        )
    conf = t["confidence"]
    console.print(
        "  confidence of known/derived figures: "
        + ", ".join(f"{k} {v}" for k, v in conf.items() if v),
        highlight=False, markup=False,
    )
