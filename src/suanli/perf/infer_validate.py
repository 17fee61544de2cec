"""Inference validation: predict published serving measurements (TTFT, inter-token latency,
output throughput) with ``estimate_infer`` and report the error.

Serving at a steady concurrency ``c`` (continuous batching) is modelled from the two phases the
inference model knows: a request's TTFT is the prefill of its own prompt (batch 1: requests
arrive staggered); the inter-token latency is the decode step of a batch of ``c`` plus the
prefills of new requests that interleave with it (``c`` prefills per ``output`` decode steps);
output throughput = ``c x output / (TTFT + output x ITL)``. Queueing beyond the server's batch
limit is not modelled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from suanli.catalog.schema import Chip
from suanli.errors import SuanliError
from suanli.perf.estimate import estimate_infer
from suanli.perf.validate import read_csv

REQUIRED = ("model", "chip", "n_devices", "tp", "precision", "prompt", "output", "concurrency",
            "measured_ttft_ms", "measured_itl_ms", "measured_output_tokens_per_s", "source")
METRICS = ("ttft_ms", "itl_ms", "output_tokens_per_s")


@dataclass(frozen=True, slots=True)
class InferRow:
    line: int
    label: str
    chip: str
    measured: dict[str, float]
    predicted: dict[str, float] | None
    problem: str | None = None

    def errors(self) -> dict[str, float]:
        if self.predicted is None:
            return {}
        return {k: (self.predicted[k] - v) / v * 100 for k, v in self.measured.items()}

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "label": self.label, "chip": self.chip,
                "measured": self.measured, "predicted": self.predicted,
                "error_pct": self.errors(), "problem": self.problem}


def default_file() -> Path:
    return Path(str(resources.files("suanli.perf") / "data" / "inference_validation.csv"))


def predict_serving(model: str, chip: Chip, n: int, tp: int, precision: str, prompt: int,
                    output: int, c: int) -> dict[str, float]:
    one = estimate_infer(model, chip, n, batch=1, prompt=prompt, output=output,
                         precision=precision, tp=tp)
    many = estimate_infer(model, chip, n, batch=c, prompt=prompt, output=output,
                          precision=precision, tp=tp)
    ttft = one.ttft_s
    itl = many.tpot_s + c * ttft / max(output, 1)
    thr = c * output / (ttft + output * itl)
    return {"ttft_ms": ttft * 1e3, "itl_ms": itl * 1e3, "output_tokens_per_s": thr}


def run_infer_validation(resolve: Callable[[str], Chip], path: Path | None = None
                         ) -> list[InferRow]:
    p = path or default_file()
    cols, rows = read_csv(p)
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise SuanliError(f"missing column(s): {', '.join(missing)}", file=p)
    out = []
    for line, r in rows:
        label = (f"{r['model']} {r['precision']} {r['n_devices']}x{r['chip']} tp{r['tp']} "
                 f"{r['prompt']}/{r['output']} c={r['concurrency']}")
        try:
            measured = {m: float(r[f"measured_{m}"]) for m in METRICS}
            pred = predict_serving(r["model"], resolve(r["chip"]), int(r["n_devices"]),
                                   int(r["tp"]), r["precision"], int(r["prompt"]),
                                   int(r["output"]), int(r["concurrency"]))
        except (SuanliError, ValueError) as exc:
            out.append(InferRow(line, label, r.get("chip", ""), {}, None,
                                getattr(exc, "problem", None) or str(exc)))
            continue
        out.append(InferRow(line, label, r["chip"], measured, pred))
    return out


def infer_summary(rows: list[InferRow]) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": len(rows),
                           "predicted": sum(r.predicted is not None for r in rows)}
    allerr: list[float] = []
    for m in METRICS:
        e = np.asarray([r.errors()[m] for r in rows if r.predicted is not None])
        allerr += [abs(x) for x in e]
        out[m] = {"median_abs_error_pct": float(np.median(np.abs(e))) if e.size else None,
                  "mean_signed_error_pct": float(np.mean(e)) if e.size else None}
    out["median_abs_error_pct"] = float(np.median(allerr)) if allerr else None
    return out
