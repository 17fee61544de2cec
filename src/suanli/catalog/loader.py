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


_FORM_WORDS = re.compile(r"(sxm\d?|hgx|dgx|oam|nvl\d*|nvidia|tesla)")
_MEM_SIZE = re.compile(r"(?<![a-z0-9])\d+\s*(?:gb|gib|g)(?![a-z0-9])", re.IGNORECASE)


def _loose(name: str) -> str:
    """Normalised name without form-factor words and memory sizes."""
    spaced = name.replace("-", " ").replace("_", " ")
    return _FORM_WORDS.sub("", _norm(_MEM_SIZE.sub(" ", spaced)))


_PATH_PREFIX = re.compile(r"^([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*): (.+)$", re.S)


def _one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace so a message stays on one line; shorten very long input echoes."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_validation_error(exc: ValidationError) -> tuple[str, str]:
    """(field path, problem) of the first error of a pydantic ValidationError.

    Model-level checks phrase their message as ``"<field path>: <problem>"``; that path is
    appended to the location so every error names the exact field.
    """
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"] if p != "[key]"]
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        msg = "required field is missing"
    elif err["type"] == "extra_forbidden":
        msg = "unknown field"
    m = _PATH_PREFIX.match(msg)
    if m and err["type"] == "value_error":
        loc.append(m.group(1))
        msg = m.group(2)
    return ".".join(loc) or "(top level)", _one_line(msg)


def read_yaml(path: Path) -> Any:
    """Read a YAML file; missing or malformed files raise SuanliError naming the file."""
    if not path.exists():
        raise SuanliError("file not found", file=path)
    if path.is_dir():
        raise SuanliError("is a directory, expected a YAML file", file=path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuanliError(f"cannot read: {_one_line(str(exc))}", file=path) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SuanliError(f"malformed YAML: {_one_line(problem)}", file=path, where=where) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # e.g. an impossible date such as 2024-13-45 raises ValueError inside PyYAML
        raise SuanliError(f"malformed YAML: {_one_line(str(exc))}", file=path) from None


def _chip_label(i: int, raw: Any) -> str:
    if isinstance(raw, dict) and isinstance(raw.get("id"), str | int) and str(raw["id"]).strip():
        return f"chip '{_one_line(str(raw['id']), 60)}'"
    return f"chip #{i + 1}"


def parse_chips(data: Any, file: str | Path) -> list[Chip]:
    """Validate the ``chips:`` list of one catalogue file."""
    if not isinstance(data, dict) or not isinstance(data.get("chips"), list):
        raise SuanliError("expected a mapping with a 'chips:' list", file=file)
    extra = sorted(str(k) for k in data if k != "chips")
    if extra:
        raise SuanliError(
            f"unknown top-level key(s) {', '.join(extra)}; expected only 'chips'", file=file
        )
    chips: list[Chip] = []
    seen: set[str] = set()
    for i, raw in enumerate(data["chips"]):
        label = _chip_label(i, raw)
        if not isinstance(raw, dict):
            raise SuanliError("each chip must be a mapping", file=file, where=label)
        try:
            chip = Chip.model_validate(raw)
        except ValidationError as exc:
            field, problem = format_validation_error(exc)
            raise SuanliError(problem, file=file, where=label, field=field) from None
        if chip.id in seen:
            raise SuanliError("duplicate chip id in this file", file=file, where=label, field="id")
        seen.add(chip.id)
        chips.append(chip)
    return chips


class Catalog:
    """An ordered set of chips with name/alias resolution."""

    def __init__(self, chips: Iterable[Chip]) -> None:
        self._chips: dict[str, Chip] = {}
        for chip in chips:
            self._chips[chip.id] = chip  # later files override earlier ones by id
        # ids win over names, names over aliases; among equals the first chip keeps the key
        self._index: dict[str, str] = {}
        for keys in (
            lambda c: [c.id],
            lambda c: [c.name],
            lambda c: list(c.aliases),
        ):
            for chip in self._chips.values():
                for key in keys(chip):
                    if _norm(key):
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
        if not key:
            raise SuanliError("empty chip name")
        if key in self._index:
            return self._chips[self._index[key]]
        # unique prefix / substring match as a convenience
        hits = sorted({cid for k, cid in self._index.items() if key and key in k})
        if len(hits) == 1:
            return self._chips[hits[0]]
        loose = self._loose_match(name)
        if loose is not None:
            return loose
        if hits:
            raise SuanliError(f"chip '{name}' is ambiguous: could be {', '.join(hits[:8])}")
        import difflib

        close = difflib.get_close_matches(key, list(self._index), n=3, cutoff=0.5)
        names = list(dict.fromkeys(self._chips[self._index[k]].name for k in close))
        hint = f"did you mean {', '.join(names)}? " if names else ""
        raise SuanliError(
            f"unknown chip '{name}' ({hint}try `suanli chips list`; {len(self)} chips catalogued)"
        )

    def _loose_match(self, name: str) -> Chip | None:
        """Match ignoring form-factor words and memory size ("H100-SXM-80GB" -> H100 SXM5),
        using the memory size, when given, to choose among variants."""
        key = _loose(name)
        if not key:
            return None
        cands = {cid for k, cid in self._index.items() if _loose(k) == key}
        m = re.search(r"(\d+)\s*g(?:b|ib)?\b", name, re.IGNORECASE)
        if m and len(cands) > 1:
            gb = float(m.group(1))
            cands = {c for c in cands if self._chips[c].memory_gb == gb} or cands
        return self._chips[cands.pop()] if len(cands) == 1 else None


# Data files in catalog/data/ that are not chip lists (read by their own modules).
NON_CHIP_FILES = frozenset({"stacks.yaml", "export_rules.yaml"})


def bundled_files() -> list[Path]:
    root = resources.files("suanli.catalog") / "data"
    return sorted(
        Path(str(p)) for p in root.iterdir()
        if str(p).endswith((".yaml", ".yml")) and Path(str(p)).name not in NON_CHIP_FILES
    )


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
    """Bundled chips, then files in $SUANLI_CATALOG, then ``extra`` (later overrides earlier).

    A user chip whose name or alias already belongs to another chip is an error (otherwise the
    alias would silently resolve to the other chip).
    """
    chips = list(_bundled())
    user: list[tuple[Path, Chip]] = []
    for path in user_files(extra):
        parsed = parse_chips(read_yaml(path), path)
        chips += parsed
        user += [(path, c) for c in parsed]
    catalog = Catalog(chips)
    for path, chip in user:
        if catalog.get(chip.id) is not chip:
            continue  # overridden again by a later file
        for field, keys in (("name", [chip.name]), ("aliases", chip.aliases)):
            for key in keys:
                owner = catalog._index.get(_norm(key))
                if owner is not None and owner != chip.id:
                    raise SuanliError(
                        f"'{key}' is already a name or alias of chip '{owner}'",
                        file=path,
                        where=f"chip '{chip.id}'",
                        field=field,
                    )
    return catalog
