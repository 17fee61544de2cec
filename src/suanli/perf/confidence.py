"""How much to trust an estimate: a confidence class and an interval from validation residuals.

Classes, best first:

* ``calibrated`` -- the chip carries efficiency factors fitted to the user's own measured runs
  (``suanli calibrate`` overlay, or ``efficiency:`` in a catalogue entry);
* ``validated`` -- the chip appears in the end-to-end validation files;
* ``micro-benchmarked`` -- measured GEMM / HBM / link figures exist for the chip
  (``perf/efficiency.py`` evidence), no end-to-end run;
* ``datasheet only`` -- nothing measured: datasheet peaks x generic efficiencies.

A catalogue figure the estimate rests on (peak at the precision, memory size and bandwidth, link
bandwidth) with ``confidence: low`` or marked ``derived`` lowers the class by one step.

Intervals are the 10th-90th percentile of measured / predicted over the validation rows of the
class (for a validated chip, of that chip's rows), stored in ``perf/data/intervals.yaml`` and
regenerated with ``suanli validate --write-intervals`` (a test checks the stored file against a
fresh validation run).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from suanli.catalog.schema import Chip, Figure, Precision

CLASSES = ("calibrated", "validated", "micro-benchmarked", "datasheet only")
LOW_PCT, HIGH_PCT = 10.0, 90.0


@dataclass(frozen=True, slots=True)
class Confidence:
    level: str  # one of CLASSES
    low: float  # multiply the point estimate by these for the likely range
    high: float
    basis: str  # where the interval comes from (class / chip, rows)
    reasons: tuple[str, ...] = ()

    def interval(self, value: float) -> tuple[float, float]:
        return value * self.low, value * self.high

    def as_dict(self, value: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"class": self.level, "low_factor": self.low,
                               "high_factor": self.high, "basis": self.basis,
                               "reasons": list(self.reasons)}
        if value is not None:
            lo, hi = self.interval(value)
            out["likely_range"] = [lo, hi]
        return out


def intervals_path() -> Path:
    return Path(str(resources.files("suanli.perf") / "data" / "intervals.yaml"))


@lru_cache(maxsize=1)
def stored_intervals() -> dict[str, Any]:
    import yaml

    p = intervals_path()
    if not p.exists():
        return {"classes": {}, "chips": {}}
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    return {"classes": data.get("classes") or {}, "chips": data.get("chips") or {}}


def _weak(fig: Figure | None, chip: Chip) -> bool:
    if fig is None or fig.value is None:
        return False
    if getattr(fig, "derived", False):
        return True
    return chip.source_of(fig)[1] == "low"


def base_class(chip: Chip, precision: Precision | str, validated: set[str]) -> str:
    from suanli.perf.efficiency import measured_factors

    if chip.efficiency:
        return "calibrated"
    if chip.id in validated:
        return "validated"
    measured, _ = measured_factors(chip, Precision(precision))
    return "micro-benchmarked" if measured else "datasheet only"


def classify(chip: Chip, precision: Precision | str) -> Confidence:
    """The confidence class and interval of an estimate for ``chip`` at ``precision``."""
    prec = Precision(precision)
    stored = stored_intervals()
    chips: dict[str, Any] = stored["chips"]
    level = base_class(chip, prec, set(chips))
    reasons: list[str] = []
    weak = [name for name, fig in (
        (f"peak.{prec.value}", chip.peak.get(prec)),
        ("memory.size_gb", chip.memory.size_gb),
        ("memory.bandwidth_gbs", chip.memory.bandwidth_gbs),
        ("interconnect.bandwidth_gbs", chip.interconnect.bandwidth_gbs),
    ) if _weak(fig, chip)]
    if weak:
        reasons.append(f"low-confidence or derived catalogue figure(s): {', '.join(weak)}")
        level = CLASSES[min(len(CLASSES) - 1, CLASSES.index(level) + 1)]
    if level == "validated" and chip.id in chips:
        st = chips[chip.id]
        basis = f"validation rows of {chip.id} (n={st['n']})"
    else:
        st = stored["classes"].get(level) or stored["classes"].get("datasheet only")
        basis = f"validation rows of class '{level}' (n={st['n']})" if st else "no residuals"
    if not st:
        return Confidence(level, 0.5, 1.5, "no stored residuals: +-50 % assumed",
                          tuple(reasons))
    return Confidence(level, float(st["low"]), float(st["high"]), basis, tuple(reasons))


def classify_hw(hw: Any) -> Confidence:
    """:func:`classify` for a built :class:`~suanli.perf.hardware.Hardware`."""
    if hw.chip is None:
        return Confidence("datasheet only", 0.5, 1.5, "no chip entry: +-50 % assumed")
    return classify(hw.chip, hw.precision)


def intervals_from_rows(rows: list[tuple[str, str, float, float]]) -> dict[str, Any]:
    """(chip id, class, predicted, measured) rows -> the stored-interval mapping."""

    def stats(pairs: list[tuple[float, float]]) -> dict[str, Any]:
        r = np.asarray([m / p for p, m in pairs if p > 0])
        return {"n": int(r.size), "low": round(float(np.percentile(r, LOW_PCT)), 4),
                "median": round(float(np.median(r)), 4),
                "high": round(float(np.percentile(r, HIGH_PCT)), 4)}

    by_class: dict[str, list[tuple[float, float]]] = {}
    by_chip: dict[str, list[tuple[float, float]]] = {}
    for chip_id, cls, pred, meas in rows:
        by_class.setdefault(cls, []).append((pred, meas))
        by_chip.setdefault(chip_id, []).append((pred, meas))
    # the validated class pools every validated chip; a validated chip's rows were predicted
    # from micro-benchmarks or datasheets, so they also define those classes' residuals
    out_classes = {c: stats(v) for c, v in sorted(by_class.items()) if len(v) >= 3}
    validated = [pm for v in by_chip.values() for pm in v]
    if len(validated) >= 3:
        out_classes["validated"] = stats(validated)
        out_classes.setdefault("calibrated", stats(validated))
    return {"classes": out_classes,
            "chips": {c: stats(v) for c, v in sorted(by_chip.items()) if len(v) >= 3}}


__all__ = ["CLASSES", "Confidence", "classify", "intervals_from_rows", "stored_intervals"]
