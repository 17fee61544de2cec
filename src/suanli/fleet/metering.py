"""Compute metering of a fleet: compute scale by precision and class, memory, power, cost.

Pure functions over a :class:`~suanli.fleet.loader.ResolvedFleet`. The method follows the
convention of Chinese compute statistics (CAICT 《中国算力发展报告(2025)》): general compute
(通用算力) is counted at FP32, intelligent compute (智能算力) at FP16, supercomputing (超算算力)
at FP64 -- each class in its own precision. No official conversion between the classes is
published; the "FP32-equivalent" total uses explicit, configurable factors. See
``docs/metering.md`` and ``../shared/data/reference/compute_policy_and_metering.md`` §2.

Unknown figures are never treated as zero: every sum is a :class:`Tally` that carries how many
accelerators had no published figure (and so are not in the sum).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from suanli.catalog.schema import PRECISIONS, Chip, Precision
from suanli.errors import SuanliError
from suanli.fleet.loader import ResolvedFleet


class ComputeClass(StrEnum):
    GENERAL = "general"
    INTELLIGENT = "intelligent"
    SUPERCOMPUTING = "supercomputing"


CLASSES: tuple[ComputeClass, ...] = tuple(ComputeClass)
CLASS_ZH: dict[ComputeClass, str] = {
    ComputeClass.GENERAL: "通用算力",
    ComputeClass.INTELLIGENT: "智能算力",
    ComputeClass.SUPERCOMPUTING: "超算算力",
}
# The precision each class is measured in (CAICT 2025 convention).
CLASS_PRECISION: dict[ComputeClass, str] = {
    ComputeClass.GENERAL: "fp32",
    ComputeClass.INTELLIGENT: "fp16",
    ComputeClass.SUPERCOMPUTING: "fp64",
}

# National targets for 2025 from the Action Plan (工信部联通信〔2023〕180号).
POLICY: dict[str, Any] = {
    "target_total_eflops": 300.0,
    "target_intelligent_share": 0.35,
    "year": 2025,
    "source": "《算力基础设施高质量发展行动计划》 工信部联通信〔2023〕180号 (2023-10-08), "
    "https://m.sqrb.com.cn/content/2023-10/10/content_112971.html",
    "caveat": "the official total (e.g. 280 EFLOPS, end 2024) mixes precisions with an "
    "unpublished normalisation; a fleet's share computed here is comparable only on the "
    "basis printed next to it",
}

CLASS_SOURCE = (
    "CAICT 《中国算力发展报告(2025)》: general@FP32, AI@FP16, HPC@FP64, "
    "https://www.hengtongglobal.com/info/2025-computing-power-development-report-dem-103145236.html"
)
CONVERSION_SOURCE = (
    "engineering rule of thumb 1 FP64 op ~ 2 FP32 ops ~ 4 FP16 ops (metai/aitrace "
    "ComputationalComplexityPerformance doc); NOT an official conversion -- none is published"
)


# --- configuration ------------------------------------------------------------------


@dataclass(frozen=True)
class Conversion:
    """Factors that turn each class's FLOPS into FP32-equivalent FLOPS.

    The defaults are a rule of thumb, not an official rule: Chinese statistics do not
    publish how FP16, FP32 and FP64 are summed into one total.
    """

    fp16_to_fp32: float = 0.5
    fp64_to_fp32: float = 2.0

    KEYS = ("fp16_to_fp32", "fp64_to_fp32")

    def __post_init__(self) -> None:
        for key in self.KEYS:
            v = getattr(self, key)
            if not (isinstance(v, int | float) and np.isfinite(v) and v > 0):
                raise SuanliError(f"{key} must be a positive number, got {v!r}",
                                  field="--conversion")

    def factor(self, cls: ComputeClass | str) -> float:
        cls = ComputeClass(cls)
        if cls is ComputeClass.INTELLIGENT:
            return self.fp16_to_fp32
        if cls is ComputeClass.SUPERCOMPUTING:
            return self.fp64_to_fp32
        return 1.0

    def describe(self) -> str:
        return (
            f"FP32-equivalent = general(FP32) x 1 + intelligent(FP16) x {self.fp16_to_fp32:g}"
            f" + supercomputing(FP64) x {self.fp64_to_fp32:g}"
        )

    @classmethod
    def from_strings(cls, items: Iterable[str] | None) -> Conversion:
        """Parse ``["fp16_to_fp32=0.5", "fp64_to_fp32=2"]`` (later items win)."""
        values: dict[str, float] = {}
        for item in items or []:
            key, sep, raw = item.partition("=")
            key = key.strip().lower()
            if not sep:
                raise SuanliError(
                    f"expected KEY=VALUE, got {item!r} (keys: {', '.join(cls.KEYS)})",
                    field="--conversion",
                )
            if key not in cls.KEYS:
                raise SuanliError(
                    f"unknown conversion {key!r}; known: {', '.join(cls.KEYS)}",
                    field="--conversion",
                )
            try:
                values[key] = float(raw)
            except ValueError:
                raise SuanliError(
                    f"{key}: {raw.strip()!r} is not a number", field="--conversion"
                ) from None
        return cls(**values)


@dataclass(frozen=True)
class ClassRule:
    """How an accelerator is put into a compute class (first match wins).

    1. the node group's ``compute_class`` field, if set;
    2. ``overrides[chip.id]``, if present;
    3. **general** when FP16 is absent (unsupported), or FP16 <= ``general_max_fp16_over_fp32``
       x FP32: no half-precision speed-up, a CPU-like part (CPUs have strong FP64 too, so this
       test comes before the next one);
    4. **supercomputing** when the part's best FP64 rate (vector or tensor) is at least
       ``hpc_min_fp64_ratio`` x its FP16 rate (its FP32 rate if FP16 is not known): strong
       double precision, as HPC parts have (Hygon K100 0.245, MI250X 0.25; A100 only 0.06);
    5. otherwise **intelligent** (AI accelerators; also the default when figures are unknown,
       since the catalogue holds accelerators).
    """

    hpc_min_fp64_ratio: float = 0.2
    general_max_fp16_over_fp32: float = 1.0
    overrides: Mapping[str, ComputeClass] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("hpc_min_fp64_ratio", "general_max_fp16_over_fp32"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise SuanliError(f"must be a positive number, got {v!r}",
                                  field=f"--{name.replace('_', '-')}")

    def classify(self, chip: Chip, explicit: str | None = None) -> tuple[ComputeClass, str]:
        """(class, reason in words) for one chip."""
        if explicit:
            return ComputeClass(explicit), "set in the fleet file (compute_class)"
        if chip.id in self.overrides:
            return ComputeClass(self.overrides[chip.id]), "override for this chip"
        fp64 = best_fp64(chip)
        fp32 = chip.tflops(Precision.FP32)
        fp16 = chip.tflops(Precision.FP16)
        if chip.supports(Precision.FP16) is False:
            return ComputeClass.GENERAL, "no FP16 arithmetic (CPU-like)"
        if fp16 and fp32 and fp16 <= self.general_max_fp16_over_fp32 * fp32:
            return ComputeClass.GENERAL, f"FP16 {fp16:g} <= FP32 {fp32:g} TFLOPS (no AI speed-up)"
        ref, ref_name = (fp16, "FP16") if fp16 else (fp32, "FP32")
        if fp64 and ref and fp64 >= self.hpc_min_fp64_ratio * ref:
            return (
                ComputeClass.SUPERCOMPUTING,
                f"FP64 {fp64:g} >= {self.hpc_min_fp64_ratio:g} x {ref_name} {ref:g} TFLOPS",
            )
        if fp16 and fp32:
            return ComputeClass.INTELLIGENT, f"AI accelerator: FP16 = {fp16 / fp32:.1f} x FP32"
        return ComputeClass.INTELLIGENT, "accelerator (default; FP16/FP32 ratio unknown)"

    @classmethod
    def from_strings(cls, items: Iterable[str] | None, **kw: Any) -> ClassRule:
        """Parse chip overrides ``["hygon_k100=intelligent"]``."""
        overrides: dict[str, ComputeClass] = {}
        for item in items or []:
            chip, sep, raw = item.partition("=")
            try:
                if not sep or not chip.strip():
                    raise ValueError
                overrides[chip.strip()] = ComputeClass(raw.strip().lower())
            except ValueError:
                raise SuanliError(
                    f"expected CHIP_ID=CLASS with CLASS one of {', '.join(CLASSES)}, "
                    f"got {item!r}",
                    field="--class",
                ) from None
        return cls(overrides=overrides, **kw)


@dataclass(frozen=True)
class MeterOptions:
    conversion: Conversion = field(default_factory=Conversion)
    rule: ClassRule = field(default_factory=ClassRule)
    # Average accelerator load over the year (0..1). An assumption: the default 0.6 is the
    # policy floor for rack utilisation (上架率 >= 60%), a different but related quantity.
    utilisation: float = 0.6
    # Power drawn at zero load as a fraction of TDP; 0 = power proportional to load.
    idle_power_fraction: float = 0.0
    hours_per_year: float = 8760.0

    def __post_init__(self) -> None:
        for name in ("utilisation", "idle_power_fraction"):
            v = getattr(self, name)
            if not (np.isfinite(v) and 0.0 <= v <= 1.0):
                raise SuanliError(f"must be between 0 and 1, got {v!r}",
                                  field=f"--{name.replace('_', '-')}")
        if not (np.isfinite(self.hours_per_year) and self.hours_per_year > 0):
            raise SuanliError(f"must be > 0, got {self.hours_per_year!r}", field="hours_per_year")

    @property
    def load_factor(self) -> float:
        """Average power as a fraction of TDP."""
        return self.idle_power_fraction + (1.0 - self.idle_power_fraction) * self.utilisation


# --- results ------------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """A sum over accelerators plus how many had no figure (not counted, never zeroed)."""

    value: float
    unknown: int
    total: int
    unsupported: int = 0  # parts that lack the feature: they contribute 0 legitimately

    @property
    def complete(self) -> bool:
        return self.unknown == 0

    def note(self) -> str:
        return f"{self.unknown} of {self.total} accelerators unknown" if self.unknown else ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "unknown": self.unknown,
            "unsupported": self.unsupported,
            "accelerators": self.total,
            "note": self.note(),
        }


@dataclass(frozen=True)
class GroupMeter:
    site: str
    group: str
    chip_id: str
    chip_name: str
    vendor: str
    accelerators: int
    compute_class: ComputeClass
    class_reason: str
    class_pflops: float | None  # at the class's precision; None = unknown
    fp32e_pflops: float | None
    memory_tb: float | None
    it_power_kw: float | None

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["compute_class"] = str(self.compute_class)
        d["class_precision"] = CLASS_PRECISION[self.compute_class]
        return d


@dataclass(frozen=True)
class SiteMeter:
    """Metering of one site, or of the whole fleet (``name == "total"``)."""

    name: str
    region: str | None
    accelerators: int
    pue: float | None  # the site's PUE; for the total, facility / IT power (effective)
    compute_pflops: dict[str, Tally]  # dense peak per precision
    class_pflops: dict[str, Tally]  # each class at its own precision
    class_accelerators: dict[str, int]
    fp32e_pflops: Tally
    memory_tb: Tally
    hbm_bw_tbs: Tally
    it_power_kw: Tally
    facility_power_kw: Tally
    energy_mwh_year: Tally
    cost_cny_year: Tally
    carbon_t_year: Tally

    intelligent_fp32e_pflops: float  # the intelligent class, FP32-equivalent

    @property
    def intelligent_share(self) -> float | None:
        """Intelligent compute / total, both FP32-equivalent (known figures only)."""
        tot = self.fp32e_pflops.value
        return self.intelligent_fp32e_pflops / tot if tot > 0 else None

    @property
    def intelligent_share_native(self) -> float | None:
        """Intelligent / sum of the three classes each at its own precision (no conversion)."""
        tot = sum(t.value for t in self.class_pflops.values())
        return self.class_pflops[ComputeClass.INTELLIGENT].value / tot if tot > 0 else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "region": self.region,
            "accelerators": self.accelerators,
            "pue": self.pue,
            "compute_pflops": {k: v.as_dict() for k, v in self.compute_pflops.items()},
            "class_pflops": {k: v.as_dict() for k, v in self.class_pflops.items()},
            "class_accelerators": dict(self.class_accelerators),
            "fp32e_pflops": self.fp32e_pflops.as_dict(),
            "intelligent_fp32e_pflops": self.intelligent_fp32e_pflops,
            "intelligent_share": self.intelligent_share,
            "intelligent_share_native": self.intelligent_share_native,
            "memory_tb": self.memory_tb.as_dict(),
            "hbm_bw_tbs": self.hbm_bw_tbs.as_dict(),
            "it_power_kw": self.it_power_kw.as_dict(),
            "facility_power_kw": self.facility_power_kw.as_dict(),
            "energy_mwh_year": self.energy_mwh_year.as_dict(),
            "cost_cny_year": self.cost_cny_year.as_dict(),
            "carbon_t_year": self.carbon_t_year.as_dict(),
        }


@dataclass(frozen=True)
class MeterResult:
    fleet: str
    source: str | None
    options: MeterOptions
    groups: list[GroupMeter]
    sites: list[SiteMeter]
    total: SiteMeter

    def notes(self) -> list[str]:
        """Plain-language caveats that must travel with the numbers."""
        c = self.options.conversion
        out = [
            f"Classes: general@FP32, intelligent@FP16, supercomputing@FP64 ({CLASS_SOURCE}).",
            f"{c.describe()}. There is NO official conversion between the classes; "
            f"these factors are a choice ({CONVERSION_SOURCE}).",
            "Compute is dense peak (no sparsity) summed over accelerators.",
            f"Power = TDP x count x PUE (accelerators only: hosts, network and storage "
            f"excluded). Energy at {self.options.utilisation:.0%} utilisation, idle power "
            f"{self.options.idle_power_fraction:.0%} of TDP, "
            f"{self.options.hours_per_year:g} h/year.",
        ]
        tot = self.total
        unknown = [f"{c} class: {t.note()}" for c, t in tot.class_pflops.items() if t.unknown]
        unknown += [
            f"{label}: {t.note()}"
            for label, t in (
                ("memory", tot.memory_tb),
                ("HBM bandwidth", tot.hbm_bw_tbs),
                ("TDP (power, energy, cost, carbon)", tot.it_power_kw),
            )
            if t.unknown
        ]
        if unknown:
            out.append("Unknown figures are not counted as zero -- " + "; ".join(unknown) + ".")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "fleet": self.fleet,
            "source": self.source,
            "units": {
                "compute": "PFLOPS (dense peak; POPS for int8/int4)",
                "memory": "TB",
                "hbm_bandwidth": "TB/s",
                "power": "kW",
                "energy": "MWh/year",
                "cost": "CNY/year",
                "carbon": "t CO2/year",
            },
            "options": {
                "conversion": {k: getattr(self.options.conversion, k) for k in Conversion.KEYS},
                "conversion_source": CONVERSION_SOURCE,
                "class_rule": {
                    "hpc_min_fp64_ratio": self.options.rule.hpc_min_fp64_ratio,
                    "general_max_fp16_over_fp32": self.options.rule.general_max_fp16_over_fp32,
                    "overrides": {k: str(v) for k, v in self.options.rule.overrides.items()},
                },
                "class_precision": {str(k): v for k, v in CLASS_PRECISION.items()},
                "class_source": CLASS_SOURCE,
                "utilisation": self.options.utilisation,
                "idle_power_fraction": self.options.idle_power_fraction,
                "hours_per_year": self.options.hours_per_year,
            },
            "policy": POLICY,
            "total": self.total.as_dict(),
            "sites": [s.as_dict() for s in self.sites],
            "groups": [g.as_dict() for g in self.groups],
            "notes": self.notes(),
        }


# --- computation --------------------------------------------------------------------


def best_fp64(chip: Chip) -> float | None:
    """The larger known of FP64 vector and FP64 tensor peak (HPL Rpeak uses the tensor rate)."""
    vals = [v for v in (chip.tflops(Precision.FP64), chip.tflops(Precision.FP64_TENSOR)) if v]
    if vals:
        return max(vals)
    known_zero = [
        v for v in (chip.tflops(Precision.FP64), chip.tflops(Precision.FP64_TENSOR))
        if v is not None
    ]
    return 0.0 if known_zero else None


def _fp64_unsupported(chip: Chip) -> bool:
    return chip.supports(Precision.FP64) is False and chip.supports(Precision.FP64_TENSOR) in (
        False,
        None,
    )


def class_peak_tflops(chip: Chip, cls: ComputeClass) -> float | None:
    """Per-accelerator peak at the class's precision; None when unknown."""
    if cls is ComputeClass.SUPERCOMPUTING:
        return best_fp64(chip)
    return chip.tflops(CLASS_PRECISION[cls])


