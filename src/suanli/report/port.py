"""HTML report of a port-check: verdict per stack, then the items grouped by file."""

from __future__ import annotations

from html import escape
from itertools import groupby
from pathlib import Path

from suanli.port.analyze import LABEL, Report

COLOURS = {"unchanged": "#d9f2d9", "shim": "#e6f0ff", "unknown": "#eeeeee",
           "port": "#ffe9cc", "blocked": "#ffd6d6"}
SHORT = {"unchanged": "ok", "shim": "shim", "unknown": "?", "port": "port", "blocked": "blocked"}

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1400px}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 6px;
font-size:13px;vertical-align:top}th{background:#f4f4f4}code{font-size:12px}
h2{margin-top:1.5em}.muted{color:#666}
"""


def _cell(outcome: str, title: str = "") -> str:
    t = f' title="{escape(title)}"' if title else ""
    return f'<td style="background:{COLOURS[outcome]}"{t}>{escape(SHORT[outcome])}</td>'


def render_port_html(report: Report) -> str:
    v_rows = []
    for v in report.verdicts:
        counts = {k: len(v.by_outcome(k)) for k in ("shim", "port", "blocked", "unknown")}  # type: ignore[arg-type]
        reasons = "<br>".join(escape(r) for r in v.reasons()[:4])
        v_rows.append(
            f"<tr><td>{escape(v.stack)}</td><td>{escape(v.name)}</td>"
            f'<td style="background:{COLOURS[v.verdict]}"><b>{escape(v.label)}</b></td>'
            f"<td>{'<br>'.join(f'<code>{escape(s)}</code>' for s in v.shims)}</td>"
            + "".join(f"<td>{counts[k]}</td>" for k in ("port", "blocked", "unknown"))
            + f"<td>{len(v.vendor_files) or ''}</td>"
            + f"<td>{reasons}</td></tr>"
        )
    head = "".join(f"<th>{escape(v.stack)}</th>" for v in report.verdicts)
    sections = []
    index = {v.stack: v for v in report.verdicts}
    per_stack = {sid: iter(v.items) for sid, v in index.items()}
    items_by_finding = []
    for f in report.findings:  # items are in finding order for every stack
        items_by_finding.append((f, {sid: next(it) for sid, it in per_stack.items()}))
    for file, group in groupby(items_by_finding, key=lambda x: x[0].file):
        rows = []
        for f, items in group:
            cells = "".join(
                _cell(i.outcome, " | ".join(x for x in (i.shim, i.note, i.source) if x))
                for i in items.values())
            tm = " (text match)" if f.text_match else ""
            rows.append(f"<tr><td>{f.line}</td><td>{escape(f.rule)}</td>"
                        f"<td><code>{escape(f.evidence)}</code>{tm}</td>{cells}</tr>")
        sections.append(f"<h3><code>{escape(file)}</code></h3><table><tr><th>line</th>"
                        f"<th>rule</th><th>evidence</th>{head}</tr>{''.join(rows)}</table>")
    problems = "".join(f"<tr><td><code>{escape(p.file)}</code></td><td>{escape(p.problem)}</td>"
                       "</tr>" for p in report.problems)
    legend = ", ".join(f"{SHORT[k]} = {LABEL[k]}" for k in COLOURS)  # type: ignore[index]
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>suanli port-check: {escape(report.root)}</title><style>{CSS}</style></head><body>
<h1>port-check: <code>{escape(report.root)}</code></h1>
<p class="muted">{report.files_scanned} files, {report.lines:,} lines, {len(report.findings)}
findings, {len(report.problems)} files with problems, {report.seconds:.2f} s.
Allowed stacks for the scheduler (runs unchanged or with a shim):
<b>{escape(', '.join(report.allowed_stacks()) or 'none')}</b></p>
<h2>Verdict per stack</h2>
<table><tr><th>stack</th><th>name</th><th>verdict</th><th>shim</th><th>port</th>
<th>blocked</th><th>unknown</th><th>files with vendor code</th>
<th>reasons (deciding items)</th></tr>{''.join(v_rows)}</table>
<h2>Findings by file</h2><p class="muted">{escape(legend)}; hover a cell for the shim, note
and source.</p>
{''.join(sections) or '<p>No CUDA-specific code found.</p>'}
<h2>Files not (fully) analysed</h2>
{f'<table><tr><th>file</th><th>problem</th></tr>{problems}</table>' if problems else '<p>none</p>'}
</body></html>
"""


def write_port_html(report: Report, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_port_html(report), encoding="utf-8")
    return p
