"""Moore Threads: ``mthreads-gmi`` summary.

Format: ``mthreads-gmi:2.2.0   Driver Version:3.0.0`` then per GPU
``0    MTT S4000   |00000000:08:00.0    |0%    0MiB(49152MiB)`` and continuation lines.
Seen in gpustack/gpustack issue #3511 (8x S4000) and vllm-project/vllm-omni PR #2337 (S5000).
Fixture ``tests/data/probes/mthreads-gmi_s4000.txt``.
"""

from __future__ import annotations

import re

from suanli.probes.base import Device, Parsed, Probe, Unparseable

ROW = re.compile(
    r"^\s*(\d+)\s+(\S[^|]*?)\s*\|\s*([0-9A-Fa-f:.]+)\s*\|\s*(\d+(?:\.\d+)?)%\s+"
    r"(\d+(?:\.\d+)?)MiB\((\d+(?:\.\d+)?)MiB\)"
)


class MthreadsProbe(Probe):
    name = "mthreads"
    vendor = "Moore Threads"
    tools = ("mthreads-gmi",)
    name_prefixes = ("Moore Threads",)

    def parse(self, text: str, tool: str | None = None) -> Parsed:
        drv = re.search(r"Driver Version:\s*(\S+)", text)
        devices = []
        for line in text.splitlines():
            m = ROW.match(line)
            if not m:
                continue
            devices.append(
                Device(
                    vendor=self.vendor,
                    index=int(m.group(1)),
                    name=m.group(2).strip(),
                    bus_id=m.group(3),
                    utilization_pct=float(m.group(4)),
                    memory_used_mib=float(m.group(5)),
                    memory_mib=float(m.group(6)),
                )
            )
        if not devices:
            raise Unparseable("no GPU rows found")
        return Parsed(devices=devices, driver_version=drv.group(1) if drv else None)
