"""MetaX: ``mx-smi`` summary table.

Format: header ``| MX-SMI 2.1.12   Kernel Mode Driver Version: 2.12.13 |`` and
``| MACA Version: 2.29.0.19 ...|``; per GPU ``| 0  MetaX C500 | 0000:0e:00.0 | 0% |`` then
``| 35C  54W / 350W | 826/65536 MiB | |``. Seen in gpustack/gpustack issue #4832 (8x C500).
Fixture ``tests/data/probes/mx-smi_c500.txt``.
"""

from __future__ import annotations

import re

from suanli.probes.base import Device, Parsed, Probe, Unparseable, to_float
from suanli.probes.tables import BUS_ID, PAIR, cells, version_after


class MetaxProbe(Probe):
    name = "metax"
    vendor = "MetaX"
    tools = ("mx-smi",)
    name_prefixes = ("MetaX",)

    def parse(self, text: str, tool: str | None = None) -> Parsed:
        driver = version_after(text, r"Kernel Mode Driver Version")
        maca = version_after(text, r"MACA Version")
        devices: list[Device] = []
        current: dict[str, object] | None = None
        for line in text.splitlines():
            if re.search(r"\bProcess(es)?\b.*:", line) or re.search(r"\bPID\b", line):
                break
            row = cells(line)
            if not row or len(row) < 2:
                continue
            m = re.fullmatch(r"(\d+)\s+(\S.*)", row[0])
            if m and BUS_ID.search(row[1]):
                current = {
                    "index": int(m.group(1)),
                    "name": m.group(2).strip(),
                    "bus_id": BUS_ID.search(row[1]).group(0),  # type: ignore[union-attr]
                    "util": to_float(row[2]) if len(row) > 2 else None,
                }
                continue
            pair = PAIR.search(row[1]) if current is not None else None
            if current is not None and pair and "MiB" in row[1]:
                devices.append(
                    Device(
                        vendor=self.vendor,
                        index=int(current["index"]),  # type: ignore[call-overload]
                        name=str(current["name"]),
                        bus_id=str(current["bus_id"]),
                        utilization_pct=current["util"],  # type: ignore[arg-type]
                        memory_used_mib=float(pair.group(1)),
                        memory_mib=float(pair.group(2)),
                    )
                )
                current = None
        if not devices:
            raise Unparseable("no GPU rows found")
        return Parsed(devices=devices, driver_version=driver,
                      stack_version=f"MACA {maca}" if maca else None)
