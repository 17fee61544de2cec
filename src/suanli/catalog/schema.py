"""Pydantic schema of an accelerator in the catalogue.

Design rules:
* every numeric figure is a :class:`Figure` carrying its source and confidence;
* a figure that is not published is ``value: null`` with a ``note`` -- never invented;
* ``unsupported: true`` means the chip has no such precision / feature, which is different
  from "unknown" (``value: null`` and ``unsupported: false``).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


class Precision(StrEnum):
    FP64 = "fp64"
    FP64_TENSOR = "fp64_tensor"
    FP32 = "fp32"
    TF32 = "tf32"
    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"
    INT8 = "int8"
    INT4 = "int4"
    # 4-bit floating point (E2M1, e.g. NVIDIA NVFP4 / OCP MXFP4 tensor cores). Optional: a chip
    # lists it only when a source publishes it; absent = unknown.
    FP4 = "fp4"


# Precisions every chip must list (null + note when unknown); OPTIONAL_PRECISIONS may be
# listed and are unknown when absent.
OPTIONAL_PRECISIONS: tuple[Precision, ...] = (Precision.FP4,)
PRECISIONS: tuple[Precision, ...] = tuple(p for p in Precision if p not in OPTIONAL_PRECISIONS)
Confidence = Literal["high", "medium", "low"]


class Source(BaseModel):
    """A citable document: URL, repository path or document title."""

    model_config = ConfigDict(extra="forbid")
    ref: str = Field(min_length=3, description="URL, repo path or document title")
    confidence: Confidence = "medium"


_BINOPS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def eval_formula(formula: str, inputs: dict[str, float]) -> float:
    """Evaluate an arithmetic ``formula`` (names, numbers, + - * / and parentheses).

    Raises ValueError naming the problem (syntax, unknown name, unsupported operation).
    """
    try:
        tree = ast.parse(formula, mode="eval")
    except SyntaxError:
        raise ValueError(f"formula {formula!r} is not valid arithmetic") from None

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in inputs:
                raise ValueError(
                    f"formula uses '{node.id}', which is not in inputs "
                    f"({', '.join(inputs) or 'none'})"
                )
            return float(inputs[node.id])
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            right = ev(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise ValueError("formula divides by zero")
            return _BINOPS[type(node.op)](ev(node.left), right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise ValueError(f"formula {formula!r}: only numbers, input names, + - * / and ( )")

    return ev(tree)


class Derived(BaseModel):
    """How a figure was computed from other published numbers.

    ``formula`` is arithmetic over the names in ``inputs`` (e.g.
    ``bus_width_bits / 8 * data_rate_gbps``); the loader checks that it reproduces the value.
    """

    model_config = ConfigDict(extra="forbid")
    formula: str = Field(min_length=1)
    inputs: dict[str, float] = Field(min_length=1)
    # relative tolerance between the formula's result and the recorded value (rounding)
    tolerance: float = Field(default=0.02, ge=0, le=0.2)

    def evaluate(self) -> float:
        return eval_formula(self.formula, self.inputs)


class Figure(BaseModel):
    """One number with provenance.

    ``source`` is either a key of the chip's ``sources`` table or a literal reference.
    Checks are field validators so that an error names the offending field
    (``peak.fp16.value``, ``peak.fp16.source`` ...).
    """

    model_config = ConfigDict(extra="forbid")
    value: float | None = None
    unsupported: bool = False
    source: str | None = Field(default=None, validate_default=True)
    confidence: Confidence | None = None
    note: str | None = Field(default=None, validate_default=True)
    # set when the value was computed from other published numbers (marked "derived")
    derived: Derived | None = None

    @field_validator("value")
    @classmethod
    def _check_value(cls, v: float | None) -> float | None:
        if v is not None:
            if not math.isfinite(v):
                raise ValueError(f"value must be a finite number, got {v}")
            if v < 0:
                raise ValueError(f"value must be >= 0, got {v:g}")
        return v

    @field_validator("unsupported")
    @classmethod
    def _check_unsupported(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("value") is not None:
            raise ValueError("a figure cannot have a value and be unsupported")
        return v

    @field_validator("source")
    @classmethod
    def _check_source(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and not v.strip():
            v = None
        if v is None and info.data.get("value") is not None:
            raise ValueError("a figure with a value needs a source")
        return v

    @field_validator("note")
    @classmethod
    def _check_note(cls, v: str | None, info: ValidationInfo) -> str | None:
        if "value" not in info.data or "unsupported" not in info.data:
            return v  # an earlier field already failed; report that one
        if info.data["value"] is None and not info.data["unsupported"] and not v:
            raise ValueError("an unknown figure (value null) needs a note saying why")
        return v

    @field_validator("derived")
    @classmethod
    def _check_derived(cls, v: Derived | None, info: ValidationInfo) -> Derived | None:
        if v is None or "value" not in info.data:
            return v
        value = info.data["value"]
        if value is None:
            raise ValueError("a derived figure needs the derived value")
        if info.data.get("confidence") is None:
            raise ValueError("a derived figure must state its confidence")
        got = v.evaluate()
        if abs(got - value) > v.tolerance * max(abs(value), 1e-9):
            raise ValueError(
                f"formula {v.formula!r} gives {got:g}, not the recorded value {value:g}"
            )
        return v

    @property
    def is_derived(self) -> bool:
        return self.derived is not None

    @property
    def known(self) -> bool:
        return self.value is not None

    @property
    def status(self) -> Literal["known", "unknown", "unsupported"]:
        """``known`` (has a value), ``unsupported`` (chip lacks it) or ``unknown``."""
        if self.unsupported:
            return "unsupported"
        return "known" if self.value is not None else "unknown"


class Memory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str | None = None
    size_gb: Figure
    bandwidth_gbs: Figure


class Interconnect(BaseModel):
    """Intra-node chip-to-chip link (NVLink, HCCS, MLU-Link, BLink, MetaXLink, PCIe...)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    bandwidth_gbs: Figure  # headline aggregate bidirectional GB/s per device
    host_interface: str | None = None  # e.g. "PCIe 5.0 x16"


