"""AMD Instinct: ``amd-smi static --json`` (ROCm 6+), else ``rocm-smi ... --json``.

Formats: rocm-smi's JSON is an object keyed ``card0``, ``card1``, ... with keys such as
"Card Series", "VRAM Total Memory (B)", "GPU use (%)" (marimo-team/marimo issue #9237,
wandb/wandb PR #5449); amd-smi's is a list of ``{"gpu": N, "asic": {"market_name": ...},
"vram": {"size": {"value": ..., "unit": "MB"}}, "driver": {"version": ...}}`` (field names of
``amd-smi static`` in ROCm/rocm-systems PR #2987, value/unit objects in amd-smi JSON as in
nathaninline/ajean issue #39). Fixtures ``amd-smi_mi300x.json``, ``rocm-smi_mi250x.json``.
"""

from __future__ import annotations

import json
from typing import Any

from suanli.probes.base import Device, Parsed, Probe, Unparseable, to_float
from suanli.probes.common import parse_smi_json


def _size_mib(size: Any) -> float | None:
    """``{"value": 196592, "unit": "MB"}`` or ``"196592 MB"`` -> MiB (amd-smi's MB is MiB)."""
    if isinstance(size, dict):
        value, unit = size.get("value"), str(size.get("unit", "MB"))
    else:
        text = str(size)
        value, unit = to_float(text), text
    number = to_float(str(value)) if value is not None else None
    if number is None:
        return None
    unit = unit.upper()
    if "GB" in unit:
        return number * 1024.0
    if "KB" in unit:
        return number / 1024.0
    return number


class AmdProbe(Probe):
    name = "amd"
    vendor = "AMD"
    tools = ("amd-smi", "rocm-smi")
    name_prefixes = ("AMD", "Instinct")

    def command(self, tool: str) -> list[str]:
        if tool == "amd-smi":
            return ["amd-smi", "static", "--json"]
        return [tool, "--showproductname", "--showmeminfo", "vram", "--showuse",
                "--showdriverversion", "--json"]

    def parse(self, text: str, tool: str | None = None) -> Parsed:
        if tool != "amd-smi":
            return parse_smi_json(text, self.vendor)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise Unparseable(f"not JSON: {exc.msg}") from None
        if isinstance(data, dict) and isinstance(data.get("gpu_data"), list):
            data = data["gpu_data"]  # newer amd-smi wraps the list
        if not isinstance(data, list):
            raise Unparseable("expected a JSON list of GPUs")
        devices = []
        for i, entry in enumerate(data):
            if not isinstance(entry, dict):
                raise Unparseable(f"GPU #{i}: expected an object")
            asic = entry.get("asic") if isinstance(entry.get("asic"), dict) else {}
            vram = entry.get("vram") if isinstance(entry.get("vram"), dict) else {}
            driver = entry.get("driver") if isinstance(entry.get("driver"), dict) else {}
            bus = entry.get("bus") if isinstance(entry.get("bus"), dict) else {}
            name = asic.get("market_name") if isinstance(asic, dict) else None
            if not isinstance(name, str) or not name.strip():
                raise Unparseable(f"GPU #{i}: no asic.market_name")
            index = entry.get("gpu", i)
            if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                raise Unparseable(f"GPU #{i}: bad index {index!r}")
            version = driver.get("version") if isinstance(driver, dict) else None
            bdf = bus.get("bdf") if isinstance(bus, dict) else None
            devices.append(
                Device(
                    vendor=self.vendor,
                    index=index,
                    name=name.strip(),
                    memory_mib=_size_mib(vram.get("size")) if isinstance(vram, dict) else None,
                    driver_version=str(version) if version is not None else None,
                    bus_id=str(bdf) if bdf is not None else None,
                )
            )
        if not devices:
            raise Unparseable("no GPUs listed")
        return Parsed(devices=devices)
