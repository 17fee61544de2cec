"""Vendors whose tool output format we could not find documented publicly.

Enflame (``efsmi``) and Biren (``brsmi``): the probe reports whether the tool is installed, but
does not guess at its output. When a documented sample exists, give it a real parser like the
other modules (see docs/executors.md).
"""

from __future__ import annotations

from suanli.probes.base import Parsed, Probe, Unparseable


class _Undocumented(Probe):
    def parse(self, text: str, tool: str | None = None) -> Parsed:
        raise Unparseable(
            f"{tool or self.tools[0]} is installed but its output format is not publicly "
            "documented; suanli does not parse it yet"
        )


class EnflameProbe(_Undocumented):
    name = "enflame"
    vendor = "Enflame"
    tools = ("efsmi",)


class BirenProbe(_Undocumented):
    name = "biren"
    vendor = "Biren"
    tools = ("brsmi",)