def _arr(values: Iterable[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def _tally(per_unit: np.ndarray, n: np.ndarray, mask: np.ndarray, scale: float = 1.0,
           unsupported: np.ndarray | None = None) -> Tally:
    """Sum ``n * per_unit * scale`` over ``mask`` rows with known values; count the unknown."""
    unsup = np.zeros_like(mask) if unsupported is None else unsupported
    known = mask & ~np.isnan(per_unit)
    unknown = mask & np.isnan(per_unit) & ~unsup
    value = float(np.sum(n[known] * per_unit[known])) * scale
    return Tally(
        value=value,
        unknown=int(np.sum(n[unknown])),
        total=int(np.sum(n[mask])),
        unsupported=int(np.sum(n[mask & unsup])),
    )


def meter(fleet: ResolvedFleet, options: MeterOptions | None = None) -> MeterResult:
    """Meter a resolved fleet: per site and in total (the total is computed from the same
    per-group arrays, so it equals the sum of the sites up to float rounding)."""
    opt = options or MeterOptions()
    groups = list(fleet.groups())
    sites = fleet.fleet.sites
    n = np.array([g.accelerators for g in groups], dtype=float)
    site_idx = np.array([g.site_index for g in groups], dtype=int)

    peaks = {p.value: _arr(g.chip.tflops(p) for g in groups) for p in PRECISIONS}
    unsup = {
        p.value: np.array([g.chip.supports(p) is False for g in groups], dtype=bool)
        for p in PRECISIONS
    }
    for p in PRECISIONS:  # unsupported precisions contribute exactly 0
        peaks[p.value][unsup[p.value]] = 0.0

    classified = [opt.rule.classify(g.chip, g.group.compute_class) for g in groups]
    cls_arr = np.array([CLASSES.index(c) for c, _ in classified], dtype=int)
    cls_peak = _arr(class_peak_tflops(g.chip, c) for g, (c, _) in zip(groups, classified,
                                                                      strict=True))
    cls_unsup = np.array(
        [
            c is ComputeClass.SUPERCOMPUTING and _fp64_unsupported(g.chip)
            for g, (c, _) in zip(groups, classified, strict=True)
        ],
        dtype=bool,
    )
    cls_peak[cls_unsup] = 0.0
    factors = np.array([opt.conversion.factor(c) for c, _ in classified])
    fp32e = cls_peak * factors

    mem_gb = _arr(g.chip.memory_gb for g in groups)
    bw_gbs = _arr(g.chip.memory_bw_gbs for g in groups)
    tdp_kw = _arr(g.chip.tdp_w.value for g in groups) / 1000.0
    pue = np.array([g.site.pue for g in groups], dtype=float)
    price = np.array([g.site.electricity_price_cny_kwh for g in groups], dtype=float)
    carbon = np.array([g.site.carbon_kg_per_kwh for g in groups], dtype=float)
    fac_kw = tdp_kw * pue
    kwh_year = fac_kw * opt.load_factor * opt.hours_per_year

    def summarise(mask: np.ndarray, name: str, region: str | None, pue_v: float | None
                  ) -> SiteMeter:
        compute = {p: _tally(peaks[p], n, mask, 1e-3, unsup[p]) for p in peaks}
        classes = {
            str(c): _tally(cls_peak, n, mask & (cls_arr == i), 1e-3, cls_unsup)
            for i, c in enumerate(CLASSES)
        }
        it_kw = _tally(tdp_kw, n, mask)
        facility = _tally(fac_kw, n, mask)
        if pue_v is None:
            pue_v = facility.value / it_kw.value if it_kw.value > 0 else None
        intel = classes[str(ComputeClass.INTELLIGENT)]
        return SiteMeter(
            name=name,
            region=region,
            accelerators=int(np.sum(n[mask])),
            pue=pue_v,
            compute_pflops=compute,
            class_pflops=classes,
            class_accelerators={
                str(c): int(np.sum(n[mask & (cls_arr == i)])) for i, c in enumerate(CLASSES)
            },
            fp32e_pflops=_tally(fp32e, n, mask, 1e-3, cls_unsup),
            memory_tb=_tally(mem_gb, n, mask, 1e-3),
            hbm_bw_tbs=_tally(bw_gbs, n, mask, 1e-3),
            it_power_kw=it_kw,
            facility_power_kw=facility,
            energy_mwh_year=_tally(kwh_year, n, mask, 1e-3),
            cost_cny_year=_tally(kwh_year * price, n, mask),
            carbon_t_year=_tally(kwh_year * carbon, n, mask, 1e-3),
            intelligent_fp32e_pflops=intel.value * opt.conversion.fp16_to_fp32,
        )

    site_meters = [
        summarise(site_idx == si, s.name, s.region, s.pue) for si, s in enumerate(sites)
    ]
    total = summarise(np.ones(len(groups), dtype=bool), "total", None, None)

    group_meters = []
    for i, (g, (c, reason)) in enumerate(zip(groups, classified, strict=True)):
        group_meters.append(
            GroupMeter(
                site=g.site.name,
                group=g.label,
                chip_id=g.chip.id,
                chip_name=g.chip.name,
                vendor=g.chip.vendor,
                accelerators=int(n[i]),
                compute_class=c,
                class_reason=reason,
                class_pflops=None if np.isnan(cls_peak[i]) else float(cls_peak[i] * n[i] / 1e3),
                fp32e_pflops=None if np.isnan(fp32e[i]) else float(fp32e[i] * n[i] / 1e3),
                memory_tb=None if np.isnan(mem_gb[i]) else float(mem_gb[i] * n[i] / 1e3),
                it_power_kw=None if np.isnan(tdp_kw[i]) else float(tdp_kw[i] * n[i]),
            )
        )
    return MeterResult(
        fleet=fleet.fleet.name,
        source=str(fleet.source) if fleet.source else None,
        options=opt,
        groups=group_meters,
        sites=site_meters,
        total=total,
    )
