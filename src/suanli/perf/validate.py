"""Validation: predict published training measurements from their inputs and report the error.

Every ``*.csv`` in the data directory is read. Two row formats are understood:

* the MPT / llm-foundry format (``d_model``, ``n_heads``, ... columns: the shape is in the row);
* the NeMo / Megatron-Bridge format (``system``, ``tp``, ``pp``, ``cp``, ``vp``, ``ep``, ``fsdp``
  columns; the model is named and its shape comes from the presets in ``perf/models.py``).

Each row's own layout is evaluated (no search); nothing is fitted per row. Rows the model cannot
express (a hybrid Mamba model, an unpublished shape, a precision the chip has no catalogued peak
for) are kept in the report with the reason, never dropped and never an exception.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from suanli.catalog.schema import Chip
from suanli.errors import CannotRun, SuanliError
from suanli.perf.hardware import DEFAULT_INTER_NODE_GBPS, build_hardware
from suanli.perf.models import ModelShape, get_model
from suanli.perf.train import TrainSpec, evaluate, recompute_code, zero_code

MPT_REQUIRED = (
    "model", "d_model", "n_heads", "n_layers", "seq_len", "chip", "n_devices",
    "measured_tokens_per_s_per_device",
)
NEMO_REQUIRED = (
    "model", "system", "precision", "n_devices", "global_batch_seqs", "micro_batch", "seq_len",
    "tp", "pp", "measured_tokens_per_s_per_device",
)
REQUIRED = MPT_REQUIRED  # backwards-compatible name


@dataclass(frozen=True, slots=True)
class Case:
    """One validation row, decoded into the model's inputs."""

    model: ModelShape
    chip: str
    precision: str  # GEMM precision (catalogue key): bf16, fp8
    recipe: str  # how the row names its precision (BF16, FP8-CS, MXFP8, ...)
    framework: str  # fsdp (PyTorch FSDP / Composer) | megatron (Megatron-Core / NeMo)
    seq_len: int
    global_batch: int
    n_devices: int
    tp: int = 1
    pp: int = 1
    cp: int = 1
    ep: int = 1
    vp: int = 1
    mb: int = 1
    ga: int = 1
    recompute: int = 0
    zero: int = 3
    devices_per_node: int = 8
    inter_node_gbps: float = DEFAULT_INTER_NODE_GBPS
    attention_kernel: str = "flash2"
    fp8_recipe: str = "fp8-delayed"
    ep_dispatch: str = "alltoall"
    # selective recompute submodules the row's recipe sets (train.RECOMPUTE_MODULES); None =
    # not expressed as modules (MPT rows: `recompute` says none / full; NeMo rows whose recipe
    # setting was not found: left unset, i.e. no recompute)
    recompute_modules: tuple[str, ...] | None = None
    recompute_note: str = ""  # what the row's recompute is and where it comes from
    recompute_layers: int | None = None  # full recompute of this many layers per chunk
    ep_a2a_overlap: bool = False  # the recipe's `moe_a2a_overlap` (see NEMO_A2A_OVERLAP)
    fp8_attention: bool = False  # the recipe's `fp8_dot_product_attention` (NEMO_FP8_ATTENTION)
    attention_dropout: float = 0.0  # the recipe's dropout (see NEMO_DROPOUT)
    hidden_dropout: float = 0.0

    @property
    def dp(self) -> int:
        return self.n_devices // (self.tp * self.pp * self.cp)


@dataclass(frozen=True, slots=True)
class RowResult:
    file: str
    line: int
    label: str
    chip: str
    n_devices: int
    predicted: float | None
    measured: float
    error_pct: float | None  # (predicted - measured) / measured * 100
    predicted_mfu: float | None
    measured_mfu: float | None
    fits: bool | None
    problem: str | None = None
    model: str = ""
    precision: str = ""
    framework: str = ""
    chip_id: str = ""
    gemm_precision: str = ""
    architecture: str = ""  # dense / MoE (empty when the model is not expressible)
    recompute: str = ""  # the row's activation recomputation and its source (see Case)
    stack: str = ""  # software stack: current / superseded / single (see stack_of)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _stats(signed: Iterable[float]) -> dict[str, Any]:
    s = np.asarray(list(signed), dtype=float)
    e = np.abs(s)
    if not s.size:
        return {"predicted": 0, "median_abs_error_pct": None, "p90_abs_error_pct": None,
                "mean_abs_error_pct": None, "worst_abs_error_pct": None,
                "mean_signed_error_pct": None, "within_15_pct": 0}
    return {
        "predicted": int(s.size),
        "median_abs_error_pct": float(np.median(e)),
        "p90_abs_error_pct": float(np.percentile(e, 90)),
        "mean_abs_error_pct": float(np.mean(e)),
        "worst_abs_error_pct": float(np.max(e)),
        "mean_signed_error_pct": float(np.mean(s)),
        "within_15_pct": int(np.sum(e <= 15.0)),
    }


GROUP_KEYS = ("file", "chip", "precision", "framework", "architecture", "stack")


