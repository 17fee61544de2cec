"""Training: vectorised step-time / memory model over arrays of parallel layouts.

:func:`evaluate` takes numpy arrays ``tp, pp, dp, cp, ep, mb, recompute, zero`` (broadcast
together) and returns a dict of arrays; :func:`search` enumerates every valid layout for N
devices and evaluates them in one call. All formulas are documented in ``docs/perf-model.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from suanli.catalog.schema import Precision
from suanli.errors import CannotRun, SuanliError
from suanli.perf.efficiency import (
    ATTENTION_KERNELS,
    DEFAULT_ATTENTION_KERNEL,
    DP_OVERLAP,
    attention_head_dim_factor,
    attention_length_factor,
    gemm_rows_factor,
    gemm_shape_factor,
)
from suanli.perf.framework import DEFAULT_FRAMEWORK, LAUNCH_S, get_framework
from suanli.perf.hardware import GIB, Hardware
from suanli.perf.models import ModelShape
from suanli.perf.ssm import mamba_mixer_times

RECOMPUTE = ("none", "selective", "full")
# Megatron-Core's selective-recompute submodules (`TransformerConfig.recompute_modules`,
# megatron/core/transformer/transformer_config.py): "core_attn" the core attention, "moe_act" the
# routed experts' activation function, "layernorm" the input / pre-MLP layernorm (only where it
# is a separate module: with the TE layer spec the pre-MLP norm of MoE layers; dense layers
# fuse their norms into TELayerNorm*Linear), "mla_up_proj" the MLA up projections and RoPE,
# "mlp" the dense MLP, "moe" the whole MoE layer (dispatch, experts, combine), "shared_experts"
# the shared experts. "moe_act", "layernorm" and "mla_up_proj" use output-discarding
# checkpointing, the others normal checkpointing. Default ["core_attn"].
RECOMPUTE_MODULES = ("core_attn", "moe_act", "layernorm", "mla_up_proj", "mlp", "moe",
                     "shared_experts")
EP_DISPATCH = ("alltoall", "deepep")
VIRTUAL_STAGES = (1, 2, 3, 4, 6, 8)  # interleaved-pipeline virtual stages the search tries
ACT_BYTES = 2.0  # activations in bf16/fp16 (fp8 training keeps bf16 activations in memory)
# Adam step, bytes moved per locally-owned parameter: read fp32 master, m, v and the gradient,
# write master, m, v and the bf16 working copy.
OPT_BYTES_PER_PARAM = 30.0
# Flash-attention backward does 2.5x the forward FLOPs (it recomputes the scores).
ATTN_BWD_MULT = 2.5
LOGIT_BYTES = 14.0
# Achieved rate of the SSD chunk kernels relative to the chip's measured 16-bit GEMM rate:
# tile-ai/tilelang benchmark/mamba2/README.md (PR #1109), Mamba-2 chunk-scan forward on an
# H800 SXM (batch 8, 80 heads, head dim 64, state 128, chunk 256, seq 8192): 134.4 TFLOPS,
# over the catalogue's measured H100/H800 BF16 GEMM rate of 789 TFLOPS (same die) = 0.170.
# One kernel on one chip, applied to every chip (no other SSD micro-benchmark found); chunk
# 128 (Nemotron 3) is not corrected for.
SSD_GEMM_RATIO = 134.4 / 789.0
# Attention dropout inside the flash kernel (Philox random numbers per score element): achieved
# rate relative to the same kernel without dropout, forward / backward. Dao-AILab/flash-attention
# PR #2597 (FlashAttention-4 on GB200, BF16, 16 heads, ~32k tokens, p = 0.125, compared with
# cuDNN 9.24): "fwd ~ 75-85 %, bwd ~ 60-70 % of no-drop TFLOPS", cuDNN's dropout backward
# slower still (FA4 1.1-1.2x faster at head dim 128). Midpoints; one kernel family on one chip.
ATTN_DROPOUT_RATE = (0.80, 0.65)
# FP8 attention (Transformer Engine `fp8_dot_product_attention`, the recipe input
# TrainSpec.fp8_attention): forward rate / 16-bit forward rate of the flash kernel. The only
# sourced FP8 attention benchmark found: FlashAttention-3 (Shah et al. 2024,
# arXiv:2407.08608, abstract; H100 SXM5, forward): FP16 up to 740 TFLOPS, FP8 close to
# 1.2 PFLOPS -> 1.2 / 0.74 = 1.62. The paper reports FP8 for the forward pass only and no
# published FP8 attention backward rate was found, so the backward passes stay at the 16-bit
# rate; it is a Hopper figure applied to the Blackwell rows that set the flag (no published
# cuDNN / TE FP8 attention rate for B200 / B300 was found).
FP8_ATTN_FWD_SPEEDUP = 1.2 / 0.74
# Fraction of the SMs NCCL's kernels hold while a collective runs (NCCL's default ~16 channels,
# one SM each, of 108 (A100) - 132 (H100) SMs): hidden communication slows compute by this share
COMM_SM_SHARE = 0.12  # per token per vocab entry: bf16 logits + fp32 softmax / loss fwd + bwd


@dataclass(frozen=True, slots=True)
class TrainSpec:
    """The job: model, sequence length, global batch (sequences per optimizer step)."""

    model: ModelShape
    seq_len: int = 4096
    global_batch: int = 1024
    grad_reduce_bytes: float = 2.0  # bf16 gradient reduction (FSDP "PURE"); 4 = fp32
    interleave: int = 1  # virtual pipeline stages per device (interleaved 1F1B)
    causal: bool = True
    attention_kernel: str = DEFAULT_ATTENTION_KERNEL  # flash2 | flash1 | plain
    framework: str = DEFAULT_FRAMEWORK  # megatron | fsdp | deepspeed | mindspeed
    fp8_recipe: str = "fp8-delayed"  # fp8-delayed | fp8-current (per-tensor) | fp8-block (MX)
    # MoE load imbalance: tokens on the busiest expert-parallel rank / the mean (1 = balanced
    # routing); a stated input, nothing sets it from measurements
    moe_imbalance: float = 1.0
    # MoE token dispatch: "alltoall" (one copy per remote expert) or "deepep" (a token crosses
    # the network once per destination node and is forwarded over NVLink there: DeepEP /
    # HybridEP, Megatron-Core's flex dispatcher). A per-run choice (NeMo's recipes use both),
    # so an input, not a framework default.
    ep_dispatch: str = "alltoall"
    # Submodules that selective recompute (recompute code 1) runs again in the backward pass
    # (RECOMPUTE_MODULES). None = the model's legacy selective recompute (core attention
    # recomputed, a smaller activation footprint per block), which the layout search uses.
    recompute_modules: tuple[str, ...] | None = None
    # Full recompute (code 2) of only this many layers per pipeline model chunk (Megatron
    # `recompute_method="block"`, `recompute_num_layers`); None = every layer
    recompute_layers: int | None = None
    # Megatron-Core EP all-to-all overlap (`overlap_moe_expert_parallel_comm`, with
    # `delay_wgrad_compute`; NeMo's perf recipes call it `moe_a2a_overlap`): the dispatch /
    # combine of one micro-batch runs while another micro-batch computes. A per-run recipe
    # choice, so an input (see _ep_a2a_overlap)
    ep_a2a_overlap: bool = False
    # dropout probabilities (Megatron-Core TransformerConfig defaults are 0.1 / 0.1; most current
    # recipes set 0): attention dropout inside the flash kernel, hidden dropout in the fused
    # bias-dropout-add after the attention output and the MLP (see ATTN_DROPOUT_RATE)
    attention_dropout: float = 0.0
    hidden_dropout: float = 0.0
    # FP8 attention (Megatron-Bridge `mixed_precision.fp8_dot_product_attention`, Transformer
    # Engine FP8 DPA): under an FP8 / FP4 GEMM precision the flash kernel's forward runs at
    # FP8_ATTN_FWD_SPEEDUP x its 16-bit rate. A per-run recipe choice, so an input; no effect
    # at BF16 or with the plain (unfused) kernel
    fp8_attention: bool = False

    def __post_init__(self) -> None:
        if self.seq_len < 1:
            raise SuanliError(f"sequence length must be >= 1, got {self.seq_len}")
        if self.global_batch < 1:
            raise SuanliError(f"global batch must be >= 1 sequence, got {self.global_batch}")
        if self.attention_kernel not in ATTENTION_KERNELS:
            raise SuanliError(f"attention kernel must be one of {', '.join(ATTENTION_KERNELS)}, "
                              f"got {self.attention_kernel!r}")
        if self.interleave < 1:
            raise SuanliError(f"interleave must be >= 1, got {self.interleave}")
        if self.fp8_recipe not in FP8_CAST_BYTES:
            raise SuanliError(f"fp8 recipe must be one of {', '.join(FP8_CAST_BYTES)}, "
                              f"got {self.fp8_recipe!r}")
        if not 1.0 <= self.moe_imbalance <= 64.0:
            raise SuanliError(f"moe imbalance must be in [1, 64] (busiest rank / mean), "
                              f"got {self.moe_imbalance}")
        if self.ep_dispatch not in EP_DISPATCH:
            raise SuanliError(f"ep dispatch must be one of {', '.join(EP_DISPATCH)}, "
                              f"got {self.ep_dispatch!r}")
        for name, p in (("attention dropout", self.attention_dropout),
                        ("hidden dropout", self.hidden_dropout)):
            if not 0.0 <= p < 1.0:
                raise SuanliError(f"{name} must be in [0, 1), got {p}")
        if self.recompute_layers is not None and self.recompute_layers < 0:
            raise SuanliError(f"recompute layers must be >= 0, got {self.recompute_layers}")
        if self.recompute_modules is not None:
            bad = [x for x in self.recompute_modules if x not in RECOMPUTE_MODULES]
            if bad:
                raise SuanliError(f"recompute module(s) {', '.join(map(repr, bad))} unknown; "
                                  f"known: {', '.join(RECOMPUTE_MODULES)}")
        get_framework(self.framework)


# HBM bytes per element of an FP8 cast of a GEMM operand: read bf16 (2) + write fp8 (1) + the
# transposed / column-wise copy backward needs (1); current scaling adds a separate amax pass
# (read 2); block scaling (MXFP8) computes the amax per 32-element block inside the cast and
# writes one scale byte per 32 elements for each of the two copies.
FP8_CAST_BYTES: dict[str, float] = {"fp8-delayed": 4.0, "fp8-current": 6.0, "fp8-block": 4.0625,
                                    "nvfp4": 5.125}
# NVFP4 (Transformer Engine NVFP4BlockScaling; every GEMM of a 4-bit precision run): a
# per-tensor FP32 scale from the tensor's amax (a separate pass, read 2), then read bf16 (2),
# write the E2M1 row- and column-wise copies (0.5 + 0.5) with one E4M3 scale per 16 elements
# each (2 / 16); the random Hadamard transform of the wgrad operands happens inside the cast.
FP4_RECIPE = "nvfp4"


def _f(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _gemm(
    M: ArrayLike, N: ArrayLike, K: ArrayLike, rate: float, bw: float, in_bytes: float,
    count: ArrayLike = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(time, flops) of ``count`` GEMMs of (M x K) @ (K x N) on one device, per-op roofline:
    max(flops / (rate x shape efficiency), bytes / bandwidth, launch).

    Shape efficiency: :func:`gemm_shape_factor` of the narrower of N and K times
    :func:`gemm_rows_factor` of M (tile quantisation and wave occupancy)."""
    M, N, K, c = _f(M), _f(N), _f(K), _f(count)
    fl = 2.0 * M * N * K * c
    # 8-bit operands: a tensor-core tile holds twice the elements for the same bytes, so a
    # GEMM needs twice the width / rows to amortise the same fixed costs
    scale = 2.0 / in_bytes
    eff = gemm_shape_factor(np.minimum(N, K) / scale) * gemm_rows_factor(M / scale)
    t_c = fl / (rate * eff)
    t_m = (M * K * in_bytes + K * N * in_bytes + M * N * 2.0) * c / bw
    return np.maximum(np.maximum(t_c, t_m), LAUNCH_S), fl


