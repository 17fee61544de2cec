"""Parsers shared by several vendors (nvidia-smi style CSV, rocm-smi style JSON)."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from suanli.probes.base import Device, Parsed, Unparseable, to_float

# the fields every CSV query asks for, in this order
CSV_FIELDS = (
    "index",
    "name",
    "memory.total",
    "memory.used",
    "utilization.gpu",
    "driver_version",
    "pci.bus_id",
)


def csv_query(tool: str) -> list[str]:
    return [tool, f"--query-gpu={','.join(CSV_FIELDS)}", "--format=csv,noheader,nounits"]


def _cell(text: str) -> str | None:
    text = text.strip()
    return None if not text or text.strip("[]").upper() in ("N/A", "NOT SUPPORTED") else text


def parse_query_csv(text: str, vendor: str) -> Parsed:
    """``--query-gpu=index,name,memory.total,memory.used,utilization.gpu,driver_version,
    pci.bus_id --format=csv[,noheader][,nounits]`` as printed by nvidia-smi and ixsmi."""
    devices: list[Device] = []
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise Unparseable(f"not CSV: {exc}") from None
    for row in rows:
        if not row or all(not c.strip() for c in row):
            continue
        if row[0].strip().lower() == "index":  # header line (format=csv without noheader)
            continue
        if len(row) != len(CSV_FIELDS):
            raise Unparseable(f"expected {len(CSV_FIELDS)} CSV fields, got {len(row)}")
        idx = row[0].strip()
        if not idx.isdigit():
            raise Unparseable(f"device index {idx!r} is not a number")
        name = _cell(row[1])
        if name is None:
            raise Unparseable("device without a name")
        devices.append(
            Device(
                vendor=vendor,
                index=int(idx),
                name=name,
                memory_mib=to_float(_cell(row[2])),
                memory_used_mib=to_float(_cell(row[3])),
                utilization_pct=to_float(_cell(row[4])),
                driver_version=_cell(row[5]),
                bus_id=_cell(row[6]),
            )
        )
    if not devices and text.strip():
        raise Unparseable("no device rows")
    return Parsed(devices=devices)


def _find(entry: dict[str, Any], *patterns: str, exclude: str | None = None) -> str | None:
    for pat in patterns:
        rx = re.compile(pat, re.I)
        for key, value in entry.items():
            if (
                rx.search(key)
                and not (exclude and re.search(exclude, key, re.I))
                and isinstance(value, str | int | float)
                and not isinstance(value, bool)
            ):
                return str(value)
    return None


def _mib(entry: dict[str, Any], used: bool) -> float | None:
    for key, value in entry.items():
        k = key.lower()
        if "memory" not in k or "total" not in k or ("used" in k) != used:
            continue
        if "vis" in k.split("vram")[0] or "gtt" in k:
            continue
        number = to_float(str(value))
        if number is None:
            continue
        if "(b)" in k:
            return number / 2**20
        if "(kib)" in k or "(kb)" in k:
            return number / 1024.0
        return number  # (MiB), hy-smi
    return None


def parse_smi_json(text: str, vendor: str) -> Parsed:
    """``rocm-smi``/``hy-smi ... --json``: ``{"card0": {"Card Series": ..., ...}, ...}``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Unparseable(f"not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise Unparseable("expected a JSON object keyed by card")
    driver = None
    system = data.get("system")
    if isinstance(system, dict):
        driver = _find(system, r"driver version")
    devices: list[Device] = []
    for key, entry in data.items():
        m = re.fullmatch(r"card(\d+)", str(key))
        if not m:
            continue
        if not isinstance(entry, dict):
            raise Unparseable(f"{key}: expected an object")
        name = _find(entry, r"^card series$", r"^card sku$", r"^card model$", r"product name")
        if not name:
            raise Unparseable(f"{key}: no card series / product name")
        devices.append(
            Device(
                vendor=vendor,
                index=int(m.group(1)),
                name=name.strip(),
                memory_mib=_mib(entry, used=False),
                memory_used_mib=_mib(entry, used=True),
                utilization_pct=to_float(_find(entry, r"^(gpu|dcu|hcu) use \(%\)$")),
                driver_version=_find(entry, r"driver version"),
                bus_id=_find(entry, r"^pci bus$"),
            )
        )
    if not devices:
        raise Unparseable("no 'cardN' entries")
    return Parsed(devices=sorted(devices, key=lambda d: d.index), driver_version=driver)