@dataclass(frozen=True, slots=True)
class ValidationReport:
    rows: list[RowResult]
    files: list[str] = field(default_factory=list)

    @property
    def errors(self) -> np.ndarray:
        return np.asarray([abs(r.error_pct) for r in self.rows if r.error_pct is not None])

    def summary(self) -> dict[str, Any]:
        st = _stats(r.error_pct for r in self.rows if r.error_pct is not None)
        return {"rows": len(self.rows), "skipped": len(self.rows) - st["predicted"], **st}

    def groups(self, *, headline: bool = False) -> dict[str, dict[str, dict[str, Any]]]:
        """Statistics per file, chip, precision, framework, architecture and software stack
        (rows counted incl. skipped). ``headline=True`` leaves superseded rows out of every
        group but ``stack`` (see :meth:`headline`)."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for key in GROUP_KEYS:
            vals: dict[str, list[RowResult]] = {}
            for r in self.rows:
                if headline and key != "stack" and r.stack == "superseded":
                    continue
                vals.setdefault(str(getattr(r, key)), []).append(r)
            out[key] = {
                v: {"rows": len(rs),
                    **_stats(r.error_pct for r in rs if r.error_pct is not None)}
                for v, rs in sorted(vals.items())
            }
        return out

    def headline(self) -> dict[str, dict[str, Any]]:
        """Per file (and ``all``): the statistics the targets are judged on -- every predicted
        row except ``superseded`` ones -- plus those of the superseded rows and of all rows.

        Superseded rows are measurements of a (model, system, precision) that the same file
        also reports from a newer container: the software stack, not the hardware, changed
        between them (identical layouts moved by up to 1.5x across releases, e.g.
        Qwen3-30B-A3B MXFP8 on 8 GB200: 26,112 tokens/s on 26.04.01, 39,936 on 26.08), so a
        hardware model is held to the newest stack. They stay in every group table."""
        out: dict[str, dict[str, Any]] = {}
        by_file: dict[str, list[RowResult]] = {}
        for r in self.rows:
            by_file.setdefault(r.file, []).append(r)
        by_file["all"] = list(self.rows)
        for name, rs in by_file.items():
            pred = [(r.error_pct, r.stack) for r in rs if r.error_pct is not None]
            head = [e for e, st in pred if st != "superseded"]
            sup = [e for e, st in pred if st == "superseded"]
            out[name] = {"rows": len(rs), "skipped": len(rs) - len(pred),
                         "superseded": len(sup), "headline": _stats(head),
                         "superseded_rows": _stats(sup),
                         "all_predicted": _stats(e for e, _st in pred)}
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(), "headline": self.headline(), "groups": self.groups(),
                "headline_groups": self.groups(headline=True), "files": self.files,
                "rows": [r.as_dict() for r in self.rows]}


# -------------------------------------------------------------------------------------------
# reading
# -------------------------------------------------------------------------------------------
def _num(row: dict[str, str], key: str, default: float | None = None) -> float:
    raw = (row.get(key) or "").strip()
    if not raw:
        if default is not None:
            return default
        raise ValueError(f"missing {key}")
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{key}: not a number: {raw[:40]!r}") from None


def _int(row: dict[str, str], key: str, default: int | None = None) -> int:
    v = _num(row, key, None if default is None else float(default))
    if v != int(v) or v < 0:
        raise ValueError(f"{key}: expected a whole number >= 0, got {v:g}")
    return int(v)


def _gbps(text: str | None) -> float:
    """'1600 Gbps RoCE per node' -> 1600.0 (Gbit/s per node)."""
    if not text:
        return DEFAULT_INTER_NODE_GBPS
    m = re.search(r"([0-9]+(?:\.[0-9]+)?)\s*(G|T)bps", text, re.IGNORECASE)
    if not m:
        return DEFAULT_INTER_NODE_GBPS
    val = float(m.group(1))
    return val * 1000 if m.group(2).upper() == "T" else val


def read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(columns, [(line, row)]) of one CSV; unreadable / binary files raise one SuanliError."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SuanliError(f"cannot read: {exc.strerror or exc}", file=path) from None
    if b"\x00" in raw[:65536]:
        raise SuanliError("not a CSV text file (binary content: NUL bytes)", file=path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SuanliError(
            f"not a UTF-8 CSV text file (undecodable byte at offset {exc.start})", file=path
        ) from None
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        cols = [c.strip() for c in (reader.fieldnames or [])]
        reader.fieldnames = cols
        rows = []
        for row in reader:
            rows.append((reader.line_num, {k: (v or "") for k, v in row.items()
                                           if isinstance(k, str) and isinstance(v, str)}))
    except csv.Error as exc:
        raise SuanliError(f"malformed CSV: {exc}", file=path) from None
    return cols, rows


# -------------------------------------------------------------------------------------------
# MPT / llm-foundry rows
# -------------------------------------------------------------------------------------------
def row_model(row: dict[str, str]) -> ModelShape:
    d = int(_num(row, "d_model"))
    ffn_mult = _num(row, "ffn_mult", 4.0)
    return ModelShape(
        name=row.get("model") or "row",
        n_layers=int(_num(row, "n_layers")),
        d_model=d,
        n_heads=int(_num(row, "n_heads")),
        d_ff=round(ffn_mult * d),
        vocab=int(_num(row, "vocab", 50368)),
        ffn="gelu",
        tied_embeddings=True,
        rope=False,  # MPT uses ALiBi
    )


def attention_kernel_of(row: dict[str, str]) -> str:
    """The attention kernel class a row ran: an explicit ``attention_kernel`` column, else
    FA1/Triton-class when the row's notes name Triton or ALiBi (FlashAttention-2 has no
    ALiBi-bias path in those runs), else flash2."""
    explicit = (row.get("attention_kernel") or "").strip().lower()
    if explicit:
        return explicit
    notes = " ".join(row.get(k) or "" for k in ("notes", "source")).lower()
    return "flash1" if ("triton" in notes or "alibi" in notes) else "flash2"


def mpt_case(row: dict[str, str]) -> Case:
    model = row_model(row)
    n = _int(row, "n_devices")
    tp = _int(row, "tp", 1) or 1
    pp = _int(row, "pp", 1) or 1
    if n < 1 or n % (tp * pp):
        raise ValueError(f"n_devices {n} not divisible by tp*pp {tp * pp}")
    dp = n // (tp * pp)
    mb = _int(row, "micro_batch", 1) or 1
    ga = _int(row, "grad_accum", 1) or 1
    ckpt = (row.get("activation_checkpointing") or "false").strip().lower()
    sharding = (row.get("sharding") or "FULL_SHARD").strip() or "FULL_SHARD"
    prec = (row.get("precision") or "bf16").strip().lower()
    return Case(
        model=model, chip=(row.get("chip") or "").strip(), precision=prec, recipe=prec.upper(),
        framework="fsdp", seq_len=_int(row, "seq_len"),
        global_batch=_int(row, "global_batch_seqs", mb * ga * dp), n_devices=n, tp=tp, pp=pp,
        mb=mb, ga=ga,
        recompute=recompute_code("full" if ckpt in ("true", "1", "yes", "full") else "none"),
        recompute_note=("full (activation_checkpointing column)"
                        if ckpt in ("true", "1", "yes", "full")
                        else "none (activation_checkpointing column)"),
        zero=zero_code(sharding), devices_per_node=_int(row, "devices_per_node", 8) or 8,
        inter_node_gbps=_gbps(row.get("inter_node_link")),
        attention_kernel=attention_kernel_of(row),
    )


def mpt_label(row: dict[str, str]) -> str:
    return (f"{row.get('model')} s={row.get('seq_len')} n={row.get('n_devices')} "
            f"mb={row.get('micro_batch')}x{row.get('grad_accum')} "
            f"ckpt={row.get('activation_checkpointing')}")


# -------------------------------------------------------------------------------------------
# NeMo / Megatron-Bridge rows
# -------------------------------------------------------------------------------------------
# system -> (chip name, devices in one NVLink domain, scale-out Gbit/s per NVLink domain)
# DGX H100 / B200: 8 GPUs, 8 x 400G ConnectX-7; DGX B300: 8 x 800G ConnectX-8;
# GB200 NVL72: 72 GPUs per NVLink domain, one 400G NIC per GPU; GB300 NVL72: 800G per GPU.
SYSTEMS: dict[str, tuple[str, int, float]] = {
    "dgxh100": ("H100 SXM5 80GB", 8, 8 * 400.0),
    "dgxb200": ("B200", 8, 8 * 400.0),
    "dgxb300": ("B300", 8, 8 * 800.0),
    "dgxgb200": ("GB200", 72, 72 * 400.0),
    "dgxgb300": ("GB300", 72, 72 * 800.0),
}
# The rack systems run their GPUs at a higher power limit than the 8-GPU HGX boards and NVIDIA
# publishes their own per-rack figures (GB200 / GB300 NVL72 datasheets: 2500 BF16, 5000 FP8
# dense per GPU vs 2250 / 4500 on HGX B200 / B300). Rows of these systems use the system's
# datasheet entry (perf/data/systems.yaml, or a catalogue entry with that id) rather than the
# HGX part the catalogue's "GB300" alias names.
SYSTEM_CHIPS: dict[str, str] = {"dgxgb200": "nvidia_gb200_b200", "dgxgb300": "nvidia_gb300_b300"}
SYSTEM_PREFIX = "system:"

# MoE token dispatcher of each NeMo / Megatron-Bridge performance recipe: a recorded input per
# (model, system, precision), read from the public recipe files, never chosen from the rows.
# Where a workload config sets `moe_flex_dispatcher_backend` ("hybridep" or "deepep"), Megatron
# runs the flex dispatcher, which sends a token once per remote node (`ep_dispatch="deepep"` in
# the model); elsewhere the recipe keeps `moe_token_dispatcher_type="alltoall"`. Sources
# (NVIDIA-NeMo/Megatron-Bridge, scripts/performance/configs/): deepseek/
# deepseek_workload_base_configs.py (hybridep on every system; B200 MXFP8 V2: deepep),
# qwen/qwen3_workload_base_configs.py (Qwen3-30B-A3B: hybridep on every system; Qwen3-235B-A22B:
# hybridep on GB200 / GB300, alltoall on B200 / B300 / H100), gpt_oss/
# gpt_oss_workload_base_configs.py (GPT-OSS-120B V2: hybridep on B300 and for MXFP8 on GB200 /
# GB300; alltoall otherwise), kimi/kimi_workload_base_configs.py (hybridep on GB200 / GB300).
# The files are the current versions; rows of older containers may have run another dispatcher.
_FLEX = "deepep"
NEMO_DISPATCH: dict[str, dict[str, tuple[str, ...]]] = {
    # model -> system -> precision groups (BF16, FP8, MXFP8, NVFP4; "*" = all) with the flex
    # dispatcher
    "deepseek-v3": {"*": ("*",)},
    "qwen3-30b-a3b": {"*": ("*",)},
    "qwen3-235b-a22b": {"dgxgb200": ("*",), "dgxgb300": ("*",)},
    "gpt-oss-120b": {"dgxb300": ("*",), "dgxgb200": ("MXFP8",), "dgxgb300": ("MXFP8",)},
    "kimi-k2": {"dgxgb200": ("*",), "dgxgb300": ("*",)},
    # same DeepSeek workload configs, MTP variant
    "deepseek-v3-mtp": {"*": ("*",)},
    # nemotronh/nemotron_3_workload_base_configs.py: Nano "hybridep" on every system; Super
    # "hybridep" on GB300 / GB200 / B200, "deepep" on B300. Megatron-Bridge recipes
    # nemotron_3_5_lightning.py and h100/nemotron_3_ultra.py: flex dispatcher, "hybridep".
    "nemotron3-nano-30b-a3b": {"*": ("*",)},
    "nemotron3-super-120b-a12b": {"*": ("*",)},
    "nemotron3.5-lightning-30b-a3b": {"*": ("*",)},
    "nemotron3-ultra-550b-a55b": {"*": ("*",)},
}


def nemo_dispatch(model: str, system: str, precision_group: str) -> str:
    """The MoE dispatcher NeMo's recipe uses for this model, system and precision group."""
    per_sys = NEMO_DISPATCH.get(model, {})
    groups = per_sys.get(system, per_sys.get("*", ()))
    return _FLEX if ("*" in groups or precision_group in groups) else "alltoall"

