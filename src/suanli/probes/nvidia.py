"""NVIDIA: NVML (``nvidia-ml-py``) when importable and a driver answers, else ``nvidia-smi``.

Format: ``nvidia-smi --query-gpu=... --format=csv,noheader,nounits`` (nvidia-smi(1) manual,
"--query-gpu"); fixture ``tests/data/probes/nvidia-smi_h800.csv``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from suanli.catalog import Catalog
from suanli.probes.base import Device, Parsed, Probe, ProbeResult, Runner, run_tool
from suanli.probes.common import csv_query, parse_query_csv


class NvidiaProbe(Probe):
    name = "nvidia"
    vendor = "NVIDIA"
    tools = ("nvidia-smi",)
    name_prefixes = ("NVIDIA", "GeForce", "Tesla")

    def command(self, tool: str) -> list[str]:
        return csv_query(tool)

    def parse(self, text: str, tool: str | None = None) -> Parsed:
        return parse_query_csv(text, self.vendor)

    def probe(self, catalog: Catalog | None = None, runner: Runner = run_tool) -> ProbeResult:
        if runner is run_tool:  # live run: NVML first (no subprocess), nvidia-smi otherwise
            via_nvml = self._nvml()
            if via_nvml is not None:
                return self.from_parsed(via_nvml, catalog, "nvml")
        return super().probe(catalog, runner)

    def from_parsed(self, parsed: Parsed, catalog: Catalog | None, tool: str) -> ProbeResult:
        devices = [self._finish(d, parsed, catalog) for d in parsed.devices]
        return ProbeResult(
            probe=self.name, vendor=self.vendor, status="ok", tool=tool,
            message=f"{len(devices)} device(s)", devices=devices,
        )

    def _nvml(self) -> Parsed | None:
        """Devices via NVML, or None when the bindings or the driver library are missing."""
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
        except Exception:  # NVMLError_LibraryNotFound / DriverNotLoaded: fall back
            return None
        try:
            driver = _text(pynvml.nvmlSystemGetDriverVersion())
            try:
                cuda = pynvml.nvmlSystemGetCudaDriverVersion()
                stack = f"CUDA {cuda // 1000}.{(cuda % 1000) // 10}"
            except Exception:
                stack = None
            devices = []
            for i in range(pynvml.nvmlDeviceGetCount()):
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                mem = pynvml.nvmlDeviceGetMemoryInfo(h)
                try:
                    util: float | None = float(pynvml.nvmlDeviceGetUtilizationRates(h).gpu)
                except Exception:
                    util = None
                devices.append(
                    Device(
                        vendor=self.vendor,
                        index=i,
                        name=_text(pynvml.nvmlDeviceGetName(h)),
                        memory_mib=mem.total / 2**20,
                        memory_used_mib=mem.used / 2**20,
                        utilization_pct=util,
                        bus_id=_text(pynvml.nvmlDeviceGetPciInfo(h).busId),
                    )
                )
            return Parsed(devices=devices, driver_version=driver, stack_version=stack)
        except Exception:  # a half-working NVML: let nvidia-smi speak instead
            return None
        finally:
            with contextlib.suppress(Exception):
                pynvml.nvmlShutdown()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
