"""Catalogue coverage: which of the four critical figures of each chip are known.

Everything that estimates, plans or meters needs four figures of a chip: the dense training peak
(BF16, else FP16; FP32 for a chip that provably has no 16-bit arithmetic), the memory size, the
memory bandwidth and the TDP. For each chip and each of these figures this module says whether it
is

* ``known``    -- a value with a source (any confidence);
* ``derived``  -- a value computed from other published numbers (``Figure.derived`` holds the
  formula and its inputs);
* ``unsupported`` -- the chip provably lacks it and has no fallback (e.g. no 16-bit arithmetic
  and no known FP32 peak either);
* ``missing``  -- unknown; the figure's note says where we looked.

A chip is *complete* when all four are known or derived.

The training-peak rule: a chip whose catalogue entry marks both BF16 and FP16 as *unsupported*
(not unknown) trains in FP32, and the performance model estimates FP32 jobs on it; for such a
chip the FP32 peak, when known and sourced, is its training peak (path ``peak.fp32``). An
unknown 16-bit figure never falls back to FP32: "not found" is not "unsupported".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from suanli.catalog.schema import Chip, Figure, Precision

CoverageStatus = Literal["known", "derived", "unsupported", "missing"]
CRITICAL: tuple[str, ...] = ("half", "memory", "bandwidth", "tdp")
LABELS: dict[str, str] = {
    "half": "dense BF16/FP16",
    "memory": "memory size",
    "bandwidth": "memory bandwidth",
    "tdp": "TDP",
}
UNITS: dict[str, str] = {"half": "TFLOPS", "memory": "GB", "bandwidth": "GB/s", "tdp": "W"}


@dataclass(frozen=True, slots=True)
class FigureCoverage:
    """One critical figure of one chip."""

    key: str  # half | memory | bandwidth | tdp
    path: str  # catalogue field, e.g. peak.bf16, memory.bandwidth_gbs
    status: CoverageStatus
    value: float | None
    unit: str
    confidence: str | None
    source: str | None  # resolved reference
    formula: str | None = None
    inputs: dict[str, float] | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "figure": self.key, "label": LABELS[self.key], "path": self.path,
            "status": self.status, "value": self.value, "unit": self.unit,
            "confidence": self.confidence, "source": self.source, "formula": self.formula,
            "inputs": self.inputs, "note": self.note,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class ChipCoverage:
    chip_id: str
    name: str
    vendor: str
    figures: tuple[FigureCoverage, ...]

    def get(self, key: str) -> FigureCoverage:
        for f in self.figures:
            if f.key == key:
                return f
        raise KeyError(key)

    @property
    def complete(self) -> bool:
        """All four critical figures are known or derived."""
        return all(f.status in ("known", "derived") for f in self.figures)

    @property
    def gaps(self) -> list[str]:
        return [f.key for f in self.figures if f.status not in ("known", "derived")]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.chip_id, "name": self.name, "vendor": self.vendor,
            "complete": self.complete, "gaps": self.gaps,
            "figures": {f.key: f.as_dict() for f in self.figures},
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class CoverageReport:
    chips: tuple[ChipCoverage, ...]
    totals: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"totals": self.totals, "chips": [c.as_dict() for c in self.chips]}


def _status(fig: Figure) -> CoverageStatus:
    if fig.unsupported:
        return "unsupported"
    if fig.value is None:
        return "missing"
    return "derived" if fig.derived is not None else "known"


def _entry(chip: Chip, key: str, path: str, fig: Figure) -> FigureCoverage:
    ref, conf = chip.source_of(fig)
    d = fig.derived
    return FigureCoverage(
        key=key,
        path=path,
        status=_status(fig),
        value=fig.value,
        unit=UNITS[key],
        confidence=conf if fig.value is not None else None,
        source=ref if fig.value is not None else None,
        formula=d.formula if d else None,
        inputs=dict(d.inputs) if d else None,
        note=fig.note,
    )


def training_peak_figure(chip: Chip) -> tuple[str, Figure]:
    """The dense peak the models train at: the 16-bit figure of :func:`half_precision_figure`,
    or -- only when both BF16 and FP16 are *unsupported* and the FP32 peak is known -- the FP32
    peak, since such a chip (e.g. the Kepler K80) trains in FP32."""
    path, fig = half_precision_figure(chip)
    bf16, fp16 = chip.peak[Precision.BF16], chip.peak[Precision.FP16]
    fp32 = chip.peak[Precision.FP32]
    if bf16.unsupported and fp16.unsupported and fp32.value is not None:
        why = fp16.note or bf16.note or "no 16-bit arithmetic"
        note = f"no BF16/FP16 arithmetic ({why}); the FP32 peak is the training peak"
        if fp32.note:
            note += f"; {fp32.note}"
        return "peak.fp32", fp32.model_copy(update={"note": note})
    return path, fig


def half_precision_figure(chip: Chip) -> tuple[str, Figure]:
    """The dense 16-bit peak used by the models: BF16 when known, else FP16, else the
    more informative of the two (unsupported beats unknown only when both are unsupported)."""
    bf16, fp16 = chip.peak[Precision.BF16], chip.peak[Precision.FP16]
    if bf16.value is not None:
        return "peak.bf16", bf16
    if fp16.value is not None:
        return "peak.fp16", fp16
    if bf16.unsupported and fp16.unsupported:
        return "peak.fp16", fp16
    return ("peak.fp16", fp16) if not fp16.unsupported else ("peak.bf16", bf16)


_GETTERS: dict[str, Callable[[Chip], tuple[str, Figure]]] = {
    "half": training_peak_figure,
    "memory": lambda c: ("memory.size_gb", c.memory.size_gb),
    "bandwidth": lambda c: ("memory.bandwidth_gbs", c.memory.bandwidth_gbs),
    "tdp": lambda c: ("tdp_w", c.tdp_w),
}


def chip_coverage(chip: Chip) -> ChipCoverage:
    figs = tuple(_entry(chip, key, *_GETTERS[key](chip)) for key in CRITICAL)
    return ChipCoverage(chip_id=chip.id, name=chip.name, vendor=chip.vendor, figures=figs)


def coverage(chips: Iterable[Chip]) -> CoverageReport:
    """Per-chip coverage of the four critical figures, with totals."""
    rows = tuple(chip_coverage(c) for c in chips)
    n = len(rows)
    complete = sum(r.complete for r in rows)
    per_figure: dict[str, dict[str, int]] = {}
    for key in CRITICAL:
        counts = Counter(r.get(key).status for r in rows)
        per_figure[key] = {s: counts.get(s, 0) for s in ("known", "derived", "unsupported",
                                                          "missing")}
    conf = Counter(
        f.confidence or "unstated" for r in rows for f in r.figures if f.value is not None
    )
    totals = {
        "chips": n,
        "complete": complete,
        "complete_pct": round(100.0 * complete / n, 1) if n else 0.0,
        "incomplete": [r.chip_id for r in rows if not r.complete],
        "figures": per_figure,
        "derived_figures": sum(f.status == "derived" for r in rows for f in r.figures),
        "confidence": {k: conf.get(k, 0) for k in ("high", "medium", "low", "unstated")},
    }
    return CoverageReport(chips=rows, totals=totals)


def weak_figures(chip: Chip) -> list[str]:
    """Critical figures of ``chip`` that are low-confidence, derived or missing, as short
    labels (``"memory bandwidth (derived)"``) -- for an estimate's confidence statement."""
    out = []
    for f in chip_coverage(chip).figures:
        if f.status == "missing":
            out.append(f"{LABELS[f.key]} (unknown)")
        elif f.status == "derived":
            out.append(f"{LABELS[f.key]} (derived, {f.confidence or 'unstated'})")
        elif f.status == "known" and f.confidence == "low":
            out.append(f"{LABELS[f.key]} (low confidence)")
    return out


def derivation_note(fig: Figure) -> str:
    """The figure's note plus, for a derived figure, its formula with the inputs."""
    parts = [fig.note] if fig.note else []
    d = fig.derived
    if d is not None:
        inputs = ", ".join(f"{k}={v:g}" for k, v in d.inputs.items())
        parts.append(f"derived: {d.formula} with {inputs}")
    return "; ".join(parts)