# Activation recomputation of each NeMo / Megatron-Bridge performance recipe, read from the
# public files (NVIDIA-NeMo/Megatron-Bridge), never chosen from the rows. The performance harness
# (scripts/performance/utils/overrides.py, `_set_recompute_overrides`) turns a workload config's
# `recompute_modules` into `recompute_granularity="selective"` with those modules (an empty list:
# selective with nothing recomputed) and `recompute_num_layers` into full / block recompute;
# a workload config that sets neither keeps the model recipe's own setting. An entry is recorded
# only where the config read has the row's layout (tp / pp / vp / cp / ep / micro-batch); every
# other NeMo row is left unset (no recompute, as before) and is listed in docs/perf-model.md.
RECOMPUTE_SOURCES: dict[str, str] = {
    "deepseek": "scripts/performance/configs/deepseek/deepseek_workload_base_configs.py"
                "@0426418230",
    "gpt_oss": "scripts/performance/configs/gpt_oss/gpt_oss_workload_base_configs.py@07eea52d45",
    "gpt_oss_recipe": "scripts/performance/configs/gpt_oss/gpt_oss_workload_base_configs.py"
                      "@07eea52d45 (no recompute_modules) + src/megatron/bridge/recipes/gpt_oss/"
                      "gpt_oss.py@07b4a5837b (no recompute set)",
    "nemotron3": "scripts/performance/configs/nemotronh/nemotron_3_workload_base_configs.py"
                 "@f601ba9714",
    "nano_recipe": "scripts/performance/configs/nemotronh/nemotron_3_workload_base_configs.py"
                   "@f601ba9714 (no recompute_modules) + src/megatron/bridge/recipes/nemotronh/"
                   "nemotron_3_nano.py@04d6386322 (recompute_granularity None)",
    "super_recipe": "scripts/performance/configs/nemotronh/nemotron_3_workload_base_configs.py"
                    "@f601ba9714 (no recompute_modules) + src/megatron/bridge/recipes/nemotronh/"
                    "nemotron_3_super.py@1c92643355 (no recompute set)",
    "lightning": "src/megatron/bridge/recipes/nemotronh/nemotron_3_5_lightning.py@9112eeb99d "
                 "(nemotron_3_5_lightning_pretrain_8k_config, GB200 8K: recompute None)",
    "llama3": "scripts/performance/configs/llama/llama3_workload_base_configs.py@00919dcf1f "
              "(LLAMA3_8B_PRETRAIN_CONFIG_H100_FP8_CS_V1: recompute_num_layers=5 -> full, block)",
    "llama3_none": "scripts/performance/configs/llama/llama3_workload_base_configs.py@00919dcf1f "
                   "(no recompute) + scripts/performance/configs/llama/llama3_llm_pretrain.py"
                   "@2a0d46e2c5 + src/megatron/bridge/recipes/llama/llama3.py@0d5f5558c1 "
                   "(recompute_granularity None)",
    "llama31_none": "scripts/performance/configs/llama/llama31_workload_base_configs.py"
                    "@0013c9a8ed (*_V2: no recompute) + scripts/performance/configs/llama/"
                    "llama31_llm_pretrain.py@0013c9a8ed + src/megatron/bridge/recipes/llama/"
                    "llama3.py@0d5f5558c1 (llama31_405b_pretrain_config: None)",
    "qwen3": "scripts/performance/configs/qwen/qwen3_workload_base_configs.py@01b2977e51 "
             "(no recompute_modules) + scripts/performance/configs/qwen/qwen3_llm_pretrain.py"
             "@05c0c90fbb (set_qwen3_common_configs: recompute_granularity None)",
}
# (preset, system, precision group) -> (recompute modules, source key, the config's layout
# (tp, pp, cp, vp, ep, micro-batch)); a row with another layout ran another config version
Layout = tuple[int, int, int, int, int, int]
NEMO_RECOMPUTE: dict[tuple[str, str, str], tuple[tuple[str, ...], str, Layout]] = {
    # DeepSeek-V3 *_V2 configs
    ("deepseek-v3", "dgxgb300", "MXFP8"): ((), "deepseek", (1, 2, 1, 8, 32, 1)),
    ("deepseek-v3", "dgxgb200", "MXFP8"): (("mla_up_proj",), "deepseek", (1, 4, 1, 4, 64, 1)),
    ("deepseek-v3", "dgxb200", "MXFP8"): (("mla_up_proj", "mlp"), "deepseek",
                                          (1, 8, 1, 2, 32, 1)),
    ("deepseek-v3", "dgxgb200", "BF16"): (("mla_up_proj",), "deepseek", (1, 4, 1, 4, 64, 1)),
    # GPT-OSS-120B *_V2 configs (FP8_MX: recompute_modules=[])
    ("gpt-oss-120b", "dgxgb300", "MXFP8"): ((), "gpt_oss", (1, 1, 1, 1, 16, 4)),
    ("gpt-oss-120b", "dgxgb200", "MXFP8"): ((), "gpt_oss", (1, 1, 1, 1, 64, 4)),
    ("gpt-oss-120b", "dgxb300", "MXFP8"): ((), "gpt_oss", (1, 1, 1, 1, 8, 4)),
    ("gpt-oss-120b", "dgxgb300", "BF16"): ((), "gpt_oss_recipe", (1, 1, 1, 1, 64, 4)),
    ("gpt-oss-120b", "dgxb300", "BF16"): ((), "gpt_oss_recipe", (1, 1, 1, 1, 8, 4)),
    ("gpt-oss-120b", "dgxgb200", "BF16"): (("layernorm", "moe_act"), "gpt_oss",
                                           (1, 1, 1, 1, 64, 4)),
    ("gpt-oss-120b", "dgxb200", "BF16"): (("layernorm", "moe_act"), "gpt_oss",
                                          (1, 1, 1, 1, 8, 4)),
    ("gpt-oss-120b", "dgxh100", "BF16"): (("layernorm", "moe_act"), "gpt_oss",
                                          (1, 4, 1, 1, 8, 1)),
    # Nemotron 3 Nano / Super *_V1 configs
    ("nemotron3-nano-30b-a3b", "dgxh100", "FP8"): (
        ("moe", "layernorm", "core_attn", "moe_act"), "nemotron3", (1, 1, 1, 1, 8, 1)),
    **{("nemotron3-nano-30b-a3b", sy, pg): ((), "nano_recipe", (1, 1, 1, 1, 8, mb))
       for sy, mb in (("dgxgb300", 4), ("dgxb300", 4), ("dgxgb200", 2), ("dgxb200", 2))
       for pg in ("BF16", "MXFP8", "NVFP4")},
    **{("nemotron3-super-120b-a12b", sy, pg): ((), "super_recipe", (tp, 1, 1, 1, 64, 1))
       for sy, tp in (("dgxgb300", 1), ("dgxgb200", 2)) for pg in ("BF16", "MXFP8", "NVFP4")},
    ("nemotron3-super-120b-a12b", "dgxb300", "MXFP8"): ((), "super_recipe", (1, 1, 1, 1, 8, 1)),
    ("nemotron3-super-120b-a12b", "dgxb300", "NVFP4"): (("moe_act", "layernorm"), "nemotron3",
                                                        (1, 1, 1, 1, 8, 1)),
    ("nemotron3-super-120b-a12b", "dgxb200", "MXFP8"): (("moe_act", "layernorm"), "nemotron3",
                                                        (1, 1, 1, 1, 64, 1)),
    ("nemotron3.5-lightning-30b-a3b", "dgxgb200", "MXFP8"): ((), "lightning",
                                                             (1, 1, 1, 1, 8, 2)),
    # Qwen3-235B-A22B *_V2 and Qwen3-30B-A3B *_V1 configs (the perf script turns recompute off)
    ("qwen3-235b-a22b", "dgxgb300", "MXFP8"): ((), "qwen3", (1, 4, 1, 12, 32, 2)),
    ("qwen3-235b-a22b", "dgxgb200", "MXFP8"): ((), "qwen3", (1, 8, 1, 3, 32, 1)),
    ("qwen3-235b-a22b", "dgxb200", "MXFP8"): ((), "qwen3", (1, 8, 1, 1, 8, 1)),
    ("qwen3-235b-a22b", "dgxh100", "FP8"): ((), "qwen3", (2, 8, 1, 4, 32, 1)),
    **{("qwen3-30b-a3b", sy, pg): ((), "qwen3", (1, 1, 1, 1, 8, mb))
       for sy, mb in (("dgxgb300", 8), ("dgxb300", 8), ("dgxgb200", 4), ("dgxb200", 4))
       for pg in ("BF16", "FP8", "MXFP8")},
    ("qwen3-30b-a3b", "dgxh100", "FP8"): ((), "qwen3", (1, 1, 1, 1, 16, 1)),
    # Llama 3 8B *_V1, 70B *_V2 and Llama 3.1 405B *_V1 / *_V2 configs (the FP8 70B FSDP
    # configs offload activations to the CPU instead -- not modelled)
    ("llama3-8b", "dgxgb200", "FP8"): ((), "llama3_none", (1, 1, 1, 1, 1, 2)),
    ("llama3-8b", "dgxb200", "FP8"): ((), "llama3_none", (1, 1, 1, 1, 1, 2)),
    ("llama3-70b", "dgxgb300", "FP8"): ((), "llama3_none", (1, 1, 1, 1, 1, 2)),
    ("llama3-70b", "dgxgb200", "FP8"): ((), "llama3_none", (1, 1, 1, 1, 1, 2)),
    **{("llama3-70b", "dgxgb300", pg): ((), "llama3_none", (1, 4, 1, 5, 1, 1))
       for pg in ("MXFP8", "NVFP4")},
    **{("llama3-70b", "dgxgb200", pg): ((), "llama3_none", (2, 4, 1, 5, 1, 1))
       for pg in ("MXFP8", "NVFP4")},
    ("llama3-70b", "dgxh100", "FP8"): ((), "llama3_none", (4, 8, 1, 5, 1, 1)),
    **{("llama3-405b", "dgxgb300", pg): ((), "llama31_none", lay) for pg, lay in (
        ("FP8", (4, 8, 1, 4, 1, 1)), ("MXFP8", (2, 8, 2, 4, 1, 1)), ("NVFP4", (4, 8, 1, 4, 1, 1)))},
    **{("llama3-405b", "dgxgb200", pg): ((), "llama31_none", lay) for pg, lay in (
        ("FP8", (4, 16, 1, 4, 1, 1)), ("MXFP8", (4, 16, 1, 8, 1, 1)),
        ("NVFP4", (4, 16, 1, 8, 1, 1)))},
    ("llama3-405b", "dgxh100", "FP8"): ((), "llama31_none", (8, 8, 2, 8, 1, 1)),
    ("llama3-405b", "dgxb200", "FP8"): ((), "llama31_none", (4, 8, 2, 8, 1, 1)),
}