def _mtp_bf16_extra(
    m: ModelShape, T: ArrayLike, tp: ArrayLike, ep: ArrayLike, in_n: float, out_k: float,
    rate: float, rate16: float, bw: float, gb: float, imbalance: float,
) -> np.ndarray:
    """Extra forward GEMM time of one multi-token-prediction depth (one attention block + one
    FFN block, dense or MoE, of the main model's shapes) when it runs 16-bit instead of at the
    recipe's ``gb``-byte precision: its GEMMs at (``rate16``, 2 bytes) minus at (``rate``,
    ``gb``). Megatron-Bridge's ``keep_mtp_spec_in_bf16`` (the Nemotron 3 recipes; the
    Nemotron-H bridge sets it for every checkpoint with MTP layers,
    src/megatron/bridge/models/nemotronh/nemotron_h_bridge.py) keeps the MTP block's
    modules out of the FP8 / FP4 recipe."""
    d = float(m.d_model)
    T, tp, ep = _f(T), _f(tp), _f(ep)
    shapes: list[tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike]] = [
        (T, in_n / tp, d, 1.0), (T, d, out_k / tp, 1.0)]
    mats = float(m.ffn_mats)
    if m.is_moe:
        E, k, ff, ew = float(m.n_experts), float(m.top_k), float(m.d_ff), float(m.expert_width)
        m_e = np.maximum(T / tp * k * ep / E, 1.0)
        shapes += [(m_e, (mats - 1) * ff, ew, E / ep), (m_e, ew, ff, E / ep)]
        wsh = float(m.shared_width)
        if wsh:
            shapes += [(T, (mats - 1) * wsh / tp, d, 1.0), (T, d, wsh / tp, 1.0)]
        if m.moe_latent:
            shapes += [(T, ew / tp, d, 1.0), (T, d, ew / tp, 1.0)]
    else:
        ffw = m.dense_ffn_params / (mats * d)
        shapes += [(T, (mats - 1) * ffw / tp, d, 1.0), (T, d, ffw / tp, 1.0)]
    extra: np.ndarray = np.zeros(np.broadcast(T, tp, ep).shape)
    for i, (M, N, K, c) in enumerate(shapes):
        t16, _ = _gemm(M, N, K, rate16, bw, 2.0, c)
        tlp, _ = _gemm(M, N, K, rate, bw, gb, c)
        # the routed experts wait for the busiest rank (moe_imbalance), as in the main blocks
        w = imbalance if (m.is_moe and i in (2, 3)) else 1.0
        extra = extra + w * (t16 - tlp)
    return extra


def _head_dim_factor(spec: TrainSpec, framework: str) -> float:
    """Attention efficiency at the model's head dimension relative to 128
    (:func:`efficiency.attention_head_dim_factor`). Learnable-softmax (sink) attention under
    Transformer Engine runs on its cuDNN FusedAttention backend; otherwise the kernel class."""
    m = spec.model
    backend = spec.attention_kernel
    if m.attention_sinks and framework in ("megatron", "mindspeed"):
        backend = "cudnn"
    return attention_head_dim_factor(min(m.qk_dim, m.v_dim), backend)


