"""Plain numbers describing one chip type in one cluster, as the model consumes them.

The performance model never reads fleet objects: the caller passes bandwidths as numbers
(``devices_per_node``, ``inter_node_gbps`` per node, optional ``link_gbs`` override).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from suanli.catalog.schema import Chip, Precision
from suanli.errors import CannotRun, SuanliError
from suanli.perf.efficiency import Factors, factors_for

GIB = 1024.0**3
# Device memory kept free for the runtime (CUDA/CANN context, NCCL/HCCL buffers, allocator
# fragmentation): 8 % of capacity. Catalogue sizes are vendor "GB", which are GiB in practice
# (an "80 GB" A100 reports 79.3 GiB usable; FlagPerf measured 60.3 GiB of a "64 GB" 910B).
MEMORY_RESERVE = 0.08
DEFAULT_DEVICES_PER_NODE = 8
DEFAULT_INTER_NODE_GBPS = 1600.0  # per node: 8 x 200 Gbit/s NICs (HDR IB / RoCE)
DEFAULT_INTRA_LATENCY_S = 5e-6
DEFAULT_INTER_LATENCY_S = 10e-6
FALLBACK_LINK_GBS = 64.0  # PCIe 4.0 x16 both directions, when the catalogue has no link figure


@dataclass(frozen=True, slots=True)
class Hardware:
    """One chip type at one precision in one cluster shape (all rates already derated)."""

    chip_id: str
    chip_name: str
    precision: Precision
    peak_flops: float  # datasheet dense peak, flop/s (MFU denominator)
    flops: float  # achievable GEMM flop/s = peak x compute efficiency
    mem_capacity: float  # bytes per device (datasheet)
    mem_usable: float  # bytes per device after the reserve
    hbm_bw: float  # achievable bytes/s
    link_bw: float  # achievable per-direction intra-node bytes/s per device
    node_net_bw: float  # achievable scale-out bytes/s per node
    devices_per_node: int
    alpha_intra: float
    alpha_inter: float
    tdp_w: float | None
    eff: Factors
    # 16-bit tensor rate for the work that stays in BF16 when GEMMs run in FP8 (attention);
    # equals ``flops`` for 16-bit training
    flops_16: float = 0.0
    gemm_bytes: float = 2.0  # bytes per GEMM input element (1 for FP8, 0.5 for FP4)
    assumptions: tuple[str, ...] = ()  # missing figures and what replaced them
    chip: Chip | None = field(default=None, compare=False, repr=False)  # catalogue entry

    @property
    def memory_gb(self) -> float:
        return self.mem_capacity / GIB


def precision_peak(chip: Chip, precision: Precision | str) -> float:
    """Dense peak TFLOPS at ``precision``; CannotRun when the chip lacks it or it is unknown."""
    prec = Precision(precision)
    peak = chip.tflops(prec)
    if peak is None:
        label = "FP64" if prec == Precision.FP64 else prec.value.upper()
        if chip.supports(prec) is False:
            raise CannotRun(f"{chip.name} has no {label}")
        raise CannotRun(f"{chip.name}: {label} peak is not published (unknown)")
    if peak <= 0:
        raise CannotRun(f"{chip.name} has no {prec.value.upper()}")
    return float(peak)


def build_hardware(
    chip: Chip,
    precision: Precision | str = Precision.BF16,
    *,
    devices_per_node: int = DEFAULT_DEVICES_PER_NODE,
    inter_node_gbps: float = DEFAULT_INTER_NODE_GBPS,
    link_gbs: float | None = None,
    efficiency: dict[str, float] | None = None,
    alpha_intra: float = DEFAULT_INTRA_LATENCY_S,
    alpha_inter: float = DEFAULT_INTER_LATENCY_S,
) -> Hardware:
    """Derive the model's numbers for ``chip``; raises CannotRun / SuanliError on bad input."""
    prec = Precision(precision)
    peak = precision_peak(chip, prec)
    if devices_per_node < 1:
        raise SuanliError(f"devices per node must be >= 1, got {devices_per_node}")
    if inter_node_gbps <= 0:
        raise SuanliError(f"inter-node bandwidth must be > 0 Gbit/s, got {inter_node_gbps}")
    if link_gbs is not None and link_gbs <= 0:
        raise SuanliError(f"link bandwidth must be > 0 GB/s, got {link_gbs}")
    eff = factors_for(chip, prec, efficiency)
    mem = chip.memory_gb
    if mem is None:
        raise CannotRun(f"{chip.name}: memory size is not published (unknown)")
    bw = chip.memory_bw_gbs
    if bw is None:
        raise CannotRun(f"{chip.name}: memory bandwidth is not published (unknown)")
    assumptions: list[str] = []
    if link_gbs is None and not chip.link_gbs:
        assumptions.append(
            f"no intra-node link figure: PCIe 4.0 x16 ({FALLBACK_LINK_GBS:g} GB/s) assumed"
        )
    if eff.source == "generic defaults":
        assumptions.append(
            f"no measured efficiency: generic compute {eff.compute:.2f}, memory "
            f"{eff.memory:.2f}, link {eff.link:.2f} of datasheet assumed"
        )
    link = link_gbs if link_gbs is not None else (chip.link_gbs or FALLBACK_LINK_GBS)
    tdp = chip.tdp_w.value
    flops_16 = peak * 1e12 * eff.compute
    gemm_bytes = 2.0
    if prec in (Precision.FP8, Precision.INT8, Precision.FP4):
        gemm_bytes = 0.5 if prec == Precision.FP4 else 1.0
        p16 = chip.tflops(Precision.BF16) or chip.tflops(Precision.FP16)
        if p16:
            e16 = factors_for(chip, Precision.BF16 if chip.tflops(Precision.BF16)
                              else Precision.FP16, efficiency)
            flops_16 = p16 * 1e12 * e16.compute
        else:
            flops_16 = peak * 1e12 * eff.compute / 2
            assumptions.append("no 16-bit peak: half the 8-bit rate assumed for attention")
    if tdp is None:
        assumptions.append("no TDP figure: energy and electricity cost not estimated")
    return Hardware(
        chip_id=chip.id,
        chip_name=chip.name,
        precision=prec,
        peak_flops=peak * 1e12,
        flops=peak * 1e12 * eff.compute,
        mem_capacity=mem * GIB,
        mem_usable=mem * GIB * (1 - MEMORY_RESERVE),
        hbm_bw=bw * 1e9 * eff.memory,
        # the catalogue link figure is bidirectional aggregate; a ring sends one direction
        link_bw=link * 1e9 / 2 * eff.link,
        node_net_bw=inter_node_gbps / 8 * 1e9 * eff.network,
        devices_per_node=int(devices_per_node),
        alpha_intra=alpha_intra,
        alpha_inter=alpha_inter,
        tdp_w=float(tdp) if tdp is not None else None,
        eff=eff,
        flops_16=flops_16,
        gemm_bytes=gemm_bytes,
        assumptions=tuple(assumptions),
        chip=chip,
    )
