"""The work behind `suanli chips` (tables, metrics, JSON shapes); imported when a chips
command runs, so `suanli --help` does not load the catalogue.

Display rule used everywhere: an unknown figure prints as ``?`` and a figure the chip does not
have (``unsupported: true``) prints as ``—``. They are never merged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rich.table import Table
from rich.text import Text

from suanli.catalog.loader import Catalog, load_catalog
from suanli.catalog.schema import PRECISIONS, Chip, Figure, Precision
from suanli.commands.common import (
    console,
    output_format,
    print_csv,
    print_json,
    print_table,
)
from suanli.commands.common import resolve_precision as _resolve_precision
from suanli.errors import SuanliError

Status = Literal["known", "unknown", "unsupported"]
Cell = tuple[float | None, Status]

UNKNOWN = "?"
UNSUPPORTED = "—"
COMPAT_LEVELS = ("native", "binary", "source", "port")

# -- metrics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    label: str
    unit: str
    get: Callable[[Chip], Cell]
    ratio: bool = True  # meaningful as a ratio between chips (not for year/device count)


def _fig(fig: Figure) -> Cell:
    return fig.value, fig.status


def _num(v: float | int | None) -> Cell:
    return (v, "known") if v is not None else (None, "unknown")


def _unit(p: Precision) -> str:
    return "TOPS" if p.value.startswith("int") else "TFLOPS"


def _per_watt(chip: Chip, p: Precision) -> Cell:
    fig = chip.peak[p]
    if fig.unsupported:
        return None, "unsupported"
    tdp = chip.tdp_w.value
    if fig.value is None or not tdp:
        return None, "unknown"
    return fig.value / tdp, "known"


def _peak_getter(p: Precision) -> Callable[[Chip], Cell]:
    return lambda chip: _fig(chip.peak[p])


def _per_watt_getter(p: Precision) -> Callable[[Chip], Cell]:
    return lambda chip: _per_watt(chip, p)


METRICS: dict[str, Metric] = {
    "year": Metric("Year", "", lambda c: _num(c.year), ratio=False),
    "devices": Metric("Devices/part", "", lambda c: _num(c.devices_per_part), ratio=False),
    "memory": Metric("Memory", "GB", lambda c: _fig(c.memory.size_gb)),
    "bw": Metric("Mem BW", "GB/s", lambda c: _fig(c.memory.bandwidth_gbs)),
    "link": Metric("Link", "GB/s", lambda c: _fig(c.interconnect.bandwidth_gbs)),
    "tdp": Metric("TDP", "W", lambda c: _fig(c.tdp_w)),
}
for _p in PRECISIONS:
    METRICS[_p.value] = Metric(
        _p.value.upper().replace("_TENSOR", " tensor"), _unit(_p), _peak_getter(_p)
    )
for _p in PRECISIONS:
    METRICS[f"{_p.value}_per_watt"] = Metric(
        f"{_p.value.upper().replace('_TENSOR', ' tensor')}/W",
        f"{_unit(_p)}/W",
        _per_watt_getter(_p),
    )

METRIC_ALIASES = {
    "mem": "memory",
    "memory_gb": "memory",
    "bandwidth": "bw",
    "memory_bw": "bw",
    "memory_bw_gbs": "bw",
    "link_gbs": "link",
    "interconnect": "link",
    "tdp_w": "tdp",
    "power": "tdp",
    "devices_per_part": "devices",
}
TEXT_SORTS: dict[str, Callable[[Chip], str]] = {
    "id": lambda c: c.id,
    "name": lambda c: c.name.casefold(),
    "vendor": lambda c: c.vendor.casefold(),
    "stack": lambda c: c.stack.name.casefold(),
    "compat": lambda c: str(COMPAT_LEVELS.index(c.stack.cuda_compat)),
}

# rows of `chips compare`, in order
COMPARE_ROWS = (
    "year", "devices", "memory", "bw", "link", "tdp",
    *(p.value for p in PRECISIONS),
    "bf16_per_watt", "fp16_per_watt", "fp8_per_watt", "int8_per_watt",
)  # fmt: skip


def _key(text: str) -> str:
    return re.sub(r"[\s\-./]+", "_", text.strip()).casefold()


def resolve_metric(name: str) -> str:
    """Canonical metric name, or SuanliError listing the valid choices."""
    key = _key(name)
    key = METRIC_ALIASES.get(key, key)
    if key in METRICS or key in TEXT_SORTS:
        return key
    choices = [*TEXT_SORTS, *METRICS]
    raise SuanliError(f"unknown sort field '{name}'; valid: {', '.join(choices)}", field="--sort")


def resolve_precision(name: str) -> Precision:
    """Shared with every command that takes a precision (see commands.common)."""
    return _resolve_precision(name, "--precision")  # type: ignore[no-any-return]


# -- formatting ----------------------------------------------------------------------------


def fmt_value(v: float | None, status: Status) -> str:
    """Number, ``?`` for unknown, ``—`` for unsupported."""
    if status == "unsupported":
        return UNSUPPORTED
    if v is None:
        return UNKNOWN
    if v == 0:
        return "0"
    if abs(v) >= 100:
        s = f"{v:,.1f}"
    elif abs(v) >= 1:
        s = f"{v:,.2f}"
    else:
        s = f"{v:.3f}"
    return s.rstrip("0").rstrip(".") if "." in s else s


def fmt_cell(cell: Cell) -> str:
    return fmt_value(*cell)


def _pair(a: Cell, b: Cell) -> str:
    """``bf16/fp16`` column: one number when both agree."""
    if a == b:
        return fmt_cell(a)
    return f"{fmt_cell(a)}/{fmt_cell(b)}"


def _style(cell: Cell) -> str:
    return {"unknown": "yellow", "unsupported": "dim"}.get(cell[1], "")


# -- filters -------------------------------------------------------------------------------


def _norm(text: str) -> str:
    return re.sub(r"[\s\-_./()]+", "", text).casefold()


def _vendor_keys(chip: Chip) -> set[str]:
    keys = {_norm(chip.vendor), chip.id.split("_")[0]}
    if chip.vendor_zh:
        keys.add(_norm(chip.vendor_zh))
    return keys


def filter_vendor(chips: list[Chip], vendor: str, catalog: Iterable[Chip]) -> list[Chip]:
    want = _norm(vendor)
    out = [
        c for c in chips if any(k == want or (want and k.startswith(want)) for k in _vendor_keys(c))
    ]
    if not out and not any(
        any(k == want or (want and k.startswith(want)) for k in _vendor_keys(c)) for c in catalog
    ):
        vendors = sorted({c.vendor for c in catalog}, key=str.casefold)
        raise SuanliError(
            f"unknown vendor '{vendor}'; valid: {', '.join(vendors)}", field="--vendor"
        )
    return out


def filter_stack(chips: list[Chip], stack: str, catalog: Iterable[Chip]) -> list[Chip]:
    want = _norm(stack)
    if want in COMPAT_LEVELS:
        return [c for c in chips if c.stack.cuda_compat == want]
    out = [c for c in chips if want and want in _norm(c.stack.name)]
    if not out and not any(want and want in _norm(c.stack.name) for c in catalog):
        names = sorted({c.stack.name for c in catalog}, key=str.casefold)
        raise SuanliError(
            f"unknown stack '{stack}'; valid: {', '.join(names)} "
            f"or a CUDA-compat level ({', '.join(COMPAT_LEVELS)})",
            field="--stack",
        )
    return out


def sort_chips(chips: list[Chip], field: str, desc: bool = False) -> list[Chip]:
    """Sort by a metric or text field; unknown/unsupported values always sort last."""
    key = resolve_metric(field)
    if key in TEXT_SORTS:
        return sorted(chips, key=TEXT_SORTS[key], reverse=desc)
    metric = METRICS[key]
    known = [c for c in chips if metric.get(c)[0] is not None]
    rest = [c for c in chips if metric.get(c)[0] is None]
    known.sort(key=lambda c: metric.get(c)[0] or 0.0, reverse=desc)
    return known + rest


# -- JSON shapes ---------------------------------------------------------------------------


def chip_summary(chip: Chip) -> dict[str, Any]:
    return {
        "id": chip.id,
        "name": chip.name,
        "vendor": chip.vendor,
        "vendor_zh": chip.vendor_zh,
        "family": chip.family,
        "year": chip.year,
        "devices_per_part": chip.devices_per_part,
        "memory_gb": chip.memory_gb,
        "memory_bw_gbs": chip.memory_bw_gbs,
        "link_gbs": chip.link_gbs,
        "tdp_w": chip.tdp_w.value,
        "stack": chip.stack.name,
        "cuda_compat": chip.stack.cuda_compat,
        "peak": {p.value: chip.tflops(p) for p in PRECISIONS},
        "support": {p.value: chip.supports(p) for p in PRECISIONS},
    }


def _figure_rows(chip: Chip) -> list[tuple[str, str, str, Figure]]:
    """(path, label, unit, figure) for every figure of ``chip``."""
    rows: list[tuple[str, str, str, Figure]] = [
        ("memory.size_gb", "Memory", "GB", chip.memory.size_gb),
        ("memory.bandwidth_gbs", "Memory bandwidth", "GB/s", chip.memory.bandwidth_gbs),
        ("interconnect.bandwidth_gbs", "Interconnect", "GB/s", chip.interconnect.bandwidth_gbs),
        ("tdp_w", "TDP", "W", chip.tdp_w),
    ]
    for p in PRECISIONS:
        rows.append((f"peak.{p.value}", f"{METRICS[p.value].label} dense", _unit(p), chip.peak[p]))
    for p, fig in chip.sparse_peak.items():
        rows.append((f"sparse_peak.{p.value}", f"{METRICS[p.value].label} sparse", _unit(p), fig))
    return rows


def chip_detail(chip: Chip) -> dict[str, Any]:
    figures = []
    for path, label, unit, fig in _figure_rows(chip):
        ref, conf = chip.source_of(fig)
        figures.append(
            {
                "field": path,
                "label": label,
                "unit": unit,
                "value": fig.value,
                "status": fig.status,
                "source": fig.source,
                "source_ref": ref,
                "confidence": conf,
                "note": fig.note,
            }
        )
    return {"chip": chip.model_dump(mode="json"), "figures": figures}


# -- commands ------------------------------------------------------------------------------

def _load(catalog: list[Any] | None) -> Catalog:
    return load_catalog(catalog or None)


def list_chips(
    vendor: str | None = None,
    precision: str | None = None,
    stack: str | None = None,
    sort: str | None = None,
    desc: bool = False,
    as_json: bool = False,
    out_format: str | None = None,
    wide: bool = False,
    catalog: list[Path] | None = None,
    export: bool = False,
    export_rule: str | None = None,
) -> None:
    """`suanli chips list` (options: see suanli.commands.chips)."""
    from suanli.commands.chips_export import export_dict, export_table

    out = output_format(out_format, as_json)
    cat = _load(catalog)
    chips = list(cat)
    sort_key = resolve_metric(sort) if sort else None
    if vendor is not None:
        chips = filter_vendor(chips, vendor, cat)
    if precision is not None:
        prec = resolve_precision(precision)
        chips = [c for c in chips if c.supports(prec) is True]
    if stack is not None:
        chips = filter_stack(chips, stack, cat)
    if sort_key:
        chips = sort_chips(chips, sort_key, desc)
    elif desc:
        chips.reverse()

    if out == "csv":
        headers, rows_ = _list_rows(chips, sort_key)
        print_csv(headers, rows_)
        return
    if out == "json":
        rows = []
        for c in chips:
            row = chip_summary(c)
            if sort_key and sort_key in METRICS:
                row["sort_value"] = METRICS[sort_key].get(c)[0]
            if export:
                row["export"] = export_dict(c, export_rule)
            rows.append(row)
        print_json(rows)
        return
    if not chips:
        console.print("no chips match these filters")
        return
    table = export_table(chips, export_rule) if export else _list_table(chips, sort_key, wide=wide)
    print_table(table, wide=wide)


_LIST_COLS = ("memory", "bw", "fp64", "fp32", "bf16/fp16", "fp8", "int8", "tdp")
# (header, metric or text key, shown in the default 100-column table)
_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("id", "id", True), ("name", "name", False), ("vendor", "vendor", False),
    ("year", "year", False), ("mem GB", "memory", True), ("BW GB/s", "bw", True),
    ("FP64", "fp64", True), ("FP32", "fp32", False), ("BF16/FP16", "bf16/fp16", True),
    ("FP8", "fp8", True), ("INT8", "int8", True), ("TDP W", "tdp", True),
    ("stack", "stack", False), ("CUDA", "cuda", True),
)  # fmt: skip


def _extra(sort_key: str | None) -> str | None:
    return sort_key if sort_key in METRICS and sort_key not in (*_LIST_COLS, "year") else None


def _cell_of(c: Chip, key: str) -> tuple[str, str]:
    """(text, rich style) of one list cell."""
    if key == "id":
        return c.id, ""
    if key == "name":
        return (c.name if c.devices_per_part == 1
                else f"{c.name} [{c.devices_per_part} dev]"), ""
    if key == "vendor":
        return c.vendor, ""
    if key == "year":
        return (str(c.year) if c.year else UNKNOWN), ""
    if key == "stack":
        return c.stack.name, ""
    if key == "cuda":
        return c.stack.cuda_compat, ""
    if key == "bf16/fp16":
        bf, fp = METRICS["bf16"].get(c), METRICS["fp16"].get(c)
        return _pair(bf, fp), _style(fp)
    x = METRICS[key].get(c)
    return fmt_cell(x), _style(x)


def _list_rows(chips: list[Chip], sort_key: str | None) -> tuple[list[str], list[list[Any]]]:
    """Every column as plain values for CSV (unknown/unsupported = empty, see `status`)."""
    keys = ["memory", "bw", "fp64", "fp32", "bf16", "fp16", "fp8", "int8", "tdp"]
    extra = _extra(sort_key)
    if extra:
        keys.append(extra)
    headers = ["id", "name", "vendor", "year", *keys, "stack", "cuda_compat"]
    rows = [[c.id, c.name, c.vendor, c.year, *[METRICS[k].get(c)[0] for k in keys],
             c.stack.name, c.stack.cuda_compat] for c in chips]
    return headers, rows


def _list_table(chips: list[Chip], sort_key: str | None, wide: bool = True) -> Table:
    table = Table(title=f"{len(chips)} chips  (? unknown, — unsupported)", title_justify="left")
    cols = [(h, k) for h, k, narrow in _COLUMNS if wide or narrow]
    extra = _extra(sort_key)
    if extra:
        at = next(i for i, (_, k) in enumerate(cols) if k == "tdp") + 1
        m = METRICS[extra]
        cols.insert(at, (f"{m.label} {m.unit}".strip(), extra))
    for h, k in cols:
        text = k in ("id", "name", "vendor", "stack", "cuda")
        table.add_column(h, justify="left" if text else "right", no_wrap=k == "id",
                         style="bold" if k == extra else None, overflow="fold")
    for c in chips:
        table.add_row(*[Text(t, style=s) for t, s in (_cell_of(c, k) for _, k in cols)])
    return table


def show_chip(name: str, as_json: bool = False, catalog: list[Path] | None = None,
              export_rule: str | None = None) -> None:
    """Every figure of one chip with its source and confidence."""
    from suanli.catalog.coverage import derivation_note
    from suanli.commands.chips_export import export_dict, print_export

    chip = _load(catalog).get(name)
    if as_json:
        print_json({**chip_detail(chip), "export": export_dict(chip, export_rule)})
        return
    head = f"[bold]{chip.name}[/bold]  ({chip.id})"
    console.print(head)
    facts = [
        ("vendor", f"{chip.vendor}" + (f" / {chip.vendor_zh}" if chip.vendor_zh else "")),
        ("family", chip.family),
        ("year", str(chip.year) if chip.year else None),
        ("process", chip.process),
        ("form factor", chip.form_factor),
        ("memory type", chip.memory.type),
        ("interconnect", chip.interconnect.name),
        ("host interface", chip.interconnect.host_interface),
        ("devices per part", str(chip.devices_per_part)),
        ("aliases", ", ".join(chip.aliases) or None),
    ]
    for k, v in facts:
        if v:
            console.print(f"  {k}: {v}", highlight=False, markup=False)

    table = Table(title="figures (? unknown, — unsupported)", title_justify="left")
    for col, kw in (
        ("figure", {}),
        ("value", {"justify": "right"}),
        ("unit", {}),
        ("source", {}),
        ("conf.", {}),
        ("note", {"ratio": 1}),
    ):
        table.add_column(col, **kw)  # type: ignore[arg-type]
    for _path, label, unit, fig in _figure_rows(chip):
        ref, conf = chip.source_of(fig)
        src = fig.source if fig.source in chip.sources else ref
        cell = _fig(fig)
        table.add_row(
            label,
            Text(fmt_cell(cell), style=_style(cell)),
            unit,
            src or "",
            conf or "",
            derivation_note(fig),
        )
    console.print(table)

    if chip.sources:
        st = Table(title="sources", title_justify="left")
        st.add_column("key", no_wrap=True)
        st.add_column("reference", ratio=1)
        st.add_column("conf.")
        for key, source in chip.sources.items():
            st.add_row(key, source.ref, source.confidence)
        console.print(st)
    s = chip.stack
    lines = [
        ("stack", f"{s.name} (CUDA compat: {s.cuda_compat})"
         + (f"; frameworks: {', '.join(s.frameworks)}" if s.frameworks else "")
         + (f"; {s.note}" if s.note else "")),
        ("export control", chip.export_control.status
         + (f" [source: {chip.export_control.source}]" if chip.export_control.source else "")),
        ("entity list", chip.export_control.entity_list),
        ("efficiency", ", ".join(f"{k}={v:g}" for k, v in chip.efficiency.items()) or None),
        ("notes", chip.notes),
    ]  # fmt: skip
    for k, v in lines:
        if v:
            console.print(f"{k}: {v}", highlight=False, markup=False)
    print_export(chip, export_rule)


def compare_chips(names: list[str], as_json: bool = False,
                  catalog: list[Path] | None = None) -> None:
    """Side-by-side figures, with ratios relative to the first chip."""
    if len(names) < 2:
        raise SuanliError("compare needs at least two chips", field="NAMES")
    cat = _load(catalog)
    chips = [cat.get(n) for n in names]
    base = chips[0]
    rows = []
    for key in COMPARE_ROWS:
        m = METRICS[key]
        cells = [m.get(c) for c in chips]
        b = cells[0][0]
        ratios = [(v / b) if (m.ratio and v is not None and b) else None for v, _ in cells]
        rows.append((key, m, cells, ratios))
    if as_json:
        print_json(
            {
                "chips": [c.id for c in chips],
                "base": base.id,
                "rows": [
                    {
                        "field": key,
                        "label": m.label,
                        "unit": m.unit,
                        "values": [v for v, _ in cells],
                        "status": [st for _, st in cells],
                        "ratio_to_first": ratios,
                    }
                    for key, m, cells, ratios in rows
                ],
                "stack": [c.stack.name for c in chips],
                "cuda_compat": [c.stack.cuda_compat for c in chips],
                "export_control": [c.export_control.status for c in chips],
            }
        )
        return
    table = Table(
        title=f"(×) = ratio to {base.name}; ? unknown, — unsupported", title_justify="left"
    )
    table.add_column("metric")
    table.add_column("unit")
    for i, c in enumerate(chips):
        table.add_column(c.name if i else f"{c.name} (base)", justify="right")
    for _, m, cells, ratios in rows:
        out: list[str | Text] = [m.label, m.unit]
        for i, (cell, r) in enumerate(zip(cells, ratios, strict=True)):
            text = fmt_cell(cell) if m.ratio else fmt_value(*cell).replace(",", "")
            if i > 0 and r is not None:
                text += f" ({r:.2f}×)"
            out.append(Text(text, style=_style(cell)))
        table.add_row(*out)
    table.add_row("stack", "", *[f"{c.stack.name} ({c.stack.cuda_compat})" for c in chips])
    table.add_row("export", "", *[c.export_control.status for c in chips])
    console.print(table)
