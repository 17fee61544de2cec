"""Load the bundled catalogue plus user YAML files, and resolve chip names."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from suanli.catalog.schema import Chip
from suanli.errors import SuanliError

ENV_VAR = "SUANLI_CATALOG"


def _norm(name: str) -> str:
    """Normalise a chip name for lookup: case, spaces, dashes, underscores, dots ignored."""
    return re.sub(r"[\s\-_./()]+", "", name).casefold()


def format_validation_error(exc: ValidationError) -> tuple[str, str]:
    """(field path, problem) of the first error of a pydantic ValidationError."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        msg = "required field is missing"
    elif err["type"] == "extra_forbidden":
        msg = "unknown field"
    return loc, msg


def read_yaml(path: Path) -> Any:
    """Read a YAML file; missing or malformed files raise SuanliError naming the file."""
    if not path.exists():
        raise SuanliError("file not found", file=path)
    if path.is_dir():
        raise SuanliError("is a directory, expected a YAML file", file=path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuanliError(f"cannot read: {exc}", file=path) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SuanliError(f"malformed YAML: {problem}", file=path, where=where) from None


def parse_chips(data: Any, file: str | Path) -> list[Chip]:
    """Validate the ``chips:`` list of one catalogue file."""
    if not isinstance(data, dict) or not isinstance(data.get("chips"), list):
        raise SuanliError("expected a mapping with a 'chips:' list", file=file)
    chips: list[Chip] = []
    for i, raw in enumerate(data["chips"]):
        label = f"chip #{i + 1}"
        if isinstance(raw, dict) and raw.get("id"):
            label = f"chip '{raw['id']}'"
        if not isinstance(raw, dict):
            raise SuanliError("each chip must be a mapping", file=file, where=label)
        try:
            chips.append(Chip.model_validate(raw))
        except ValidationError as exc:
            field, problem = format_validation_error(exc)
            raise SuanliError(problem, file=file, where=label, field=field) from None
    return chips


class Catalog:
    """An ordered set of chips with name/alias resolution."""

    def __init__(self, chips: Iterable[Chip]) -> None:
        self._chips: dict[str, Chip] = {}
        for chip in chips:
            self._chips[chip.id] = chip  # later files override earlier ones by id
        self._index: dict[str, str] = {}
        for chip in self._chips.values():
            for key in (chip.id, chip.name, *chip.aliases):
                self._index.setdefault(_norm(key), chip.id)

    def __iter__(self) -> Iterator[Chip]:
        return iter(self._chips.values())

    def __len__(self) -> int:
        return len(self._chips)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _norm(name) in self._index

    @property
    def ids(self) -> list[str]:
        return list(self._chips)

    def get(self, name: str) -> Chip:
        """Resolve an id, name, alias or Chinese name ("910B", "深算二号", "k100")."""
        key = _norm(name)
        if key in self._index:
            return self._chips[self._index[key]]
        # unique prefix / substring match as a convenience
        hits = sorted({cid for k, cid in self._index.items() if key and key in k})
        if len(hits) == 1:
            return self._chips[hits[0]]
        if hits:
            raise SuanliError(f"chip '{name}' is ambiguous: could be {', '.join(hits[:8])}")
        raise SuanliError(
            f"unknown chip '{name}' (try `suanli chips list`; {len(self)} chips catalogued)"
        )


def bundled_files() -> list[Path]:
    root = resources.files("suanli.catalog") / "data"
    return sorted(Path(str(p)) for p in root.iterdir() if str(p).endswith((".yaml", ".yml")))


def user_files(extra: Iterable[str | Path] | None = None) -> list[Path]:
    files = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    files += [Path(p) for p in (extra or [])]
    return files


@lru_cache(maxsize=1)
def _bundled() -> tuple[Chip, ...]:
    chips: list[Chip] = []
    for path in bundled_files():
        chips += parse_chips(read_yaml(path), path)
    return tuple(chips)


def load_catalog(extra: Iterable[str | Path] | None = None) -> Catalog:
    """Bundled chips, then files in $SUANLI_CATALOG, then ``extra`` (later overrides earlier)."""
    chips = list(_bundled())
    for path in user_files(extra):
        chips += parse_chips(read_yaml(path), path)
    return Catalog(chips)
