"""Transformer shapes: presets, custom shapes and the parameter / FLOP / memory arithmetic.

Every count here is computed from the shape (layers, widths, heads, FFN size, vocabulary,
experts), never typed in: the published parameter counts are only used by the tests to check
that the arithmetic lands within a few percent.

Conventions
-----------
* ``d_ff`` is the hidden width of one FFN (of one expert for MoE). A ``gelu`` FFN has two
  matrices (``2 d d_ff`` parameters), a ``swiglu`` FFN three (``3 d d_ff``).
* Attention: ``n_heads`` query heads of ``head_dim``, ``n_kv_heads`` key/value heads (GQA);
  multi-head latent attention (MLA, DeepSeek-V2/V3) is described by ``q_lora_rank``,
  ``kv_lora_rank``, ``qk_rope_dim``, ``qk_nope_dim`` and ``v_head_dim``.
* Biases are ignored (Llama, MPT and DeepSeek have none; GPT-3's are < 0.01 % of parameters).
* Hybrid Mamba-Transformer models (Nemotron-H / Nemotron 3) give ``hybrid_pattern``, the
  public ``hybrid_override_pattern``: one block per character, ``M`` a Mamba-2 mixer, ``*``
  self-attention, ``-`` a dense MLP, ``E`` an MoE; each block is norm + mixer + residual.
  ``n_layers`` is then the pattern's length (blocks, not attention + FFN pairs). A Mamba-2
  (SSD) mixer has ``mamba_heads`` heads of ``mamba_head_dim`` (d_inner = their product),
  ``mamba_groups`` groups of B / C with state size ``mamba_state``, a causal depthwise conv of
  ``mamba_conv`` taps and the SSD chunk size ``ssd_chunk`` (Dao & Gu 2024, section 6).
* LatentMoE (Nemotron 3 Super / Ultra): ``moe_latent`` > 0 = the routed experts work in that
  width: one d -> latent projection before dispatch, experts latent -> d_ff -> latent, one
  latent -> d projection after the combine; the shared expert stays at width d.
* ``mtp_depth``: multi-token prediction modules trained with the model (DeepSeek-V3 report
  section 2.2): per depth two norms, a (2d -> d) projection, one attention + FFN block (MoE if
  the model is) and the shared output head with its loss.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from suanli.errors import SuanliError

FfnKind = Literal["gelu", "swiglu"]
HYBRID_BLOCKS = "M*-E"  # Mamba-2, attention, dense MLP, MoE (Megatron hybrid_override_pattern)


@dataclass(frozen=True, slots=True)
class ModelShape:
    """A decoder-only transformer, dense or mixture-of-experts."""

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int
    vocab: int
    n_kv_heads: int | None = None  # None = n_heads (multi-head attention)
    head_dim: int | None = None  # None = d_model // n_heads
    ffn: FfnKind = "swiglu"
    tied_embeddings: bool = False
    learned_pos: int = 0  # rows of a learned position table (GPT-3: 2048); 0 = none
    rope: bool = True  # rotary position embedding (False: ALiBi / learned positions)
    # mixture of experts (n_experts = routed experts; 0 = dense model)
    n_experts: int = 0
    top_k: int = 0
    n_shared_experts: int = 0
    d_ff_dense: int | None = None  # FFN width of the first ``n_dense_layers`` (dense) layers
    n_dense_layers: int = 0
    # multi-head latent attention (0 = standard attention)
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_rope_dim: int = 0
    qk_nope_dim: int = 0
    v_head_dim: int = 0
    # sliding-window attention: ``n_window_layers`` of the layers attend to the last
    # ``sliding_window`` keys only (GPT-OSS: every other layer, 128 tokens); 0 = none
    sliding_window: int = 0
    n_window_layers: int = 0
    # learned attention sinks (GPT-OSS): one extra logit per head in the softmax denominator;
    # no FLOPs or bytes worth counting, recorded so the shape is complete
    attention_sinks: bool = False
    # the routed experts' linear layers carry biases (GPT-OSS: Megatron-Bridge GPTOSSProvider
    # `add_bias_linear = True`); costed in the training model where the framework applies the
    # expert output bias outside the grouped GEMM (Megatron-Core TEGroupedMLP._apply_bias)
    expert_bias: bool = False
    # shared-expert FFN width (None = n_shared_experts x d_ff)
    d_ff_shared: int | None = None
    # LatentMoE: routed experts work in this width (0 = in d_model)
    moe_latent: int = 0
    # hybrid Mamba-Transformer layer pattern (see the module docstring; "" = transformer)
    hybrid_pattern: str = ""
    mamba_heads: int = 0
    mamba_head_dim: int = 64
    mamba_state: int = 128
    mamba_groups: int = 8
    mamba_conv: int = 4
    ssd_chunk: int = 128
    # multi-token prediction depth (DeepSeek-V3 MTP; 0 = none)
    mtp_depth: int = 0
    # the MTP depths reuse one module's weights (Megatron `mtp_use_repeated_layer`): the
    # compute is per depth, the parameters are one module's
    mtp_shared_weights: bool = False
    # the MTP depths' GEMMs stay 16-bit under FP8 / FP4 recipes (Megatron-Bridge
    # `keep_mtp_spec_in_bf16`, set by the Nemotron 3 recipes and by the Nemotron-H bridge for
    # every checkpoint with MTP layers)
    mtp_bf16: bool = False
    source: str = ""  # where the shape comes from (config file, report)
    published_params: float | None = None  # the publisher's own count (for tests / display)
    published_active: float | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for name in ("n_layers", "d_model", "n_heads", "d_ff", "vocab"):
            if getattr(self, name) <= 0:
                raise SuanliError(f"must be a positive integer, got {getattr(self, name)}",
                                  where=f"model '{self.name}'", field=name)
        if self.n_kv_heads is not None and (
            self.n_kv_heads <= 0 or self.n_heads % self.n_kv_heads
        ):
            raise SuanliError(f"n_kv_heads ({self.n_kv_heads}) must divide n_heads "
                              f"({self.n_heads})", where=f"model '{self.name}'", field="n_kv_heads")
        if self.head_dim is None and not self.is_mla and self.d_model % self.n_heads:
            raise SuanliError(f"d_model ({self.d_model}) is not divisible by n_heads "
                              f"({self.n_heads}); give head_dim", where=f"model '{self.name}'",
                              field="n_heads")
        if self.n_experts and not 0 < self.top_k <= self.n_experts:
            raise SuanliError("top_k must be in 1..n_experts", where=f"model '{self.name}'",
                              field="top_k")
        if self.n_window_layers and not (
            0 < self.n_window_layers <= self.n_layers and self.sliding_window > 0
        ):
            raise SuanliError("n_window_layers must be in 1..n_layers and needs a "
                              "sliding_window > 0", where=f"model '{self.name}'",
                              field="n_window_layers")
        if self.ffn not in ("gelu", "swiglu"):
            raise SuanliError(f"ffn must be gelu or swiglu, got {self.ffn!r}",
                              where=f"model '{self.name}'", field="ffn")
        if self.hybrid_pattern:
            bad = sorted(set(self.hybrid_pattern) - set(HYBRID_BLOCKS))
            if bad:
                raise SuanliError(f"hybrid_pattern may only hold M, *, - and E, got "
                                  f"{''.join(bad)!r}", where=f"model '{self.name}'",
                                  field="hybrid_pattern")
            if len(self.hybrid_pattern) != self.n_layers:
                raise SuanliError(f"hybrid_pattern has {len(self.hybrid_pattern)} blocks but "
                                  f"n_layers is {self.n_layers}", where=f"model '{self.name}'",
                                  field="n_layers")
            if "E" in self.hybrid_pattern and not self.n_experts:
                raise SuanliError("hybrid_pattern has MoE blocks (E) but n_experts is 0",
                                  where=f"model '{self.name}'", field="n_experts")
            if "M" in self.hybrid_pattern and self.mamba_heads <= 0:
                raise SuanliError("hybrid_pattern has Mamba blocks (M) but mamba_heads is 0",
                                  where=f"model '{self.name}'", field="mamba_heads")
        for name in ("mamba_heads", "mamba_head_dim", "mamba_state", "mamba_groups",
                     "mamba_conv", "ssd_chunk", "moe_latent", "mtp_depth"):
            if getattr(self, name) < 0:
                raise SuanliError(f"must be >= 0, got {getattr(self, name)}",
                                  where=f"model '{self.name}'", field=name)
        if self.mamba_heads and (self.mamba_head_dim <= 0 or self.mamba_state <= 0
                                 or self.mamba_groups <= 0 or self.ssd_chunk <= 0
                                 or self.mamba_heads % self.mamba_groups):
            raise SuanliError("Mamba heads need head_dim, state, chunk > 0 and mamba_groups "
                              "dividing mamba_heads", where=f"model '{self.name}'",
                              field="mamba_groups")

    # -- shape helpers ------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    @property
    def is_hybrid(self) -> bool:
        return bool(self.hybrid_pattern)

    @property
    def n_attn_layers(self) -> int:
        """Blocks with self-attention (every layer of a transformer)."""
        return self.hybrid_pattern.count("*") if self.is_hybrid else self.n_layers

    @property
    def n_mamba_layers(self) -> int:
        return self.hybrid_pattern.count("M") if self.is_hybrid else 0

    @property
    def n_ffn_layers(self) -> int:
        """Blocks with an FFN, dense or MoE (every layer of a transformer)."""
        if self.is_hybrid:
            return self.hybrid_pattern.count("-") + self.hybrid_pattern.count("E")
        return self.n_layers

    @property
    def d_inner(self) -> int:
        """Mamba-2 inner width (heads x head_dim)."""
        return self.mamba_heads * self.mamba_head_dim

    @property
    def mamba_in_width(self) -> int:
        """in_proj output width: z and x (d_inner each), B and C (groups x state each), dt."""
        return 2 * self.d_inner + 2 * self.mamba_groups * self.mamba_state + self.mamba_heads

    @property
    def mamba_conv_dim(self) -> int:
        """Channels of the causal depthwise conv: x, B and C."""
        return self.d_inner + 2 * self.mamba_groups * self.mamba_state

    @property
    def mamba_matmul_params(self) -> int:
        """in_proj + out_proj of one Mamba-2 mixer."""
        return self.d_model * self.mamba_in_width + self.d_inner * self.d_model

    @property
    def mamba_params(self) -> int:
        """All parameters of one Mamba-2 mixer: projections, conv taps + bias, A, D, dt bias,
        the gated norm's weight."""
        return (self.mamba_matmul_params + self.mamba_conv_dim * (self.mamba_conv + 1)
                + 3 * self.mamba_heads + self.d_inner)

    def ssd_flops_fwd(self, seq_len: float) -> float:
        """Forward FLOPs per token of one Mamba-2 SSD scan, chunked (Dao & Gu 2024, section
        6), chunk Q = min(ssd_chunk, seq_len): the diagonal (intra-chunk) blocks -- scores
        C B^T per group (N per key) and their masked product with x per head (P per key) over
        the causal half of the chunk, Q / 2 keys: 2 (Q / 2) (G N + H P); the chunk states B^T x
        and the state-to-output product C h per head, 2 N P each. The inter-chunk recurrence
        (N P per chunk) is negligible. The causal half is how the kernels skip masked tiles
        and how the SSD micro-benchmark behind train.SSD_GEMM_RATIO counts."""
        if not self.mamba_heads:
            return 0.0
        q = float(min(self.ssd_chunk, max(seq_len, 1.0)))
        g, n, h, p = self.mamba_groups, self.mamba_state, self.mamba_heads, self.mamba_head_dim
        return q * (g * n + h * p) + 4.0 * h * n * p

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def has_rope(self) -> bool:
        return self.rope and self.learned_pos == 0

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def hd(self) -> int:
        return self.head_dim or self.d_model // self.n_heads

    @property
    def qk_dim(self) -> int:
        """Per-head width of queries/keys (MLA: nope + rope part)."""
        return self.qk_nope_dim + self.qk_rope_dim if self.is_mla else self.hd

    @property
    def v_dim(self) -> int:
        return self.v_head_dim if self.is_mla else self.hd

    @property
    def ffn_mats(self) -> int:
        return 3 if self.ffn == "swiglu" else 2

    # -- parameter counts ---------------------------------------------------------------
    @property
    def attn_params(self) -> int:
        """Matmul parameters of one attention block."""
        d, h = self.d_model, self.n_heads
        if self.is_mla:
            q = (
                d * self.q_lora_rank + self.q_lora_rank * h * self.qk_dim
                if self.q_lora_rank
                else d * h * self.qk_dim
            )
            kv_a = d * (self.kv_lora_rank + self.qk_rope_dim)
            kv_b = self.kv_lora_rank * h * (self.qk_nope_dim + self.v_head_dim)
            o = h * self.v_head_dim * d
            return q + kv_a + kv_b + o
        return d * h * self.hd + 2 * d * self.kv_heads * self.hd + h * self.hd * d

    @property
    def expert_params(self) -> int:
        """Parameters of one FFN (one routed expert for MoE layers)."""
        return self.ffn_mats * self.expert_width * self.d_ff

    @property
    def n_moe_layers(self) -> int:
        if self.is_hybrid:
            return self.hybrid_pattern.count("E")
        return self.n_layers - self.n_dense_layers if self.is_moe else 0

    @property
    def n_dense_ffn_layers(self) -> int:
        """Blocks with a dense FFN."""
        return self.n_ffn_layers - self.n_moe_layers

    @property
    def shared_width(self) -> int:
        """Total width of the shared expert(s) of an MoE layer."""
        if self.d_ff_shared is not None:
            return self.d_ff_shared if self.n_shared_experts else 0
        return self.n_shared_experts * self.d_ff

    @property
    def expert_width(self) -> int:
        """Width the routed experts read and write (LatentMoE: the latent)."""
        return self.moe_latent or self.d_model

    @property
    def moe_block_params_dense(self) -> int:
        """Parameters of an MoE layer every token uses: router, shared expert(s), latent
        projections."""
        d = self.d_model
        shared = self.ffn_mats * d * self.shared_width
        latent = 2 * d * self.moe_latent if self.moe_latent else 0
        return d * self.n_experts + shared + latent

    @property
    def dense_ffn_params(self) -> int:
        """FFN parameters of a dense layer (dense model, or the first layers of an MoE)."""
        width = self.d_ff_dense if (self.is_moe and self.d_ff_dense) else self.d_ff
        return self.ffn_mats * self.d_model * width

    @property
    def ffn_params_total(self) -> int:
        """All FFN parameters of all layers."""
        if not self.is_moe:
            return self.n_ffn_layers * self.dense_ffn_params
        per_moe = self.n_experts * self.expert_params + self.moe_block_params_dense
        return self.n_dense_ffn_layers * self.dense_ffn_params + self.n_moe_layers * per_moe

    @property
    def ffn_params_active(self) -> int:
        """FFN parameters one token passes through (all layers)."""
        if not self.is_moe:
            return self.ffn_params_total
        per_moe = self.top_k * self.expert_params + self.moe_block_params_dense
        return self.n_dense_ffn_layers * self.dense_ffn_params + self.n_moe_layers * per_moe

    @property
    def expert_params_total(self) -> int:
        """Routed-expert parameters (the part expert parallelism splits)."""
        if not self.is_moe:
            return 0
        return (self.n_moe_layers + self.mtp_modules) * self.n_experts * self.expert_params

    @property
    def embed_params(self) -> int:
        emb = self.vocab * self.d_model * (1 if self.tied_embeddings else 2)
        return emb + self.learned_pos * self.d_model

    @property
    def n_blocks(self) -> int:
        """Norm + mixer + residual blocks: two per transformer layer, one per hybrid block."""
        return self.n_layers if self.is_hybrid else 2 * self.n_layers

    @property
    def norm_params(self) -> int:
        return (self.n_blocks + 1) * self.d_model

    @property
    def mtp_params(self) -> int:
        """One multi-token-prediction module: two norms, the (2d -> d) projection and one
        attention + FFN block (MoE when the model is); embedding and head are shared."""
        if not self.mtp_depth:
            return 0
        d = self.d_model
        ffn = (self.n_experts * self.expert_params + self.moe_block_params_dense
               if self.is_moe else self.dense_ffn_params)
        return 2 * d * d + 4 * d + self.attn_params + ffn

    @property
    def mtp_params_active(self) -> int:
        if not self.mtp_depth:
            return 0
        d = self.d_model
        ffn = (self.top_k * self.expert_params + self.moe_block_params_dense
               if self.is_moe else self.dense_ffn_params)
        return 2 * d * d + self.attn_params + ffn

    @property
    def n_params(self) -> int:
        """Total parameters (MTP modules included)."""
        return (
            self.n_attn_layers * self.attn_params
            + self.n_mamba_layers * self.mamba_params
            + self.ffn_params_total
            + self.embed_params
            + self.norm_params
            + self.mtp_modules * self.mtp_params
        )

    @property
    def matmul_params_infer(self) -> int:
        """Matmul parameters per generated token in inference (MTP modules not run)."""
        return self.matmul_params_active - self.mtp_depth * (
            self.mtp_params_active + self.vocab * self.d_model)

    @property
    def n_params_main(self) -> int:
        """Parameters without the MTP modules (what publishers quote as the model's size)."""
        return self.n_params - self.mtp_modules * self.mtp_params

    @property
    def mtp_modules(self) -> int:
        """MTP modules holding their own weights."""
        return min(self.mtp_depth, 1) if self.mtp_shared_weights else self.mtp_depth

    @property
    def n_active(self) -> int:
        """Parameters of the main model used per token (= n_params for a dense model without
        MTP; the MTP modules are left out, as the publishers count "active")."""
        return (
            self.n_attn_layers * self.attn_params
            + self.n_mamba_layers * self.mamba_params
            + self.ffn_params_active
            + self.embed_params
            + self.norm_params
        )

    @property
    def matmul_params_active(self) -> int:
        """Parameters that take part in a matmul per token: layers + LM head (not lookups),
        plus per MTP depth its module and one more pass through the shared head."""
        return (self.n_attn_layers * self.attn_params
                + self.n_mamba_layers * self.mamba_matmul_params
                + self.ffn_params_active + self.vocab * self.d_model
                + self.mtp_depth * (self.mtp_params_active + self.vocab * self.d_model))

    # -- FLOPs (forward, per token) -----------------------------------------------------
    def attn_flops_fwd(self, context: float) -> float:
        """Forward FLOPs of the score and value products for one token over ``context`` keys
        (sliding-window layers see at most ``sliding_window`` of them)."""
        per_key = 2.0 * self.n_heads * (self.qk_dim + self.v_dim)
        return per_key * self.attn_keys(context)

    def attn_keys(self, context: float) -> float:
        """Keys attended per token summed over the attention layers (and MTP blocks), for
        ``context`` keys per layer."""
        nw = self.n_window_layers if self.sliding_window else 0
        win = min(context, float(self.sliding_window)) if nw else 0.0
        return (self.n_attn_layers + self.mtp_depth - nw) * context + nw * win

    def model_flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token used for MFU: 6 N_matmul + 6 L h (d_qk + d_v) s, plus
        3x the SSD scan FLOPs of the Mamba layers.

        The attention term counts the full (non-causal) s x s product, the convention of
        PaLM and of MosaicML's MFU (``12 L d s`` for multi-head attention).
        """
        return (6.0 * self.matmul_params_active + 3.0 * self.attn_flops_fwd(seq_len)
                + 3.0 * self.n_mamba_layers * self.ssd_flops_fwd(seq_len))

    # -- inference memory ---------------------------------------------------------------
    def kv_elems_per_token(self) -> int:
        """K and V cache elements per token (all layers). MLA caches the compressed latent."""
        if self.is_mla:
            return self.n_attn_layers * (self.kv_lora_rank + self.qk_rope_dim)
        return 2 * self.n_attn_layers * self.kv_heads * self.hd

    def describe(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "extra" and v not in (0, None, "")
               and (self.mamba_heads or not (k.startswith("mamba_") or k == "ssd_chunk"))
               and (self.mtp_depth or k not in ("mtp_shared_weights", "mtp_bf16"))}
        out["params"] = self.n_params
        out["active_params"] = self.n_active
        return out


# --------------------------------------------------------------------------------------
# Presets (shapes from the publishers' configs / papers)
# --------------------------------------------------------------------------------------
_PRESETS: dict[str, ModelShape] = {
    m.name: m
    for m in (
        ModelShape(
            "gpt3-175b", n_layers=96, d_model=12288, n_heads=96, d_ff=49152, vocab=50257,
            ffn="gelu", tied_embeddings=True, learned_pos=2048, published_params=175e9,
            notes="Brown et al. 2020, Table 2.1",
        ),
        ModelShape(
            "llama2-7b", n_layers=32, d_model=4096, n_heads=32, d_ff=11008, vocab=32000,
            published_params=6.74e9, notes="Llama 2 paper / HF config",
        ),
        ModelShape(
            "llama2-13b", n_layers=40, d_model=5120, n_heads=40, d_ff=13824, vocab=32000,
            published_params=13.0e9, notes="Llama 2 paper / HF config",
        ),
        ModelShape(
            "llama2-70b", n_layers=80, d_model=8192, n_heads=64, n_kv_heads=8, d_ff=28672,
            vocab=32000, published_params=69.0e9, notes="GQA, 8 KV heads",
        ),
        ModelShape(
            "llama3-8b", n_layers=32, d_model=4096, n_heads=32, n_kv_heads=8, d_ff=14336,
            vocab=128256, published_params=8.03e9, notes="Llama 3 HF config",
        ),
        ModelShape(
            "llama3-70b", n_layers=80, d_model=8192, n_heads=64, n_kv_heads=8, d_ff=28672,
            vocab=128256, published_params=70.6e9, notes="Llama 3 HF config",
        ),
        ModelShape(
            "llama3-405b", n_layers=126, d_model=16384, n_heads=128, n_kv_heads=8,
            d_ff=53248, vocab=128256, published_params=405e9, notes="Llama 3.1 paper, Table 3",
        ),
        ModelShape(
            "deepseek-v3", n_layers=61, d_model=7168, n_heads=128, d_ff=2048, vocab=129280,
            n_experts=256, top_k=8, n_shared_experts=1, d_ff_dense=18432, n_dense_layers=3,
            q_lora_rank=1536, kv_lora_rank=512, qk_rope_dim=64, qk_nope_dim=128,
            v_head_dim=128, published_params=671e9, published_active=37e9,
            notes=(
                "DeepSeek-V3-like: 3 dense + 58 MoE layers, 256 routed experts top-8 + 1 shared; "
                "MLA counted with its real projections; the multi-token-prediction module, "
                "node-limited routing and auxiliary-loss-free balancing are not modelled; "
                "attention FLOPs use per-head q/k width 192 and v width 128; the KV cache is "
                "the 576-wide latent"
            ),
        ),
    )
}
# Shapes of the models in NVIDIA's NeMo / Megatron-Bridge performance tables (public configs).
for _m in (
    ModelShape("gpt3-5b", n_layers=24, d_model=4096, n_heads=32, d_ff=16384, vocab=50304,
               ffn="gelu", tied_embeddings=True, learned_pos=2048,
               notes="NeMo gpt3_5b recipe (24 x 4096, 32 heads, FFN 4d)"),
    ModelShape("gpt3-20b", n_layers=44, d_model=6144, n_heads=48, d_ff=24576, vocab=50304,
               ffn="gelu", tied_embeddings=True, learned_pos=2048,
               notes="NeMo gpt3_20b recipe (44 x 6144, 48 heads, FFN 4d)"),
    ModelShape("nemotron-8b", n_layers=32, d_model=4096, n_heads=32, d_ff=16384, vocab=256000,
               ffn="gelu", notes="NeMo nemotron3_8b recipe; squared-ReLU FFN (2 matrices, "
               "counted as the gelu kind)"),
    ModelShape("nemotron-22b", n_layers=40, d_model=6144, n_heads=48,
               d_ff=24576, vocab=256000, ffn="gelu",
               notes="NeMo nemotron3_22b recipe; squared-ReLU FFN (2 matrices)"),
    ModelShape("nemotron-340b", n_layers=96, d_model=18432, n_heads=96, n_kv_heads=8,
               d_ff=73728, vocab=256000, ffn="gelu", published_params=341e9,
               notes="Nemotron-4 340B report; squared-ReLU FFN (2 matrices)"),
    ModelShape("qwen3-30b-a3b", n_layers=48, d_model=2048, n_heads=32, n_kv_heads=4,
               head_dim=128, d_ff=768, vocab=151936, n_experts=128, top_k=8,
               published_params=30.5e9, published_active=3.3e9,
               notes="Qwen3-30B-A3B HF config.json (128 experts top-8, expert FFN 768)"),
    ModelShape("qwen3-235b-a22b", n_layers=94, d_model=4096, n_heads=64, n_kv_heads=4,
               head_dim=128, d_ff=1536, vocab=151936, n_experts=128, top_k=8,
               published_params=235e9, published_active=22e9,
               notes="Qwen3-235B-A22B HF config.json (128 experts top-8, expert FFN 1536)"),
    ModelShape("gpt-oss-120b", n_layers=36, d_model=2880, n_heads=64, n_kv_heads=8,
               head_dim=64, d_ff=2880, vocab=201088, n_experts=128, top_k=4,
               sliding_window=128, n_window_layers=18, attention_sinks=True,
               expert_bias=True, published_params=117e9, published_active=5.1e9,
               notes="gpt-oss-120b config.json (128 experts top-4; layer_types alternate "
               "sliding_attention (window 128) and full_attention; learned attention sinks; "
               "biases on every linear incl. the experts; clamped SwiGLU counted as SwiGLU)"),
    ModelShape("kimi-k2", n_layers=61, d_model=7168, n_heads=64, d_ff=2048, vocab=163840,
               n_experts=384, top_k=8, n_shared_experts=1, d_ff_dense=18432,
               n_dense_layers=1, q_lora_rank=1536, kv_lora_rank=512, qk_rope_dim=64,
               qk_nope_dim=128, v_head_dim=128, published_params=1.04e12,
               published_active=32e9,
               notes="Kimi K2 config.json (DeepSeek-V3 architecture, 384 experts, 64 heads)"),
):
    _PRESETS[_m.name] = _m

# DeepSeek-V3 trained with its multi-token-prediction module (one depth: DeepSeek-V3 technical
# report, section 2.2 -- shared embedding and output head, two RMSNorms, a 2d -> d projection
# and one transformer block, here an MLA + MoE layer like the main model's MoE layers).
_PRESETS["deepseek-v3-mtp"] = replace(
    _PRESETS["deepseek-v3"], name="deepseek-v3-mtp", mtp_depth=1, published_params=671e9,
    notes="DeepSeek-V3 with its MTP module (depth 1, report section 2.2): 671 B main model + "
    "14 B MTP module = 685 B (HF checkpoint)", source="DeepSeek-V3 technical report "
    "(arXiv 2412.19437) section 2.2; huggingface.co/deepseek-ai/DeepSeek-V3 config.json "
    "(num_nextn_predict_layers = 1)")

# Hybrid Mamba-Transformer MoE models (Nemotron 3 family). relu2 (squared-ReLU) FFNs have two
# matrices (the "gelu" kind); the attention blocks have no position embedding (Megatron's
# MambaModel builds none: position_embedding_type "none").
_NANO_PATTERN = "MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME"
_NANO = dict(
    n_layers=52, d_model=2688, n_heads=32, n_kv_heads=2, head_dim=128, d_ff=1856,
    vocab=131072, ffn="gelu", rope=False, n_experts=128, top_k=6, n_shared_experts=1,
    d_ff_shared=3712, hybrid_pattern=_NANO_PATTERN, mamba_heads=64, mamba_head_dim=64,
    mamba_state=128, mamba_groups=8, mamba_conv=4, ssd_chunk=128,
)
for _m in (
    ModelShape(
        "nemotron3-nano-30b-a3b", **_NANO,  # type: ignore[arg-type]
        published_params=31.6e9, published_active=3.2e9,
        source=("huggingface.co/nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16 config.json; "
                "NVIDIA-NeMo/Megatron-Bridge src/megatron/bridge/models/nemotronh/"
                "nemotron_h_provider.py (Nemotron3NanoProvider)"),
        notes=("23 Mamba-2 + 23 MoE + 6 attention blocks (hybrid_override_pattern); 128 "
               "experts top-6 (FFN 1856, relu2) + 1 shared expert (3712); GQA 32/2 heads of "
               "128; Mamba-2 64 heads x 64, 8 groups, state 128, conv 4, chunk 128; 31.6 B / "
               "3.2 B active (Nemotron 3 Nano report, arXiv 2512.20848)"),
    ),
    ModelShape(
        "nemotron3.5-lightning-30b-a3b", **_NANO,  # type: ignore[arg-type]
        mtp_depth=2, mtp_shared_weights=True, mtp_bf16=True, published_params=31.6e9,
        source=("NVIDIA-NeMo/Megatron-Bridge src/megatron/bridge/recipes/nemotronh/"
                "nemotron_3_5_lightning.py (Nano architecture via "
                "nemotron_3_nano_pretrain_config; mtp_num_layers=2, "
                "mtp_hybrid_override_pattern '*E', mtp_use_repeated_layer=True); "
                "hf nvidia/NVIDIA-Nemotron-3.5-Lightning-30B-A3B-BF16"),
        notes=("Nemotron 3 Nano's shape plus multi-token prediction: two depths of one "
               "attention + one MoE block sharing their weights (the public pretraining "
               "recipe)"),
    ),
    ModelShape(
        "nemotron3-super-120b-a12b", n_layers=88, d_model=4096, n_heads=32, n_kv_heads=2,
        head_dim=128, d_ff=2688, vocab=131072, ffn="gelu", rope=False, n_experts=512,
        top_k=22, n_shared_experts=1, d_ff_shared=5376, moe_latent=1024,
        hybrid_pattern=("MEMEMEM*EMEMEMEM*EMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*"
                        "EMEMEMEMEM*EMEMEMEM*EMEMEMEME"),
        mamba_heads=128, mamba_head_dim=64, mamba_state=128, mamba_groups=8, mamba_conv=4,
        ssd_chunk=128, mtp_depth=2, mtp_bf16=True, published_params=120e9,
        published_active=12e9,
        source=("NVIDIA-NeMo/Megatron-Bridge src/megatron/bridge/models/nemotronh/"
                "nemotron_h_provider.py (Nemotron3SuperProvider: pattern, widths, "
                "mtp_num_layers=2, mtp pattern '*E'); huggingface.co/nvidia/"
                "NVIDIA-Nemotron-3-Super-120B-A12B-Base-BF16 config.json; MTP kept BF16: "
                "recipes/nemotronh/nemotron_3_super.py keep_mtp_spec_in_bf16=True"),
        notes=("40 Mamba-2 + 40 LatentMoE + 8 attention blocks; 512 experts top-22 working in "
               "a 1024-wide latent (FFN 2688, relu2) + 1 shared expert (5376) at d = 4096; "
               "Mamba-2 128 heads x 64, 8 groups, state 128; 2 MTP depths (attention + MoE) "
               "as in Megatron-Bridge's provider (the HF checkpoint ships 1)"),
    ),
    ModelShape(
        "nemotron3-ultra-550b-a55b", n_layers=108, d_model=8192, n_heads=64, n_kv_heads=2,
        head_dim=128, d_ff=5120, vocab=131072, ffn="gelu", rope=False, n_experts=512,
        top_k=22, n_shared_experts=1, d_ff_shared=10240, moe_latent=2048,
        hybrid_pattern="MEMEMEM*E" * 12,
        mamba_heads=256, mamba_head_dim=64, mamba_state=128, mamba_groups=8, mamba_conv=4,
        ssd_chunk=128, mtp_depth=2, mtp_shared_weights=True, mtp_bf16=True,
        published_params=550e9,
        published_active=55e9,
        source=("huggingface.co/nvidia/NVIDIA-Nemotron-3-Ultra-550B-A55B-BF16 config.json, "
                "as transcribed in public deployment notes (108 layers = 48 Mamba + 48 MoE + "
                "12 attention, hidden 8192, 64/2 heads, Mamba 256 x 64, 8 groups, state 128, "
                "512 experts top-22, latent 2048, expert FFN 5120, shared 10240); MTP from "
                "NVIDIA-NeMo/Megatron-Bridge recipes/nemotronh/h100/nemotron_3_ultra.py "
                "(mtp_num_layers=2, mtp_use_repeated_layer=True); MTP kept BF16: the "
                "Nemotron-H bridge sets keep_mtp_spec_in_bf16 for checkpoints with MTP "
                "(models/nemotronh/nemotron_h_bridge.py)"),
        notes=("block counts and widths from the config; the exact block order was not in the "
               "sources found, the pattern here repeats 'MEMEMEM*E' with the published counts "
               "-- the model uses the counts only (pipeline stages get the average mix), so the "
               "order does not change an estimate. Confidence: secondary transcription of the "
               "config"),
    ),
):
    _PRESETS[_m.name] = _m

# MPT shapes (llm-foundry yamls): ALiBi (no position table), tied embeddings, GELU FFN 4d.
for _name, _l, _d, _h in (
    ("mpt-125m", 12, 768, 12), ("mpt-350m", 24, 1024, 16), ("mpt-760m", 24, 1536, 12),
    ("mpt-1b", 24, 2048, 16), ("mpt-3b", 32, 2560, 20), ("mpt-7b", 32, 4096, 32),
    ("mpt-13b", 40, 5120, 40), ("mpt-30b", 48, 7168, 56), ("mpt-70b", 80, 8192, 64),
):
    _PRESETS[_name] = ModelShape(
        _name, n_layers=_l, d_model=_d, n_heads=_h, d_ff=4 * _d, vocab=50368, ffn="gelu",
        tied_embeddings=True, rope=False, notes="MosaicML MPT (llm-foundry pretrain yaml shape)",
    )

_ALIASES = {
    "gpt3": "gpt3-175b", "gpt-3": "gpt3-175b", "llama-2-7b": "llama2-7b",
    "llama-2-13b": "llama2-13b", "llama-2-70b": "llama2-70b", "llama-3-8b": "llama3-8b",
    "llama-3-70b": "llama3-70b", "llama-3-405b": "llama3-405b", "llama3.1-405b": "llama3-405b",
    "deepseekv3": "deepseek-v3", "dsv3": "deepseek-v3", "llama3.1-405b-": "llama3-405b",
    "llama-3.1-405b": "llama3-405b", "qwen3-30b": "qwen3-30b-a3b",
    "qwen3-235b": "qwen3-235b-a22b", "gpt-oss": "gpt-oss-120b", "kimi-k2-base": "kimi-k2",
    "nemotron-4-340b": "nemotron-340b",
    "nemotron-3-nano": "nemotron3-nano-30b-a3b", "nemotron3-nano": "nemotron3-nano-30b-a3b",
    "nemotron-3-super": "nemotron3-super-120b-a12b",
    "nemotron3-super": "nemotron3-super-120b-a12b",
    "nemotron-3-ultra": "nemotron3-ultra-550b-a55b",
    "nemotron3-ultra": "nemotron3-ultra-550b-a55b",
    "nemotron-3.5-lightning": "nemotron3.5-lightning-30b-a3b",
    "nemotron3.5-lightning": "nemotron3.5-lightning-30b-a3b",
    "deepseek-v3-mtp": "deepseek-v3-mtp",
}

DEFAULT_TRAIN_MODEL = "llama3-8b"  # used by job_rate when a training Workload has no model
DEFAULT_INFER_MODEL = "llama3-8b"


def preset_names() -> list[str]:
    return list(_PRESETS)


def _key(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def get_model(name: str) -> ModelShape:
    """A preset by name (case/underscore-insensitive, a few aliases)."""
    key = _key(name)
    key = _ALIASES.get(key, key)
    if key in _PRESETS:
        return _PRESETS[key]
    raise SuanliError(
        f"unknown model '{name}' (presets: {', '.join(_PRESETS)}; or give a YAML file / "
        "--layers --d-model --heads --ffn-hidden --vocab)"
    )


_FIELDS = {f for f in ModelShape.__dataclass_fields__ if f not in ("extra",)}


def model_from_dict(data: Any, *, file: str | Path | None = None) -> ModelShape:
    """A custom shape from a mapping; keys are ModelShape fields (``base:`` = start from preset)."""
    if not isinstance(data, dict):
        raise SuanliError("expected a mapping of model fields", file=file)
    data = dict(data)
    base = data.pop("base", None)
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise SuanliError(f"unknown field(s): {', '.join(unknown)}", file=file)
    try:
        if base is not None:
            base_name = get_model(str(base)).name
            if "name" not in data:
                data["name"] = Path(str(file)).stem if file else f"{base_name}-custom"
            for k in ("published_params", "published_active"):
                data.setdefault(k, None)  # the publisher's count no longer describes this shape
            return replace(get_model(str(base)), **data)
        data.setdefault("name", Path(str(file)).stem if file else "custom")
        return ModelShape(**data)
    except TypeError as exc:
        msg = str(exc).split(") ", 1)[-1] if ") " in str(exc) else str(exc)
        raise SuanliError(f"bad model definition: {msg}", file=file) from None


def load_model_file(path: str | Path) -> ModelShape:
    """Read a custom shape from YAML."""
    import yaml

    p = Path(path)
    if not p.exists():
        raise SuanliError("file not found", file=p)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise SuanliError(f"cannot read model YAML: {str(exc).splitlines()[0]}", file=p) from None
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    return model_from_dict(data, file=p)


def resolve_model(spec: str | ModelShape) -> ModelShape:
    """A ModelShape from a preset name, a YAML path, or an existing shape."""
    if isinstance(spec, ModelShape):
        return spec
    if spec.endswith((".yaml", ".yml")) or Path(spec).is_file():
        return load_model_file(spec)
    return get_model(spec)
