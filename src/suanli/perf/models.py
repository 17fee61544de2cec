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
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from suanli.errors import SuanliError

FfnKind = Literal["gelu", "swiglu"]


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

    # -- shape helpers ------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

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
        """Parameters of one FFN (one expert for MoE layers)."""
        return self.ffn_mats * self.d_model * self.d_ff

    @property
    def n_moe_layers(self) -> int:
        return self.n_layers - self.n_dense_layers if self.is_moe else 0

    @property
    def dense_ffn_params(self) -> int:
        """FFN parameters of a dense layer (dense model, or the first layers of an MoE)."""
        width = self.d_ff_dense if (self.is_moe and self.d_ff_dense) else self.d_ff
        return self.ffn_mats * self.d_model * width

    @property
    def ffn_params_total(self) -> int:
        """All FFN parameters of all layers."""
        if not self.is_moe:
            return self.n_layers * self.dense_ffn_params
        per_moe = (self.n_experts + self.n_shared_experts) * self.expert_params
        per_moe += self.d_model * self.n_experts  # router
        return self.n_dense_layers * self.dense_ffn_params + self.n_moe_layers * per_moe

    @property
    def ffn_params_active(self) -> int:
        """FFN parameters one token passes through (all layers)."""
        if not self.is_moe:
            return self.ffn_params_total
        per_moe = (self.top_k + self.n_shared_experts) * self.expert_params
        per_moe += self.d_model * self.n_experts
        return self.n_dense_layers * self.dense_ffn_params + self.n_moe_layers * per_moe

    @property
    def expert_params_total(self) -> int:
        """Routed-expert parameters (the part expert parallelism splits)."""
        if not self.is_moe:
            return 0
        return self.n_moe_layers * self.n_experts * self.expert_params

    @property
    def embed_params(self) -> int:
        emb = self.vocab * self.d_model * (1 if self.tied_embeddings else 2)
        return emb + self.learned_pos * self.d_model

    @property
    def norm_params(self) -> int:
        return (2 * self.n_layers + 1) * self.d_model

    @property
    def n_params(self) -> int:
        """Total parameters."""
        return (
            self.n_layers * self.attn_params
            + self.ffn_params_total
            + self.embed_params
            + self.norm_params
        )

    @property
    def n_active(self) -> int:
        """Parameters used per token (= n_params for a dense model)."""
        return (
            self.n_layers * self.attn_params
            + self.ffn_params_active
            + self.embed_params
            + self.norm_params
        )

    @property
    def matmul_params_active(self) -> int:
        """Parameters that take part in a matmul per token: layers + LM head (not lookups)."""
        return self.n_layers * self.attn_params + self.ffn_params_active + self.vocab * self.d_model

    # -- FLOPs (forward, per token) -----------------------------------------------------
    def attn_flops_fwd(self, context: float) -> float:
        """Forward FLOPs of the score and value products for one token over ``context`` keys
        (sliding-window layers see at most ``sliding_window`` of them)."""
        per_key = 2.0 * self.n_heads * (self.qk_dim + self.v_dim)
        return per_key * self.attn_keys(context)

    def attn_keys(self, context: float) -> float:
        """Keys attended per token summed over the layers, for ``context`` keys per layer."""
        nw = self.n_window_layers if self.sliding_window else 0
        win = min(context, float(self.sliding_window)) if nw else 0.0
        return (self.n_layers - nw) * context + nw * win

    def model_flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token used for MFU: 6 N_matmul + 6 L h (d_qk + d_v) s.

        The attention term counts the full (non-causal) s x s product, the convention of
        PaLM and of MosaicML's MFU (``12 L d s`` for multi-head attention).
        """
        return 6.0 * self.matmul_params_active + 3.0 * self.attn_flops_fwd(seq_len)

    # -- inference memory ---------------------------------------------------------------
    def kv_elems_per_token(self) -> int:
        """K and V cache elements per token (all layers). MLA caches the compressed latent."""
        if self.is_mla:
            return self.n_layers * (self.kv_lora_rank + self.qk_rope_dim)
        return 2 * self.n_layers * self.kv_heads * self.hd

    def describe(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "extra" and v not in (0, None, "")}
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
               published_params=117e9, published_active=5.1e9,
               notes="gpt-oss-120b config.json (128 experts top-4; layer_types alternate "
               "sliding_attention (window 128) and full_attention; learned attention sinks; "
               "clamped SwiGLU counted as SwiGLU)"),
    ModelShape("kimi-k2", n_layers=61, d_model=7168, n_heads=64, d_ff=2048, vocab=163840,
               n_experts=384, top_k=8, n_shared_experts=1, d_ff_dense=18432,
               n_dense_layers=1, q_lora_rank=1536, kv_lora_rank=512, qk_rope_dim=64,
               qk_nope_dim=128, v_head_dim=128, published_params=1.04e12,
               published_active=32e9,
               notes="Kimi K2 config.json (DeepSeek-V3 architecture, 384 experts, 64 heads)"),
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