# full recompute of `recompute_num_layers` layers per model chunk (`recompute_method="block"`):
# (preset, system, precision group) -> (layers, source key, layout)
NEMO_RECOMPUTE_BLOCK: dict[tuple[str, str, str], tuple[int, str, Layout]] = {
    ("llama3-8b", "dgxh100", "FP8"): (5, "llama3", (1, 1, 1, 1, 1, 1)),
}


def nemo_recompute_block(model: str, system: str, precision_group: str,
                         container: str | None, layout: Layout) -> tuple[int | None, str]:
    """(layers per model chunk recomputed fully, note) of a NeMo row whose recipe sets
    `recompute_num_layers` (block method), else (None, "")."""
    year = _container_key(container or "")
    hit = NEMO_RECOMPUTE_BLOCK.get((model, system, precision_group))
    if hit is None or not year or year[0] < BRIDGE_FIRST_YEAR or hit[2] != layout:
        return None, ""
    return hit[0], f"full, block: {hit[0]} layers per chunk ({RECOMPUTE_SOURCES[hit[1]]})"


def nemo_recompute(model: str, system: str, precision_group: str, container: str | None,
                   layout: Layout) -> tuple[tuple[str, ...] | None, str]:
    """(recompute modules or None when unset, note with the source) of a NeMo row: the recorded
    recipe setting when the row ran on a Megatron-Bridge container with the recorded layout
    ``(tp, pp, cp, vp, ep, micro-batch)``; otherwise unset."""
    year = _container_key(container or "")
    hit = NEMO_RECOMPUTE.get((model, system, precision_group))
    if hit is None or not year or year[0] < BRIDGE_FIRST_YEAR:
        return None, "unset (no recipe setting found for this model / system / precision)"
    mods, src, lay = hit
    if lay != layout:
        return None, ("unset (the recipe file read has layout tp/pp/cp/vp/ep/mb "
                      f"{'/'.join(map(str, lay))}, the row {'/'.join(map(str, layout))})")
    what = "selective: " + ", ".join(mods) if mods else "none"
    return mods, f"{what} ({RECOMPUTE_SOURCES[src]})"


