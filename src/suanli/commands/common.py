"""Shared helpers for CLI commands: console, JSON/CSV output, and the one validation layer at the
edge of the CLI.

Every option that takes a number or a path declares its physical range here
(:func:`num_option`, :func:`out_file_option`, :func:`out_dir_option`, :func:`in_file_option`), so a
bad value (NaN, ±inf, negative price, zero devices, an unwritable path) stops before any work with
one :class:`~suanli.errors.SuanliError` naming the option. Keep this module light: it is imported
when the CLI starts, so no numpy, scipy, plotly or pydantic here.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from rich.console import Console

from suanli.errors import SuanliError
from suanli.report.numbers import fmt as fmt


def _width(stream: Any) -> int | None:
    """Rich wraps at 80 columns when not on a terminal; tables read better wider in files/CI."""
    if "COLUMNS" in os.environ or stream.isatty():
        return None
    return 200


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))

# the click that typer runs on: vendored as typer._click since typer 0.2x, else the package
click: Any = getattr(typer.core, "_click", None) or getattr(typer.core, "click")  # noqa: B009

# Default tables are designed to fit this many columns; `--wide` shows every column.
NARROW_COLUMNS = 100
WIDE_COLUMNS = 250

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
WideOpt = Annotated[
    bool, typer.Option("--wide", help="Show every column (tables need ~200 columns).")
]
CatalogOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--catalog",
        help="Extra catalogue YAML (adds or overrides chips; also $SUANLI_CATALOG).",
    ),
]

# Sane upper bounds for counts: far beyond any real deployment, far below an overflow.
MAX_DEVICES = 1_000_000
MAX_COUNT = 1_000_000_000


# -- numbers -------------------------------------------------------------------------------


def _name(param: Any) -> str:
    opts = getattr(param, "opts", None) or []
    longest = max(opts, key=len) if opts else None
    return longest or (getattr(param, "name", None) or "value").upper()


def check_number(
    value: float | int,
    field: str,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> float | int:
    """``value`` if it is finite and inside the bounds, else a SuanliError naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SuanliError(f"expected a number, got {value!r}", field=field)
    if not math.isfinite(value):
        raise SuanliError(f"must be a finite number, got {value}", field=field)
    ok = ((gt is None or value > gt) and (ge is None or value >= ge)
          and (lt is None or value < lt) and (le is None or value <= le))
    if not ok:
        raise SuanliError(f"must be {_range_text(gt, ge, lt, le, ' and ')}, got {_g(value)}",
                          field=field)
    return value


def _g(x: float | int | None) -> str:
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}" if abs(x) >= 100_000 else str(x)
    return f"{x:g}"


