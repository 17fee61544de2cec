"""Minimal self-contained HTML report writer: sections of text, tables and plotly figures."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from suanli.errors import SuanliError
from suanli.report.numbers import sig

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI','Noto Sans SC',sans-serif;margin:2rem auto;
max-width:1200px;color:#1d232a;padding:0 1rem}
h1{border-bottom:2px solid #c0392b;padding-bottom:.3rem}
h2{margin-top:2rem;color:#2c3e50}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d5d8dc;padding:.25rem .6rem;text-align:right}
th{background:#f4f6f7} td:first-child,th:first-child{text-align:left}
.note{color:#566573;font-size:.9rem}
"""


@dataclass
class Report:
    title: str
    subtitle: str = ""
    _parts: list[str] = field(default_factory=list)
    _has_plot: bool = False

    def heading(self, text: str) -> None:
        self._parts.append(f"<h2>{html.escape(text)}</h2>")

    def text(self, text: str, note: bool = False) -> None:
        cls = ' class="note"' if note else ""
        self._parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(sig(c))}</td>" for c in r) + "</tr>"
            for r in rows
        )
        self._parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def figure(self, fig: Any) -> None:
        """Add a plotly figure (plotly.js is embedded once, so the file works offline)."""
        include = "inline" if not self._has_plot else False
        self._has_plot = True
        self._parts.append(fig.to_html(full_html=False, include_plotlyjs=include))

    def render(self) -> str:
        sub = f"<p class='note'>{html.escape(self.subtitle)}</p>" if self.subtitle else ""
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{sub}{''.join(self._parts)}</body></html>"
        )

    def write(self, path: str | Path) -> Path:
        """Write the report; an OS error (read-only folder, a file where a folder should be,
        full disk) becomes one SuanliError line naming the path."""
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(self.render(), encoding="utf-8")
        except OSError as exc:
            raise SuanliError(f"cannot write the report: {exc.strerror or exc}", file=p) from None
        return p