# MoE all-to-all overlap of each NeMo / Megatron-Bridge performance recipe (`moe_a2a_overlap`
# in the workload configs; the harness turns it into Megatron-Core's
# `overlap_moe_expert_parallel_comm=True` + `delay_wgrad_compute=True`,
# scripts/performance/utils/overrides.py `_set_moe_a2a_overlap_overrides`), read from the public
# files, never chosen from the rows. Recorded only where the config read has the row's layout
# (tp, pp, cp, vp, ep, micro-batch), like NEMO_RECOMPUTE; every other row runs without it (the
# configs' default, and `moe_a2a_overlap=False` where they say so).
A2A_SOURCES: dict[str, str] = {
    "deepseek": "scripts/performance/configs/deepseek/deepseek_workload_base_configs.py"
                "@0426418230 (*_FP8_MX_V2: moe_a2a_overlap=True)",
    "qwen3": "scripts/performance/configs/qwen/qwen3_workload_base_configs.py@01b2977e51 "
             "(QWEN3_235B_A22B_*_H100_*_V2: moe_a2a_overlap=True)",
    "gpt_oss": "scripts/performance/configs/gpt_oss/gpt_oss_workload_base_configs.py"
               "@07eea52d45 (GB200_BF16_V2, *_FP8_MX_V2 on GB300 / GB200 / B300: "
               "moe_a2a_overlap=True)",
}
NEMO_A2A_OVERLAP: dict[tuple[str, str, str], tuple[str, Layout]] = {
    ("deepseek-v3", "dgxgb300", "MXFP8"): ("deepseek", (1, 2, 1, 8, 32, 1)),
    ("deepseek-v3", "dgxgb200", "MXFP8"): ("deepseek", (1, 4, 1, 4, 64, 1)),
    ("deepseek-v3", "dgxb200", "MXFP8"): ("deepseek", (1, 8, 1, 2, 32, 1)),
    ("deepseek-v3", "dgxb300", "MXFP8"): ("deepseek", (1, 8, 1, 2, 8, 1)),
    ("qwen3-235b-a22b", "dgxh100", "FP8"): ("qwen3", (2, 8, 1, 4, 32, 1)),
    ("qwen3-235b-a22b", "dgxh100", "BF16"): ("qwen3", (2, 8, 1, 4, 32, 1)),
    ("gpt-oss-120b", "dgxgb200", "BF16"): ("gpt_oss", (1, 1, 1, 1, 64, 4)),
    ("gpt-oss-120b", "dgxgb300", "MXFP8"): ("gpt_oss", (1, 1, 1, 1, 16, 4)),
    ("gpt-oss-120b", "dgxgb200", "MXFP8"): ("gpt_oss", (1, 1, 1, 1, 64, 4)),
    ("gpt-oss-120b", "dgxb300", "MXFP8"): ("gpt_oss", (1, 1, 1, 1, 8, 4)),
}


def nemo_a2a_overlap(model: str, system: str, precision_group: str, container: str | None,
                     layout: Layout) -> bool:
    """True when the row's recipe (Megatron-Bridge container, recorded layout) sets
    `moe_a2a_overlap`."""
    year = _container_key(container or "")
    hit = NEMO_A2A_OVERLAP.get((model, system, precision_group))
    return bool(hit is not None and year and year[0] >= BRIDGE_FIRST_YEAR and hit[1] == layout)


# FP8 attention of each NeMo / Megatron-Bridge performance recipe (`fp8_dot_product_attention`
# in the workload configs, passed to `mixed_precision.fp8_dot_product_attention`), read from
# the same public files and commits as A2A_SOURCES, recorded only where the config has the
# row's layout (tp, pp, cp, vp, ep, micro-batch). Set in: DeepSeek-V3 *_FP8_MX_V1 / V2 on
# GB300 and B300 (not GB200, not B200); GPT-OSS-120B *_FP8_MX_V2 on GB300, GB200 and B300.
# The Qwen3 configs read and the other recipes do not set it (default False).
FP8_ATTN_SOURCES: dict[str, str] = {
    "deepseek": "scripts/performance/configs/deepseek/deepseek_workload_base_configs.py"
                "@0426418230 (DEEPSEEK_V3_PRETRAIN_CONFIG_GB300 / B300_FP8_MX_V1, V2: "
                "fp8_dot_product_attention=True)",
    "gpt_oss": "scripts/performance/configs/gpt_oss/gpt_oss_workload_base_configs.py"
               "@07eea52d45 (GPT_OSS_120B_PRETRAIN_CONFIG_GB300 / GB200 / B300_FP8_MX_V2: "
               "fp8_dot_product_attention=True)",
}
NEMO_FP8_ATTENTION: dict[tuple[str, str, str], tuple[str, Layout]] = {
    ("deepseek-v3", "dgxgb300", "MXFP8"): ("deepseek", (1, 2, 1, 8, 32, 1)),
    ("deepseek-v3", "dgxb300", "MXFP8"): ("deepseek", (1, 8, 1, 2, 8, 1)),
    ("gpt-oss-120b", "dgxgb300", "MXFP8"): ("gpt_oss", (1, 1, 1, 1, 16, 4)),
    ("gpt-oss-120b", "dgxgb200", "MXFP8"): ("gpt_oss", (1, 1, 1, 1, 64, 4)),
    ("gpt-oss-120b", "dgxb300", "MXFP8"): ("gpt_oss", (1, 1, 1, 1, 8, 4)),
}


