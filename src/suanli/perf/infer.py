"""Inference: prefill (compute-bound) and decode (memory-bandwidth-bound) with tensor parallelism.

One model replica spans ``tp`` devices; ``n_devices / tp`` replicas serve the batch in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass

from suanli.errors import CannotRun, SuanliError
from suanli.perf.efficiency import (
    ATTENTION_KERNELS,
    DEFAULT_ATTENTION_KERNEL,
    attention_length_factor,
    gemm_rows_factor,
    gemm_shape_factor,
)
from suanli.perf.hardware import GIB, Hardware
from suanli.perf.models import ModelShape

ACTIVATION_WORKSPACE = 0.5 * GIB  # per device: activations / logits scratch of one step


@dataclass(frozen=True, slots=True)
class InferResult:
    tp: int
    replicas: int
    batch_per_replica: int
    weight_bytes_per_device: float
    kv_bytes_per_device: float
    kv_bytes_per_token: float  # whole model, one token (all layers, K and V)
    mem_total_per_device: float
    fits: bool
    ttft_s: float  # prefill time of one batch
    tpot_s: float  # mean decode step time (one output token for every sequence)
    prefill_tokens_per_s: float
    decode_tokens_per_s: float  # output tokens/s during decode, all replicas
    output_tokens_per_s: float  # end to end: batch x output / (ttft + output x tpot), all replicas
    decode_bound: str  # memory or compute
    prefill_flops: float


def evaluate_infer(
    model: ModelShape, hw: Hardware, n_devices: int, *, batch: int, prompt: int, output: int,
    tp: int | None = None, weight_bytes: float = 2.0, kv_bytes: float = 2.0,
) -> InferResult:
    """Prefill/decode times, throughput and memory for one layout."""
    if n_devices < 1:
        raise SuanliError(f"devices must be >= 1, got {n_devices}")
    if batch < 1 or prompt < 1 or output < 0:
        raise SuanliError("batch and prompt must be >= 1 and output >= 0")
    if tp is None:
        tp = max(t for t in range(1, min(n_devices, hw.devices_per_node) + 1)
                 if n_devices % t == 0 and model.n_heads % t == 0)
    if tp < 1 or n_devices % tp:
        raise SuanliError(f"devices ({n_devices}) must be divisible by tp ({tp})")
    if model.n_heads % tp:
        raise SuanliError(f"tp ({tp}) must divide the {model.n_heads} attention heads")
    replicas = n_devices // tp
    b = -(-batch // replicas)

    w_dev = model.n_params * weight_bytes / tp
    kv_tok = model.kv_elems_per_token() * kv_bytes
    ctx_max = prompt + output
    kv_dev = b * ctx_max * kv_tok / tp
    mem = w_dev + kv_dev + ACTIVATION_WORKSPACE
    fits = mem <= hw.mem_usable

    g = float(gemm_shape_factor(model.d_model / tp))
    attn_rel = hw.eff.attention or ATTENTION_KERNELS[DEFAULT_ATTENTION_KERNEL]
    bw_tp = hw.link_bw if tp <= hw.devices_per_node else hw.node_net_bw / hw.devices_per_node
    alpha = hw.alpha_intra if tp <= hw.devices_per_node else hw.alpha_inter
    L = model.n_layers

    def allreduce(nbytes: float) -> float:
        if tp == 1:
            return 0.0
        return 2 * L * (2 * (tp - 1) / tp * nbytes / bw_tp + 2 * (tp - 1) * alpha)

    # prefill: all prompt tokens of the batch at once
    toks = b * prompt
    gemm = 2.0 * model.matmul_params_infer * toks / tp
    attn = model.attn_flops_fwd(prompt / 2.0) * toks / tp
    t_prefill = (
        gemm / (hw.flops * g * float(gemm_rows_factor(toks)))
        + attn / (hw.flops * attn_rel * float(attention_length_factor(prompt / 2.0)))
        + w_dev / hw.hbm_bw
        + allreduce(toks * model.d_model * 2.0)
    )
    # decode: each step reads the weights (experts touched by the batch) and the KV cache
    if model.is_moe:
        touched = min(1.0, b * model.top_k / model.n_experts)
        w_read = (model.n_params - model.expert_params_total * (1 - touched)) * weight_bytes / tp
    else:
        w_read = w_dev
    ctx_mean = prompt + output / 2.0
    kv_read = b * ctx_mean * kv_tok / tp
    t_mem = (w_read + kv_read) / hw.hbm_bw
    flops_step = (2.0 * model.matmul_params_infer + model.attn_flops_fwd(ctx_mean)) * b / tp
    # decode GEMMs are skinny (M = batch): specialised GEMV/skinny kernels, half-efficiency at 16
    t_comp = flops_step / (hw.flops * g * b / (b + 16.0))
    tpot = max(t_mem, t_comp) + allreduce(b * model.d_model * 2.0)
    total = t_prefill + output * tpot
    return InferResult(
        tp=tp, replicas=replicas, batch_per_replica=b,
        weight_bytes_per_device=w_dev, kv_bytes_per_device=kv_dev, kv_bytes_per_token=kv_tok,
        mem_total_per_device=mem, fits=fits, ttft_s=t_prefill, tpot_s=tpot,
        prefill_tokens_per_s=replicas * toks / t_prefill,
        decode_tokens_per_s=replicas * b / tpot,
        output_tokens_per_s=replicas * b * output / total if output else 0.0,
        decode_bound="memory" if t_mem >= t_comp else "compute",
        prefill_flops=gemm * tp + attn * tp,
    )


def check_fit(res: InferResult, hw: Hardware) -> None:
    if not res.fits:
        need = res.mem_total_per_device / GIB
        raise CannotRun(
            f"does not fit: needs {need:.0f} GB per device, {hw.chip_name} has "
            f"{hw.memory_gb:.0f} GB; try more devices (higher --tp), a smaller --batch or "
            "a lower precision"
        )
