"""CSV rows as pydantic models whose errors name file, row, column and problem.

A trace loader declares one model per row kind; its fields are the CSV columns (a column the
file lacks takes the field's default). :func:`parse_row` turns the first validation error into
one :class:`~suanli.errors.SuanliError` line, e.g. ``pods.csv: row 7: num_gpu: 'x' is not a
number``: the same wording the hand-written checks used, so messages stay stable.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

M = TypeVar("M", bound="Row")


class Row(BaseModel):
    """Base of CSV row models: unknown columns are ignored, strings are stripped."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


def _g(x: float) -> str:
    return f"{x:g}"


def number(*, ge: float | None = None, gt: float | None = None, le: float | None = None,
           whole: bool = False, optional: bool = False) -> BeforeValidator:
    """A numeric cell: finite, in bounds, optionally a whole number; empty = ``None`` when
    ``optional`` (declare the field ``float | None``)."""

    def check(raw: Any) -> float | None:
        text = "" if raw is None else str(raw).strip()
        if text == "":
            if optional:
                return None
            raise PydanticCustomError("number", "is empty")
        try:
            v = float(text)
        except ValueError:
            raise PydanticCustomError("number", "'{raw}' is not a number", {"raw": text}) from None
        if not math.isfinite(v):
            raise PydanticCustomError("number", "'{raw}' is not a finite number", {"raw": text})
        for bad, what in ((ge is not None and v < ge, f">= {_g(ge or 0)}"),
                          (gt is not None and v <= gt, f"> {_g(gt or 0)}"),
                          (le is not None and v > le, f"<= {_g(le or 0)}")):
            if bad:
                raise PydanticCustomError("number", "must be {bound}, got {raw}",
                                          {"bound": what, "raw": text})
        if whole and v != int(v):
            raise PydanticCustomError("number", "must be a whole number, got {raw}",
                                      {"raw": text})
        return v

    return BeforeValidator(check)


def flag() -> BeforeValidator:
    """A 0/1 cell (also true/false, yes/no; empty = false)."""

    def check(raw: Any) -> bool:
        v = ("" if raw is None else str(raw)).strip().casefold()
        if v in ("", "0", "false", "no"):
            return False
        if v in ("1", "true", "yes"):
            return True
        raise PydanticCustomError("flag", "expected 0/1, got '{raw}'", {"raw": v})

    return BeforeValidator(check)


def names() -> BeforeValidator:
    """A ``a|b|c`` cell as a frozenset (empty = ``None``)."""

    def check(raw: Any) -> frozenset[str] | None:
        parts = frozenset(x.strip() for x in str(raw or "").split("|") if x.strip())
        return parts or None

    return BeforeValidator(check)


def parse_row(model: type[M], rec: dict[str, str], file: Path, where: str) -> M:
    """``rec`` (column -> cell) as ``model``; the first error as a one-line SuanliError."""
    from suanli.errors import SuanliError

    try:
        return model.model_validate(rec)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = err.get("loc") or ()
        col = str(loc[0]) if loc else None
        raise SuanliError(str(err["msg"]), file=file, where=where, field=col) from None
