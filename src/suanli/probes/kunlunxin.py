"""Kunlunxin: ``xpu-smi -m`` (machine-readable, one whitespace-separated line per XPU).

Format (column positions, 0-based, as read by two independent public parsers: SwanLab's
Kunlunxin collector, swanlab/data/run/metadata/hardware/xpu/kunlunxin.py, and a P800 lab
tool's ``_parse_util``/``_parse_mem``): [1] device id, [4] temperature, [8] power,
[17] used memory MiB, [18] total memory MiB, [19] utilisation %, and the product name in
parentheses near the end (e.g. ``(P800 OAM)``). No verbatim sample was found; the fixture
``xpu-smi-m_p800.txt`` is written in that column layout (see the fixture README).
"""

from __future__ import annotations

import re

from suanli.probes.base import Device, Parsed, Probe, Unparseable

NAME = re.compile(r"\(([^()]*[A-Za-z][^()]*)\)")


class KunlunxinProbe(Probe):
    name = "kunlunxin"
    vendor = "Kunlunxin"
    tools = ("xpu-smi",)
    name_prefixes = ("Kunlunxin", "Kunlun")

    def command(self, tool: str) -> list[str]:
        return [tool, "-m"]

    def parse(self, text: str, tool: str | None = None) -> Parsed:
        if "Intel" in text and "XPU-SMI" in text:
            raise Unparseable("this xpu-smi is Intel's XPU Manager, not Kunlunxin's")
        devices = []
        for line in text.splitlines():
            cols = line.split()
            if len(cols) < 20 or not cols[1].isdigit():
                continue
            try:
                used, total, util = float(cols[17]), float(cols[18]), float(cols[19])
            except ValueError:
                continue
            if total <= 0 or used < 0 or used > total or not 0 <= util <= 100:
                raise Unparseable(f"XPU {cols[1]}: implausible memory/utilisation values")
            m = NAME.search(" ".join(cols[20:]))
            devices.append(
                Device(
                    vendor=self.vendor,
                    index=int(cols[1]),
                    name=m.group(1).strip() if m else "Kunlunxin XPU",
                    memory_mib=total,
                    memory_used_mib=used,
                    utilization_pct=util,
                )
            )
        if not devices:
            raise Unparseable("no XPU lines with the documented columns")
        return Parsed(devices=devices)