def nemo_fp8_attention(model: str, system: str, precision_group: str, container: str | None,
                       layout: Layout) -> bool:
    """True when the row's recipe (Megatron-Bridge container, recorded layout) sets
    `fp8_dot_product_attention`."""
    year = _container_key(container or "")
    hit = NEMO_FP8_ATTENTION.get((model, system, precision_group))
    return bool(hit is not None and year and year[0] >= BRIDGE_FIRST_YEAR and hit[1] == layout)


# Dropout of the NeMo 24.07 (NeMo 1.x launcher) rows, read from the public launcher configs
# (NVIDIA/NeMo-Framework-Launcher, launcher_scripts/conf/training/...): recorded only where the
# config has the row's layout, like the tables above. Megatron-Bridge (25.x / 26.x) recipes
# and the other 24.07 configs read (Llama 2, Nemotron: `hidden_dropout: 0.0`,
# `attention_dropout: 0.0`) run without dropout; the GPT-3 20B / 175B configs read have other
# layouts (tp 4 mb 4; vp 12) than their rows and are left unset.
DROPOUT_SOURCES: dict[str, str] = {
    "gpt3_5b": "NVIDIA/NeMo-Framework-Launcher launcher_scripts/conf/training/gpt3/5b.yaml"
               "@00af8f261f (hidden_dropout: 0.1, attention_dropout: 0.1; tp 1, pp 1, mb 4, "
               "gbs 2048)",
}
NEMO_DROPOUT: dict[tuple[str, str, str], tuple[float, float, str, Layout]] = {
    ("gpt3-5b", "dgxh100", "FP8"): (0.1, 0.1, "gpt3_5b", (1, 1, 1, 1, 1, 4)),
}


def nemo_dropout(model: str, system: str, precision_group: str, container: str | None,
                 layout: Layout) -> tuple[float, float]:
    """(attention dropout, hidden dropout) of a NeMo 1.x (pre-Bridge container) row whose
    launcher config with the row's layout is recorded, else (0, 0)."""
    year = _container_key(container or "")
    hit = NEMO_DROPOUT.get((model, system, precision_group))
    if hit is None or not year or year[0] >= BRIDGE_FIRST_YEAR or hit[3] != layout:
        return 0.0, 0.0
    return hit[0], hit[1]


# model name as the NeMo tables write it (normalised) -> preset, or the reason it cannot be
# expressed
NEMO_MODELS: dict[str, str] = {
    "gpt35b": "gpt3-5b", "gpt320b": "gpt3-20b", "gpt3175b": "gpt3-175b",
    "llama27b": "llama2-7b", "llama213b": "llama2-13b", "llama270b": "llama2-70b",
    "llama38b": "llama3-8b", "llama370b": "llama3-70b", "llama31405b": "llama3-405b",
    "nemotron8b": "nemotron-8b", "nemotron22b": "nemotron-22b", "nemotron340b": "nemotron-340b",
    "qwen330ba3b": "qwen3-30b-a3b", "qwen3235ba22b": "qwen3-235b-a22b",
    "gptoss120b": "gpt-oss-120b", "kimik2": "kimi-k2",
    "deepseekv3": "deepseek-v3", "deepseekv3womtp": "deepseek-v3",
    "deepseekv3wmtp": "deepseek-v3-mtp",
    "nemotron3nano": "nemotron3-nano-30b-a3b", "nemotron3super": "nemotron3-super-120b-a12b",
    "nemotron3ultra": "nemotron3-ultra-550b-a55b",
    "nemotron35lightning": "nemotron3.5-lightning-30b-a3b",
}
NEMO_UNSUPPORTED: tuple[tuple[str, str], ...] = (
    # deepseek-ai/DeepSeek-V4-Flash config.json is public now (43 layers, d 4096, 256 experts
    # top-6), but its attention is not one the model can time: per-layer compressed sparse
    # attention (compress_ratios 4 / 128, a top-512 indexer, 128-token window) and 4-stream
    # hyper-connections mixed by a Sinkhorn router
    ("deepseekv4", "compressed sparse attention (CSA / HCA with an indexer) and hyper-"
     "connections are not modelled (public config: deepseek-ai/DeepSeek-V4-Flash)"),
)
# precision as written -> (GEMM precision in the catalogue, recipe class)
NEMO_PRECISIONS: dict[str, tuple[str, str]] = {
    "bf16": ("bf16", "bf16"),
    # per-tensor scaling; delayed in the NeMo 24.x containers, current in Megatron-Bridge's
    # (see fp8_recipe_of)
    "fp8": ("fp8", "fp8-delayed"),
    "fp8cs": ("fp8", "fp8-current"),
    "fp8ds": ("fp8", "fp8-delayed"),
    "mxfp8": ("fp8", "fp8-block"),
    "fp8mx": ("fp8", "fp8-block"),
    "nvfp4": ("fp4", "nvfp4"),  # every GEMM in NVFP4 (bf16_with_nvfp4_mixed: no BF16 layers)
}


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def nemo_model(name: str) -> ModelShape:
    key = _key(name)
    for frag, reason in NEMO_UNSUPPORTED:
        if frag in key:
            raise CannotRun(reason)
    if key not in NEMO_MODELS:
        raise CannotRun(f"model {name!r} has no preset shape")
    return get_model(NEMO_MODELS[key])


