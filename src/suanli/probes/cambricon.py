"""Cambricon: ``cnmon info`` (per-card key/value blocks).

Format: ``Card 0`` starts a block; ``Product Name : MLU370-X8``, ``Driver : v4.20.6``, a
``Physical Memory Usage :`` section with ``Total : 24576 MiB`` / ``Used : 0 MiB`` lines, and
``MLU Average : 0 %`` under Utilization. Read this way by SwanLab's Cambricon collector
(github.com/SwanHubX/SwanLab, swanlab/data/run/metadata/hardware/mlu/cambricon.py) and
Cambricon's own scripts (``cnmon info -c 0 -t | grep "Product Name" | awk -F ': '``).
Fixture ``tests/data/probes/cnmon-info_mlu370.txt``.
"""

from __future__ import annotations

import re

from suanli.probes.base import Device, Parsed, Probe, Unparseable

CARD = re.compile(r"^\s*Card\s*:?\s*(\d+)\s*$", re.M)


def _value(block: str, label: str) -> str | None:
    m = re.search(rf"^\s*{label}\s*:\s*(\S.*?)\s*$", block, re.M)
    return m.group(1) if m else None


class CambriconProbe(Probe):
    name = "cambricon"
    vendor = "Cambricon"
    tools = ("cnmon",)
    name_prefixes = ("Cambricon",)

    def command(self, tool: str) -> list[str]:
        return [tool, "info"]

    def parse(self, text: str, tool: str | None = None) -> Parsed:
        starts = list(CARD.finditer(text))
        devices = []
        for i, m in enumerate(starts):
            end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
            block = text[m.end():end]
            name = _value(block, "Product Name")
            if not name:
                raise Unparseable(f"card {m.group(1)}: no Product Name")
            total = used = None
            phys = re.search(r"Physical Memory Usage\s*:?(.*?)(?:\n\s*\S[^:\n]*Usage\s*:|\Z)",
                             block, re.S)
            if phys:
                t = re.search(r"Total\s*:\s*(\d+(?:\.\d+)?)\s*MiB", phys.group(1))
                u = re.search(r"Used\s*:\s*(\d+(?:\.\d+)?)\s*MiB", phys.group(1))
                total = float(t.group(1)) if t else None
                used = float(u.group(1)) if u else None
            util = re.search(r"MLU Average\s*:\s*(\d+(?:\.\d+)?)\s*%", block)
            devices.append(
                Device(
                    vendor=self.vendor,
                    index=int(m.group(1)),
                    name=name,
                    memory_mib=total,
                    memory_used_mib=used,
                    utilization_pct=float(util.group(1)) if util else None,
                    driver_version=_value(block, "Driver"),
                )
            )
        if not devices:
            raise Unparseable("no 'Card N' blocks found")
        return Parsed(devices=devices)
