"""Mamba-2 mixer cost, kernel by kernel (the non-GEMM part of a hybrid model's Mamba block).

Megatron-Core trains a Mamba-2 block (``MambaMixer._ssm_training``,
megatron/core/ssm/mamba_mixer.py) as: ``in_proj`` (a TE LayerNorm + column-parallel GEMM,
timed with the other GEMMs), a contiguous ``(l, b, d) -> (b, l, d)`` copy of its output,
mamba_ssm's ``mamba_split_conv1d_scan_combined`` (causal depthwise conv1d + SiLU, then the
chunked SSD scan ``_mamba_chunk_scan_combined_fwd`` with the D skip and the ``silu(z)`` gate
inside the chunk-scan kernel), a contiguous copy back to ``(l, b, d)``, the gated RMSNorm
(``RMSNormGated``, mamba_ssm ops/triton/layernorm_gated.py) and ``out_proj`` (timed with the
GEMMs). The copies are real only when the micro-batch has more than one sequence (a size-1
batch dimension makes the rearranged tensor already contiguous).

The SSD forward is five Triton kernels (state-spaces/mamba mamba_ssm/ops/triton/
ssd_combined.py, ``_mamba_chunk_scan_combined_fwd``): ``_chunk_cumsum_fwd`` (softplus of dt +
bias and the per-chunk cumulative sum of dt * A, fp32), ``_chunk_state_fwd`` (each chunk's final
state B^T (x * decay), written fp32), ``_state_passing_fwd`` (the sequential recurrence over
chunks, read fp32, written in the input dtype), ``_bmm_chunk_fwd`` (C B^T per group per chunk,
full Q x Q, fp32 out) and ``_chunk_scan_fwd`` (the masked (C B^T o L) x product over the causal
half of the chunk, C h from the passed state, D skip, z gate; writes y and the pre-gate y).

The backward (``MambaSplitConv1dScanCombinedFn.backward`` and
``_mamba_chunk_scan_combined_bwd``) saves only the in_proj output and recomputes: it
transposes xBC into a contiguous copy, reruns the conv1d forward, reruns ``_chunk_cumsum_fwd``,
``_bmm_chunk_fwd``, ``_chunk_state_fwd`` and ``_state_passing_fwd``, then runs
``_chunk_scan_bwd_dz`` (gate), ``_chunk_scan_bwd_dstates``, ``_state_passing_bwd``,
``_chunk_scan_chunk_state_bwd_dx``, ``_chunk_state_bwd_db``, ``_chunk_scan_bwd_dC``,
``_chunk_scan_bwd_dcb``, two ``_bmm_chunk_bwd``, ``_chunk_scan_bwd_ddAcs_stable`` and
``_chunk_cumsum_bwd``, then ``causal_conv1d_bwd`` on three more transposed contiguous copies
(xBC, its output gradient, the input gradient). The tensor-core work of the backward is
10 H P N + 3 Q H P + 6 Q G N per token against 4 H P N + Q H P + 2 Q G N forward (ratio ~2.6
for Nemotron 3 shapes, not the 2 of a GEMM).

Each kernel is timed as max(tensor-core FLOPs / SSD rate, HBM bytes / bandwidth): the matmul
kernels at the caller's SSD rate (train.SSD_GEMM_RATIO x the chip's 16-bit GEMM rate, from a
published chunk-scan micro-benchmark), every kernel's bytes at the achieved HBM bandwidth. Bytes
count each tensor once per kernel (re-reads of a group's B / C / CB by the heads sharing it are
taken to hit L2). The launch overhead is not added: the NeMo / Megatron-Bridge configurations
capture the Mamba blocks in CUDA graphs (``cuda_graph_scope`` contains "mamba",
scripts/performance/configs/nemotronh/nemotron_3_workload_base_configs.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from suanli.perf.models import ModelShape

B16 = 2.0  # bytes of a bf16 element
F32 = 4.0  # bytes of an fp32 element


@dataclass(frozen=True, slots=True)
class Kernel:
    """One kernel of a Mamba-2 block, per token on one device: tensor-core FLOPs and HBM bytes
    (arrays when the tensor-parallel size or micro-batch is an array)."""

    name: str
    phase: str  # "fwd" (also rerun by full recompute) or "bwd"
    flops: np.ndarray | float
    bytes: np.ndarray | float


def mamba_kernels(m: ModelShape, seq_len: ArrayLike, tp: ArrayLike = 1,
                  mb: ArrayLike = 1) -> list[Kernel]:
    """The kernels of one Mamba-2 block's mixer (between in_proj and out_proj) in training,
    forward and backward, with FLOPs and bytes per token on one tensor-parallel rank (heads and
    groups split ``tp`` ways). ``mb`` > 1 adds the two layout copies Megatron's mixer makes."""
    tp_a = np.asarray(tp, dtype=float)
    h = m.mamba_heads / tp_a
    g = m.mamba_groups / tp_a
    p, n = float(m.mamba_head_dim), float(m.mamba_state)
    q = np.minimum(float(m.ssd_chunk), np.maximum(np.asarray(seq_len, dtype=float), 1.0))
    hp = h * p
    gn = g * n
    cd = hp + 2.0 * gn  # conv channels: x, B, C
    iw = 2.0 * hp + 2.0 * gn + h  # in_proj output: z, x, B, C, dt
    st = hp * n / q  # chunk-state elements per token
    gq = g * q  # C B^T elements per token (per group, full chunk)
    copy = np.where(np.asarray(mb, dtype=float) > 1.0, 1.0, 0.0)
    dt_rw = 2.0 * F32 * h  # dt (after softplus) and dA_cumsum read, fp32
    z = 0.0

    state_fwd = Kernel("_chunk_state_fwd", "fwd", 2.0 * hp * n,
                       B16 * gn + B16 * hp + dt_rw + F32 * st)
    passing_fwd = Kernel("_state_passing_fwd", "fwd", z, F32 * st + B16 * st)
    bmm_fwd = Kernel("_bmm_chunk_fwd", "fwd", 2.0 * q * gn, 2.0 * B16 * gn + F32 * gq)
    cumsum_fwd = Kernel("_chunk_cumsum_fwd", "fwd", z, B16 * h + 2.0 * F32 * h)
    fwd = [
        Kernel("zxBCdt contiguous (l b d -> b l d)", "fwd", z, copy * 2.0 * B16 * iw),
        Kernel("causal_conv1d_fwd (+SiLU)", "fwd", z, 2.0 * B16 * cd),
        cumsum_fwd, state_fwd, passing_fwd, bmm_fwd,
        Kernel("_chunk_scan_fwd (+D, z gate)", "fwd", q * hp + 2.0 * hp * n,
               F32 * gq + B16 * hp + dt_rw + B16 * gn + B16 * st + 3.0 * B16 * hp),
        Kernel("y contiguous (b l d -> l b d)", "fwd", z, copy * 2.0 * B16 * hp),
        Kernel("RMSNormGated fwd", "fwd", z, 2.0 * B16 * hp),
    ]
    rec = [Kernel(k.name + " (recompute)", "bwd", k.flops, k.bytes)
           for k in (cumsum_fwd, bmm_fwd, state_fwd, passing_fwd)]
    bwd = [
        Kernel("grad y contiguous", "bwd", z, copy * 2.0 * B16 * hp),
        Kernel("RMSNormGated bwd", "bwd", z, 3.0 * B16 * hp),
        Kernel("xBC transpose (contiguous)", "bwd", z, 2.0 * B16 * cd),
        Kernel("causal_conv1d_fwd (recompute)", "bwd", z, 2.0 * B16 * cd),
        *rec,
        Kernel("_chunk_scan_bwd_dz", "bwd", z, 6.0 * B16 * hp),
        Kernel("_chunk_scan_bwd_dstates", "bwd", 2.0 * hp * n,
               B16 * gn + B16 * hp + dt_rw + F32 * st),
        Kernel("_state_passing_bwd", "bwd", z, 3.0 * B16 * st + F32 * st),
        Kernel("_chunk_scan_chunk_state_bwd_dx", "bwd", q * hp + 2.0 * hp * n,
               3.0 * B16 * hp + B16 * gn + F32 * gq + B16 * st + dt_rw + F32 * h),
        Kernel("_chunk_state_bwd_db", "bwd", 2.0 * hp * n,
               B16 * hp + dt_rw + B16 * st + B16 * gn + F32 * gn + F32 * h),
        Kernel("_chunk_scan_bwd_dC", "bwd", 2.0 * hp * n,
               B16 * st + B16 * hp + dt_rw + B16 * gn + F32 * gn + F32 * h),
        Kernel("_chunk_scan_bwd_dcb", "bwd", q * hp, 2.0 * B16 * hp + dt_rw + F32 * gq),
        Kernel("_bmm_chunk_bwd (dB)", "bwd", 2.0 * q * gn,
               B16 * gn + F32 * gq + F32 * gn + B16 * gn),
        Kernel("_bmm_chunk_bwd (dC)", "bwd", 2.0 * q * gn,
               B16 * gn + F32 * gq + F32 * gn + B16 * gn),
        Kernel("_chunk_scan_bwd_ddAcs_stable", "bwd", q * hp,
               2.0 * B16 * hp + dt_rw + F32 * gq + F32 * h),
        Kernel("_chunk_cumsum_bwd", "bwd", z, 4.0 * F32 * h),
        Kernel("conv grad / input transposes (3 contiguous copies)", "bwd", z,
               3.0 * 2.0 * B16 * cd),
        Kernel("causal_conv1d_bwd", "bwd", z, 3.0 * B16 * cd),
        Kernel("dzxBCdt contiguous (b l d -> l b d)", "bwd", z, copy * 2.0 * B16 * iw),
    ]
    return fwd + bwd