def nemo_case(row: dict[str, str]) -> Case:
    model = nemo_model(row.get("model") or "")
    system = _key(row.get("system") or "")
    if system not in SYSTEMS:
        raise CannotRun(f"unknown system {row.get('system')!r} (known: DGX-H100, DGX-B200, "
                        "DGX-B300, DGX-GB200, DGX-GB300)")
    chip, dpn, net = SYSTEMS[system]
    if system in SYSTEM_CHIPS:
        chip = SYSTEM_PREFIX + SYSTEM_CHIPS[system]
    pkey = _key(row.get("precision") or "")
    if pkey not in NEMO_PRECISIONS:
        raise CannotRun(f"precision {row.get('precision')!r} is not modelled")
    prec, recipe = NEMO_PRECISIONS[pkey]
    n = _int(row, "n_devices")
    tp = _int(row, "tp", 1) or 1
    pp = _int(row, "pp", 1) or 1
    cp = _int(row, "cp", 1) or 1
    vp = _int(row, "vp", 1) or 1
    ep = _int(row, "ep", 1) or 1
    mb = _int(row, "micro_batch", 1) or 1
    gbs = _int(row, "global_batch_seqs")
    if n < 1 or n % (tp * pp * cp):
        raise ValueError(f"n_devices {n} not divisible by tp*pp*cp {tp * pp * cp}")
    dp = n // (tp * pp * cp)
    if gbs % (dp * mb):
        raise ValueError(f"global batch {gbs} not divisible by dp*micro_batch {dp * mb}")
    ga = gbs // (dp * mb)
    if ep > 1 and (not model.is_moe or (tp * dp * cp) % ep):
        # Megatron-Core folds expert parallelism over the tp x cp x dp ranks of a stage
        raise ValueError(f"ep {ep} does not divide tp*cp*dp = {tp * cp * dp}")
    fsdp = _int(row, "fsdp", 0)
    group = precision_label(row.get("precision") or "")
    layout = (tp, pp, cp, vp, ep if model.is_moe else 1, mb)
    mods, note = nemo_recompute(model.name, system, group, row.get("container"), layout)
    n_block, block_note = nemo_recompute_block(model.name, system, group, row.get("container"),
                                               layout)
    rc = 2 if n_block is not None else (1 if mods else 0)
    note = block_note or note
    return Case(
        model=model, chip=chip, precision=prec, recipe=recipe, framework="megatron",
        fp8_recipe=fp8_recipe_of(pkey, row.get("container")),
        seq_len=_int(row, "seq_len"), global_batch=gbs, n_devices=n, tp=tp, pp=pp, cp=cp,
        ep=ep if model.is_moe else 1, vp=vp, mb=mb, ga=ga, recompute=rc,
        recompute_modules=mods, recompute_note=note, recompute_layers=n_block,
        zero=3 if fsdp > 0 else 1, devices_per_node=dpn, inter_node_gbps=net,
        attention_kernel="flash2",
        ep_dispatch=nemo_dispatch(model.name, system,
                                  precision_label(row.get("precision") or "")),
        ep_a2a_overlap=nemo_a2a_overlap(model.name, system, group, row.get("container"),
                                        layout),
        fp8_attention=nemo_fp8_attention(model.name, system, group, row.get("container"),
                                         layout),
        **dict(zip(("attention_dropout", "hidden_dropout"),
                   nemo_dropout(model.name, system, group, row.get("container"), layout),
                   strict=True)),
    )


# First container year of NVIDIA's Megatron-Bridge performance harness in the NeMo file. Its
# `--compute_dtype` offers bf16, fp8_cs, fp8_mx, fp8_sc and nvfp4 only (Megatron-Bridge
# scripts/performance/argument_parser.py), and every per-tensor FP8 preset is `*_FP8_CS_*`
# (scripts/performance/configs/*/..._workload_base_configs.py): a row of those containers
# labelled plain "FP8" ran per-tensor *current* scaling. The 24.07 rows predate Transformer
# Engine's current-scaling recipe (`Float8CurrentScaling`, TE 2.2) and ran delayed scaling.
BRIDGE_FIRST_YEAR = 25


def fp8_recipe_of(precision_key: str, container: str | None) -> str:
    """The FP8 recipe a NeMo row ran (``precision_key``: normalised precision label): the
    label's, except plain "FP8" on a Megatron-Bridge container (year >= BRIDGE_FIRST_YEAR),
    which is current scaling. Non-FP8 precisions return the unused default."""
    recipe = NEMO_PRECISIONS[precision_key][1]
    if not recipe.startswith("fp8"):
        return "fp8-delayed"
    year = _container_key(container or "")
    if precision_key == "fp8" and year and year[0] >= BRIDGE_FIRST_YEAR:
        return "fp8-current"
    return recipe


def precision_label(text: str) -> str:
    """Canonical precision group: BF16, FP8 (per-tensor scaling), MXFP8 (block-scaled), NVFP4."""
    key = _key(text)
    if key in NEMO_PRECISIONS:
        return {"bf16": "BF16", "fp8-delayed": "FP8", "fp8-current": "FP8",
                "fp8-block": "MXFP8", "nvfp4": "NVFP4"}[NEMO_PRECISIONS[key][1]]
    return text.strip().upper()


def nemo_label(row: dict[str, str]) -> str:
    lay = "".join(f" {k}{row.get(k)}" for k in ("tp", "pp", "cp", "vp", "ep")
                  if (row.get(k) or "").strip() not in ("", "1", "0"))
    return (f"{row.get('model')} {row.get('precision')} {row.get('system')} "
            f"n={row.get('n_devices')} gbs={row.get('global_batch_seqs')} "
            f"mb={row.get('micro_batch')} s={row.get('seq_len')}{lay}")


@dataclass(frozen=True, slots=True)
class RowFormat:
    name: str
    required: tuple[str, ...]
    case: Callable[[dict[str, str]], Case]
    label: Callable[[dict[str, str]], str]
    chip_of: Callable[[dict[str, str]], str]
    precision_of: Callable[[dict[str, str]], str]
    framework: str


FORMATS: tuple[RowFormat, ...] = (
    RowFormat("nemo", NEMO_REQUIRED, nemo_case, nemo_label,
              lambda r: SYSTEMS.get(_key(r.get("system") or ""), (r.get("system") or "",))[0],
              lambda r: precision_label(r.get("precision") or ""), "megatron"),
    RowFormat("mpt", MPT_REQUIRED, mpt_case, mpt_label, lambda r: (r.get("chip") or "").strip(),
              lambda r: (r.get("precision") or "bf16").strip().upper(), "fsdp"),
)


def detect_format(cols: list[str], path: Path) -> RowFormat:
    for fmt in FORMATS:
        if all(c in cols for c in fmt.required):
            return fmt
    best = min(FORMATS, key=lambda f: sum(c not in cols for c in f.required))
    missing = [c for c in best.required if c not in cols]
    raise SuanliError(f"missing column(s): {', '.join(missing)} (for the {best.name} format)",
                      file=path)


# -------------------------------------------------------------------------------------------
# prediction
# -------------------------------------------------------------------------------------------
def predict_case(
    case: Case, chip: Chip, efficiency: dict[str, float] | None = None
) -> dict[str, Any]:
    """Evaluate one case's own layout; returns the evaluate() dict for it (index 0)."""
    hw = build_hardware(chip, case.precision, devices_per_node=case.devices_per_node,
                        inter_node_gbps=case.inter_node_gbps, efficiency=efficiency)
    spec = TrainSpec(model=case.model, seq_len=case.seq_len, global_batch=case.global_batch,
                     attention_kernel=case.attention_kernel, interleave=case.vp,
                     framework=case.framework, fp8_recipe=case.fp8_recipe,
                     ep_dispatch=case.ep_dispatch, recompute_modules=case.recompute_modules,
                     recompute_layers=case.recompute_layers,
                     ep_a2a_overlap=case.ep_a2a_overlap, fp8_attention=case.fp8_attention,
                     attention_dropout=case.attention_dropout,
                     hidden_dropout=case.hidden_dropout)
    res = evaluate(spec, hw, tp=case.tp, pp=case.pp, dp=case.dp, cp=case.cp, ep=case.ep,
                   mb=case.mb, recompute=case.recompute, zero=case.zero, n_micro=case.ga)
    return {k: np.ravel(v)[0] for k, v in res.items()}


