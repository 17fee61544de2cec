"""`suanli chips`: list, show and compare catalogued accelerators.

Display rule used everywhere: an unknown figure prints as ``?`` and a figure the chip does not
have (``unsupported: true``) prints as ``—``. They are never merged.

This module only declares the commands and their options; the work (and the catalogue, pydantic
and YAML imports) lives in :mod:`suanli.commands.chips_view`, imported when a command runs, so
`suanli --help` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from suanli.commands.common import CatalogOpt, FormatOpt, JsonOpt, WideOpt

chips_app = typer.Typer(
    name="chips",
    help="Accelerator catalogue: list, show and compare chips (? = unknown, — = unsupported).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Attach ``suanli chips`` to the root app."""
    app.add_typer(chips_app, name="chips")


VendorOpt = Annotated[
    str | None, typer.Option("--vendor", help="Only this vendor (name, Chinese name or id prefix).")
]
PrecisionOpt = Annotated[
    str | None,
    typer.Option("--precision", help="Only chips known to support this precision (e.g. fp64)."),
]
StackOpt = Annotated[
    str | None,
    typer.Option(
        "--stack", help="Only this software stack (CUDA, CANN, MUSA...) or compat level (port...)."
    ),
]
SortOpt = Annotated[
    str | None,
    typer.Option(
        "--sort", help="Sort by a field: memory, bw, tdp, year, fp16, int8, fp16_per_watt, ..."
    ),
]
DescOpt = Annotated[bool, typer.Option("--desc", help="Sort descending.")]
ExportOpt = Annotated[
    bool,
    typer.Option("--export", help="Show TPP, performance density and the ECCN 3A090 class."),
]
RuleOpt = Annotated[
    str | None,
    typer.Option("--export-rule", help="Rule version (2022-10, 2023-10, 2024-12, 2026-01) or a "
                 "date YYYY-MM-DD; default 2023-10."),
]


@chips_app.command("list")
def list_chips(
    vendor: VendorOpt = None,
    precision: PrecisionOpt = None,
    stack: StackOpt = None,
    sort: SortOpt = None,
    desc: DescOpt = False,
    as_json: JsonOpt = False,
    out_format: FormatOpt = None,
    wide: WideOpt = False,
    catalog: CatalogOpt = None,
    export: ExportOpt = False,
    export_rule: RuleOpt = None,
) -> None:
    """List catalogued chips as a table (? = unknown, — = unsupported).

    The default table fits 100 columns; --wide adds name, vendor, year, FP32 and the stack."""
    from suanli.commands import chips_view

    chips_view.list_chips(vendor, precision, stack, sort, desc, as_json, out_format, wide, catalog,
                          export, export_rule)


@chips_app.command("show")
def show_chip(
    name: Annotated[str, typer.Argument(help="Chip id, name, alias or Chinese name.")],
    as_json: JsonOpt = False,
    catalog: CatalogOpt = None,
    export_rule: RuleOpt = None,
) -> None:
    """Every figure of one chip with its source and confidence."""
    from suanli.commands import chips_view

    chips_view.show_chip(name, as_json, catalog, export_rule)


@chips_app.command("compare")
def compare_chips(
    names: Annotated[list[str], typer.Argument(help="Two or more chips; ratios are vs the first.")],
    as_json: JsonOpt = False,
    catalog: CatalogOpt = None,
) -> None:
    """Side-by-side figures, with ratios relative to the first chip."""
    from suanli.commands import chips_view

    chips_view.compare_chips(names, as_json, catalog)


@chips_app.command("coverage")
def coverage(
    vendor: Annotated[
        str | None, typer.Option("--vendor", help="Only chips of this vendor (case-insensitive).")
    ] = None,
    gaps: Annotated[
        bool, typer.Option("--gaps", help="Only incomplete chips, with the notes of their gaps.")
    ] = False,
    as_json: JsonOpt = False,
    catalog: CatalogOpt = None,
) -> None:
    """Per chip: dense BF16/FP16, memory, bandwidth and TDP -- known, derived or missing."""
    from suanli.commands import chips_coverage

    chips_coverage.coverage_cmd(vendor, gaps, as_json, catalog)


__all__ = ["chips_app", "register"]