class SoftwareStack(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str  # CUDA, HIP/DTK, MUSA, SUPA, CANN, Neuware, XPU, CoreX, MACA, TopsRider, ROCm
    frameworks: list[str] = Field(default_factory=list)
    # How far CUDA code runs unchanged:
    #   native     -- CUDA itself
    #   binary     -- CUDA binaries / APIs run unchanged (API-compatible runtime)
    #   source     -- CUDA-like source, recompiled after light/automatic translation (HIP, MUSA)
    #   port       -- needs a real port to another programming model (CANN, BANG, ...)
    cuda_compat: Literal["native", "binary", "source", "port"]
    note: str | None = None


class ExportControl(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str  # free text: "license required for China since 2023-10-23", "n/a (non-US vendor)"
    entity_list: str | None = None
    source: str | None = None


class Chip(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    name: str
    vendor: str
    vendor_zh: str | None = None
    family: str | None = None
    aliases: list[str] = Field(default_factory=list)
    year: int | None = Field(default=None, ge=2010, le=2035)
    process: str | None = None
    form_factor: str | None = None
    # How many accelerator devices the OS/framework sees per physical part (910C, MLU370-X8,
    # BI-V150 are two dies on one card/module). Catalogue figures are for the whole part.
    devices_per_part: int = Field(default=1, ge=1)
    sources: dict[str, Source] = Field(default_factory=dict)
    memory: Memory
    peak: dict[Precision, Figure]  # dense peak TFLOPS (TOPS for int8/int4)
    sparse_peak: dict[Precision, Figure] = Field(default_factory=dict)
    tdp_w: Figure
    interconnect: Interconnect
    stack: SoftwareStack
    export_control: ExportControl
    # Optional per-chip override of the performance model's efficiency factors
    # (achievable fraction of peak): keys compute, memory, link.
    efficiency: dict[Literal["compute", "memory", "link"], float] = Field(default_factory=dict)
    notes: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Chip:
        missing = [p.value for p in PRECISIONS if p not in self.peak]
        if missing:
            raise ValueError(
                f"peak: missing precision(s) {', '.join(missing)} (list every precision: "
                "null + note when unknown, unsupported: true when the chip lacks it)"
            )
        for name, fig in self._figures():
            if fig.source and fig.source not in self.sources and len(fig.source) < 8:
                raise ValueError(
                    f"{name}.source: '{fig.source}' is not a key of sources "
                    f"(keys: {', '.join(self.sources) or 'none'}); "
                    "use a key or a full reference of 8+ characters"
                )
        for k, v in self.efficiency.items():
            if not 0 < v <= 1:
                raise ValueError(f"efficiency.{k}: must be in (0, 1], got {v}")
        return self

    def _figures(self) -> list[tuple[str, Figure]]:
        out = [
            ("memory.size_gb", self.memory.size_gb),
            ("memory.bandwidth_gbs", self.memory.bandwidth_gbs),
            ("tdp_w", self.tdp_w),
            ("interconnect.bandwidth_gbs", self.interconnect.bandwidth_gbs),
        ]
        out += [(f"peak.{p.value}", f) for p, f in self.peak.items()]
        out += [(f"sparse_peak.{p.value}", f) for p, f in self.sparse_peak.items()]
        return out

    # -- convenience accessors used by the layers above -------------------------------
    def tflops(self, precision: Precision | str) -> float | None:
        """Dense peak at ``precision`` in TFLOPS/TOPS, or None when unknown/unsupported
        (an optional precision the entry does not list is unknown)."""
        fig = self.peak.get(Precision(precision))
        return None if fig is None else fig.value

    def supports(self, precision: Precision | str) -> bool | None:
        """True/False when known, None when the catalogue does not know."""
        fig = self.peak.get(Precision(precision))
        if fig is None:
            return None
        if fig.unsupported:
            return False
        return True if fig.value is not None else None

    @property
    def memory_gb(self) -> float | None:
        return self.memory.size_gb.value

    @property
    def memory_bw_gbs(self) -> float | None:
        return self.memory.bandwidth_gbs.value

    @property
    def link_gbs(self) -> float | None:
        return self.interconnect.bandwidth_gbs.value

    def source_of(self, fig: Figure) -> tuple[str | None, str | None]:
        """(reference, confidence) of a figure, resolving source keys."""
        if fig.source is None:
            return None, fig.confidence
        src = self.sources.get(fig.source)
        if src is None:
            return fig.source, fig.confidence
        return src.ref, fig.confidence or src.confidence