def predict_row(row: dict[str, str], chip: Chip) -> dict[str, Any]:
    """MPT-format row -> evaluate() dict (kept for callers of the first version)."""
    return predict_case(mpt_case(row), chip)


def find_data_dir(explicit: str | Path | None = None) -> Path:
    """``explicit``, else ``../shared/data/validation`` from the cwd or the project root."""
    if explicit is not None:
        p = Path(explicit)
        if not p.is_dir():
            raise SuanliError("validation data directory not found", file=p)
        return p
    here = Path(__file__).resolve()
    candidates = [Path.cwd() / ".." / "shared" / "data" / "validation"]
    candidates += [parent / ".." / "shared" / "data" / "validation" for parent in here.parents]
    for c in candidates:
        if c.is_dir() and any(c.glob("*.csv")):
            return c.resolve()
    raise SuanliError(
        "validation data not found (looked for ../shared/data/validation from the current "
        "directory and the project root); pass --data DIR"
    )


def fallback_chips() -> dict[str, Chip]:
    """Chips the validation systems need that the catalogue may lack (perf/data/systems.yaml)."""
    from importlib import resources

    from suanli.catalog.loader import _norm, parse_chips, read_yaml

    path = Path(str(resources.files("suanli.perf") / "data" / "systems.yaml"))
    out: dict[str, Chip] = {}
    for chip in parse_chips(read_yaml(path), path):
        for key in (chip.id, chip.name, *chip.aliases):
            out[_norm(key)] = chip
    return out


def _resolver(resolve: Callable[[str], Chip]) -> Callable[[str], Chip]:
    cache: dict[str, Chip] | None = None

    def get(name: str) -> Chip:
        nonlocal cache
        if name.startswith(SYSTEM_PREFIX):  # a system's own entry, by id: catalogue, else ours
            cid = name[len(SYSTEM_PREFIX):]
            try:
                hit = resolve(cid)
                if hit.id == cid:
                    return hit
            except SuanliError:
                pass
            from suanli.catalog.loader import _norm

            if cache is None:
                cache = fallback_chips()
            return cache[_norm(cid)]
        try:
            return resolve(name)
        except SuanliError as exc:
            from suanli.catalog.loader import _norm

            if cache is None:
                cache = fallback_chips()
            found = cache.get(_norm(name))
            if found is None:
                raise exc from None
            return found

    return get


def run_validation(
    data_dir: str | Path | None, resolve_chip: Callable[[str], Chip], *,
    files: Iterable[str | Path] | None = None,
) -> ValidationReport:
    """Predict every row of every ``*.csv`` in the data directory (or the given ``files``)."""
    if files is not None:
        paths = [Path(f) for f in files]
        for p in paths:
            if not p.is_file():
                raise SuanliError("file not found", file=p)
    else:
        d = find_data_dir(data_dir)
        paths = sorted(d.glob("*.csv"))
        if not paths:
            raise SuanliError("no *.csv files", file=d)
    resolve = _resolver(resolve_chip)
    out: list[RowResult] = []
    for f in paths:
        cols, rows = read_csv(f)
        fmt = detect_format(cols, f)
        stacks = stack_of(rows)
        for line, row in rows:
            r = _one(f, line, row, fmt, resolve)
            out.append(dataclasses.replace(r, stack=stacks.get(line, "single")))
    return ValidationReport(out, [p.name for p in paths])


def _container_key(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text or ""))


def stack_of(rows: list[tuple[int, dict[str, str]]]) -> dict[int, str]:
    """Software-stack class of each row of a file with a ``container`` column.

    ``superseded``: the file has a row of the same model, system and precision group from a
    newer container (the same hardware measured again on a newer software stack); ``current``:
    the newest container for its (model, system, precision). Rows without a container column
    (MPT: one stack) are ``single``. This is reported, never used in a prediction: a model of
    the hardware cannot know how much faster a later release of the software became."""
    def key(row: dict[str, str]) -> tuple[str, str, str]:
        model = _key(re.sub(r"\(w/?o? ?mtp\)", "", row.get("model") or "", flags=re.I))
        return (model, _key(row.get("system") or ""),
                precision_label(row.get("precision") or ""))

    newest: dict[tuple[str, str, str], tuple[int, ...]] = {}
    for _line, row in rows:
        if not (row.get("container") or "").strip():
            return {}
        k = key(row)
        newest[k] = max(newest.get(k, ()), _container_key(row["container"]))
    return {line: ("superseded" if _container_key(row["container"]) < newest[key(row)]
                   else "current") for line, row in rows}


def _one(f: Path, line: int, row: dict[str, str], fmt: RowFormat,
         resolve: Callable[[str], Chip]) -> RowResult:
    try:
        measured = float(row.get("measured_tokens_per_s_per_device") or "nan")
    except ValueError:
        measured = float("nan")
    mfu_raw = (row.get("measured_mfu_pct") or "").strip()
    try:
        mfu = float(mfu_raw) / 100 if mfu_raw else None
    except ValueError:
        mfu = None
    try:
        n_dev = int(float(row.get("n_devices") or 0))
    except ValueError:
        n_dev = 0
    base = dict(file=f.name, line=line, label=fmt.label(row), chip=fmt.chip_of(row),
                n_devices=n_dev, measured=measured, measured_mfu=mfu,
                model=(row.get("model") or "").strip(), precision=fmt.precision_of(row),
                framework=fmt.framework)
    try:
        if not (measured > 0):
            raise ValueError("measured_tokens_per_s_per_device must be a number > 0")
        case = fmt.case(row)
        chip = resolve(case.chip)
        r = predict_case(case, chip)
    except (SuanliError, ValueError) as exc:
        problem = exc.render() if isinstance(exc, SuanliError) else str(exc)
        if isinstance(exc, CannotRun):
            problem = exc.problem
        return RowResult(**base, predicted=None, error_pct=None,  # type: ignore[arg-type]
                         predicted_mfu=None, fits=None, problem=problem,
                         architecture="not predicted")
    pred = float(r["tokens_per_s_per_device"])
    return RowResult(
        **base, predicted=pred, error_pct=(pred - measured) / measured * 100.0,  # type: ignore[arg-type]
        predicted_mfu=float(r["mfu"]), fits=bool(r["fits"]), chip_id=chip.id,
        gemm_precision=case.precision, recompute=case.recompute_note,
        architecture=("hybrid Mamba" if case.model.is_hybrid else
                      "MoE" if case.model.is_moe else "dense"),
    )


def interval_rows(
    report: ValidationReport, resolve_chip: Callable[[str], Chip]
) -> list[tuple[str, str, float, float]]:
    """(chip id, class without validation, predicted, measured) of every predicted row."""
    from suanli.perf.confidence import base_class

    resolve = _resolver(resolve_chip)
    out = []
    for r in report.rows:
        if r.predicted is None:
            continue
        chip = resolve(SYSTEM_PREFIX + r.chip_id if r.chip_id in SYSTEM_CHIPS.values()
                       else r.chip)
        out.append((r.chip_id, base_class(chip, r.gemm_precision, set()), r.predicted,
                    r.measured))
    return out
