"""Fit per-chip efficiency factors (compute, memory, link) to a user's measured runs.

Input: runs in a validation CSV format (``perf/validate.py``). For every chip, the three factors
minimise the squared log error of predicted vs measured tokens/s, with a weak pull towards the
factors the model would use anyway (``PRIOR_WEIGHT`` per factor, in log space) so that factors the
runs cannot tell apart stay where the micro-benchmarks put them. The result is written as a
catalogue overlay (the chip's entry plus ``efficiency:``) that every command accepts via
``--catalog``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from suanli.catalog.schema import Chip, Precision
from suanli.errors import SuanliError
from suanli.perf.efficiency import factors_for
from suanli.perf.validate import Case, _resolver, detect_format, predict_case, read_csv

KEYS = ("compute", "memory", "link")
PRIOR_WEIGHT = 1.0  # log-space pull towards the uncalibrated factors (per factor)
BOUNDS = (0.05, 1.0)


@dataclass(slots=True)
class Run:
    file: str
    line: int
    label: str
    case: Case
    chip: Chip
    measured: float


@dataclass(slots=True)
class ChipFit:
    chip: Chip
    runs: list[Run]
    prior: dict[str, float]
    fitted: dict[str, float]
    loo_before: list[float] = field(default_factory=list)  # signed % error per run
    loo_after: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def med(x: list[float]) -> float | None:
            return float(np.median(np.abs(x))) if x else None

        return {"chip": self.chip.id, "name": self.chip.name, "runs": len(self.runs),
                "prior": self.prior, "fitted": self.fitted,
                "loo_median_abs_error_before_pct": med(self.loo_before),
                "loo_median_abs_error_after_pct": med(self.loo_after),
                "loo_before_pct": self.loo_before, "loo_after_pct": self.loo_after}


def load_runs(paths: list[Path], resolve_chip: Callable[[str], Chip]
              ) -> tuple[list[Run], list[tuple[str, int, str]]]:
    """Runs that can be predicted, and (file, line, reason) for those that cannot."""
    resolve = _resolver(resolve_chip)
    runs: list[Run] = []
    skipped: list[tuple[str, int, str]] = []
    for p in paths:
        if not p.is_file():
            raise SuanliError("file not found", file=p)
        cols, rows = read_csv(p)
        fmt = detect_format(cols, p)
        for line, row in rows:
            try:
                measured = float(row.get("measured_tokens_per_s_per_device") or "nan")
                if not measured > 0:
                    raise ValueError("measured_tokens_per_s_per_device must be > 0")
                case = fmt.case(row)
                chip = resolve(case.chip)
                predict_case(case, chip)  # must be predictable
            except (SuanliError, ValueError) as exc:
                skipped.append((p.name, line, getattr(exc, "problem", None) or str(exc)))
                continue
            runs.append(Run(p.name, line, fmt.label(row), case, chip, measured))
    return runs, skipped


def _predict(run: Run, eff: dict[str, float]) -> float:
    return float(predict_case(run.case, run.chip, efficiency=eff)["tokens_per_s_per_device"])


def prior_factors(chip: Chip, runs: list[Run]) -> dict[str, float]:
    prec = Precision(runs[0].case.precision) if runs else Precision.BF16
    f = factors_for(chip, prec)
    return {"compute": f.compute, "memory": f.memory, "link": f.link}


def fit(runs: list[Run], prior: dict[str, float]) -> dict[str, float]:
    """Least-squares fit of the three factors in log space (scipy, bounded)."""
    from scipy.optimize import least_squares

    x0 = np.log([prior[k] for k in KEYS])
    lo, hi = math.log(BOUNDS[0]), math.log(BOUNDS[1])

    def resid(x: np.ndarray) -> np.ndarray:
        eff = {k: float(math.exp(v)) for k, v in zip(KEYS, x, strict=True)}
        r = [math.log(_predict(run, eff) / run.measured) for run in runs]
        return np.concatenate([np.asarray(r), PRIOR_WEIGHT * (x - x0)])

    sol = least_squares(resid, np.clip(x0, lo, hi), bounds=(lo, hi), diff_step=1e-3,
                        max_nfev=200)
    return {k: round(float(math.exp(v)), 4) for k, v in zip(KEYS, sol.x, strict=True)}


def calibrate(runs: list[Run], *, leave_one_out: bool = True) -> list[ChipFit]:
    by_chip: dict[str, list[Run]] = {}
    for r in runs:
        by_chip.setdefault(r.chip.id, []).append(r)
    out = []
    for runs_c in by_chip.values():
        chip = runs_c[0].chip
        prior = prior_factors(chip, runs_c)
        cf = ChipFit(chip, runs_c, prior, fit(runs_c, prior))
        for i, run in enumerate(runs_c):
            before = _predict(run, prior)
            cf.loo_before.append((before - run.measured) / run.measured * 100)
            if leave_one_out and len(runs_c) > 1:
                eff = fit(runs_c[:i] + runs_c[i + 1:], prior)
                after = _predict(run, eff)
                cf.loo_after.append((after - run.measured) / run.measured * 100)
        out.append(cf)
    return out


def overlay(fits: list[ChipFit], source: str) -> dict[str, Any]:
    """Catalogue overlay: each chip's entry with the fitted ``efficiency``."""
    chips = []
    for f in fits:
        raw = f.chip.model_dump(mode="json", exclude_none=True)
        raw["efficiency"] = dict(f.fitted)
        note = (f"efficiency calibrated by `suanli calibrate` from {len(f.runs)} measured run(s) "
                f"in {source}")
        raw["notes"] = f"{raw.get('notes', '')} {note}".strip()
        chips.append(raw)
    return {"chips": chips}


def write_overlay(data: dict[str, Any], path: Path) -> None:
    import yaml

    head = "# catalogue overlay written by `suanli calibrate`; use with --catalog\n"
    try:
        path.write_text(head + yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                        encoding="utf-8")
    except OSError as exc:
        raise SuanliError(f"cannot write: {exc.strerror or exc}", file=path) from None