def number_callback(
    *, gt: float | None = None, ge: float | None = None, lt: float | None = None,
    le: float | None = None,
) -> Callable[..., Any]:
    """A typer callback checking a number option (or each value of a repeated one)."""

    def callback(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        if value is None or ctx.resilient_parsing:
            return value
        items = value if isinstance(value, list | tuple) else [value]
        for v in items:
            check_number(v, _name(param), gt=gt, ge=ge, lt=lt, le=le)
        return value

    return callback


def num_option(
    *names: str, help: str | None = None, gt: float | None = None, ge: float | None = None,
    lt: float | None = None, le: float | None = None, **kw: Any,
) -> Any:
    """``typer.Option`` for a number with its physical range (always finite)."""
    rng = _range_text(gt, ge, lt, le)
    text = " ".join(x for x in (help, f"[{rng}]" if rng else None) if x) or None
    return typer.Option(*names, help=text, callback=number_callback(gt=gt, ge=ge, lt=lt, le=le),
                        **kw)


def _range_text(gt: float | None, ge: float | None, lt: float | None, le: float | None,
                sep: str = ", ") -> str:
    lo = f"> {_g(gt)}" if gt is not None else (f">= {_g(ge)}" if ge is not None else "")
    hi = f"< {_g(lt)}" if lt is not None else (f"<= {_g(le)}" if le is not None else "")
    return sep.join(x for x in (lo, hi) if x)


def parse_count(value: Any) -> int:
    """An integer that may be written ``1e11`` or ``1_000`` (it must still be whole)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().replace("_", "")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        f = float(text)
    except ValueError:
        raise ValueError(f"'{value}' is not an integer") from None
    if not math.isfinite(f) or f != int(f):
        raise ValueError(f"'{value}' is not a whole number")
    return int(f)


def count_option(*names: str, help: str | None = None, le: int = MAX_COUNT, ge: int = 1,
                 **kw: Any) -> Any:
    """``typer.Option`` for a count: an integer in ``[ge, le]`` (``1e11`` is accepted)."""
    return num_option(*names, help=help, ge=ge, le=le, parser=parse_count, **kw)


# -- paths ---------------------------------------------------------------------------------


def check_writable_dir(directory: Path, field: str) -> None:
    """The directory exists (or can be created) and a file can be written into it."""
    d = directory if str(directory) else Path(".")
    if d.exists() and not d.is_dir():
        raise SuanliError(f"'{d}' exists and is not a directory", field=field)
    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=d, prefix=".suanli-write-test-"):
            pass
    except OSError as exc:
        raise SuanliError(f"cannot create files in '{d}' ({exc.strerror or exc})",
                          field=field) from None


def check_out_file(path: Path, field: str) -> Path:
    """An output file we can create or overwrite (its folder must be writable)."""
    if path.is_dir():
        raise SuanliError(f"'{path}' is a directory; give a file name", field=field)
    check_writable_dir(path.parent, field)
    if path.exists() and not os.access(path, os.W_OK):
        raise SuanliError(f"cannot overwrite '{path}': permission denied", field=field)
    return path


def _out_file_cb(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Any:
    if value is None or ctx.resilient_parsing:
        return value
    return check_out_file(value, _name(param))


def _out_dir_cb(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Any:
    if value is None or ctx.resilient_parsing:
        return value
    check_writable_dir(value, _name(param))
    return value


def _in_file_cb(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
    if value is None or ctx.resilient_parsing:
        return value
    for p in value if isinstance(value, list | tuple) else [value]:
        check_in_file(Path(p), _name(param))
    return value


def check_in_file(path: Path, field: str) -> Path:
    """An input file that exists, is a regular file and can be read."""
    if not path.exists():
        raise SuanliError("file not found", file=path, field=field)
    if path.is_dir():
        raise SuanliError("is a directory, expected a file", file=path, field=field)
    if not os.access(path, os.R_OK):
        raise SuanliError("cannot read the file: permission denied", file=path, field=field)
    return path


def out_file_option(*names: str, help: str | None = None, **kw: Any) -> Any:
    """``typer.Option`` for a file the command writes (checked writable before any work)."""
    return typer.Option(*names, help=help, callback=_out_file_cb, **kw)


def out_dir_option(*names: str, help: str | None = None, **kw: Any) -> Any:
    """``typer.Option`` for a folder the command writes into (created; checked writable)."""
    return typer.Option(*names, help=help, callback=_out_dir_cb, **kw)


def in_file_option(*names: str, help: str | None = None, **kw: Any) -> Any:
    """``typer.Option`` for a file the command reads (must exist and be readable)."""
    return typer.Option(*names, help=help, callback=_in_file_cb, **kw)


def write_text(path: Path, text: str, field: str | None = None) -> Path:
    """Write an output file; an OS error becomes a one-line SuanliError."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SuanliError(f"cannot write: {exc.strerror or exc}", file=path, field=field) from None
    return path


# -- name=value options --------------------------------------------------------------------


def check_names(given: Sequence[str], known: Sequence[str], field: str, what: str) -> None:
    """Every name in ``given`` must be one of ``known``: a typo is an error, never ignored."""
    unknown = [n for n in given if n not in known]
    if unknown:
        valid = ", ".join(sorted(known)) or "none"
        raise SuanliError(f"unknown {what} {', '.join(repr(u) for u in unknown)}; valid: {valid}",
                          field=field)


# -- precision -----------------------------------------------------------------------------


def resolve_precision(name: str, field: str = "--precision") -> Any:
    """A :class:`~suanli.catalog.schema.Precision` from a user's spelling, or a SuanliError
    listing the valid ones. Shared by every command that takes a precision."""
    import re

    from suanli.catalog.schema import Precision

    key = re.sub(r"[\s\-./]+", "_", name.strip()).casefold()
    try:
        return Precision(key)
    except ValueError:
        valid = ", ".join(p.value for p in Precision)  # incl. the optional ones (fp4)
        raise SuanliError(f"unknown precision '{name}'; valid: {valid}", field=field) from None


def _precision_cb(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> Any:
    if value is None or ctx.resilient_parsing:
        return value
    return resolve_precision(value, _name(param)).value


def precision_option(*names: str, help: str | None = None, **kw: Any) -> Any:
    """``typer.Option`` for a precision name (bf16, fp8, ...), normalised and checked."""
    return typer.Option(*names, help=help, callback=_precision_cb, **kw)


# -- output --------------------------------------------------------------------------------


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


def _finite(obj: Any) -> Any:
    """NaN and ±inf are not JSON: they become null (an unknown figure)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def to_json(data: Any) -> str:
    """Strict JSON text (no NaN/Infinity tokens, which most parsers reject)."""
    plain = json.loads(json.dumps(data, default=_default, ensure_ascii=False))
    return json.dumps(_finite(plain), ensure_ascii=False, indent=2, allow_nan=False)


def print_json(data: Any) -> None:
    """Write ``data`` as JSON to stdout (no rich markup, safe for pipes)."""
    sys.stdout.write(to_json(data) + "\n")


def error_json(exc: SuanliError | None = None, *, problem: str | None = None,
               field: str | None = None) -> str:
    """The JSON form of an error: ``{"error": {"file", "entry", "field", "problem"}}``."""
    if exc is not None:
        body = {"file": exc.file, "entry": exc.where, "field": exc.field, "problem": exc.problem}
    else:
        body = {"file": None, "entry": None, "field": field, "problem": problem}
    return json.dumps({"error": body}, ensure_ascii=False)


FORMATS = ("table", "json", "csv")


def _format_cb(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> Any:
    if value is None or ctx.resilient_parsing:
        return value
    v = value.strip().lower()
    if v not in FORMATS:
        raise SuanliError(f"unknown format '{value}'; valid: {', '.join(FORMATS)}",
                          field=_name(param))
    return v


FormatOpt = Annotated[
    str | None,
    typer.Option("--format", help="Output format: table, json or csv (--json = --format json).",
                 callback=_format_cb),
]


def output_format(fmt: str | None, as_json: bool) -> str:
    """The chosen format: ``--format`` wins, ``--json`` means json, default table."""
    if fmt and as_json and fmt != "json":
        raise SuanliError(f"--json contradicts --format {fmt}", field="--format")
    return fmt or ("json" if as_json else "table")


def print_table(renderable: Any, wide: bool = False) -> None:
    """Print a table; ``wide`` lets it grow past the terminal width (for `less -S`, files)."""
    if not wide:
        console.print(renderable)
        return
    old = console.width
    console.width = max(old, WIDE_COLUMNS)
    try:
        console.print(renderable)
    finally:
        console.width = old


def print_csv(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Rows as CSV on stdout (unknown = empty cell)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(headers)
    for r in rows:
        w.writerow(["" if c is None else c for c in r])
    sys.stdout.write(buf.getvalue())


PARALLEL_DIMS = ("tp", "cp", "pp", "ep", "dp")


def layout_text(lay: dict[str, Any], *, details: bool = True) -> str:
    """A training layout in one line: every parallel dimension that is not 1 (tensor, context,
    pipeline, expert, data), then micro-batching, recompute and ZeRO stage when ``details``."""
    dims = [f"{d}{lay[d]}" for d in PARALLEL_DIMS if int(lay.get(d, 1) or 1) != 1]
    if int(lay.get("interleave", 1) or 1) > 1:
        dims.append(f"vpp{lay['interleave']}")
    parts = dims or ["1 device"]
    if details:
        parts.append(f"mb{lay['micro_batch']}x{lay['grad_accum']}")
        parts.append(f"{lay['recompute']} ZeRO-{lay['zero']}")
    return " ".join(parts)
