"""HPC kernels: HPL-like dense FP64 LU and STREAM-like memory bandwidth."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from suanli.catalog.schema import Chip, Precision
from suanli.errors import CannotRun, SuanliError
from suanli.perf.hardware import GIB, build_hardware

HPL_MEMORY_FRACTION = 0.80  # of total device memory used by the N x N FP64 matrix
STREAM_BYTES_PER_ELEMENT = 24.0  # triad a = b + s*c: read two, write one FP64


@dataclass(frozen=True, slots=True)
class HpcResult:
    kernel: str
    precision: str
    rate: float  # flop/s (hpl) or byte/s (stream), all devices
    unit: str
    per_device: float
    problem_size: int  # HPL N or STREAM array elements per device
    time_s: float
    fraction_of_peak: float
    # confidence class of the chip's figures (the interval comes from the training validation
    # residuals of that class: HPC kernels have no validation rows of their own)
    confidence: dict[str, object] = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def fp64_precision(chip: Chip) -> Precision:
    """fp64_tensor when the chip has it, else fp64; CannotRun when it has neither."""
    if chip.tflops(Precision.FP64_TENSOR):
        return Precision.FP64_TENSOR
    if chip.tflops(Precision.FP64):
        return Precision.FP64
    if chip.supports(Precision.FP64) is False:
        raise CannotRun(f"{chip.name} has no FP64")
    raise CannotRun(f"{chip.name}: FP64 peak is not published (unknown)")


def estimate_hpc(
    chip: Chip, n_devices: int, kernel: Literal["hpl", "stream"] = "hpl", *,
    devices_per_node: int = 8, inter_node_gbps: float = 1600.0,
    efficiency: dict[str, float] | None = None, problem_size: int | None = None,
) -> HpcResult:
    """HPL-like: ``2/3 N^3 + 2 N^2`` FLOP at the FP64 GEMM rate plus panel broadcasts;
    STREAM-like: triad at the achievable HBM bandwidth, no communication."""
    if n_devices < 1:
        raise SuanliError(f"devices must be >= 1, got {n_devices}")
    if kernel not in ("hpl", "stream"):
        raise SuanliError(f"kernel must be hpl or stream, got {kernel!r}")
    if kernel == "stream":
        hw = build_hardware(chip, _any_precision(chip), devices_per_node=devices_per_node,
                            inter_node_gbps=inter_node_gbps, efficiency=efficiency)
        n_el = problem_size or int(HPL_MEMORY_FRACTION * hw.mem_capacity / STREAM_BYTES_PER_ELEMENT)
        rate = hw.hbm_bw * n_devices
        t = n_el * STREAM_BYTES_PER_ELEMENT / hw.hbm_bw
        return HpcResult("stream", "fp64", rate, "byte/s", hw.hbm_bw, n_el, t, hw.eff.memory,
                         _conf(hw, rate), list(hw.assumptions))
    prec = fp64_precision(chip)
    hw = build_hardware(chip, prec, devices_per_node=devices_per_node,
                        inter_node_gbps=inter_node_gbps, efficiency=efficiency)
    n = problem_size or int(math.sqrt(HPL_MEMORY_FRACTION * hw.mem_capacity * n_devices / 8.0))
    flops = 2.0 / 3.0 * n**3 + 2.0 * n**2
    t_comp = flops / (hw.flops * n_devices)
    # 2-D block-cyclic P x Q grid: each device sends/receives ~ N^2 / sqrt(P) panel elements
    # (row and column broadcasts); across nodes at the per-device NIC share, with look-ahead
    # hiding half of it.
    if n_devices > 1:
        bw = hw.link_bw if n_devices <= devices_per_node else hw.node_net_bw / devices_per_node
        t_comm = 0.5 * 8.0 * 2.0 * n**2 / math.sqrt(n_devices) / bw
    else:
        t_comm = 0.0
    t = t_comp + t_comm
    rate = flops / t
    return HpcResult("hpl", prec.value, rate, "flop/s", rate / n_devices, n, t,
                     rate / (hw.peak_flops * n_devices), _conf(hw, rate), list(hw.assumptions))


def _conf(hw: Any, rate: float) -> dict[str, object]:
    from suanli.perf.confidence import classify_hw

    out = classify_hw(hw).as_dict(rate)
    out["basis"] = f"{out['basis']}; training residuals (no HPC validation rows)"
    return out


def _any_precision(chip: Chip) -> Precision:
    for p in (Precision.FP64, Precision.FP32, Precision.BF16, Precision.FP16, Precision.INT8):
        if chip.tflops(p):
            return p
    raise CannotRun(f"{chip.name}: no published peak at any precision")


__all__ = ["GIB", "HpcResult", "estimate_hpc", "fp64_precision"]
