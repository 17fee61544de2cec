"""Export-control (ECCN 3A090) views for `suanli chips list --export` and `chips show`.

Kept apart from ``commands/chips.py`` so the catalogue tables and this view change separately.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from suanli.catalog.export_control import (
    NOT_CONTROLLED,
    UNKNOWN,
    classify,
    load_rules,
    thresholds,
)
from suanli.catalog.schema import Chip
from suanli.commands.common import console


def export_dict(chip: Chip, rule: str | None = None) -> dict[str, Any]:
    info = classify(chip, rule)
    version = load_rules().version(info.rule)
    return {**info.as_dict(), "citation": version.citation,
            "effective": version.effective.isoformat(),
            "thresholds": thresholds(load_rules(), version)}


def _style(eccn: str) -> str:
    if eccn == UNKNOWN:
        return "yellow"
    return "green" if eccn == NOT_CONTROLLED else "red"


def export_table(chips: list[Chip], rule: str | None = None) -> Table:
    version = load_rules().version(rule)
    table = Table(title=f"{len(chips)} chips: ECCN 3A090 under rule {version.id} "
                  f"({version.citation}, effective {version.effective}); ? unknown",
                  title_justify="left")
    for col, kw in (("id", {"no_wrap": True}), ("vendor", {}), ("TPP", {"justify": "right"}),
                    ("at", {}), ("die mm²", {"justify": "right"}),
                    ("density", {"justify": "right"}), ("class", {"no_wrap": True}),
                    ("why", {"ratio": 1})):
        table.add_column(col, **kw)  # type: ignore[arg-type]
    for c in chips:
        i = classify(c, version.id)
        tpp = "?" if i.tpp is None else f"{i.tpp:,.0f}" + ("" if i.tpp_complete else "+")
        table.add_row(c.id, c.vendor, tpp, i.tpp_precision or "",
                      "?" if i.die_area_mm2 is None else f"{i.die_area_mm2:g}",
                      "?" if i.performance_density is None else f"{i.performance_density:.2f}",
                      Text(i.eccn, style=_style(i.eccn)), i.reason)
    return table


def print_export(chip: Chip, rule: str | None = None) -> None:
    """The export-control lines of `chips show`."""
    d = export_dict(chip, rule)
    tpp = "unknown" if d["tpp"] is None else f"{d['tpp']:,.0f} (at {d['tpp_precision']}" + (
        "" if d["tpp_complete"] else ", lower bound") + ")"
    pd = ("unknown (die area unknown)" if d["performance_density"] is None
          else f"{d['performance_density']:.2f} per mm² (die {d['die_area_mm2']:g} mm²)")
    console.print(f"ECCN 3A090 (rule {d['rule']}, {d['citation']}): {d['eccn']} -- "
                  f"{d['reason']}", highlight=False, markup=False)
    console.print(f"  TPP: {tpp}; performance density: {pd}", highlight=False, markup=False)
    console.print(f"  thresholds: {d['thresholds']}", highlight=False, markup=False)
    if d["case_by_case"] is not None:
        console.print(f"  licence review case-by-case eligible: {d['case_by_case']}",
                      highlight=False, markup=False)
    for n in d["notes"]:
        console.print(f"  note: {n}", highlight=False, markup=False)
