"""Tiny server-side SVG charts (no JavaScript, no external assets): a step line over time,
a histogram and grouped bars. Every label is escaped."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

W, H = 560, 200
L, R, T, B = 48, 16, 22, 28


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e3:
        return f"{v / 1e3:.3g}k"
    if a >= 1:
        return f"{v:.3g}"
    return f"{v:.2g}"


def _frame(title: str, ymax: float, ylabel: str, xlabels: list[tuple[float, str]]) -> list[str]:
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" class="chart" '
           f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>',
           f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" class="plot"/>']
    for i in range(5):
        y = T + (H - T - B) * (1 - i / 4)
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{L - 4}" y="{y + 4:.1f}" class="ytick">'
                   f'{escape(_fmt(ymax * i / 4))}</text>')
    for i, (x, lab) in enumerate(xlabels):
        cls = "xtick end" if i == len(xlabels) - 1 and i > 0 else "xtick"
        out.append(f'<text x="{x:.1f}" y="{H - 8}" class="{cls}">{escape(lab)}</text>')
    out.append(f'<text x="4" y="12" class="ylabel">{escape(ylabel)}</text>')
    return out


def step_chart(points: Sequence[tuple[float, float]], title: str, ylabel: str,
               ymax: float | None = None, percent: bool = False) -> str:
    """A step line of (POSIX time, value) points."""
    if not points:
        return ""
    t0, t1 = points[0][0], points[-1][0]
    span = max(t1 - t0, 1e-6)
    top = ymax if ymax is not None else max(max(v for _, v in points) * 1.1, 1e-9)
    scale = 100.0 if percent else 1.0

    def X(t: float) -> float:
        return L + (W - L - R) * (t - t0) / span

    def Y(v: float) -> float:
        return T + (H - T - B) * (1 - min(v / top, 1.0))

    ticks = [(X(t0 + span * i / 4), datetime.fromtimestamp(t0 + span * i / 4, UTC)
              .strftime("%H:%M:%S")) for i in range(5)]
    out = _frame(title, top * scale, ylabel, ticks)
    d = [f"M{X(points[0][0]):.1f},{Y(points[0][1]):.1f}"]
    prev = points[0][1]
    for t, v in points[1:]:
        d.append(f"L{X(t):.1f},{Y(prev):.1f}L{X(t):.1f},{Y(v):.1f}")
        prev = v
    out.append(f'<path d="{"".join(d)}" class="line"/></svg>')
    return "".join(out)


def histogram(values: Sequence[float], title: str, xlabel: str, bins: int = 20) -> str:
    vals = [v for v in values if math.isfinite(v)]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    if hi <= lo:
        hi = lo + 1.0
    counts = [0] * bins
    for v in vals:
        counts[min(int((v - lo) / (hi - lo) * bins), bins - 1)] += 1
    top = max(counts) * 1.1
    bw = (W - L - R) / bins
    ticks = [(L + (W - L - R) * i / 4, _fmt(lo + (hi - lo) * i / 4) + (xlabel if i == 4 else ""))
             for i in range(5)]
    out = _frame(title, top, "jobs", ticks)
    for i, c in enumerate(counts):
        if c:
            h = (H - T - B) * c / top
            out.append(f'<rect x="{L + i * bw + 1:.1f}" y="{H - B - h:.1f}" width="{bw - 2:.1f}" '
                       f'height="{h:.1f}" class="bar"><title>{c} job(s)</title></rect>')
    out.append("</svg>")
    return "".join(out)


def bars(labels: Sequence[str], values: Sequence[float | None], title: str, unit: str) -> str:
    """One bar per label (None = no figure)."""
    known = [v for v in values if v is not None and math.isfinite(v)]
    if not known:
        return ""
    top = max(max(known) * 1.15, 1e-9)
    n = len(labels)
    bw = (W - L - R) / max(n, 1)
    out = _frame(title, top, unit, [])
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        x = L + i * bw
        out.append(f'<text x="{x + bw / 2:.1f}" y="{H - 8}" class="xtick">{escape(lab)}</text>')
        if v is None or not math.isfinite(v):
            continue
        h = (H - T - B) * v / top
        out.append(f'<rect x="{x + bw * 0.2:.1f}" y="{H - B - h:.1f}" width="{bw * 0.6:.1f}" '
                   f'height="{h:.1f}" class="bar bar{i % 4}"><title>{escape(lab)}: '
                   f'{escape(_fmt(v))} {escape(unit)}</title></rect>'
                   f'<text x="{x + bw / 2:.1f}" y="{H - B - h - 3:.1f}" class="xtick">'
                   f'{escape(_fmt(v))}</text>')
    out.append("</svg>")
    return "".join(out)
