"""The one number formatter shared by CLI tables, the metering report and HTML tables."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from suanli.report.numbers import fmt, sig


def test_fmt_thresholds_and_unknowns() -> None:
    assert fmt(None) == "—"
    assert fmt(math.inf) == "∞" and fmt(-math.inf) == "-∞" and fmt(math.nan) == "—"
    assert fmt(9999.94) == "9,999.9"
    assert fmt(12345.6) == "12,346"
    assert fmt(3.14159, 2, "TB/s") == "3.14 TB/s"


def test_sig_never_uses_an_exponent_for_ordinary_sizes() -> None:
    assert sig(0.00123) == "0.00123"
    assert sig(999.4) == "999"
    assert sig(1234.5) == "1,234"  # not 1.23e+03
    assert sig(None) == "—" and sig("H100") == "H100" and sig(7) == "7"


@given(st.floats(min_value=-1e15, max_value=1e15, allow_nan=False))
def test_sig_and_fmt_have_no_exponent_from_1e_minus_3_up(x: float) -> None:
    if abs(x) >= 1e-3:
        assert "e" not in sig(x)
    assert "e" not in fmt(x)
