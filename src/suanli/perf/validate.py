"""Validation: predict published training measurements from their inputs and report the error.

Each CSV row gives a model shape, the hardware, the parallel layout (FSDP sharding, micro-batch,
gradient accumulation, activation checkpointing) and the measured tokens/s per device. The
row's own layout is evaluated (no search); nothing is fitted per row.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from suanli.catalog.schema import Chip
from suanli.errors import SuanliError
from suanli.perf.hardware import DEFAULT_INTER_NODE_GBPS, build_hardware
from suanli.perf.models import ModelShape
from suanli.perf.train import TrainSpec, evaluate, recompute_code, zero_code

REQUIRED = (
    "model", "d_model", "n_heads", "n_layers", "seq_len", "chip", "n_devices",
    "measured_tokens_per_s_per_device",
)


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

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class ValidationReport:
    rows: list[RowResult]

    @property
    def errors(self) -> np.ndarray:
        return np.asarray([abs(r.error_pct) for r in self.rows if r.error_pct is not None])

    def summary(self) -> dict[str, Any]:
        e = self.errors
        signed = np.asarray([r.error_pct for r in self.rows if r.error_pct is not None])
        return {
            "rows": len(self.rows),
            "predicted": int(e.size),
            "skipped": len(self.rows) - int(e.size),
            "median_abs_error_pct": float(np.median(e)) if e.size else None,
            "mean_abs_error_pct": float(np.mean(e)) if e.size else None,
            "p90_abs_error_pct": float(np.percentile(e, 90)) if e.size else None,
            "worst_abs_error_pct": float(np.max(e)) if e.size else None,
            "mean_signed_error_pct": float(np.mean(signed)) if signed.size else None,
            "within_15_pct": int(np.sum(e <= 15.0)),
        }

    def as_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(), "rows": [r.as_dict() for r in self.rows]}


def _num(row: dict[str, str], key: str, default: float | None = None) -> float:
    raw = (row.get(key) or "").strip()
    if not raw:
        if default is not None:
            return default
        raise ValueError(f"missing {key}")
    return float(raw)


def _gbps(text: str | None) -> float:
    """'1600 Gbps RoCE per node' -> 1600.0 (Gbit/s per node)."""
    if not text:
        return DEFAULT_INTER_NODE_GBPS
    m = re.search(r"([0-9]+(?:\.[0-9]+)?)\s*(G|T)bps", text, re.IGNORECASE)
    if not m:
        return DEFAULT_INTER_NODE_GBPS
    val = float(m.group(1))
    return val * 1000 if m.group(2).upper() == "T" else val


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


def predict_row(row: dict[str, str], chip: Chip) -> dict[str, Any]:
    """Evaluate one row's own layout; returns the evaluate() dict for it (index 0)."""
    model = row_model(row)
    n = int(_num(row, "n_devices"))
    tp = int(_num(row, "tp", 1))
    pp = int(_num(row, "pp", 1))
    if n % (tp * pp):
        raise ValueError(f"n_devices {n} not divisible by tp*pp {tp * pp}")
    dp = n // (tp * pp)
    mb = int(_num(row, "micro_batch", 1))
    ga = int(_num(row, "grad_accum", 1))
    gbs = int(_num(row, "global_batch_seqs", mb * ga * dp))
    ckpt = (row.get("activation_checkpointing") or "false").strip().lower()
    rc = recompute_code("full" if ckpt in ("true", "1", "yes", "full") else "none")
    sharding = (row.get("sharding") or "FULL_SHARD").strip() or "FULL_SHARD"
    z = zero_code(sharding)
    hw = build_hardware(
        chip,
        (row.get("precision") or "bf16").strip().lower(),
        devices_per_node=int(_num(row, "devices_per_node", 8)),
        inter_node_gbps=_gbps(row.get("inter_node_link")),
    )
    spec = TrainSpec(model=model, seq_len=int(_num(row, "seq_len")), global_batch=gbs,
                     attention_kernel=attention_kernel_of(row))
    res = evaluate(spec, hw, tp=tp, pp=pp, dp=dp, mb=mb, recompute=rc, zero=z, n_micro=ga)
    return {k: np.ravel(v)[0] for k, v in res.items()}


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


def run_validation(
    data_dir: str | Path | None, resolve_chip: Callable[[str], Chip]
) -> ValidationReport:
    """Predict every row of every ``*.csv`` in the data directory."""
    d = find_data_dir(data_dir)
    files = sorted(d.glob("*.csv"))
    if not files:
        raise SuanliError("no *.csv files", file=d)
    out: list[RowResult] = []
    for f in files:
        with f.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise SuanliError(f"missing column(s): {', '.join(missing)}", file=f)
            for i, row in enumerate(reader, start=2):
                out.append(_one(f, i, row, resolve_chip))
    return ValidationReport(out)


def _one(f: Path, line: int, row: dict[str, str], resolve: Callable[[str], Chip]) -> RowResult:
    label = (
        f"{row.get('model')} s={row.get('seq_len')} n={row.get('n_devices')} "
        f"mb={row.get('micro_batch')}x{row.get('grad_accum')} "
        f"ckpt={row.get('activation_checkpointing')}"
    )
    measured = float(row.get("measured_tokens_per_s_per_device") or "nan")
    mfu_raw = (row.get("measured_mfu_pct") or "").strip()
    base = dict(file=f.name, line=line, label=label, chip=row.get("chip", ""),
                n_devices=int(float(row.get("n_devices") or 0)), measured=measured,
                measured_mfu=float(mfu_raw) / 100 if mfu_raw else None)
    try:
        chip = resolve(row["chip"])
        r = predict_row(row, chip)
    except (SuanliError, ValueError) as exc:
        problem = exc.render() if isinstance(exc, SuanliError) else str(exc)
        return RowResult(**base, predicted=None, error_pct=None, predicted_mfu=None, fits=None,
                         problem=problem)
    pred = float(r["tokens_per_s_per_device"])
    return RowResult(
        **base, predicted=pred, error_pct=(pred - measured) / measured * 100.0,
        predicted_mfu=float(r["mfu"]), fits=bool(r["fits"]),
    )
