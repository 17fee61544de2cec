"""Shared helpers for CLI commands: console, JSON output, option types."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console


def _width(stream: Any) -> int | None:
    """Rich wraps at 80 columns when not on a terminal; tables read better wider in files/CI."""
    if "COLUMNS" in os.environ or stream.isatty():
        return None
    return 200


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
CatalogOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--catalog",
        help="Extra catalogue YAML (adds or overrides chips; also $SUANLI_CATALOG).",
    ),
]


def _default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if hasattr(obj, "__dataclass_fields__"):
        return {k: getattr(obj, k) for k in obj.__dataclass_fields__}
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def print_json(data: Any) -> None:
    """Write ``data`` as JSON to stdout (no rich markup, safe for pipes)."""
    sys.stdout.write(json.dumps(data, default=_default, ensure_ascii=False, indent=2) + "\n")


def fmt(x: float | None, digits: int = 1, unit: str = "") -> str:
    """Human formatting of a possibly-unknown number."""
    if x is None:
        return "—"
    s = f"{x:,.0f}" if abs(x) >= 10000.0 else f"{x:,.{digits}f}"
    return f"{s} {unit}".rstrip()