def _ep_a2a_overlap(
    t_ep: np.ndarray, t_comp: np.ndarray, pp: np.ndarray, v: np.ndarray, nm: np.ndarray,
    fwd_share: np.ndarray | float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """(exposed, hidden) EP all-to-all time per micro-batch under Megatron-Core's combined 1F1B
    (`overlap_moe_expert_parallel_comm`).

    The schedule co-schedules the forward of one micro-batch with the backward of another,
    layer by layer: "EP A2A in forward step is hidden by the attention/mlp computation in the
    backward step, and vice versa" (Megatron-Core API docs, `core.pipeline_parallel.
    combined_1f1b`; user guide "Combined 1F1B: Expert-Parallel All-to-All Overlap"). So in a
    paired pass the forward's dispatch + combine (``fwd_share`` of the all-to-all) hides behind
    the partner's backward compute (2/3 of the micro-batch's compute: dgrad + wgrad, which
    `delay_wgrad_compute` makes available) and the backward's behind the partner's forward
    compute (1/3); what exceeds that stays exposed. Only paired passes hide anything: the
    warm-up forwards and cool-down backwards have no partner. Megatron's interleaved 1F1B runs
    ``2 (pp - 1) + (v - 1) pp`` warm-up forward chunks on the first stage of ``nm v``
    (`get_pp_rank_microbatches`); without a pipeline the first forward and the last backward
    (one micro-batch of ``nm``) are unpaired. Hidden all-to-all still holds SMs (counted by the
    caller with the other hidden collectives)."""
    unpaired = np.where(pp > 1, (2.0 * (pp - 1.0) + (v - 1.0) * pp) / np.maximum(nm * v, 1.0),
                        1.0 / np.maximum(nm, 1.0))
    unpaired = np.clip(unpaired, 0.0, 1.0)
    paired = 1.0 - unpaired
    in_pair = (np.maximum(0.0, t_ep * fwd_share - t_comp * 2.0 / 3.0)
               + np.maximum(0.0, t_ep * (1.0 - fwd_share) - t_comp / 3.0))
    exposed = t_ep * unpaired + in_pair * paired
    return exposed, t_ep - exposed


def _remote_nodes(E: float, k: float, nodes: ArrayLike) -> np.ndarray:
    """Expected number of *other* nodes a token's ``k`` routed experts (drawn uniformly without
    replacement from ``E``, spread evenly over ``nodes`` nodes) live on."""
    n = np.maximum(_f(nodes), 1.0)
    per_node = E / n
    miss = np.ones_like(n)
    for i in range(int(k)):
        miss = miss * np.clip((E - per_node - i) / (E - i), 0.0, 1.0)
    return (n - 1.0) * (1.0 - miss)


def evaluate(
    spec: TrainSpec,
    hw: Hardware,
    tp: ArrayLike,
    pp: ArrayLike,
    dp: ArrayLike,
    cp: ArrayLike = 1,
    ep: ArrayLike = 1,
    mb: ArrayLike = 1,
    recompute: ArrayLike = 1,
    zero: ArrayLike = 1,
    n_micro: ArrayLike | None = None,
    vp: ArrayLike | None = None,
) -> dict[str, np.ndarray]:
    """Step time, throughput, utilisation and memory per device for arrays of layouts.

    ``recompute``: 0 none, 1 selective, 2 full. ``zero``: 0-3 (3 = FSDP FULL_SHARD,
    2 = SHARD_GRAD_OP, 1 = distributed optimizer). ``n_micro`` (micro-batches per step per
    replica) defaults to ``global_batch / (dp * mb)``; ``vp`` (virtual pipeline stages per
    device) defaults to ``spec.interleave``. The per-operator model is documented in
    ``docs/perf-model.md``.
    """
    m = spec.model
    fw = get_framework(spec.framework)
    tp, pp, dp, cp, ep, mb = (_f(x) for x in (tp, pp, dp, cp, ep, mb))
    v = _f(spec.interleave if vp is None else vp)
    v = np.where(pp > 1, v, 1.0)
    rc = np.asarray(recompute, dtype=int)
    zr = np.asarray(zero, dtype=int)
    nm = _f(spec.global_batch) / (dp * mb) if n_micro is None else _f(n_micro)
    s = float(spec.seq_len)
    d = float(m.d_model)
    L = float(m.n_layers)
    V = float(m.vocab)
    dpn = float(hw.devices_per_node)
    full_on = (rc == 2).astype(float)
    full = full_on
    sel = (rc == 1).astype(float)
    # selective recompute: which submodules run their forward again in the backward pass
    legacy = spec.recompute_modules is None
    mods = set(spec.recompute_modules or ())

    def rec(name: str) -> np.ndarray | float:
        """1.0 where selective recompute covers submodule ``name`` (array over layouts)."""
        return sel if name in mods else 0.0

    r_attn = sel if legacy else rec("core_attn")
    r_moe = rec("moe") if m.is_moe else 0.0
    bw = hw.hbm_bw
    fp8 = hw.gemm_bytes < 2.0  # low-precision GEMMs (FP8 or FP4) with quantisation casts
    gb = hw.gemm_bytes
    # FP4 GEMMs always use the NVFP4 recipe's casts; FP8 ones the spec's recipe
    cast_b = FP8_CAST_BYTES[FP4_RECIPE if gb < 1.0 else spec.fp8_recipe]
    rate = hw.flops
    if gb == 1.0 and spec.fp8_recipe == "fp8-block":
        # MXFP8 GEMMs: the block-scaled kernel's measured rate relative to the per-tensor FP8
        # kernel on the same chip (Factors.fp8_block; 1 where unmeasured)
        rate = rate * hw.eff.fp8_block

    Lp = np.ceil(L / (pp * v)) * v  # layers on the busiest pipeline stage (all its chunks)
    if spec.recompute_layers is not None:
        # block method: the first `recompute_layers` layers of each model chunk (Lp / v layers)
        # recompute fully, the rest keep their activations -- `full` becomes that fraction
        chunk = np.maximum(Lp / v, 1.0)
        full = full_on * np.minimum(float(spec.recompute_layers), chunk) / chunk
    moe_frac = m.n_moe_layers / L if m.is_moe else 0.0
    T = mb * s / cp  # tokens of one micro-batch held by one device (before the tp split)
    # Blocks of each kind on the busiest stage. A transformer layer is one attention block and
    # one FFN block (dense or MoE); a hybrid model's layer is one block of its pattern (the
    # stage gets the pattern's average mix). Multi-token prediction adds, per depth, one
    # attention and one FFN block (MoE when the model is) on the last stage, which is taken to
    # be the busiest (as the LM head already is).
    D = float(m.mtp_depth)
    n_A = Lp * (m.n_attn_layers / L) + D
    n_Fd = Lp * (m.n_dense_ffn_layers / L) + (0.0 if m.is_moe else D)
    n_Fm = Lp * moe_frac + (D if m.is_moe else 0.0)
    n_M = Lp * (m.n_mamba_layers / L)
    n_blk = n_A + n_Fd + n_Fm + n_M  # norm + mixer + residual blocks on the stage

    # ---- GEMMs of one block (forward), per device -----------------------------------
    out_k = float(m.n_heads * m.v_dim)  # attention output projection input width
    in_n = (m.attn_params - out_k * d) / d  # all input projections (QKV / MLA chains)
    t_qkv, f_qkv = _gemm(T, in_n / tp, d, rate, bw, gb)
    t_out, f_out = _gemm(T, d, out_k / tp, rate, bw, gb)
    t_stage_gemm = n_A * (t_qkv + t_out)
    f_stage = n_A * (f_qkv + f_out)
    # forward GEMM time / FLOPs run again by selective recompute (recompute_modules)
    t_rec: np.ndarray | float = 0.0
    f_rec: np.ndarray | float = 0.0
    if m.is_mla and "mla_up_proj" in mods:
        # MLA up projections (q: r_q -> h d_qk; kv: r_kv -> h (d_nope + d_v)); RoPE below
        q_in = float(m.q_lora_rank)
        t_qu, f_qu = _gemm(T, m.n_heads * m.qk_dim / tp, q_in, rate, bw, gb) if q_in else (0.0, 0.0)
        t_kvu, f_kvu = _gemm(T, m.n_heads * (m.qk_nope_dim + m.v_dim) / tp,
                             float(m.kv_lora_rank), rate, bw, gb)
        t_rec = t_rec + rec("mla_up_proj") * n_A * (t_qu + t_kvu)
        f_rec = f_rec + rec("mla_up_proj") * n_A * (f_qu + f_kvu)
    mats = float(m.ffn_mats)
    ffw_dense = m.dense_ffn_params / (mats * d)
    if m.n_dense_ffn_layers or (D and not m.is_moe):
        t_up, f_up = _gemm(T, (mats - 1) * ffw_dense / tp, d, rate, bw, gb)
        t_dn, f_dn = _gemm(T, d, ffw_dense / tp, rate, bw, gb)
        t_stage_gemm = t_stage_gemm + n_Fd * (t_up + t_dn)
        f_stage = f_stage + n_Fd * (f_up + f_dn)
        t_rec = t_rec + rec("mlp") * n_Fd * (t_up + t_dn)
        f_rec = f_rec + rec("mlp") * n_Fd * (f_up + f_dn)
    # activation-function width per token summed over the stage's FFN blocks (all experts)
    act_w = n_Fd * ffw_dense
    ew = float(m.expert_width)  # width routed tokens travel in (LatentMoE: the latent)
    if m.is_moe:
        E, k, ff = float(m.n_experts), float(m.top_k), float(m.d_ff)
        m_e = np.maximum(T / tp * k * ep / E, 1.0)  # tokens per local expert (balanced routing)
        n_loc = E / ep
        t_eu, f_eu = _gemm(m_e, (mats - 1) * ff, ew, rate, bw, gb, n_loc)
        t_ed, f_ed = _gemm(m_e, ew, ff, rate, bw, gb, n_loc)
        t_r, f_r = _gemm(T / tp, E, d, rate, bw, 2.0)  # router (bf16)
        # load imbalance (stated input): the busiest expert-parallel rank receives
        # `moe_imbalance` x the mean tokens and every rank waits for it
        t_moe, f_moe = (t_eu + t_ed) * spec.moe_imbalance + t_r, f_eu + f_ed + f_r
        wsh = float(m.shared_width)
        if wsh:
            t_su, f_su = _gemm(T, (mats - 1) * wsh / tp, d, rate, bw, gb)
            t_sd, f_sd = _gemm(T, d, wsh / tp, rate, bw, gb)
            t_moe, f_moe = t_moe + t_su + t_sd, f_moe + f_su + f_sd
            if "moe" not in mods:  # "moe" already re-runs the shared experts
                t_rec = t_rec + rec("shared_experts") * n_Fm * (t_su + t_sd)
                f_rec = f_rec + rec("shared_experts") * n_Fm * (f_su + f_sd)
        if m.moe_latent:
            # LatentMoE: d -> latent before the dispatch, latent -> d after the combine
            t_ld, f_ld = _gemm(T, ew / tp, d, rate, bw, gb)
            t_lu, f_lu = _gemm(T, d, ew / tp, rate, bw, gb)
            t_moe, f_moe = t_moe + t_ld + t_lu, f_moe + f_ld + f_lu
        t_stage_gemm = t_stage_gemm + n_Fm * t_moe
        f_stage = f_stage + n_Fm * f_moe
        t_rec = t_rec + r_moe * n_Fm * t_moe
        f_rec = f_rec + r_moe * n_Fm * f_moe
        act_w = act_w + n_Fm * (k * ff + wsh)
    if m.n_mamba_layers:
        # Mamba-2 mixer: in_proj d -> (z, x, B, C, dt), out_proj d_inner -> d (heads split by tp)
        t_mi, f_mi = _gemm(T, m.mamba_in_width / tp, d, rate, bw, gb)
        t_mo, f_mo = _gemm(T, d, m.d_inner / tp, rate, bw, gb)
        t_stage_gemm = t_stage_gemm + n_M * (t_mi + t_mo)
        f_stage = f_stage + n_M * (f_mi + f_mo)
    # The LM head stays 16-bit under FP8 / FP4 recipes: Megatron-Core builds `output_layer` as a
    # plain `tensor_parallel.ColumnParallelLinear` (megatron/core/models/gpt/gpt_model.py), not a
    # Transformer Engine module, so `fp8_autocast` / the quantisation recipe never reaches it.
    t_head, f_head = _gemm(T, V / tp, d, hw.flops_16, bw, 2.0)
    if D:
        # MTP, per depth: the (2d -> d) projection of [norm(h); norm(emb)] (kept 16-bit:
        # Megatron's `eh_proj` is a plain column-parallel linear) and one more pass through
        # the shared output head
        t_eh, f_eh = _gemm(T, d / tp, 2.0 * d, hw.flops_16, bw, 2.0)
        t_stage_gemm = t_stage_gemm + D * t_eh
        f_stage = f_stage + D * f_eh
        if m.mtp_bf16 and gb < 2.0:
            # keep_mtp_spec_in_bf16 (Nemotron 3 recipes): the MTP depth's attention and
            # FFN / MoE GEMMs run 16-bit while the main model's run FP8 / FP4
            t_stage_gemm = t_stage_gemm + D * _mtp_bf16_extra(
                m, T, tp, ep, in_n, out_k, rate, hw.flops_16, bw, gb, spec.moe_imbalance)
    n_heads_pass = 1.0 + D
    # executed GEMM time: forward + dgrad + wgrad (same shapes), + recomputed forward
    t_gemm = t_stage_gemm * (3.0 + full) + t_head * 3.0 * n_heads_pass + t_rec
    gemm_flops = f_stage * (3.0 + full) + f_head * 3.0 * n_heads_pass + f_rec

    # ---- attention core ---------------------------------------------------------------
    ctx = s / 2.0 if spec.causal else s  # causal kernels skip fully-masked blocks
    attn_rel = hw.eff.attention or (ATTENTION_KERNELS[spec.attention_kernel]
                                     * _head_dim_factor(spec, fw.name))
    fwd_attn = 1.0 + full + r_attn  # forward passes (incl. recomputed), in forward units
    bwd_attn = ATTN_BWD_MULT
    if spec.attention_dropout > 0.0 and spec.attention_kernel != "plain":
        # forward passes (incl. recomputed) and the backward at their dropout rates
        fwd_attn = fwd_attn / ATTN_DROPOUT_RATE[0]
        bwd_attn = bwd_attn / ATTN_DROPOUT_RATE[1]
    if spec.fp8_attention and fp8 and spec.attention_kernel != "plain" and not (
            m.attention_sinks and fw.name in ("megatron", "mindspeed")):
        # FP8 DPA: forward passes at the FP8 attention rate, backward 16-bit (see
        # FP8_ATTN_FWD_SPEEDUP for the source and its limits). Not for learnable-softmax (sink)
        # attention under Transformer Engine: its backend selection has no FP8 path for it
        # ("Disabling FusedAttention / UnfusedDotProductAttention for softmax_type = %s in
        # FP8", and FlashAttention is off for any non-vanilla softmax --
        # transformer_engine/pytorch/attention/dot_product_attention/utils.py,
        # get_attention_backend, NVIDIA/TransformerEngine@002a3e57; the same function also
        # disables FP8 FusedAttention for sliding windows), so those layers run 16-bit
        fwd_attn = fwd_attn / FP8_ATTN_FWD_SPEEDUP
    passes_attn = fwd_attn + bwd_attn
    # attention stays 16-bit under FP8 recipes unless the recipe sets FP8 attention (above);
    # flash kernels lose efficiency on short key
    # ranges (efficiency.attention_length_factor, published kernel sweep); sliding-window
    # layers stream at most `sliding_window` keys per query block
    n_win = float(m.n_window_layers if m.sliding_window else 0)
    win_ctx = min(ctx, float(m.sliding_window)) if n_win else 0.0
    per_key = 2.0 * m.n_heads * (m.qk_dim + m.v_dim)
    flash = spec.attention_kernel != "plain"
    t_attn = 0.0
    n_A_win = Lp * (n_win / L)
    spans = [(n_A - n_A_win, ctx)] + ([(n_A_win, win_ctx)] if n_win else [])
    for n_l, keys in spans:
        f = T * per_key * keys * n_l / tp
        len_f = attention_length_factor(keys / cp) if flash else 1.0
        t_attn = t_attn + f * passes_attn / (hw.flops_16 * attn_rel * len_f)
    if spec.attention_kernel == "plain":
        # unfused attention: scores and probabilities go through HBM (write scores, softmax
        # read + write, read for the value product; backward twice that)
        score_elems = mb * (m.n_heads / tp) * s * (s / cp) * n_A
        t_attn = t_attn + score_elems * 2.0 * 4.0 * (3.0 + full) / bw
        if spec.attention_dropout > 0.0:  # the 1-byte mask: written forward, read backward
            t_attn = t_attn + score_elems * (2.0 + full) / bw

    # ---- Mamba-2 mixer between in_proj and out_proj (chunked SSD, Dao & Gu 2024 s. 6) ----
    # Kernel by kernel (suanli.perf.ssm: Megatron-Core's MambaMixer training path, mamba_ssm's
    # conv1d + SSD forward / backward kernels, the gated RMSNorm and the layout copies), each
    # max(tensor-core FLOPs / (SSD_GEMM_RATIO x the 16-bit GEMM rate), bytes / bandwidth);
    # forward rerun under full recompute.
    t_ssd: float | np.ndarray = 0.0
    if m.n_mamba_layers:
        t_mf, t_mb = mamba_mixer_times(m, s / cp, tp, mb, hw.flops_16 * SSD_GEMM_RATIO, bw)
        t_ssd = T * n_M * (t_mf * (1.0 + full) + t_mb)

    # ---- memory-bound element-wise work ------------------------------------------------
    # one norm per block; under FP8 / FP4 a norm fused with the next GEMM's input cast writes
    # the low-precision copy (TE LayerNormLinear / LayerNormMLP; Megatron's Mamba mixer builds
    # its in_proj as a TELayerNormColumnParallelLinear the same way). MoE layers cannot fuse the
    # pre-MLP norm: Megatron-Core's TE layer spec builds `pre_mlp_layernorm = TENorm` when the
    # layer has experts (its output feeds the router and the token dispatcher in BF16) and
    # `IdentityOp` + `TELayerNormColumnParallelLinear` only for dense MLPs
    # (megatron/core/models/gpt/gpt_layer_specs.py)
    fused = fp8 and fw.fused_norm_cast
    c_attn = 1.0 if fused else 2.0
    norm_b = (n_A + n_M) * d * (2.0 + c_attn) + n_Fd * d * (2.0 + c_attn) + n_Fm * d * 4.0
    # keep_mtp_spec_in_bf16: the MTP depths' fused norms write a 16-bit output, not an FP8 one
    mtp16 = D * (1.0 + (0.0 if m.is_moe else 1.0)) if (m.mtp_bf16 and fused) else 0.0
    norm_b = norm_b + mtp16 * d * (2.0 - c_attn)
    resid_b = n_blk * 6.0 * d
    rope_b: float | np.ndarray = 0.0
    if m.has_rope:
        rope_w = (m.qk_rope_dim * (m.n_heads + 1)) if m.is_mla else (m.n_heads + m.kv_heads) * m.hd
        rope_b = n_A * 4.0 * rope_w
    act_b = (6.0 if m.ffn == "swiglu" else 4.0) * act_w
    # MoE permute (gather the k routed copies) + unpermute (weighted sum back): 8 k d bytes.
    # Megatron-Core's plain all-to-all dispatcher (MoEAlltoAllTokenDispatcher) adds a
    # "permutation 2" when a rank holds more than one expert: after the all-to-all the received
    # copies are re-sorted by local expert (`sort_chunks_by_idxs`) and sorted back before the
    # combine -- one more read + write of every received copy each way (another 8 k d). The
    # flex dispatcher (DeepEP / HybridEP) receives per rank and permutes once on the receiver.
    # LatentMoE permutes latent-wide copies.
    perm_b: float | np.ndarray = 0.0
    if m.is_moe:
        perm_b = n_Fm * 8.0 * max(m.top_k, 1) * ew
        if spec.ep_dispatch == "alltoall":
            perm_b = perm_b * np.where((ep > 1) & (float(m.n_experts) / ep > 1.0), 2.0, 1.0)
    # (the Mamba-2 block's conv1d, gated RMSNorm and copies are in t_ssd, kernel by kernel)
    elem_fwd_b = (norm_b + resid_b + rope_b + act_b + perm_b) * fw.elementwise_passes
    passes = 3.0 + full  # forward + backward (twice the traffic) + recomputed forward
    # element-wise forward bytes selective recompute runs again: the routed experts'
    # activation ("moe_act"), the separate pre-MLP norm of MoE blocks ("layernorm"; dense
    # blocks fuse their norms into TE LayerNorm*Linear, which "layernorm" does not touch), the
    # dense MLP with its fused norm ("mlp"), the MoE layer's activations and permutes ("moe"),
    # the shared experts' activation ("shared_experts"), MLA's RoPE ("mla_up_proj")
    a_mult = 6.0 if m.ffn == "swiglu" else 4.0
    rec_b: np.ndarray | float = 0.0
    if m.is_moe:
        k_r, wsh_r = float(max(m.top_k, 1)) * float(m.d_ff), float(m.shared_width)
        rec_b = (rec_b + r_moe * (n_Fm * a_mult * (k_r + wsh_r) + perm_b)
                 + rec("layernorm") * n_Fm * d * 4.0)
        if "moe" not in mods:
            rec_b = (rec_b + rec("moe_act") * n_Fm * a_mult * k_r
                     + rec("shared_experts") * n_Fm * a_mult * wsh_r)
    rec_b = rec_b + rec("mlp") * n_Fd * (a_mult * ffw_dense + d * (2.0 + c_attn))
    if mtp16 and not m.is_moe:  # a dense MTP FFN's fused norm, recomputed, writes 16-bit
        rec_b = rec_b + rec("mlp") * D * d * (2.0 - c_attn)
    if m.is_mla:
        rec_b = rec_b + rec("mla_up_proj") * rope_b
    mem_bytes = (T / tp * (elem_fwd_b * passes + rec_b * fw.elementwise_passes)
                 + T * V * LOGIT_BYTES / tp * n_heads_pass)
    # hidden dropout: the fused bias-dropout-add after each attention / FFN / mixer block
    # writes a 1-byte mask per element (forward, and again when recomputed) and reads it in the
    # backward (PyTorch dropout keeps a bool mask)
    drop_mask = n_blk * d if spec.hidden_dropout > 0.0 else 0.0
    mem_bytes = mem_bytes + T / tp * drop_mask * (2.0 + full)
    if m.is_moe and m.expert_bias and fw.name == "megatron":
        # Expert output bias (GPT-OSS: biases on the routed experts). Megatron-Core's
        # TEGroupedMLP builds `linear_fc2` with `skip_bias_add=True` and adds the bias after
        # the grouped GEMM in eager PyTorch, per local expert and weighted by the routing
        # probability: `torch.cat([t + b * p for t, b, p in zip(split(out), biases,
        # split(probs))])` (`TEGroupedMLP._apply_bias`, megatron/core/transformer/moe/
        # experts.py; the TE op-fuser path that avoids it is SwiGLU-only). Per routed copy
        # element, 16-bit probabilities (GPT-OSS sets no `moe_router_dtype`): forward `b * p`
        # writes 2 B, `t + .` reads 4 and writes 2, `cat` reads 2 and writes 2 (12 B; again when
        # the forward is recomputed: full, or "moe"); backward: the bias gradient
        # `(g * p).sum` (read 2, write 2, read 2), the probability gradient `(g * b).sum`
        # (6 B), and `split`'s backward concatenates the chunk gradients (read 2, write 2): 16 B.
        # Eager ops: not scaled by the framework's fused-kernel pass factor.
        copies = n_Fm * float(max(m.top_k, 1)) * ew
        mem_bytes = mem_bytes + T / tp * copies * (12.0 * (1.0 + full + r_moe) + 16.0)
    if fp8:
        # elements quantised per token per block. Forward: every GEMM input not produced by a
        # fused norm -- QKV / FC1 / in_proj input (unless fused), attention-output and
        # out_proj input, FC2 input(s). Backward: every GEMM's output gradient. MoE layers:
        # Transformer Engine's GroupedLinear quantises its own (dispatched) input, i.e. the k
        # routed copies of each token (k x expert width elements), and the expert FC2 output
        # gradient is per copy as well; a shared expert adds one more d each way, LatentMoE's
        # two projections one d and one latent each way.
        sh = 1.0 if (m.is_moe and m.shared_width) else 0.0
        k_moe = float(max(m.top_k, 1)) if m.is_moe else 1.0
        lat = (d + ew) if m.moe_latent else 0.0
        nf = 0.0 if fw.fused_norm_cast else d

        Num = np.ndarray | float

        def cast_elems(a: Num, fd: Num, fm: Num, mb_: Num) -> Num:
            """Quantised elements per token of `a` attention, `fd` dense-FFN, `fm` MoE and
            `mb_` Mamba blocks: forward (x (1 + full recompute)) + backward + recomputed."""
            aw = fd * ffw_dense + (fm * (k_moe * float(m.d_ff) + float(m.shared_width))
                                   if m.is_moe else 0.0)
            ffn_in = fd * nf + fm * (k_moe * ew + sh * d + lat)
            ffn_out_grad = fd * d + fm * (k_moe * ew + sh * d + lat)
            c_fwd = a * (out_k + nf) + aw + ffn_in + mb_ * (m.d_inner + nf)
            c_bwd = (a * (in_n + d) + (mats - 1) * aw + ffn_out_grad
                     + mb_ * (m.mamba_in_width + d))
            # recomputed GEMMs quantise their inputs again: FC2 input after a recomputed
            # activation, the dense / MoE / shared-expert inputs, MLA's latent inputs
            c_rec: Num = 0.0
            if m.is_moe:
                k_ff = k_moe * float(m.d_ff)
                c_rec = r_moe * fm * (k_moe * ew + sh * d + lat + k_ff + float(m.shared_width))
                if "moe" not in mods:
                    c_rec = (c_rec + rec("moe_act") * fm * k_ff
                             + rec("shared_experts") * fm * sh * (d + float(m.shared_width)))
            c_rec = c_rec + rec("mlp") * fd * (nf + ffw_dense)
            if m.is_mla:
                c_rec = c_rec + rec("mla_up_proj") * a * float(m.q_lora_rank + m.kv_lora_rank)
            return c_fwd * (1.0 + full) + c_bwd + c_rec

        casts = cast_elems(n_A, n_Fd, n_Fm, n_M)
        if m.mtp_bf16 and D:
            # keep_mtp_spec_in_bf16: the MTP depths' attention and FFN / MoE blocks run outside
            # the FP8 / FP4 recipe, so their GEMM inputs and output gradients are not quantised
            # (their GEMMs are costed 16-bit in _mtp_bf16_extra)
            casts = casts - cast_elems(D, 0.0 if m.is_moe else D, D if m.is_moe else 0.0, 0.0)
        mem_bytes = mem_bytes + T / tp * cast_b * casts
    t_elem = mem_bytes / bw
    # launches: `kernels_per_layer` per transformer layer = per two blocks
    t_launch = n_blk / 2.0 * fw.kernels_per_layer * (3.0 + full) * LAUNCH_S
    t_comp = t_gemm + t_attn + t_ssd
    t_mem = np.maximum(t_elem, t_launch - np.minimum(t_launch, t_comp))

    # ---- communication per micro-batch ------------------------------------------------
    tp_inter = tp > dpn
    bw_tp = np.where(tp_inter, hw.node_net_bw / dpn, hw.link_bw)
    a_tp = np.where(tp_inter, hw.alpha_inter, hw.alpha_intra)
    # + one sequence-parallel all-gather of the input of each recomputed dense MLP
    n_tp_coll = n_blk / 2.0 * (4.0 + 2.0 * full) + rec("mlp") * n_Fd
    tp_bytes = T * d * ACT_BYTES
    t_tp_raw = np.where(
        tp > 1, n_tp_coll * (2 * (tp - 1) / tp * tp_bytes / bw_tp + 2 * (tp - 1) * a_tp), 0.0
    )
    t_tp = np.maximum(t_tp_raw * (1.0 - fw.tp_overlap), t_tp_raw - t_gemm)
    inner = tp * cp
    # context parallel: ring exchange of K/V chunks, overlapped with attention compute
    cp_inter = inner > dpn
    bw_cp = np.where(cp_inter, hw.node_net_bw / dpn, hw.link_bw)
    kv_layer = m.kv_elems_per_token() / max(m.n_attn_layers, 1)  # per attention block
    kv_bytes = mb * s * kv_layer * ACT_BYTES / tp
    t_cp_raw = np.where(cp > 1, n_A * 3.0 * (cp - 1) / cp * kv_bytes / bw_cp, 0.0)
    t_cp = np.maximum(0.0, t_cp_raw - t_attn)
    # expert parallel: dispatch + combine all-to-all per MoE layer, fwd and bwd
    # (tokens routed to experts on the same node move over the NVLink domain, the rest over
    # the device's NIC share; both at once)
    ep_local = np.minimum(ep, np.maximum(1.0, np.floor(dpn / tp)))
    k_route = float(max(m.top_k, 1))
    tok_bytes = T * ew * ACT_BYTES / tp  # one copy of the device's tokens (expert width)
    inter_frac = (ep - ep_local) / ep
    intra_frac = (ep_local - 1) / ep
    inter_copies = k_route * inter_frac  # plain all-to-all: one copy per remote expert
    if spec.ep_dispatch == "deepep" and m.is_moe:
        # DeepEP / HybridEP (Megatron flex dispatcher): a token crosses the network once per
        # destination node and is forwarded over NVLink inside it; expected distinct remote
        # nodes for k experts drawn from E spread over ep / ep_local nodes
        inter_copies = np.minimum(inter_copies, _remote_nodes(
            float(m.n_experts), k_route, ep / ep_local))
        intra_frac = (ep_local - 1) / ep_local  # last hop of every copy inside its node
    t_a2a = np.maximum(intra_frac * k_route * tok_bytes / hw.link_bw,
                       inter_copies * tok_bytes / (hw.node_net_bw / dpn)) * spec.moe_imbalance
    a_ep = np.where(ep > ep_local, hw.alpha_inter, hw.alpha_intra)
    t_ep = np.where(
        # a recomputed MoE layer ("moe") dispatches and combines its tokens again
        ep > 1, n_Fm * (4.0 + 2.0 * full + 2.0 * r_moe) * (t_a2a + (ep - 1) * a_ep), 0.0,
    ) * (1.0 - fw.ep_overlap)
    t_ep_hidden: np.ndarray | float = 0.0
    if spec.ep_a2a_overlap and m.is_moe:
        # the forward's dispatch + combine of the per-layer all-to-alls (the rest run in the
        # backward phase: backward, recomputed MoE layers)
        fwd_a2a = 2.0 / (4.0 + 2.0 * full + 2.0 * r_moe)
        t_ep, t_ep_hidden = _ep_a2a_overlap(t_ep, t_gemm + t_attn + t_ssd, pp, v, nm, fwd_a2a)
    # pipeline point-to-point (activations forward, gradients backward) at every boundary of
    # the device's v chunks
    pp_inter = inner * dp >= dpn
    bw_pp = np.where(pp_inter, hw.node_net_bw / dpn, hw.link_bw)
    a_pp = np.where(pp_inter, hw.alpha_inter, hw.alpha_intra)
    t_pp = np.where(pp > 1, 2.0 * v * (T * d * ACT_BYTES / tp / bw_pp + a_pp), 0.0)
    t_pp = t_pp * (1.0 - fw.pp_overlap)

    t_micro = t_comp + t_mem + t_tp + t_cp + t_ep + t_pp

    # ---- data parallel / ZeRO / FSDP ------------------------------------------------
    n_total = float(m.n_params)
    n_exp = float(m.expert_params_total)
    p_dense = (n_total - n_exp) / (tp * pp)
    p_exp = n_exp / (pp * ep)
    p_dev = p_dense + p_exp
    ring = np.where(dp > 1, (dp - 1) / dp, 0.0)
    k_dp = np.clip(np.floor(dpn / inner), 1.0, dp)  # DP peers sharing a node
    dp_inter = (inner * dp > dpn) & (dp > k_dp)
    bw_dp = np.where(dp_inter, np.minimum(hw.link_bw, hw.node_net_bw * k_dp / dpn), hw.link_bw)
    a_dp = np.where(dp_inter, hw.alpha_inter, hw.alpha_intra)
    # Expert weights are reduced over the *expert* data-parallel group (Megatron-Core
    # `expert_data_parallel` group: world / (pp x ep x expert-tp), expert-tp = 1 here), not
    # over the dense DP group: dp_e = tp cp dp / ep ranks. The ep ranks of an expert group are
    # adjacent (Megatron's rank order etp-ep-dp-pp), so a node of `dpn` devices holds only
    # dpn / ep members of each expert-DP ring (one when ep >= dpn): that ring crosses the
    # network on those members' NIC share, not on the whole node's NICs as a dense ring does
    # (docs/perf-model.md, "expert data parallelism").
    dp_e = np.maximum(tp * cp * dp / ep, 1.0)
    ring_e = np.where(dp_e > 1, (dp_e - 1) / dp_e, 0.0)
    k_e = np.clip(np.floor(dpn / np.maximum(ep, 1.0)), 1.0, dp_e)  # expert-DP peers per node
    e_inter = (ep * dp_e > dpn) & (dp_e > k_e)
    bw_e = np.where(e_inter, np.minimum(hw.link_bw, hw.node_net_bw * k_e / dpn), hw.link_bw)
    a_e = np.where(e_inter, hw.alpha_inter, hw.alpha_intra)
    # time per byte of a (p, g) volume on each group: ring factor / bandwidth
    c_d = ring / bw_dp
    c_e = ring_e / bw_e
    pb_d, pb_e = p_dense * ACT_BYTES, p_exp * ACT_BYTES
    gb_d, gb_e = p_dense * spec.grad_reduce_bytes, p_exp * spec.grad_reduce_bytes
    lat_e = np.where(p_exp > 0, (dp_e - 1) * a_e * (dp_e > 1), 0.0)
    # per micro-batch: ZeRO-3 gathers params twice (fwd, bwd) and reduce-scatters grads;
    # ZeRO-2 (FSDP SHARD_GRAD_OP) gathers once and reduce-scatters.
    n_coll_micro = np.select([zr >= 3, zr == 2], [3.0 * Lp, 2.0 * Lp], 0.0)
    t_dp_micro = (
        np.select([zr >= 3, zr == 2], [2 * pb_d + gb_d, pb_d + gb_d], 0.0) * c_d
        + np.select([zr >= 3, zr == 2], [2 * pb_e + gb_e, pb_e + gb_e], 0.0) * c_e
        + n_coll_micro * ((dp - 1) * a_dp * (dp > 1) + lat_e)
    )
    # per step: ZeRO-1 reduce-scatter + all-gather; ZeRO-0 all-reduce (same volume)
    t_rs = (np.select([zr == 1, zr == 0], [gb_d, 2 * gb_d], 0.0) * c_d
            + np.select([zr == 1, zr == 0], [gb_e, 2 * gb_e], 0.0) * c_e)
    t_ag = np.where(zr == 1, pb_d * c_d + pb_e * c_e, 0.0)
    lat_step = np.where(zr <= 1, 2.0 * Lp, 0.0) * (dp - 1) * a_dp * (dp > 1)
    ov = fw.dp_overlap if hw.eff.overlap == DP_OVERLAP else hw.eff.overlap
    # the first layer's gather and the last layer's reduce-scatter have nothing to hide behind
    exp_micro = np.maximum(t_dp_micro / np.maximum(Lp, 1.0), t_dp_micro - ov * t_comp)
    t_bwd = t_comp * 2.0 / 3.0  # backward share of one micro-batch
    t_fwd = t_comp / 3.0
    exp_rs = np.maximum(t_rs / np.maximum(Lp, 1.0), t_rs - ov * t_bwd)
    exp_ag = np.maximum(t_ag / np.maximum(Lp, 1.0), t_ag - ov * t_fwd) if \
        fw.param_gather_overlap else t_ag
    exp_step = np.where(zr <= 1, exp_rs + exp_ag + lat_step, 0.0)
    t_dp_step = t_rs + t_ag + lat_step

    # the distributed optimizer shards each parameter over the group that reduces its gradient:
    # dense weights over the DP group, expert weights over the expert-DP group (dp_e ranks,
    # Megatron-Core `expert_data_parallel` group, see above) -- with ep = tp cp dp (GPT-OSS on
    # 64 GPUs, ep 64) every rank updates all of its local experts
    p_opt = np.where(zr >= 1, p_dense / dp + p_exp / dp_e, p_dev)
    t_opt = p_opt * OPT_BYTES_PER_PARAM / bw
    if fp8:  # FP8 weight casts (+ transposes) once per step
        p_cast = p_dev
        if m.mtp_bf16 and m.mtp_depth:
            # keep_mtp_spec_in_bf16: the MTP modules' weights are never quantised (their
            # routed experts split like the other experts, the rest like dense weights)
            mtp_e = float(m.mtp_modules * m.n_experts * m.expert_params) if m.is_moe else 0.0
            p_cast = p_dev - ((m.mtp_modules * m.mtp_params - mtp_e) / (tp * pp)
                              + mtp_e / (pp * ep))
        t_opt = t_opt + p_cast * cast_b / bw

    # gradient accumulation: every weight gradient computed on this device is added into the
    # fp32 main-grad buffer once per micro-batch (read + write fp32); FSDP reduce-scatters the
    # bf16 gradient instead (written by the GEMM, read by the collective)
    t_gacc = p_dev * fw.grad_accum_bytes / bw
    # overlapped collectives are not free: NCCL kernels occupy SMs (and HBM) while they run,
    # slowing the compute they hide behind by their share of the SMs
    hidden = (np.maximum(0.0, t_dp_micro - exp_micro) + np.maximum(0.0, t_tp_raw - t_tp)
              + np.maximum(0.0, t_cp_raw - t_cp) + t_ep_hidden)
    t_contend = hidden * COMM_SM_SHARE
    t_micro = t_micro + t_gacc + t_contend
    bubble = np.where(pp > 1, (pp - 1) / v * t_micro, 0.0)
    step = nm * (t_micro + exp_micro) + bubble + exp_step + t_opt

    # ---- memory per device --------------------------------------------------------------
    # sharded states use the same groups as the time model: dense weights over the DP group,
    # expert weights over the expert-DP group (dp_e ranks; Megatron-Core's distributed
    # optimizer builds the expert parameters' buffers on `expert_data_parallel_group`), so
    # with ep = tp cp dp every rank keeps the full fp32 master + Adam state of its experts
    p_shard = p_dense / dp + p_exp / dp_e
    states = np.select(
        [zr == 0, zr == 1, zr == 2],
        [16.0 * p_dev, 4.0 * p_dev + 12.0 * p_shard, 2.0 * p_dev + 14.0 * p_shard],
        16.0 * p_shard + 2 * 2.0 * p_dev / Lp,  # ZeRO-3: + two gathered layers
    )
    w_mem = np.select([zr <= 2], [2.0 * p_dev], 2.0 * p_shard)
    g_mem = np.select([zr <= 1], [2.0 * p_dev], 2.0 * p_shard)
    o_mem = states - w_mem - g_mem
    # activation bytes per token, summed over the busiest stage's blocks (act_w is already
    # summed over its FFN blocks): an attention block keeps its input, norm output and output
    # (3 d) and K / V; an FFN block 3 d and its activation inputs; a Mamba-2 block 3 d, the
    # in_proj output (z, x, B, C, dt), the conv output and y and the gated-norm output
    d_kv = (float(m.kv_elems_per_token() / (2 * max(m.n_attn_layers, 1))) if not m.is_mla
            else float(m.kv_lora_rank))
    n_F = n_Fd + n_Fm
    ffn_store_none = (2.0 if m.ffn == "gelu" else 3.0) * act_w
    a_mamba = (3.0 * d + m.mamba_in_width + m.mamba_conv_dim + 2.0 * m.d_inner) if \
        m.n_mamba_layers else 0.0
    a_none = ACT_BYTES * (n_A * (3 * d + 2 * d_kv) + n_F * 3 * d + ffn_store_none
                          + n_M * a_mamba)  # no dropout masks
    a_sel = ACT_BYTES * (n_A * (2 * d + 2 * d_kv) + n_F * 2 * d + act_w + n_M * a_mamba)
    a_full = ACT_BYTES * d * n_blk / 2.0
    if not legacy:
        # selective recompute by submodule: a recomputed submodule keeps only its checkpoint
        # input. "core_attn": the core attention output (d per attention block); "mlp": the
        # fused norm's output, the block output and the FFN activations (it keeps the block's
        # input); "moe": the block output and the expert / shared activations (it keeps the
        # norm output it starts from);
        # "moe_act": the activation output (FC2 input, k d_ff per MoE block); "layernorm": the
        # pre-MLP norm output of MoE blocks; "shared_experts": the shared expert's activations;
        # "mla_up_proj": nothing here (the model already keeps MLA's latent, not the up-projected
        # q / k / v)
        st = 2.0 if m.ffn == "gelu" else 3.0
        save = n_A * d * ("core_attn" in mods)
        dense_w = n_Fd * ffw_dense
        if "mlp" in mods:
            save = save + n_Fd * 2.0 * d + st * dense_w
        if m.is_moe:
            k_ff = float(max(m.top_k, 1)) * float(m.d_ff)
            wsh_m = float(m.shared_width)
            if "moe" in mods:
                # the MoE layer's checkpoint input is the (separate) pre-MLP norm's output
                save = save + n_Fm * (d + st * (k_ff + wsh_m))
            else:
                save = (save + n_Fm * k_ff * ("moe_act" in mods)
                        + n_Fm * st * wsh_m * ("shared_experts" in mods)
                        + n_Fm * d * ("layernorm" in mods))
        a_sel = a_none - ACT_BYTES * save
    # full recompute keeps each recomputed layer's input only (block method: the other layers
    # keep everything)
    a_rc2 = full * a_full + (full_on - full) * a_none
    a_tok = np.select([rc == 0, rc == 1], [a_none, a_sel], a_rc2)
    # dropout masks (1 byte per element of each block's output) are kept until the backward,
    # except by fully recomputed layers
    a_tok = a_tok + np.select([rc == 0, rc == 1], [drop_mask, drop_mask],
                              (full_on - full) * drop_mask)
    # 1F1B: the first stage holds pp micro-batches; interleaving adds (pp-1)/(pp v) more
    in_flight = np.minimum(nm, pp) * (1.0 + np.where(v > 1, (pp - 1) / (pp * v), 0.0))
    act = a_tok * T / tp * in_flight + full_on * a_none / np.maximum(Lp, 1.0) * T / tp
    logits = T * V * 6.0 / tp  # bf16 logits + fp32 copy for the loss
    act_mem = act + logits
    total_mem = states + act_mem
    fits = total_mem <= hw.mem_usable

    # ---- throughput, utilisation -------------------------------------------------------
    n_dev = tp * pp * dp * cp
    seqs = nm * mb * dp
    tokens = seqs * s
    mf_tok = m.model_flops_per_token(spec.seq_len)
    hf_tok = mf_tok + full * (2.0 * m.matmul_params_active + m.attn_flops_fwd(s)) + r_attn * (
        m.attn_flops_fwd(s)
    )
    denom = step * n_dev * hw.peak_flops
    comp_part = nm * (t_comp + t_contend)
    mem_part = nm * (t_mem + t_gacc) + t_opt
    comm_part = nm * (t_tp + t_cp + t_ep + t_pp + exp_micro) + exp_step
    return {
        "tp": tp, "pp": pp, "dp": dp, "cp": cp, "ep": ep, "mb": mb, "recompute": rc,
        "zero": zr, "n_micro": nm, "n_devices": n_dev, "vp": v,
        "step_time": step, "t_micro": t_micro, "t_compute": comp_part, "t_memory": mem_part,
        "t_comm": comm_part, "t_bubble": bubble,
        "t_gemm": nm * t_gemm, "t_attention": nm * t_attn, "t_ssd": nm * t_ssd,
        "t_elementwise": nm * t_elem,
        "t_optimizer": t_opt, "gemm_flops": nm * gemm_flops,
        "t_comm_tp": nm * t_tp, "t_comm_tp_total": nm * t_tp_raw,
        "t_comm_dp_total": nm * t_dp_micro + t_dp_step,
        "t_comm_dp_exposed": nm * exp_micro + exp_step, "t_comm_pp": nm * t_pp,
        "t_comm_ep": nm * t_ep, "t_comm_cp": nm * t_cp,
        "tokens_per_s": tokens / step, "tokens_per_s_per_device": tokens / step / n_dev,
        "mfu": mf_tok * tokens / denom, "hfu": hf_tok * tokens / denom,
        "mem_weights": w_mem, "mem_grads": g_mem, "mem_optimizer": o_mem,
        "mem_activations": act_mem, "mem_total": total_mem, "fits": fits,
    }


def bottleneck_of(res: dict[str, Any], i: int = 0) -> str:
    parts = {
        "compute": float(np.ravel(res["t_compute"])[i]),
        "memory": float(np.ravel(res["t_memory"])[i]),
        "communication": float(np.ravel(res["t_comm"])[i]),
        "pipeline bubble": float(np.ravel(res["t_bubble"])[i]),
    }
    return max(parts, key=lambda k: parts[k])


# -------------------------------------------------------------------------------------
# layout enumeration
# -------------------------------------------------------------------------------------
def _divisors(n: int) -> list[int]:
    out = [i for i in range(1, int(n**0.5) + 1) if n % i == 0]
    return sorted(set(out + [n // i for i in out]))


@dataclass(frozen=True, slots=True)
class Fixed:
    """Layout dimensions the user pinned (None = free for the search)."""

    tp: int | None = None
    pp: int | None = None
    cp: int | None = None
    ep: int | None = None
    dp: int | None = None
    mb: int | None = None
    recompute: int | None = None
    zero: int | None = None
    vp: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def enumerate_layouts(
    spec: TrainSpec, n_devices: int, devices_per_node: int, fixed: Fixed | None = None,
    *, strict_batch: bool = True,
) -> dict[str, np.ndarray]:
    """Every valid (tp, pp, cp, ep, dp, mb, recompute, zero) for ``n_devices``.

    tp divides the query and KV heads and is at most ``devices_per_node``; pp divides the
    layers (or is a power of two with the busiest stage rounded up); cp in powers of two while
    each shard keeps >= 512 tokens; ep divides the routed experts and dp; dp = N / (tp pp cp);
    mb divides the per-replica batch (``strict_batch=False`` rounds the per-replica batch up
    instead of rejecting a dp that does not divide the global batch).
    """
    fx = fixed or Fixed()
    m = spec.model
    L = m.n_layers
    tps = [t for t in _divisors(m.n_heads) if t <= devices_per_node and m.kv_heads % t == 0]
    pps = sorted(set(_divisors(L)) | {2**i for i in range(1, 8) if 2**i <= L // 2})
    cps = [c for c in (1, 2, 4, 8, 16, 32) if spec.seq_len // c >= 512 or c == 1]
    if fx.tp is not None:
        tps = [fx.tp]
    if fx.pp is not None:
        pps = [fx.pp]
    if m.is_hybrid:
        # context parallelism of Mamba-2 blocks (the SSD state crossing the shard boundary) is
        # not modelled: the search keeps hybrid models at cp = 1 unless cp is pinned
        cps = [1]
    if fx.cp is not None:
        cps = [fx.cp]
    rcs = [fx.recompute] if fx.recompute is not None else [0, 1, 2]
    zs = [fx.zero] if fx.zero is not None else [0, 1, 2, 3]
    rows: list[tuple[int, ...]] = []  # tp pp cp ep dp mb n_micro vp
    for t in tps:
        for p in pps:
            if p > L:
                continue
            if fx.vp is not None:
                vps = [fx.vp if p > 1 else 1]
            elif p > 1:
                # interleaved 1F1B: virtual stages with >= 1 layer each (uneven splits are
                # priced by the busiest stage, ceil(L / (pp v)) v layers)
                vps = [v for v in VIRTUAL_STAGES if p * v <= L]
            else:
                vps = [1]
            for c in cps:
                if n_devices % (t * p * c):
                    continue
                dp = n_devices // (t * p * c)
                if fx.dp is not None and dp != fx.dp:
                    continue
                if strict_batch and spec.global_batch % dp:
                    continue
                per_rep = -(-spec.global_batch // dp)
                eps = [1]
                if m.is_moe:
                    eps = [e for e in _divisors(dp) if m.n_experts % e == 0 and e <= 256]
                if fx.ep is not None:
                    eps = [fx.ep] if (dp % fx.ep == 0) else []
                mbs = [b for b in _divisors(per_rep) if b <= 64] or [1]
                if fx.mb is not None:
                    mbs = [fx.mb] if per_rep % fx.mb == 0 else []
                for e in eps:
                    for b in mbs:
                        for v in vps:
                            rows.append((t, p, c, e, dp, b, per_rep // b, v))
    if not rows:
        return {}
    arr = np.asarray(rows, dtype=float)
    k = len(rcs) * len(zs)
    base = np.repeat(arr, k, axis=0)
    combo = np.asarray([(r, z) for r in rcs for z in zs], dtype=int)
    combo = np.tile(combo, (len(rows), 1))
    return {
        "tp": base[:, 0], "pp": base[:, 1], "cp": base[:, 2], "ep": base[:, 3],
        "dp": base[:, 4], "mb": base[:, 5], "n_micro": base[:, 6], "vp": base[:, 7],
        "recompute": combo[:, 0], "zero": combo[:, 1],
    }


def search(
    spec: TrainSpec, hw: Hardware, n_devices: int, fixed: Fixed | None = None, *,
    top_k: int = 10, strict_batch: bool = True,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Evaluate every valid layout; returns (all results, indices of the best fitting ones).

    Virtual pipeline stages (when not pinned) are searched in two passes: every layout with
    ``vp = 1``, then every candidate ``vp`` for the ``VP_REFINE`` fastest fitting pipelined
    layouts (interleaving only shrinks the bubble and adds P2P traffic and activation memory, so
    a layout far behind at ``vp = 1`` does not win with interleaving)."""
    fx = fixed or Fixed()
    two_pass = fx.vp is None
    first = replace(fx, vp=1) if two_pass else fx
    lay = enumerate_layouts(spec, n_devices, hw.devices_per_node, first,
                            strict_batch=strict_batch)
    if not lay:
        raise CannotRun(
            f"no valid parallel layout for {spec.model.name} on {n_devices} devices "
            f"(global batch {spec.global_batch}; tp must divide {spec.model.n_heads} heads, "
            "tp * pp * cp must divide the device count)"
        )
    res = evaluate(spec, hw, **lay)
    if two_pass:
        res = _refine_vp(spec, hw, lay, res)
    ok = np.flatnonzero(res["fits"])
    order = ok[np.argsort(-res["tokens_per_s"][ok], kind="stable")]
    return res, order[:top_k]


VP_REFINE = 4096  # most pipelined layouts whose virtual stages the second pass explores


def _refine_vp(spec: TrainSpec, hw: Hardware, lay: dict[str, np.ndarray],
               res: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    n = lay["tp"].size
    fits = np.asarray(res["fits"], dtype=bool)
    cand = np.flatnonzero(fits & (lay["pp"] > 1))
    if cand.size == 0:
        return res
    # interleaving can at best remove the bubble: a layout whose step without its bubble is
    # slower (per token) than the best vp = 1 layout cannot win -- prune it, keep the rest by
    # that bound (tokens per step are the same for every layout of a search)
    tok = res["tokens_per_s"] * res["step_time"]
    best = np.max(res["tokens_per_s"][fits]) if fits.any() else 0.0
    bound = tok[cand] / (res["step_time"][cand] - res["t_bubble"][cand])
    cand = cand[bound > best]
    cand = cand[np.argsort(-bound[bound > best], kind="stable")][:VP_REFINE]
    if cand.size == 0:
        return res
    L = spec.model.n_layers
    extra: dict[str, list[np.ndarray]] = {k: [] for k in lay}
    for v in VIRTUAL_STAGES[1:]:
        sel = cand[lay["pp"][cand] * v <= L]
        if sel.size == 0:
            continue
        for k, arr in lay.items():
            extra[k].append(np.full(sel.size, v, dtype=float) if k == "vp" else arr[sel])
    if not extra["tp"]:
        return res
    more = {k: np.concatenate(v) for k, v in extra.items()}
    res2 = evaluate(spec, hw, **more)
    m = more["tp"].size
    out = {}
    for k in res:
        a = np.broadcast_to(np.asarray(res[k]), (n,))
        b = np.broadcast_to(np.asarray(res2[k]), (m,))
        out[k] = np.concatenate([a, b])
    return out


def recompute_code(name: str | int | bool | None) -> int:
    if isinstance(name, bool):
        return 2 if name else 0
    if isinstance(name, int):
        if name in (0, 1, 2):
            return name
    elif isinstance(name, str):
        key = name.strip().lower()
        if key in RECOMPUTE:
            return RECOMPUTE.index(key)
        if key in ("true", "on", "yes"):
            return 2
        if key in ("false", "off", "no"):
            return 0
    raise SuanliError(f"recompute must be one of none, selective, full; got {name!r}")


def zero_code(z: str | int | None) -> int:
    key = str(z).strip().upper()
    table = {"0": 0, "1": 1, "2": 2, "3": 3, "FULL_SHARD": 3, "SHARD_GRAD_OP": 2,
             "NO_SHARD": 0, "FSDP": 3, "DDP": 0}
    if key in table:
        return table[key]
    raise SuanliError(
        f"zero must be 0, 1, 2, 3 (or FULL_SHARD = 3, SHARD_GRAD_OP = 2); got {z!r}"
    )


def precision_bytes(p: Precision) -> float:
    return {Precision.FP8: 1.0, Precision.INT8: 1.0, Precision.INT4: 0.5, Precision.FP4: 0.5,
            Precision.FP32: 4.0, Precision.TF32: 4.0, Precision.FP64: 8.0,
            Precision.FP64_TENSOR: 8.0}.get(p, 2.0)


__all__ = ["GIB", "RECOMPUTE", "Fixed", "TrainSpec", "bottleneck_of", "enumerate_layouts",
           "evaluate", "recompute_code", "search", "zero_code"]
