"""Helpers for box-drawn tables (``| a | b |``) printed by npu-smi, mx-smi and friends."""

from __future__ import annotations

import re

BUS_ID = re.compile(r"\b[0-9A-Fa-fxX]{4,8}:[0-9A-Fa-fxX]{2}:[0-9A-Fa-fxX]{2}\.[0-9A-Fa-f]\b")
PAIR = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)")


def cells(line: str) -> list[str] | None:
    """The cells of a ``| a | b | c |`` row (without the outer empty ones), else None."""
    s = line.strip()
    if not s.startswith("|") or set(s) <= set("|+-=: "):
        return None
    parts = [p.strip() for p in s.strip("|").split("|")]
    return parts


def version_after(text: str, label: str) -> str | None:
    m = re.search(rf"{label}\s*:?\s*([0-9][\w.\-+]*)", text)
    return m.group(1) if m else None