def mamba_mixer_times(m: ModelShape, seq_len: ArrayLike, tp: ArrayLike, mb: ArrayLike,
                      ssd_rate: float, bw: float) -> tuple[np.ndarray, np.ndarray]:
    """Seconds per token on one device of one Mamba-2 mixer's non-GEMM kernels: (forward,
    backward). Each kernel costs max(FLOPs / ``ssd_rate``, bytes / ``bw``)."""
    t_f: np.ndarray = np.zeros(np.broadcast(np.asarray(tp), np.asarray(mb),
                                            np.asarray(seq_len)).shape)
    t_b = t_f.copy()
    for k in mamba_kernels(m, seq_len, tp, mb):
        t = np.maximum(np.asarray(k.flops) / ssd_rate, np.asarray(k.bytes) / bw)
        if k.phase == "fwd":
            t_f = t_f + t
        else:
            t_b = t_b + t
    return t_f, t_b


def mamba_flops_per_token(m: ModelShape, seq_len: float) -> tuple[float, float]:
    """Tensor-core FLOPs per token of one Mamba-2 mixer's SSD kernels (forward, backward incl.
    the backward's recomputation), whole model width (tp = 1)."""
    ks = mamba_kernels(m, seq_len)
    f = sum(float(np.asarray(k.flops)) for k in ks if k.phase == "fwd")
    b = sum(float(np.asarray(k.flops)) for k in ks if k.phase == "bwd")
    return f, b
