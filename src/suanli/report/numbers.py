"""Numbers as text, in one place for the CLI tables, the metering report and the HTML tables.

* ``fmt`` — a figure of known scale (PFLOPS, tokens/s, CNY): ``digits`` decimals, whole numbers
  with thousands separators from 10,000 up, ``—`` for unknown, ``∞`` for infinite.
* ``sig`` — a generic cell whose scale is not known in advance (HTML tables of mixed columns):
  three significant digits below 1,000 (so 0.00123 stays readable), whole numbers above (so
  1,234 never turns into ``1.23e+03``).
"""

from __future__ import annotations

import math

WHOLE_FROM = 1e4  # fmt: from here on, decimals add nothing a reader uses
SIG_WHOLE_FROM = 1e3  # sig: three significant digits would need an exponent from here on


def fmt(x: float | None, digits: int = 1, unit: str = "") -> str:
    """A possibly-unknown figure of known scale."""
    if x is None:
        return "—"
    if not math.isfinite(x):
        return "∞" if x > 0 else ("-∞" if x < 0 else "—")
    s = f"{x:,.0f}" if abs(x) >= WHOLE_FROM else f"{x:,.{digits}f}"
    return f"{s} {unit}".rstrip()


def sig(c: object) -> str:
    """A table cell of any type: floats to three significant digits, others as text."""
    if c is None:
        return "—"
    if isinstance(c, float):
        if not math.isfinite(c):
            return fmt(c)
        return f"{c:,.3g}" if abs(c) < SIG_WHOLE_FROM else f"{c:,.0f}"
    return str(c)
