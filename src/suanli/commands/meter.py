"""`suanli meter`: compute scale, class split, memory, power, energy, cost and carbon."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from suanli.commands.common import (
    CatalogOpt,
    JsonOpt,
    console,
    err_console,
    num_option,
    out_file_option,
    print_json,
)
from suanli.errors import SuanliError

if TYPE_CHECKING:  # numpy (metering) and plotly (report) load only when the command runs
    from suanli.fleet.metering import MeterResult

FleetArg = Annotated[
    Path | None,
    typer.Argument(help="Fleet YAML file (default: the bundled demo fleet).", show_default=False),
]
HtmlOpt = Annotated[
    Path | None,
    out_file_option("--html", help="Also write an HTML report with plots to this path."),
]
ConversionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--conversion",
        help="FP32-equivalent factor KEY=VALUE (repeatable or comma-separated): "
        "fp16_to_fp32 (default 0.5), fp64_to_fp32 (default 2). Not an official conversion.",
    ),
]
ClassOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--class",
        help="Force a chip's compute class, CHIP_ID=general|intelligent|supercomputing "
        "(repeatable).",
    ),
]


def _split(items: list[str] | None) -> list[str]:
    return [part for item in items or [] for part in item.split(",") if part.strip()]


def run_meter(
    fleet: Path | None = None,
    catalog: list[Path] | None = None,
    conversion: list[str] | None = None,
    classes: list[str] | None = None,
    utilisation: float = 0.6,
    idle_power: float = 0.0,
    hpc_ratio: float = 0.2,
) -> MeterResult:
    """Load, resolve and meter a fleet (the demo fleet when ``fleet`` is None)."""
    from suanli.catalog.loader import load_catalog
    from suanli.fleet.loader import demo_fleet_path, load_fleet
    from suanli.fleet.metering import ClassRule, Conversion, MeterOptions, meter

    parsed = ClassRule.from_strings(_split(classes), hpc_min_fp64_ratio=hpc_ratio)
    cat = load_catalog(catalog)
    resolved = load_fleet(fleet if fleet is not None else demo_fleet_path(), cat)
    # --class names a chip of this fleet (id, name or alias); anything else would be ignored
    in_fleet = sorted({g.chip.id for g in resolved.groups()})
    overrides = {}
    for name, cls in parsed.overrides.items():
        chip_id = cat.get(name).id if name in cat else None
        if chip_id not in in_fleet:
            what = "is not in this fleet" if chip_id else "is not a catalogued chip"
            raise SuanliError(f"'{name}' {what}; chips of this fleet: {', '.join(in_fleet)}",
                              field="--class")
        overrides[chip_id] = cls
    rule = ClassRule(overrides=overrides, hpc_min_fp64_ratio=hpc_ratio)
    options = MeterOptions(conversion=Conversion.from_strings(_split(conversion)), rule=rule,
                           utilisation=utilisation, idle_power_fraction=idle_power)
    return meter(resolved, options)


def _table(title: str, headers: list[str], rows: list[list[str]]) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    for i, h in enumerate(headers):
        numeric = i > 0 and all(r[i][:1].isdigit() or r[i] in ("—", "unknown") for r in rows)
        t.add_column(h, justify="right" if numeric else "left", overflow="fold", no_wrap=i == 0)
    for i, r in enumerate(rows):
        t.add_row(*r, style="bold" if r and r[0] == "total" and i == len(rows) - 1 else None)
    return t


def print_tables(result: MeterResult) -> None:
    from suanli.report import meter as rep

    console.print(
        _table(rep.COMPUTE_TITLE, rep.COMPUTE_HEADERS, rep.compute_rows(result))
    )
    console.print(
        _table("Compute by precision (whole fleet)", rep.PRECISION_HEADERS,
               rep.precision_rows(result))
    )
    console.print(
        _table("Memory, power, energy, cost, carbon", rep.RESOURCE_HEADERS,
               rep.resource_rows(result, with_unknown=False))
    )
    for s in [*result.sites, result.total]:
        missing = rep.unknown_summary(s)
        if missing != "—":
            console.print(f"  * {s.name}: not counted, figure unknown: {missing}",
                          highlight=False, markup=False)
    groups = [r[:-1] for r in rep.group_rows(result)]
    console.print(_table("Node groups", rep.GROUP_HEADERS[:-1], groups))
    for line in rep.summary_lines(result):
        console.print(line, highlight=False, markup=False)
    for note in result.notes():
        console.print("note: " + note, style="dim", highlight=False, markup=False)


def meter_command(
    fleet: FleetArg = None,
    as_json: JsonOpt = False,
    html: HtmlOpt = None,
    catalog: CatalogOpt = None,
    conversion: ConversionOpt = None,
    classes: ClassOpt = None,
    utilisation: Annotated[
        float, num_option("--utilisation", help="Average accelerator load (assumption).",
                          ge=0, le=1)
    ] = 0.6,
    idle_power: Annotated[
        float, num_option("--idle-power", help="Power at zero load as a fraction of TDP.",
                          ge=0, le=1)
    ] = 0.0,
    hpc_ratio: Annotated[
        float,
        num_option("--hpc-min-fp64-ratio",
                   help="Supercomputing class if FP64 >= this x FP16 (FP32 if FP16 unknown).",
                   gt=0, le=10),
    ] = 0.2,
) -> None:
    """Meter a fleet: compute by precision and class (通用/智能/超算), memory, power, cost."""
    from suanli.report import meter as rep

    result = run_meter(fleet, catalog, conversion, classes, utilisation, idle_power, hpc_ratio)
    html_path: str | None = None
    if html is not None:
        html_path = str(rep.build_meter_report(result).write(html))
    if as_json:
        print_json(rep.to_json(result, html_path))
        return
    print_tables(result)
    if html_path:
        err_console.print(f"wrote {html_path}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add ``suanli meter`` to the root app."""
    app.command("meter")(meter_command)
