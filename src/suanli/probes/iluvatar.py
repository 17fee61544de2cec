"""Iluvatar CoreX: ``ixsmi`` accepts nvidia-smi's ``--query-gpu ... --format=csv`` queries.

Source of the format: SwanLab's Iluvatar collector (github.com/SwanHubX/SwanLab,
swanlab/data/run/metadata/hardware/gpu/iluvatar.py) runs
``ixsmi --query-gpu=index,driver_version,name,memory.total --format=csv`` and reads
"Iluvatar BI-V150, 32768 MiB" rows. Fixture ``tests/data/probes/ixsmi_bi-v150.csv``.
"""

from __future__ import annotations

from suanli.probes.base import Parsed, Probe
from suanli.probes.common import csv_query, parse_query_csv


class IluvatarProbe(Probe):
    name = "iluvatar"
    vendor = "Iluvatar CoreX"
    tools = ("ixsmi",)
    name_prefixes = ("Iluvatar",)

    def command(self, tool: str) -> list[str]:
        return csv_query(tool)

    def parse(self, text: str, tool: str | None = None) -> Parsed:
        return parse_query_csv(text, self.vendor)
