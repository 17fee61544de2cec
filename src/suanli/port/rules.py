"""Port-check rules as sourced data: what each finding kind means on each target stack.

Two bundled files (``port/data/rules.yaml`` and ``port/data/packages.yaml``) plus user files
(``--rules FILE``, ``$SUANLI_PORT_RULES``). A user file has the same format; its entries
replace bundled ones per rule id and per stack, its packages replace packages by name.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from suanli.catalog.loader import format_validation_error, read_yaml
from suanli.catalog.schema import Confidence
from suanli.errors import SuanliError

Outcome = Literal["unchanged", "shim", "port", "blocked", "unknown"]
OUTCOMES: tuple[Outcome, ...] = ("unchanged", "shim", "port", "blocked", "unknown")
ENV_VAR = "SUANLI_PORT_RULES"
REF_MIN = 8  # a literal source reference must be at least this long


class RuleSource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: str = Field(min_length=3)
    confidence: Confidence = "medium"
    date: dt.date | None = None


class StackRule(BaseModel):
    """What a finding kind means on one stack."""

    model_config = ConfigDict(extra="forbid")
    outcome: Outcome
    source: str | None = None
    shim: str | None = None
    note: str | None = None
    confidence: Confidence | None = None

    @model_validator(mode="after")
    def _check(self) -> StackRule:
        if self.outcome == "unknown":
            if not self.note:
                raise ValueError("note: an unknown outcome needs a note saying what is missing")
        elif not self.source:
            raise ValueError(f"source: outcome '{self.outcome}' needs a source")
        return self


class ShimEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shim: str = Field(min_length=3)
    source: str


class RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    family: str = "python"
    title: str = ""
    default: Outcome = "unknown"
    default_source: str | None = None
    default_note: str | None = None
    inherit: str | None = None
    catalog_precision: Literal["fp8", "tf32"] | None = None
    catalog_outcome: Outcome = "port"
    stacks: dict[str, StackRule] = Field(default_factory=dict)


class PackageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    imports: list[str] = Field(default_factory=list)
    pip: list[str] = Field(default_factory=list)
    pip_prefix: list[str] = Field(default_factory=list)
    title: str | None = None
    default: Outcome = "port"
    default_source: str | None = None
    default_note: str | None = None
    stacks: dict[str, StackRule] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The outcome of one rule on one stack, with its shim text and source reference."""

    outcome: Outcome
    shim: str | None
    note: str | None
    source: str | None  # resolved reference text
    confidence: str | None


