"""Hygon DCU: ``hy-smi ... --json`` (DTK's rocm-smi derivative).

Format: an object keyed ``card0``... with "Card Series" (e.g. "K100_AI"), "HCU use (%)" (older
releases "DCU use (%)"), "vram Total Memory (MiB)", "vram Total Used Memory (MiB)"; seen in
gpustack/gpustack issue #2032 (``hy-smi --showid --showmeminfo vram ... --json``).
Fixture ``tests/data/probes/hy-smi_k100ai.json``.
"""

from __future__ import annotations

from suanli.probes.base import Parsed, Probe
from suanli.probes.common import parse_smi_json


class HygonProbe(Probe):
    name = "hygon"
    vendor = "Hygon"
    tools = ("hy-smi",)
    name_prefixes = ("Hygon", "DCU")

    def command(self, tool: str) -> list[str]:
        return [tool, "--showproductname", "--showmeminfo", "vram", "--showuse", "--json"]

    def parse(self, text: str, tool: str | None = None) -> Parsed:
        return parse_smi_json(text, self.vendor)
