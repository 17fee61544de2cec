"""`suanli bench`: measure the local device with PyTorch (optional extra `bench`)."""

from __future__ import annotations

import csv
import platform
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from suanli.catalog.loader import load_catalog
from suanli.commands.common import (
    CatalogOpt,
    JsonOpt,
    console,
    count_option,
    fmt,
    out_file_option,
    print_json,
)
from suanli.errors import SuanliError


def _sizes(text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SuanliError(f"--sizes must be comma-separated integers, got {text!r}") from None
    if not out or any(n < 1 or n > 16384 for n in out):
        raise SuanliError(f"--sizes must be integers in 1..16384, got {text!r}")
    return out


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    from suanli.perf.bench import CSV_COLUMNS

    try:
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS))
            w.writeheader()
            w.writerows(rows)
    except OSError as exc:
        raise SuanliError(f"cannot write: {exc.strerror or exc}", file=path) from None


def bench_cmd(
    backend: Annotated[str | None, typer.Option(
        "--backend", help="cuda|musa|npu|mlu|xpu|cpu (default: first available)")] = None,
    precision: Annotated[list[str] | None, typer.Option(
        "--precision", help="GEMM precisions (fp32, tf32, bf16, fp16); repeat.")] = None,
    sizes: Annotated[str, typer.Option(help="Square GEMM sizes, comma-separated.")] =
        "1024,2048,4096",
    mem_mb: Annotated[int, count_option("--mem-mb", help="Buffer for bandwidth tests, MB.",
                                        le=4096)] = 256,
    nproc: Annotated[int, count_option("--nproc", help="Local processes for all-reduce "
                                                       "(0 = skip).", ge=0, le=64)] = 2,
    ar_mb: Annotated[int, count_option("--ar-mb", help="All-reduce message size, MB.",
                                       le=4096)] = 64,
    repeat: Annotated[int, count_option("--repeat", help="Timed repetitions (best is kept).",
                                        le=100)] = 3,
    chip: Annotated[str | None, typer.Option(
        "--chip", help="Catalogue chip this device is (overlay = its efficiency factors).")]
        = None,
    label: Annotated[str | None, typer.Option(help="Device label in the CSV.")] = None,
    csv_out: Annotated[Path | None, out_file_option("--csv",
                                                    help="Write micro-benchmark CSV.")] = None,
    overlay_out: Annotated[Path | None, out_file_option(
        "--overlay", help="Write a catalogue overlay YAML (use with --catalog).")] = None,
    catalog: CatalogOpt = None,
    json: JsonOpt = False,
) -> None:
    """GEMM TFLOPS sweep, memory bandwidth, host-device copy and gloo all-reduce bus bandwidth."""
    from suanli.perf.bench import overlay_for, run_bench

    cat_chip = load_catalog(catalog or None).get(chip) if chip else None
    res = run_bench(backend=backend, precisions=precision, sizes=_sizes(sizes), mem_mbytes=mem_mb,
                    nproc=nproc, ar_mbytes=ar_mb, repeat=repeat)
    dev_label = label or f"{res.backend.device_name or res.backend.name} ({platform.node()})"
    rows = res.csv_rows(dev_label)
    overlay, notes = overlay_for(res, cat_chip, dev_label)
    if csv_out is not None:
        _write_csv(rows, csv_out)
    if overlay_out is not None:
        import yaml

        try:
            overlay_out.write_text("# catalogue overlay written by `suanli bench`\n"
                                   + yaml.safe_dump(overlay, allow_unicode=True,
                                                    sort_keys=False), encoding="utf-8")
        except OSError as exc:
            raise SuanliError(f"cannot write: {exc.strerror or exc}", file=overlay_out) from None
    if json:
        print_json({"backend": res.backend.as_dict(),
                    "backends": [b.as_dict() for b in res.backends], "rows": rows,
                    "best_tflops": res.best_tflops(), "memory_gb": res.memory_gb,
                    "overlay": overlay, "notes": notes})
        return
    t = Table(title="backends")
    for col in ("backend", "available", "devices", "device / problem"):
        t.add_column(col)
    for b in res.backends:
        t.add_row(b.name, "yes" if b.available else "no", str(b.devices),
                  b.device_name if b.available else (b.problem or ""))
    console.print(t)
    m = Table(title=f"micro-benchmarks on {dev_label} ({res.backend.name})")
    for col in ("workload", "config", "precision", "value", "unit", "notes"):
        m.add_column(col, justify="right" if col == "value" else "left")
    for r in rows:
        m.add_row(r["workload"], r["config"], r["precision"], fmt(r["value"], 3), r["unit"],
                  r["notes"])
    console.print(m)
    for n in notes:
        console.print(f"note: {n}", highlight=False)
    for what, path in (("CSV", csv_out), ("overlay", overlay_out)):
        if path is not None:
            console.print(f"{what} written to {path}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_cmd)