def norm_dist(name: str) -> str:
    """PEP 503 normalisation of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).casefold()


@dataclass
class RuleBook:
    rules: dict[str, RuleSpec] = field(default_factory=dict)
    packages: dict[str, PackageSpec] = field(default_factory=dict)
    shims: dict[str, ShimEntry] = field(default_factory=dict)
    sources: dict[str, RuleSource] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    # -- lookup tables built on demand ------------------------------------------------
    def import_index(self) -> dict[str, str]:
        """Top-level or dotted import name -> package name."""
        out: dict[str, str] = {}
        for name, pkg in self.packages.items():
            for imp in pkg.imports:
                out.setdefault(imp, name)
        return out

    def package_for_dist(self, dist: str) -> str | None:
        d = norm_dist(dist)
        for name, pkg in self.packages.items():
            if d in (norm_dist(p) for p in pkg.pip):
                return name
        for name, pkg in self.packages.items():
            if any(d.startswith(norm_dist(p)) for p in pkg.pip_prefix):
                return name
        return None

    def rule_ids(self) -> list[str]:
        return [*self.rules, *(f"pkg.{p}" for p in self.packages)]

    def title(self, rule_id: str) -> str:
        if rule_id.startswith("pkg."):
            pkg = self.packages.get(rule_id[4:])
            if pkg is not None:
                return pkg.title or f"CUDA-specific package {rule_id[4:]}"
        spec = self.rules.get(rule_id)
        return spec.title if spec else rule_id

    def family(self, rule_id: str) -> str:
        if rule_id.startswith("pkg."):
            return "package"
        spec = self.rules.get(rule_id)
        return spec.family if spec else "other"

    def _ref(self, source: str | None) -> tuple[str | None, str | None]:
        if source is None:
            return None, None
        src = self.sources.get(source)
        if src is None:
            return source, None
        return src.ref, src.confidence

    def _entry(self, rule_id: str, stack: str, depth: int = 0) -> StackRule | None:
        if rule_id.startswith("pkg."):
            pkg = self.packages.get(rule_id[4:])
            if pkg is None:
                return None
            if stack in pkg.stacks:
                return pkg.stacks[stack]
            if stack == "cuda":
                return StackRule(outcome="unchanged", source="nvidia-target",
                                 note="the package targets NVIDIA CUDA")
            return StackRule(
                outcome=pkg.default,
                source=pkg.default_source or ("n/a" if pkg.default != "unknown" else None),
                note=pkg.default_note or (f"no evidence for {rule_id[4:]} on this stack"
                                          if pkg.default == "unknown" else None),
            )
        spec = self.rules.get(rule_id)
        if spec is None:
            return None
        if stack in spec.stacks:
            return spec.stacks[stack]
        if spec.inherit and depth < 8:
            inherited = self._entry(spec.inherit, stack, depth + 1)
            if inherited is not None:
                return inherited
        if spec.default == "unknown":
            return StackRule(outcome="unknown",
                             note=spec.default_note or "no public documentation found")
        return StackRule(outcome=spec.default, source=spec.default_source or "n/a",
                         note=spec.default_note)

    def resolve(self, rule_id: str, stack: str) -> Resolved:
        """Outcome of ``rule_id`` on ``stack``; an unknown rule id is ``unknown``."""
        e = self._entry(rule_id, stack)
        if e is None:
            return Resolved("unknown", None, f"no rule '{rule_id}' in the rule data", None, None)
        shim = e.shim
        src_key = e.source
        if e.outcome == "shim" and shim is None and stack in self.shims:
            shim = self.shims[stack].shim
        ref, conf = self._ref(src_key)
        if src_key == "nvidia-target":
            ref, conf = "the package targets NVIDIA CUDA", "high"
        return Resolved(e.outcome, shim, e.note, ref, e.confidence or conf)


def _label_error(exc: ValidationError, file: str | Path, where: str) -> SuanliError:
    fld, problem = format_validation_error(exc)
    return SuanliError(problem, file=file, where=where, field=fld)


def parse_rule_file(data: Any, file: str | Path, book: RuleBook) -> None:
    """Merge one rules/packages file into ``book`` (later entries win)."""
    if not isinstance(data, dict):
        raise SuanliError("expected a mapping with rules:, packages:, shims:, sources:", file=file)
    known = {"rules", "packages", "shims", "sources", "binary_unknown"}
    extra = sorted(str(k) for k in data if k not in known)
    if extra:
        raise SuanliError(f"unknown top-level key(s) {', '.join(extra)}", file=file)
    for key, raw in (data.get("sources") or {}).items():
        try:
            book.sources[str(key)] = RuleSource.model_validate(raw)
        except ValidationError as exc:
            raise _label_error(exc, file, f"source '{key}'") from None
    for key, raw in (data.get("shims") or {}).items():
        try:
            book.shims[str(key)] = ShimEntry.model_validate(raw)
        except ValidationError as exc:
            raise _label_error(exc, file, f"shim '{key}'") from None
    for key, raw in (data.get("rules") or {}).items():
        try:
            spec = RuleSpec.model_validate(raw)
        except ValidationError as exc:
            raise _label_error(exc, file, f"rule '{key}'") from None
        old = book.rules.get(str(key))
        if old is not None:
            upd = {k: getattr(spec, k) for k in spec.model_fields_set if k != "stacks"}
            spec = old.model_copy(update={**upd, "stacks": {**old.stacks, **spec.stacks}})
        if not spec.title:
            raise SuanliError("a new rule needs a title", file=file, where=f"rule '{key}'",
                              field="title")
        book.rules[str(key)] = spec
    for key, raw in (data.get("packages") or {}).items():
        try:
            pkg = PackageSpec.model_validate(raw)
        except ValidationError as exc:
            raise _label_error(exc, file, f"package '{key}'") from None
        old_pkg = book.packages.get(str(key))
        if old_pkg is not None:
            upd = {k: getattr(pkg, k) for k in pkg.model_fields_set if k != "stacks"}
            pkg = old_pkg.model_copy(update={**upd, "stacks": {**old_pkg.stacks, **pkg.stacks}})
        book.packages[str(key)] = pkg
    book.files.append(str(file))


def check_book(book: RuleBook, stack_ids: Iterable[str], file: str = "port rules") -> None:
    """Every source key exists (or is a long literal), every stack id is known."""
    stacks = set(stack_ids)

    def check(where: str, sr: StackRule | ShimEntry | None, src: str | None) -> None:
        if src and src not in book.sources and len(src) < REF_MIN:
            raise SuanliError(f"'{src}' is not a key of sources (and too short to be a "
                              "reference)", file=file, where=where, field="source")

    for rid, spec in book.rules.items():
        if spec.inherit and spec.inherit not in book.rules:
            raise SuanliError(f"inherits unknown rule '{spec.inherit}'", file=file,
                              where=f"rule '{rid}'", field="inherit")
        check(f"rule '{rid}'", None, spec.default_source)
        if spec.default != "unknown" and not spec.default_source:
            raise SuanliError("a default other than unknown needs default_source", file=file,
                              where=f"rule '{rid}'", field="default_source")
        for st, sr in spec.stacks.items():
            if st not in stacks:
                raise SuanliError(f"unknown stack '{st}' (known: {', '.join(sorted(stacks))})",
                                  file=file, where=f"rule '{rid}'", field=f"stacks.{st}")
            check(f"rule '{rid}' stack '{st}'", sr, sr.source)
    for pid, pkg in book.packages.items():
        check(f"package '{pid}'", None, pkg.default_source)
        if pkg.default != "unknown" and not pkg.default_source:
            raise SuanliError("a default other than unknown needs default_source", file=file,
                              where=f"package '{pid}'", field="default_source")
        for st, sr in pkg.stacks.items():
            if st not in stacks:
                raise SuanliError(f"unknown stack '{st}'", file=file,
                                  where=f"package '{pid}'", field=f"stacks.{st}")
            check(f"package '{pid}' stack '{st}'", sr, sr.source)
    for st, sh in book.shims.items():
        if st not in stacks:
            raise SuanliError(f"unknown stack '{st}'", file=file, where=f"shim '{st}'")
        check(f"shim '{st}'", sh, sh.source)


def bundled_rule_files() -> list[Path]:
    root = resources.files("suanli.port") / "data"
    return [Path(str(root / "rules.yaml")), Path(str(root / "packages.yaml"))]


@lru_cache(maxsize=1)
def _bundled_data() -> tuple[tuple[Path, Any], ...]:
    return tuple((p, read_yaml(p)) for p in bundled_rule_files())


def user_rule_files(extra: Iterable[str | Path] | None = None) -> list[Path]:
    files = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    return files + [Path(p) for p in (extra or [])]


def load_rules(extra: Iterable[str | Path] | None = None,
               stack_ids: Iterable[str] | None = None) -> RuleBook:
    """Bundled rules and packages, then user files; validated against the stack ids."""
    book = RuleBook()
    for path, data in _bundled_data():
        parse_rule_file(data, path, book)
    for path in user_rule_files(extra):
        parse_rule_file(read_yaml(path), path, book)
    if stack_ids is None:
        from suanli.catalog.stacks import load_stacks

        stack_ids = load_stacks().ids
    check_book(book, stack_ids, file=book.files[-1] if len(book.files) > 2 else "port rules")
    return book
