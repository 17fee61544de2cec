"""US export-control classification (ECCN 3A090) computed from catalogue figures.

* **TPP** (Total Processing Performance) = 2 x MacTOPS x bit length of the operation; 2 x MacTOPS
  is the datasheet dense T(FL)OPS figure, so ``TPP = max over precisions of peak x bits``.
* **Performance density** = TPP / applicable die area (mm^2, logic dies on non-planar processes).

The thresholds of each rule version, their dates and Federal Register citations, the bit length
per precision and the die areas live in ``catalog/data/export_rules.yaml``. Nothing is guessed:

* TPP comes from the known dense peaks; precisions the catalogue does not know are listed in
  ``unknown_precisions``. When no tensor precision (FP16/BF16/FP8/INT8) is known the TPP is
  marked incomplete: it is a lower bound only.
* An unknown die area gives an unknown density; a class that depends on the density is then
  ``unknown`` with the reason, never silently "not controlled".

This is a technical reading of published thresholds, not legal advice: licence requirements
also depend on destination, end user, the foreign-direct-product rules and Note 2 (parts not
designed or marketed for data centres below TPP 4800).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from suanli.catalog.loader import format_validation_error, read_yaml
from suanli.catalog.schema import Chip, Confidence, Precision
from suanli.errors import SuanliError

RULES_FILE = "export_rules.yaml"
TENSOR_PRECISIONS = (Precision.FP16, Precision.BF16, Precision.FP8, Precision.INT8)
NOT_CONTROLLED = "not 3A090"
UNKNOWN = "unknown"


class Condition(BaseModel):
    """All given bounds must hold (``*_min`` inclusive, ``*_below`` exclusive)."""

    model_config = ConfigDict(extra="forbid")
    tpp_min: float | None = None
    tpp_below: float | None = None
    pd_min: float | None = None
    pd_below: float | None = None
    io_gbs_min: float | None = None


class ClassRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    class_: str = Field(alias="class")
    any_of: list[Condition] = Field(min_length=1)


class CaseByCase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tpp_below: float
    dram_gbs_below: float


class LicenseReview(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_by_case: CaseByCase


class RuleVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    citation: str
    published: dt.date
    effective: dt.date
    url: str
    confidence: Confidence
    classes: list[ClassRule] = Field(default_factory=list)
    inherits: str | None = None
    license_review: LicenseReview | None = None
    note: str | None = None


class DieArea(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mm2: float | None = Field(default=None, gt=0)
    source: str | None = None
    confidence: Confidence | None = None
    note: str | None = None


class Notice(BaseModel):
    """A licence requirement issued by letter to one company (not a published rule)."""

    model_config = ConfigDict(extra="forbid")
    chip: str
    effective: dt.date
    effect: str
    source: str
    confidence: Confidence


class ExportRules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    definitions: dict[str, str]
    notices: list[Notice] = Field(default_factory=list)
    bit_length: dict[Precision, int]
    versions: list[RuleVersion] = Field(min_length=1)
    default_version: str
    die_area: dict[str, DieArea] = Field(default_factory=dict)

    def version(self, vid: str | None = None) -> RuleVersion:
        """A rule version by id (``"2023-10"``) or by date (the version in force that day)."""
        vid = vid or self.default_version
        for v in self.versions:
            if v.id == vid:
                return v
        try:
            day = dt.date.fromisoformat(vid)
        except ValueError:
            known = ", ".join(v.id for v in self.versions)
            raise SuanliError(f"unknown export rule version {vid!r}; known: {known} "
                              "(or a date YYYY-MM-DD)", field="export rule") from None
        in_force = [v for v in self.versions if v.effective <= day]
        if not in_force:
            raise SuanliError(f"no 3A090 rule was in force on {vid} (first: "
                              f"{self.versions[0].effective})", field="export rule")
        return max(in_force, key=lambda v: v.effective)

    def classes_of(self, v: RuleVersion) -> list[ClassRule]:
        seen: set[str] = set()
        while not v.classes and v.inherits and v.id not in seen:
            seen.add(v.id)
            v = self.version(v.inherits)
        return v.classes


def rules_path() -> Path:
    return Path(str(resources.files("suanli.catalog") / "data" / RULES_FILE))


def parse_rules(data: Any, file: str | Path | None = None) -> ExportRules:
    if not isinstance(data, dict):
        raise SuanliError("expected a mapping with 'versions:'", file=file)
    try:
        return ExportRules.model_validate(data)
    except ValidationError as exc:
        where, msg = format_validation_error(exc)
        raise SuanliError(msg, file=file, field=where) from None


@lru_cache(maxsize=1)
def load_rules() -> ExportRules:
    """The bundled rules (cached)."""
    path = rules_path()
    return parse_rules(read_yaml(path), path)


@dataclass(frozen=True)
class ExportInfo:
    """TPP, density and 3A090 class of one chip under one rule version."""

    chip_id: str
    rule: str
    tpp: float | None
    tpp_precision: str | None
    tpp_complete: bool
    unknown_precisions: list[str]
    die_area_mm2: float | None
    die_area_source: str | None
    performance_density: float | None
    eccn: str  # "3A090.a", "3A090.b", "not 3A090" or "unknown"
    reason: str
    case_by_case: bool | None = None  # 2026-01 licence review policy, when the rule has one
    notes: list[str] = field(default_factory=list)

    @property
    def controlled(self) -> bool | None:
        """True for 3A090.a/.b, False below the thresholds, None when unknown."""
        if self.eccn == UNKNOWN:
            return None
        return self.eccn != NOT_CONTROLLED

    def as_dict(self) -> dict[str, Any]:
        return {
            "chip_id": self.chip_id, "rule": self.rule, "tpp": self.tpp,
            "tpp_precision": self.tpp_precision, "tpp_complete": self.tpp_complete,
            "unknown_precisions": self.unknown_precisions, "die_area_mm2": self.die_area_mm2,
            "die_area_source": self.die_area_source,
            "performance_density": self.performance_density, "eccn": self.eccn,
            "controlled": self.controlled, "reason": self.reason,
            "case_by_case": self.case_by_case, "notes": self.notes,
        }


def tpp_of(chip: Chip, rules: ExportRules | None = None) -> tuple[float | None, str | None,
                                                                   bool, list[str]]:
    """(TPP, precision giving it, complete?, unknown precisions) from dense catalogue peaks."""
    rules = rules or load_rules()
    best: tuple[float, str] | None = None
    unknown: list[str] = []
    for p, fig in chip.peak.items():
        if fig.status == "unknown":
            unknown.append(p.value)
        if fig.value is None:
            continue
        val = fig.value * rules.bit_length[p]
        if best is None or val > best[0]:
            best = (val, p.value)
    complete = any(chip.peak[p].status != "unknown" for p in TENSOR_PRECISIONS)
    if best is None:
        return None, None, False, unknown
    return best[0], best[1], complete, unknown


def _holds(c: Condition, tpp: float, pd: float | None, io: float | None) -> bool | None:
    """True/False, or None when a needed figure (density, I/O) is unknown."""
    if c.tpp_min is not None and tpp < c.tpp_min:
        return False
    if c.tpp_below is not None and tpp >= c.tpp_below:
        return False
    for lo, hi, v in ((c.pd_min, c.pd_below, pd), (c.io_gbs_min, None, io)):
        if lo is None and hi is None:
            continue
        if v is None:
            return None
        if lo is not None and v < lo:
            return False
        if hi is not None and v >= hi:
            return False
    return True


def classify(chip: Chip, rule: str | None = None, rules: ExportRules | None = None) -> ExportInfo:
    """The 3A090 classification of ``chip`` under rule version ``rule`` (default: the file's
    ``default_version``; a date picks the version in force that day)."""
    rules = rules or load_rules()
    version = rules.version(rule)
    tpp, prec, complete, unknown = tpp_of(chip, rules)
    da = rules.die_area.get(chip.id)
    area = da.mm2 if da else None
    notes: list[str] = []
    if da is None:
        notes.append("applicable die area not in the rules file: performance density unknown")
    elif area is None:
        notes.append(da.note or "applicable die area unknown: performance density unknown")
    pd = tpp / area if (tpp is not None and area) else None
    io = chip.link_gbs
    if not complete and tpp is not None:
        notes.append("no tensor precision (FP16/BF16/FP8/INT8) known: TPP is a lower bound")
    case = None
    if version.license_review is not None and tpp is not None:
        cb = version.license_review.case_by_case
        bw = chip.memory_bw_gbs
        case = (tpp < cb.tpp_below and bw is not None and bw < cb.dram_gbs_below)
    base: dict[str, Any] = dict(chip_id=chip.id, rule=version.id, tpp=tpp, tpp_precision=prec,
                tpp_complete=complete, unknown_precisions=unknown, die_area_mm2=area,
                die_area_source=da.source if da else None, performance_density=pd,
                case_by_case=case, notes=notes)
    if tpp is None:
        return ExportInfo(eccn=UNKNOWN, reason="no dense peak figure known: TPP unknown", **base)
    undecided: list[str] = []
    for cr in rules.classes_of(version):
        for cond in cr.any_of:
            ok = _holds(cond, tpp, pd, io)
            if ok:
                return ExportInfo(eccn=cr.class_, reason=_describe(cond, tpp, pd, io), **base)
            if ok is None:
                undecided.append(cr.class_)
    if undecided:
        need = "performance density (die area unknown)" if pd is None else "I/O rate unknown"
        return ExportInfo(eccn=UNKNOWN, reason=f"TPP {tpp:,.0f} could be "
                          f"{' or '.join(sorted(set(undecided)))}: needs {need}", **base)
    if not complete:
        return ExportInfo(eccn=UNKNOWN, reason=f"known figures give TPP {tpp:,.0f}, below the "
                          "thresholds, but no tensor precision is known", **base)
    figs = f"TPP {tpp:,.0f}" + (f", density {pd:.2f}" if pd is not None else "")
    if any(c.io_gbs_min is not None for cr in rules.classes_of(version) for c in cr.any_of):
        figs += f", I/O {io:g} GB/s" if io is not None else ""
    return ExportInfo(eccn=NOT_CONTROLLED, reason=f"{figs}: below every 3A090 threshold",
                      **base)


def thresholds(rules: ExportRules, version: RuleVersion) -> str:
    """The class conditions of a rule version in words, e.g. ``a: TPP>=4800 | ...``."""
    out = []
    for cr in rules.classes_of(version):
        alts = []
        for c in cr.any_of:
            bits = []
            for name, lo, hi in (("TPP", c.tpp_min, c.tpp_below), ("PD", c.pd_min, c.pd_below),
                                 ("I/O GB/s", c.io_gbs_min, None)):
                if lo is not None and hi is not None:
                    bits.append(f"{lo:g}<={name}<{hi:g}")
                elif lo is not None:
                    bits.append(f"{name}>={lo:g}")
                elif hi is not None:
                    bits.append(f"{name}<{hi:g}")
            alts.append(" and ".join(bits))
        out.append(f"{cr.class_.removeprefix('3A090')}: " + " or ".join(alts))
    return "; ".join(out)


def _describe(c: Condition, tpp: float, pd: float | None, io: float | None) -> str:
    parts = [f"TPP {tpp:,.0f} >= {c.tpp_min:g}" if c.tpp_min is not None else f"TPP {tpp:,.0f}"]
    if c.tpp_below is not None:
        parts[0] += f" (< {c.tpp_below:g})"
    if c.pd_min is not None and pd is not None:
        parts.append(f"density {pd:.2f} >= {c.pd_min:g}"
                     + (f" (< {c.pd_below:g})" if c.pd_below is not None else ""))
    if c.io_gbs_min is not None and io is not None:
        parts.append(f"I/O {io:g} GB/s >= {c.io_gbs_min:g}")
    return " and ".join(parts)


__all__ = ["ExportInfo", "ExportRules", "classify", "load_rules", "parse_rules", "tpp_of"]
