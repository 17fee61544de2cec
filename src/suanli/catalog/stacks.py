"""Per-stack software facts (``catalog/data/stacks.yaml``): PyTorch build, collective library,
``torch.distributed`` backend name and device string, each with a source.

A chip belongs to the stack whose ``match`` list contains the first word of the chip's
``stack.name`` (``"DTK (HIP)"`` -> ``dtk``). User files (``--stacks FILE``) add or replace
stacks by id.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from suanli.catalog.loader import format_validation_error, read_yaml
from suanli.catalog.schema import Chip, Confidence
from suanli.errors import SuanliError

STACKS_FILE = "stacks.yaml"


class StackSource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: str = Field(min_length=3)
    confidence: Confidence = "medium"
    date: dt.date | None = None


class Fact(BaseModel):
    """A text fact with provenance; ``value: null`` needs a note saying why it is unknown."""

    model_config = ConfigDict(extra="forbid")
    value: str | None = None
    source: str | None = None
    confidence: Confidence | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Fact:
        if self.value is not None and not self.source:
            raise ValueError("source: a fact with a value needs a source")
        if self.value is None and not self.note:
            raise ValueError("note: an unknown fact (value null) needs a note saying why")
        return self


class Stack(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    name: str
    vendors: list[str] = Field(default_factory=list)
    match: list[str] = Field(min_length=1)
    pytorch_build: Fact
    collective: Fact
    dist_backend: Fact
    device: Fact

    def facts(self) -> dict[str, Fact]:
        return {
            "pytorch_build": self.pytorch_build,
            "collective": self.collective,
            "dist_backend": self.dist_backend,
            "device": self.device,
        }


def _first_word(name: str) -> str:
    m = re.match(r"\s*([^\s(]+)", name)
    return m.group(1).casefold() if m else ""


class StackTable:
    """Stacks by id, their sources, and the chip -> stack mapping."""

    def __init__(self, stacks: Iterable[Stack], sources: dict[str, StackSource]) -> None:
        self._stacks: dict[str, Stack] = {}
        for s in stacks:
            self._stacks[s.id] = s
        self.sources = dict(sources)

    def __iter__(self) -> Iterator[Stack]:
        return iter(self._stacks.values())

    def __len__(self) -> int:
        return len(self._stacks)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.resolve(key) is not None

    @property
    def ids(self) -> list[str]:
        return list(self._stacks)

    def get(self, key: str) -> Stack:
        s = self.resolve(key)
        if s is None:
            raise SuanliError(f"unknown stack '{key}' (known: {', '.join(self._stacks)})")
        return s

    def resolve(self, key: str) -> Stack | None:
        """An id (``cann``), a name (``CANN (torch_npu)``) or a match word (``CANN``)."""
        k = key.strip().casefold()
        if k in self._stacks:
            return self._stacks[k]
        for s in self._stacks.values():
            if k == s.name.casefold() or k in (m.casefold() for m in s.match):
                return s
        return None

    def stack_of(self, chip: Chip) -> str | None:
        """Stack id of a chip, or None when its ``stack.name`` matches no stack."""
        word = _first_word(chip.stack.name)
        for s in self._stacks.values():
            if word in (m.casefold() for m in s.match):
                return s.id
        return None

    def source_ref(self, fact: Fact) -> tuple[str | None, str | None]:
        if fact.source is None:
            return None, fact.confidence
        src = self.sources.get(fact.source)
        if src is None:
            return fact.source, fact.confidence
        return src.ref, fact.confidence or src.confidence


def parse_stacks(data: Any, file: str | Path) -> tuple[list[Stack], dict[str, StackSource]]:
    if not isinstance(data, dict) or not isinstance(data.get("stacks", []), list):
        raise SuanliError("expected a mapping with a 'stacks:' list", file=file)
    extra = sorted(str(k) for k in data if k not in ("stacks", "sources"))
    if extra:
        raise SuanliError(f"unknown top-level key(s) {', '.join(extra)}", file=file)
    sources: dict[str, StackSource] = {}
    for key, raw in (data.get("sources") or {}).items():
        try:
            sources[str(key)] = StackSource.model_validate(raw)
        except ValidationError as exc:
            field, problem = format_validation_error(exc)
            raise SuanliError(problem, file=file, where=f"source '{key}'", field=field) from None
    stacks: list[Stack] = []
    for i, raw in enumerate(data.get("stacks") or []):
        label = f"stack '{raw.get('id')}'" if isinstance(raw, dict) else f"stack #{i + 1}"
        if not isinstance(raw, dict):
            raise SuanliError("each stack must be a mapping", file=file, where=label)
        try:
            stack = Stack.model_validate(raw)
        except ValidationError as exc:
            field, problem = format_validation_error(exc)
            raise SuanliError(problem, file=file, where=label, field=field) from None
        for fname, fact in stack.facts().items():
            if fact.source and fact.source not in sources and len(fact.source) < 8:
                raise SuanliError(
                    f"'{fact.source}' is not a key of sources; use a key or a full reference",
                    file=file, where=label, field=f"{fname}.source",
                )
        stacks.append(stack)
    return stacks, sources


def bundled_stacks_file() -> Path:
    return Path(str(resources.files("suanli.catalog") / "data" / STACKS_FILE))


@lru_cache(maxsize=1)
def _bundled() -> tuple[tuple[Stack, ...], tuple[tuple[str, StackSource], ...]]:
    path = bundled_stacks_file()
    stacks, sources = parse_stacks(read_yaml(path), path)
    return tuple(stacks), tuple(sources.items())


def load_stacks(extra: Iterable[str | Path] | None = None) -> StackTable:
    """Bundled stacks, then user files (later files replace stacks by id)."""
    b_stacks, b_sources = _bundled()
    stacks = list(b_stacks)
    sources = dict(b_sources)
    for p in extra or []:
        path = Path(p)
        more, more_src = parse_stacks(read_yaml(path), path)
        stacks += more
        sources.update(more_src)
    return StackTable(stacks, sources)


@lru_cache(maxsize=1)
def default_stacks() -> StackTable:
    """The bundled stack table (cached; used by the scheduler's allowed-stacks filter)."""
    return load_stacks()


def stack_ids(names: Iterable[str], table: StackTable | None = None) -> frozenset[str]:
    """Normalise stack ids/names (``CANN``, ``cann``, ``CANN (torch_npu)``) to ids.

    An unknown name raises SuanliError naming it."""
    t = table or default_stacks()
    out: set[str] = set()
    for n in names:
        s = t.resolve(n)
        if s is None:
            raise SuanliError(f"unknown stack '{n}' (known: {', '.join(t.ids)})")
        out.add(s.id)
    return frozenset(out)
