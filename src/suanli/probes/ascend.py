"""Huawei Ascend: ``npu-smi info`` (the table every CANN install prints).

Format: per NPU two rows, ``| NPU Name | Health | Power(W) Temp(C) Hugepages |`` and
``| Chip [Phy-ID] | Bus-Id | AICore(%) Memory-Usage(MB) HBM-Usage(MB) |``; a header line
``| npu-smi 25.2.0   Version: 25.2.0 |``. Seen in vllm-project/vllm-ascend issues #2534, #5588
(Ascend910, two chips per NPU) and Project-HAMi/HAMi-WebUI issue #47 (910B4-1).
Fixtures ``npu-smi_910b.txt``, ``npu-smi_910c_2chip.txt``.
"""

from __future__ import annotations

import re

from suanli.probes.base import Device, Parsed, Probe, Unparseable, to_float
from suanli.probes.tables import BUS_ID, PAIR, cells, version_after


class AscendProbe(Probe):
    name = "ascend"
    vendor = "Huawei"
    tools = ("npu-smi",)
    name_prefixes = ("Ascend", "Huawei")

    def command(self, tool: str) -> list[str]:
        return [tool, "info"]

    def parse(self, text: str, tool: str | None = None) -> Parsed:
        if "npu-smi" not in text.lower() and "NPU" not in text:
            raise Unparseable("not npu-smi output (no 'NPU' header)")
        driver = version_after(text, r"npu-smi\s+[\w.]+\s+Version")
        devices: list[Device] = []
        pending: tuple[int, str] | None = None  # (npu id, name) of the row above
        for line in text.splitlines():
            if re.search(r"Process\s+id|Process\s+name", line, re.I):
                break  # the process table follows the device table
            row = cells(line)
            if not row or len(row) < 3:
                continue
            first = row[0]
            if BUS_ID.search(row[1]) and pending is not None:
                npu, name = pending
                ids = first.split()
                if not ids or not ids[0].isdigit():
                    raise Unparseable(f"chip row without a chip id: {first!r}")
                pairs = PAIR.findall(row[2])
                used = total = None
                for u, t in reversed(pairs):  # HBM last; 310P reports Memory-Usage instead
                    if float(t) > 0:
                        used, total = float(u), float(t)
                        break
                util = row[2].split()[0] if row[2].split() else None
                devices.append(
                    Device(
                        vendor=self.vendor,
                        index=len(devices),
                        name=name,
                        memory_mib=total,
                        memory_used_mib=used,
                        utilization_pct=to_float(util),
                        bus_id=BUS_ID.search(row[1]).group(0),  # type: ignore[union-attr]
                        note=f"NPU {npu} chip {ids[0]}",
                    )
                )
                continue
            m = re.fullmatch(r"(\d+)\s+(\S.*)", first)
            if m and not first.split()[1].isdigit():
                pending = (int(m.group(1)), m.group(2).strip())
        if not devices:
            raise Unparseable("no NPU rows found")
        return Parsed(devices=devices, driver_version=driver)
