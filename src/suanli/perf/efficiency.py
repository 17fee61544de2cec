"""Efficiency factors: the achievable fraction of a chip's datasheet peaks.

Three factors per chip, each an explicit constant with its evidence (the measured rows of
``shared/data/reference/microbenchmarks.csv``; see ``docs/perf-model.md``):

* ``compute`` -- large dense GEMM throughput / dense peak, per precision class;
* ``memory``  -- STREAM-like HBM bandwidth / datasheet bandwidth;
* ``link``    -- intra-node collective bus bandwidth / per-direction link bandwidth.

Measured *absolute* figures are stored (TFLOPS, GB/s) and divided by the catalogue's peak at
run time, so a corrected catalogue peak does not silently change the evidence. Where a chip has
no measurement the generic defaults below apply. Precedence (lowest to highest): generic
default -> measured evidence -> ``chip.efficiency`` (catalogue) -> caller/CLI overrides.

Nothing here is fitted to the validation rows; the one shape-dependent term,
:func:`gemm_shape_factor`, is a single documented function of the GEMM width used for every
model, chip and row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from suanli.catalog.schema import Chip, Precision

# Generic fallbacks for chips without measurements (documented in docs/perf-model.md).
DEFAULT_COMPUTE = 0.70  # vendor GEMM libraries outside CUDA: FlagPerf ratios 0.8-0.95 at best
DEFAULT_MEMORY = 0.80  # HBM STREAM fraction; FlagPerf 0.75-0.85 across vendors
DEFAULT_LINK = 0.70  # collective bus bandwidth / per-direction link bandwidth
NETWORK = 0.80  # scale-out RoCE/IB ring collectives, fraction of NIC line rate (assumption)
# Attention kernels run slower than plain GEMMs. Relative to the chip's GEMM efficiency, per
# kernel class (causal masking skipped, FLOPs counted as executed):
#   flash2 -- FlashAttention-2/3-class kernels: FA2 reports 50-73 % of A100 peak forward and
#             ~45-60 % forward+backward, i.e. ~0.55-0.7 of cuBLAS GEMM efficiency (83 %);
#   flash1 -- FlashAttention-1 / Triton flash attention (with ALiBi bias): FA2 is 1.7-3.0x
#             faster than FA1 and 1.3-2.5x faster than the Triton kernel, which puts them at
#             ~0.25-0.45 of GEMM efficiency.
#   plain  -- unfused attention: batched GEMMs at GEMM efficiency, plus the score/softmax
#             traffic through HBM (added by the training model).
ATTENTION_KERNELS: dict[str, float] = {"flash2": 0.65, "flash1": 0.35, "plain": 1.0}
# Flash-attention kernels lose efficiency on short key ranges: each query block streams its
# keys through one pipelined loop, and the fixed work per block (load Q, rescale and write O
# and the log-sum-exp, pipeline fill) is amortised over the number of key blocks. Published
# kernel measurement at constant work (batch x seq = 16k tokens, 16 heads x 128, H100 BF16,
# pytorch/benchmark commit ff65cb675209, "Fix dimension order for FlashAttention-3", #2391):
#   seq      512   1k    2k    4k    8k    16k
#   FA3      430   517   566   590   614   621 TFLOPS
#   Triton   329   390   434   458   471   477 TFLOPS (FA2 algorithm)
# Both follow keys / (keys + 240) within 2 % (FA3: 0.69 / 0.83 / 0.91 / 0.95 / 0.99 / 1 of the
# 16k figure; the curve gives 0.69 / 0.82 / 0.91 / 0.95 / 0.99 / 1). The kernel-class factors
# above are read at 8192 keys (the same reference as the GEMM curves); causal kernels see
# seq / 2 keys per query block on average, context-parallel ones seq / (2 cp) per ring step.
ATTN_HALF_KEYS = 240.0
DEFAULT_ATTENTION_KERNEL = "flash2"
# Flash-attention efficiency by head dimension. The kernel-class factors above are read at head
# dimension 128; a 64-wide head does half the MMA work per loaded K / V tile and per softmax
# element, and the published kernels lose throughput there. FlashAttention-3 paper (Shah et al.
# 2024, arXiv 2407.08608, Fig. 5: attention forward, H100 80GB SXM5, BF16, no causal mask,
# batch x seq = 16k tokens, hidden 2048), TFLOPS at seq 4k / 8k:
#   backend              head dim 64   head dim 128   ratio
#   cuDNN                408 / 412     609 / 600      0.68
#   FlashAttention-2     321 / 322     368 / 370      0.87
#   Triton (FA2 alg.)    400 / 401     389 / 392      1.0 (capped at 1)
# Backend per case: "cudnn" = Transformer Engine's FusedAttention, which is the only TE backend
# for learnable-softmax (attention-sink) attention (FlashAttention has no learnable-softmax path:
# NVIDIA-NeMo/RL issue #1685, verl-project/verl issue #5224); "flash2" = the FlashAttention-2
# package; "flash1" = the Triton / FA1-class kernels. Linear between 64 and 128, 1 at >= 128
# (no sweep above 128 is used), the 64 value below 64. Forward figures applied to every pass.
ATTN_HEAD_DIM_64: dict[str, float] = {"cudnn": 0.68, "flash2": 0.87, "flash1": 1.0, "plain": 1.0}


def attention_head_dim_factor(head_dim: float, backend: str) -> float:
    """Relative flash-attention efficiency at ``head_dim`` for ``backend`` (1 at >= 128)."""
    lo = ATTN_HEAD_DIM_64.get(backend, 1.0)
    t = min(max((float(head_dim) - 64.0) / 64.0, 0.0), 1.0)
    return lo + (1.0 - lo) * t


# Fraction of a compute window that can hide data-parallel / FSDP collectives (prefetch of
# the next layer's all-gather, bucketed reduce-scatter). The rest stays exposed (first
# gather, last reduce, SM and HBM contention between NCCL kernels and GEMMs).
DP_OVERLAP = 0.85
# Width at which a GEMM reaches half of its asymptotic efficiency penalty (see gemm_shape_factor).
GEMM_HALF_WIDTH = 192.0
# Same form for the token (row) dimension of a GEMM: few tokens per device per micro-batch
# (large cp / pp with micro-batch 1, decode) leave tensor-core waves partly empty.
GEMM_HALF_ROWS = 128.0

# Measured GEMM fractions above this are capped: they suggest a datasheet peak below the clock
# the benchmark actually ran at (910B 304/313, H20 142/148), and training GEMMs with real shapes
# never sustain them. Applies to evidence only; explicit overrides are taken as given.
MAX_MEASURED_COMPUTE = 0.90

_TENSOR = (Precision.BF16, Precision.FP16, Precision.FP8, Precision.TF32, Precision.FP4)


@dataclass(frozen=True, slots=True)
class Evidence:
    """Measured figures for chips whose id/name matches ``pattern``."""

    pattern: str
    tflops: dict[Precision, float] = field(default_factory=dict)  # measured GEMM TFLOPS/TOPS
    hbm_gbs: float | None = None  # measured STREAM-like bandwidth
    hbm_frac: float | None = None  # measured fraction of the datasheet bandwidth (variants)
    allreduce_busbw_gbs: float | None = None  # measured intra-node all-reduce bus bandwidth
    link_ref_gbs: float | None = None  # the headline link figure the busbw is compared to
    # fractions of the chip's own datasheet peak measured on the same die in another product
    # (used when no absolute figure for this product exists)
    ratios: dict[Precision, float] = field(default_factory=dict)
    # block-scaled FP8 (MXFP8) GEMM rate / per-tensor FP8 GEMM rate, measured on this die
    fp8_block_ratio: float | None = None
    source: str = ""


# Blackwell micro-benchmarks (perf8; see docs/perf-model.md "Efficiency factors"):
# HBM: CUB DeviceTransform "add" (c = a + b, the STREAM Add pattern) on one B200, 2^28 FP16
# elements, 6.721 TB/s = 87.6 % of the 7.67 TB/s the benchmark computes from the memory clock
# (NVIDIA/cccl PR #7391; F32 add 6.705 TB/s); stored absolute, 0.84 of the catalogue's 8 TB/s.
B200_HBM_ADD_GBS = 6721.0
# GEMM: torch.matmul (cuBLAS) on a GB300 NVL72 GPU, 16-bit operands, M = N = K = 8192:
# 1717.37 TFLOPS (K sweep at M = N = 8192: 1595.8 / 1745.8 / 1751.9 / 1756.3 / 1717.4 /
# 1812.1 at K = 512 ... 16384), the aten baseline of facebookexperimental/triton PR #740.
GB300_GEMM_TFLOPS = 1717.37
# GEMM kernels per precision on an HGX B300 ("NVIDIA B300 SXM6 AC"), NVIDIA's own Transformer
# Engine benchmark (docs/examples/gemm_profiling/gemm_profiling.rst, `benchmark_gemm.py
# --pre-quantize`: operands quantized once before the timed loop, so the kernels alone -- the
# model charges the quantisation casts separately). 5B config: M = 31 x 512 = 15,872 tokens,
# QKV 4096 -> 12288, out 4096 -> 4096, up 4096 -> 16384, down 16384 -> 4096, fprop + dgrad +
# wgrad = 19.17 TFLOP per layer in 13.102 (BF16) / 6.812 (FP8 current scaling, per tensor) /
# 7.161 (MXFP8) / 3.764 (NVFP4) ms: 1463 / 2815 / 2677 / 5094 TFLOPS. Divided by the model's
# own shape factors for those 12 GEMMs (gemm_shape_factor x gemm_rows_factor, 8-bit halved,
# 4-bit quartered -- as _gemm in train.py applies them) to give the rate at the reference
# shape the factors stand for (8192-wide, 8192 rows):
B300_TE_GEMM_TFLOPS: dict[str, float] = {
    "bf16": 1496.9, "fp8": 3009.4, "mxfp8": 2862.7, "nvfp4": 6007.1,
}

# NVLink 4 on HGX H100: "450GB/s is the line rate. With the protocol overhead (~20%) NCCL can
# get an effective NVLink bandwidth of 370GB/s, which you can observe as BusBw when running
# non-allreduce operations, or when running with NCCL_ALGO=RING" (NCCL maintainer,
# NVIDIA/nccl-tests issue #212, 2024-05-06; NVLS all-reduce reaches ~480 GB/s bus bandwidth,
# not used: the model's TP collectives are reduce-scatter / all-gather rings).
H100_NVLINK_RING_GBS = 370.0

# FlagPerf base (FlagOpen/FlagPerf@1b5a030) and the other public rows of microbenchmarks.csv.
EVIDENCE: tuple[Evidence, ...] = (
    Evidence(
        r"a100|a800",
        tflops={Precision.BF16: 259.2, Precision.FP16: 251.5, Precision.TF32: 123.68,
                Precision.FP32: 19.05, Precision.FP64_TENSOR: 17.8},
        hbm_frac=1328.25 / 1555,  # 85.4 % of the 40 GB part's 1555 GB/s (same HBM2e stack)
        allreduce_busbw_gbs=467.87, link_ref_gbs=600,
        source="FlagPerf base A100-40GB / A800 (GEMM 83.1 % BF16, HBM 85.4 %, allreduce 78 %)",
    ),
    Evidence(
        r"(^|[^0-9])h(100|800)", tflops={Precision.BF16: 789.2, Precision.FP16: 761.8,
                                         Precision.FP8: 1608.6},
        source="public torch matmul table (H100 789 TFLOPS BF16 of 989; H800 = same SMs); "
        "cuBLASLt FP8 E4M3 GEMM 8192^3 on 16 H100 SXM, mean 1608.6 TFLOPS "
        "(gitea.d-robotics.cc han.zhao/test_gpu_scripts reports_cublaslt_fp8_crosscheck)",
    ),
    Evidence(
        # the HGX B200 part only: GB200 NVL72 GPUs run at a higher power limit (their own,
        # higher datasheet peak), so a 1000 W board's absolute TFLOPS would understate them
        r"^nvidia_b200\s|hgx b200",
        tflops={Precision.BF16: 1420.0, Precision.FP16: 1420.0, Precision.FP4: 5370.0},
        hbm_gbs=B200_HBM_ADD_GBS,
        source="torch matmul / NVFP4 torch._scaled_mm on one B200 (pytorch/ao PR #2427, "
        "benchmarks/float8/bench_matmul.py, 2025-06-23): BF16 1.41 / 1.45 / 1.42 PFLOPS and "
        "NVFP4 4.46 / 5.50 / 5.37 PFLOPS at 4096^3 / 6144^3 / 8192^3 (8192^3 used; FP8: the "
        "BF16 ratio, no FP8 sweep found); HBM: CUB DeviceTransform 'add' on one B200, 2^28 "
        "FP16 elements, 6.721 TB/s (NVIDIA/cccl PR #7391)",
    ),
    Evidence(
        # GB200 NVL72: the same B200 die at a higher power limit and its own (higher) datasheet
        # peak; no GB200 GEMM sweep was found, so the HGX B200's measured fractions of its
        # datasheet peak are carried over (not its absolute TFLOPS)
        r"^nvidia_gb200",
        ratios={Precision.BF16: 1420.0 / 2250.0, Precision.FP16: 1420.0 / 2250.0,
                Precision.FP4: 5370.0 / 9000.0},
        hbm_frac=B200_HBM_ADD_GBS / 8000.0,
        source="HGX B200 micro-benchmark fractions (pytorch/ao PR #2427: BF16 1.42 of 2.25 "
        "PFLOPS, NVFP4 5.37 of 9 PFLOPS at 8192^3; NVIDIA/cccl PR #7391: HBM 'add' 6.721 of "
        "8 TB/s) applied to the same die in GB200 NVL72",
    ),
    Evidence(
        # HGX B300 ("NVIDIA B300 SXM6 AC"): Transformer Engine's own GEMM benchmark, kernel
        # only (pre-quantized operands), per precision; shape-corrected to the model's
        # reference GEMM (see B300_TE_GEMM_TFLOPS)
        r"^nvidia_b300",
        tflops={Precision.BF16: B300_TE_GEMM_TFLOPS["bf16"],
                Precision.FP16: B300_TE_GEMM_TFLOPS["bf16"],
                Precision.FP8: B300_TE_GEMM_TFLOPS["fp8"],
                Precision.FP4: B300_TE_GEMM_TFLOPS["nvfp4"]},
        fp8_block_ratio=B300_TE_GEMM_TFLOPS["mxfp8"] / B300_TE_GEMM_TFLOPS["fp8"],
        source="Transformer Engine GEMM benchmark on an HGX B300 (NVIDIA/TransformerEngine "
        "docs/examples/gemm_profiling/gemm_profiling.rst, benchmarks/gemm/benchmark_gemm.py "
        "--pre-quantize, 5B config, M = 15872): per-layer fprop + dgrad + wgrad 13.102 / "
        "6.812 / 7.161 / 3.764 ms BF16 / FP8 current / MXFP8 / NVFP4 = 1463 / 2815 / 2677 / "
        "5094 TFLOPS (1497 / 3009 / 2863 / 6007 at the model's reference shape)",
    ),
    Evidence(
        # GB300 NVL72: the same Blackwell Ultra die at a higher power limit and its own (higher)
        # datasheet peak. Its 16-bit GEMM is measured directly (cuBLAS 8192^3); FP8 / MXFP8 /
        # NVFP4 carry the HGX B300's measured fractions of its datasheet peaks (the same rule
        # as GB200 <- B200)
        r"^nvidia_gb300",
        tflops={Precision.BF16: GB300_GEMM_TFLOPS, Precision.FP16: GB300_GEMM_TFLOPS},
        ratios={Precision.FP8: B300_TE_GEMM_TFLOPS["fp8"] / 4500.0,
                Precision.FP4: B300_TE_GEMM_TFLOPS["nvfp4"] / 13500.0},
        fp8_block_ratio=B300_TE_GEMM_TFLOPS["mxfp8"] / B300_TE_GEMM_TFLOPS["fp8"],
        source="aten (cuBLAS) matmul on GB300, 16-bit, 8192^3: 1717.4 TFLOPS (K sweep "
        "1596-1812; facebookexperimental/triton PR #740, 2025-12-17); FP8 / MXFP8 / NVFP4: "
        "the HGX B300 fractions of Transformer Engine's GEMM benchmark (TransformerEngine "
        "gemm_profiling.rst: 3009 of 4500, 2863 of 4500, 6007 of 13500 TFLOPS) on the same die",
    ),
    Evidence(
        # measured on a GB200 NVL72 rack; applied to the NVL72 racks (GB200 and GB300 share the
        # NVLink 5 switch-tray fabric, 900 GB/s per direction per GPU). The HGX boards keep the
        # generic link factor (no measurement found).
        r"^nvidia_gb[23]00_",
        allreduce_busbw_gbs=811.0, link_ref_gbs=900.0,
        source="NCCL all-reduce over multi-node NVLink on GB200 NVL72 (2 trays x 4 GPUs): bus "
        "bandwidth 811 GB/s of 900 GB/s per direction (lixueduan.com 'GB200 MNNVL NCCL test')",
    ),
    Evidence(
        # HGX H100 SXM (NVLink 4 through third-generation NVSwitch, 450 GB/s per direction):
        # NCCL's effective ring bandwidth, the figure its ring reduce-scatter / all-gather (and
        # all-reduce with NCCL_ALGO=RING) reach as bus bandwidth
        r"h100_sxm|h100 sxm",
        allreduce_busbw_gbs=H100_NVLINK_RING_GBS, link_ref_gbs=450.0,
        source="NCCL effective NVLink ring bandwidth on 8 x H100 SXM: ~370 GB/s of the 450 GB/s "
        "line rate (~20 % protocol overhead), the bus bandwidth of non-all-reduce collectives "
        "or NCCL_ALGO=RING (NCCL maintainer, NVIDIA/nccl-tests issue #212)",
    ),
    Evidence(
        r"(^|[^0-9a-z])h20($|[^0-9])", tflops={Precision.BF16: 141.86, Precision.FP16: 141.73},
        source="public torch matmul table (H20 141.9 TFLOPS of 148)",
    ),
    Evidence(
        r"910b", tflops={Precision.BF16: 304.277, Precision.FP16: 313.182,
                         Precision.FP32: 82.92, Precision.INT8: 608.554},
        source="FlagPerf base Ascend 910B (Atlas 800T A2)",
    ),
    Evidence(
        r"c550", tflops={}, hbm_gbs=1390.5,
        source="FlagPerf base MetaX C550 (GEMM 82.8-87.4 % of spec, HBM 1390.5 GB/s)",
    ),
    Evidence(
        r"(^|[^0-9a-z])k100(?![-_ ]?ai)", tflops={Precision.FP16: 32.9, Precision.FP32: 19.1,
                                      Precision.FP64: 14.9},
        source="wangzy0327/hblas-bench rocBLAS on Hygon K100 (FP16 only ~33 % of 100)",
    ),
    Evidence(
        r"bw200|bw-?series", tflops={Precision.FP16: 456.4, Precision.FP32: 58.0,
                                     Precision.FP64: 27.5},
        source="wangzy0327/hblas-bench rocBLAS on Hygon BW200 (raised clock)",
    ),
    Evidence(r"(^|[^0-9a-z])l20($|[^0-9])", tflops={Precision.FP16: 110.0},
             source="DefTruth/CUDA-Learn-Notes cuBLAS HGEMM 105-115 TFLOPS"),
    Evidence(r"mi250", tflops={Precision.FP64_TENSOR: 38.0 * 2},
             source="ROCm/Tensile#1705 DGEMM ~38 TFLOPS per GCD"),
)

# Fractions given as ratios (absolute values not published).
RATIO_EVIDENCE: dict[str, dict[Precision, float]] = {
    r"c550": {Precision.FP16: 0.835, Precision.BF16: 0.828, Precision.FP32: 0.874,
              Precision.TF32: 0.828},
}


@dataclass(frozen=True, slots=True)
class Factors:
    """Achievable fractions used by the model for one chip at one precision."""

    compute: float
    memory: float
    link: float
    network: float = NETWORK
    attention: float | None = None  # None = by attention kernel class (ATTENTION_KERNELS)
    overlap: float = DP_OVERLAP
    # MXFP8 (block-scaled, `fp8-block`) GEMMs relative to per-tensor FP8 GEMMs: 1 where no
    # measurement separates them (the FP8 evidence then stands for both)
    fp8_block: float = 1.0
    source: str = "generic defaults"


def _matches(pattern: str, chip: Chip) -> bool:
    hay = " ".join([chip.id, chip.name.lower(), *[a.lower() for a in chip.aliases]])
    return re.search(pattern, hay) is not None


def _clip(x: float) -> float:
    return float(min(1.0, max(0.05, x)))


def measured_factors(chip: Chip, precision: Precision) -> tuple[dict[str, float], str]:
    """Fractions backed by measurements for ``chip`` (may be empty)."""
    out: dict[str, float] = {}
    sources: list[str] = []
    prec = Precision(precision)
    for ev in EVIDENCE:
        if not _matches(ev.pattern, chip):
            continue
        sources.append(ev.source)
        t = ev.tflops.get(prec)
        if t is None and prec in _TENSOR:  # same tensor-core path: use the closest measured
            t_bf = ev.tflops.get(Precision.BF16) or ev.tflops.get(Precision.FP16)
            p_bf = chip.tflops(Precision.BF16) or chip.tflops(Precision.FP16)
            if t_bf and p_bf:
                out["compute"] = _clip(t_bf / p_bf)
        if t is None and prec == Precision.FP64_TENSOR:
            t = ev.tflops.get(Precision.FP64)
        peak = chip.tflops(prec)
        if t is not None and peak:
            out["compute"] = _clip(t / peak)
        if ev.ratios:
            r = ev.ratios.get(prec)
            if r is None and prec in _TENSOR:
                r = ev.ratios.get(Precision.BF16) or ev.ratios.get(Precision.FP16)
            if r is not None:
                out["compute"] = _clip(r)
        if ev.hbm_gbs and chip.memory_bw_gbs:
            out["memory"] = _clip(ev.hbm_gbs / chip.memory_bw_gbs)
        if ev.hbm_frac:
            out["memory"] = _clip(ev.hbm_frac)
        if ev.fp8_block_ratio is not None:
            out["fp8_block"] = float(ev.fp8_block_ratio)
        if ev.allreduce_busbw_gbs and ev.link_ref_gbs:
            out["link"] = _clip(ev.allreduce_busbw_gbs / ev.link_ref_gbs)
    for pattern, ratios in RATIO_EVIDENCE.items():
        if _matches(pattern, chip) and prec in ratios:
            out["compute"] = ratios[prec]
    if "compute" in out:
        out["compute"] = min(out["compute"], MAX_MEASURED_COMPUTE)
    if prec != Precision.FP8:
        out.pop("fp8_block", None)
    return out, "; ".join(sources)


def factors_for(
    chip: Chip,
    precision: Precision | str,
    overrides: dict[str, float] | None = None,
) -> Factors:
    """Efficiency factors for ``chip`` at ``precision`` (defaults < evidence < chip < overrides)."""
    prec = Precision(precision)
    vals: dict[str, float | None] = {
        "compute": DEFAULT_COMPUTE, "memory": DEFAULT_MEMORY, "link": DEFAULT_LINK,
        "network": NETWORK, "overlap": DP_OVERLAP, "fp8_block": 1.0,
    }
    measured, src = measured_factors(chip, prec)
    vals.update(measured)
    vals.update({k: float(v) for k, v in chip.efficiency.items()})
    if chip.efficiency:
        src = (src + "; " if src else "") + "catalogue efficiency override"
    for k, v in (overrides or {}).items():
        if v is None:
            continue
        if not 0 < float(v) <= 1:
            from suanli.errors import SuanliError

            raise SuanliError(f"efficiency {k} must be in (0, 1], got {v}")
        vals[k] = float(v)
        src = (src + "; " if src else "") + f"override {k}={v}"
    return Factors(source=src or "generic defaults", **vals)  # type: ignore[arg-type]


def gemm_shape_factor(width: ArrayLike) -> np.ndarray:
    """Relative GEMM efficiency for a transformer whose (per-device) matmul width is ``width``.

    ``width / (width + GEMM_HALF_WIDTH)`` normalised to 1 at width 8192: narrow layers (small
    d_model, or d_model / tp) use tensor cores less well (tile quantisation, low arithmetic
    intensity of the K dimension, kernel launch overhead). 768 -> 0.82, 2048 -> 0.93,
    4096 -> 0.98, 8192 -> 1. One function for every chip and row.
    """
    w = np.maximum(np.asarray(width, dtype=float), 1.0)
    ref = 8192.0 / (8192.0 + GEMM_HALF_WIDTH)
    return np.minimum(1.0, (w / (w + GEMM_HALF_WIDTH)) / ref)


def attention_length_factor(keys: ArrayLike) -> np.ndarray:
    """Relative flash-attention efficiency for ``keys`` keys per query block (mean), from
    the published kernel sweep quoted at ``ATTN_HALF_KEYS``: ``keys / (keys + 240)``
    normalised to 1 at 8192 keys: 256 -> 0.53, 1024 -> 0.83, 2048 -> 0.92, 32768 -> 1.02."""
    k = np.maximum(np.asarray(keys, dtype=float), 1.0)
    ref = 8192.0 / (8192.0 + ATTN_HALF_KEYS)
    return (k / (k + ATTN_HALF_KEYS)) / ref


def gemm_rows_factor(rows: ArrayLike) -> np.ndarray:
    """Relative GEMM efficiency for ``rows`` tokens per GEMM (same form as the width curve,
    normalised to 1 at 8192 rows): 512 -> 0.81, 2048 -> 0.95, >= 8192 -> 1."""
    r = np.maximum(np.asarray(rows, dtype=float), 1.0)
    ref = 8192.0 / (8192.0 + GEMM_HALF_ROWS)
    return np.minimum(1.0, (r / (r + GEMM_HALF_ROWS)) / ref)
