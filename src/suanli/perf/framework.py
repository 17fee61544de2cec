"""Training frameworks: which overlaps and fused kernels a software stack has.

A framework is not a fudge factor: each field names a documented mechanism, and its value is a
property of the stack (the same for every model, chip and row). ``megatron`` = Megatron-Core with
Transformer Engine (NeMo, Megatron-Bridge, MindSpeed on Ascend follows it); ``fsdp`` = PyTorch
FSDP (Composer / llm-foundry, torchtitan); ``deepspeed`` = DeepSpeed ZeRO.
"""

from __future__ import annotations

from dataclasses import dataclass

from suanli.errors import SuanliError


@dataclass(frozen=True, slots=True)
class Framework:
    name: str
    # Fraction of tensor-parallel collectives that can hide behind the GEMMs they feed
    # (Megatron/TE "tp_comm_overlap": all-gather / reduce-scatter split into chunks pipelined
    # with the GEMM); the rest is exposed. Bounded by the GEMM time.
    tp_overlap: float
    # Fraction of the available compute window that can hide data-parallel / ZeRO traffic.
    dp_overlap: float
    # Parameter all-gather of the distributed optimizer / ZeRO-1 hidden behind the next
    # forward (Megatron overlap_param_gather); False = exposed after the optimizer step.
    param_gather_overlap: bool
    # Fraction of pipeline point-to-point traffic hidden (Megatron overlap_p2p_comm).
    pp_overlap: float
    # Fraction of MoE all-to-all hidden behind expert / shared-expert compute.
    ep_overlap: float
    # LayerNorm/RMSNorm fused with the FP8 cast of the next GEMM's input (TE
    # LayerNormLinear); and bias/activation/residual kernels fused (fewer passes over HBM).
    fused_norm_cast: bool
    elementwise_passes: float  # HBM passes of the element-wise ops relative to unfused eager
    kernels_per_layer: float  # kernel launches per layer per forward (launch-overhead floor)
    # HBM bytes per locally computed parameter per micro-batch to accumulate its gradient
    # (Megatron: fp32 main_grad read + write = 8; FSDP: bf16 grad written + read by the
    # reduce-scatter = 4)
    grad_accum_bytes: float = 8.0
    description: str = ""


FRAMEWORKS: dict[str, Framework] = {
    "megatron": Framework(
        "megatron", tp_overlap=0.5, dp_overlap=0.85, param_gather_overlap=True,
        pp_overlap=0.8, ep_overlap=0.0, fused_norm_cast=True, elementwise_passes=0.8,
        kernels_per_layer=14.0,
        description="Megatron-Core + Transformer Engine: TP comm overlap (chunked AG/RS with "
        "GEMMs), overlapped grad reduce-scatter and param all-gather (distributed optimizer), "
        "overlapped P2P, fused LayerNorm+cast, fused bias/SwiGLU/RoPE/residual kernels",
    ),
    "mindspeed": Framework(
        "mindspeed", tp_overlap=0.3, dp_overlap=0.85, param_gather_overlap=True,
        pp_overlap=0.8, ep_overlap=0.0, fused_norm_cast=False, elementwise_passes=0.9,
        kernels_per_layer=16.0,
        description="MindSpeed (Megatron on Ascend): Megatron's overlaps, fewer fused kernels",
    ),
    "fsdp": Framework(
        "fsdp", tp_overlap=0.0, dp_overlap=0.85, param_gather_overlap=False,
        pp_overlap=0.0, ep_overlap=0.0, fused_norm_cast=False, elementwise_passes=1.0,
        kernels_per_layer=20.0, grad_accum_bytes=4.0,
        description="PyTorch FSDP: layer-wise all-gather prefetch and bucketed reduce-scatter "
        "overlapped with compute; eager element-wise kernels",
    ),
    "deepspeed": Framework(
        "deepspeed", tp_overlap=0.0, dp_overlap=0.7, param_gather_overlap=False,
        pp_overlap=0.0, ep_overlap=0.0, fused_norm_cast=False, elementwise_passes=1.0,
        kernels_per_layer=20.0,
        description="DeepSpeed ZeRO: overlap_comm for reduce-scatter; parameter prefetch for "
        "ZeRO-3 with less aggressive bucketing",
    ),
}
DEFAULT_FRAMEWORK = "megatron"
LAUNCH_S = 4e-6  # per kernel launch on the host when the GPU outruns the CPU (CUDA ~3-5 us)


def get_framework(name: str | Framework | None) -> Framework:
    if isinstance(name, Framework):
        return name
    key = (name or DEFAULT_FRAMEWORK).strip().lower()
    aliases = {"nemo": "megatron", "megatron-lm": "megatron", "megatron-core": "megatron",
               "composer": "fsdp", "llm-foundry": "fsdp", "torchtitan": "fsdp",
               "pytorch": "fsdp", "zero": "deepspeed"}
    key = aliases.get(key, key)
    if key not in FRAMEWORKS:
        raise SuanliError(f"framework must be one of {', '.join(FRAMEWORKS)}; got {name!r}")
    return FRAMEWORKS[key]
