"""The comparison report of a simulation sweep (``suanli simulate --sweep ... --html``): a
table of means with 95 % confidence intervals across seeds and plotly charts of each figure
against load (or per policy when only one load was run)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from suanli.report.html import Report
from suanli.sim.sweep import FIGURES, SweepResult

# axes shown as columns besides policy (seed is what the interval is taken over)
SHOWN_AXES = ("load", "scale_fleet", "round", "jitter")


def swept_axes(res: SweepResult) -> list[str]:
    """Axes with more than one value, in display order (policy first, never seed)."""
    return ["policy", *[a for a in SHOWN_AXES if len(res.axes.get(a, ())) > 1]]


def ci_text(cell: dict[str, Any], scale: float, digits: int = 3) -> str:
    """``mean ± half-width`` in display units (``—`` when unknown)."""
    mean, half = cell["mean"], cell["ci95"]
    if mean is None:
        return "—"
    m = f"{mean * scale:.{digits}g}"
    if half is None:
        return m
    if half <= 1e-9 * max(abs(mean), 1e-300):  # equal up to rounding: seeds changed nothing
        return f"{m} ± 0"
    return f"{m} ± {half * scale:.2g}"


NARROW = ("jct_mean_s", "jct_p99_s", "wait_mean_s", "utilisation", "preemptions_per_job")


def summary_table(res: SweepResult, wide: bool = True) -> tuple[list[str], list[list[str]]]:
    """Headers and rows (strings) of the comparison table (``wide``: every figure)."""
    axes = swept_axes(res)
    figs = [f for f in FIGURES if wide or f[0] in NARROW]
    heads = [*axes, "seeds", *[label for _, label, _ in figs]]
    rows = []
    for s in res.summary:
        rows.append([*(f"{s[a]:g}" if isinstance(s[a], float) else str(s[a]) for a in axes),
                     str(len(s["seeds"])),
                     *(ci_text(s[key], scale) for key, _, scale in figs)])
    return heads, rows


def sweep_report(res: SweepResult, report: Report, title: str = "") -> None:
    import plotly.graph_objects as go

    report.heading("Sweep comparison")
    n_seeds = max((len(s["seeds"]) for s in res.summary), default=0)
    report.text(f"{len(res.points)} runs{(': ' + title) if title else ''}. Cells: mean over "
                f"{n_seeds} seed(s) ± half-width of the 95 % confidence interval (Student t).")
    heads, rows = summary_table(res)
    report.table(heads, rows)
    policies = list(dict.fromkeys(s["policy"] for s in res.summary))
    by_load = len(res.axes.get("load", ())) > 1
    for key, label, scale in FIGURES[:5]:
        fig = go.Figure()
        for pol in policies:
            ss = [s for s in res.summary if s["policy"] == pol]
            x = [s["load"] for s in ss] if by_load else [pol] * len(ss)
            y = [None if s[key]["mean"] is None else s[key]["mean"] * scale for s in ss]
            err = [0.0 if s[key]["ci95"] is None else s[key]["ci95"] * scale for s in ss]
            kw: dict[str, Any] = {"error_y": {"type": "data", "array": err, "visible": True},
                                  "name": pol}
            if by_load:
                fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", **kw))
            else:
                fig.add_trace(go.Bar(x=x, y=y, **kw))
        fig.update_layout(title=f"{label} (mean, 95 % CI across seeds)",
                          xaxis_title="load (arrival rate x)" if by_load else "policy",
                          yaxis_title=label, height=400)
        if by_load:
            fig.update_xaxes(type="log")
        report.figure(fig)
    report.heading("Runs")
    cols = ["policy", "load", "seed", "scale_fleet", "jitter", "completed", "jct_mean_s",
            "utilisation", "wall_s"]
    report.table(cols, [[p[c] for c in cols] for p in res.points])
    report.heading("Assumptions")
    for n in res.notes:
        report.text(n, note=True)


def write_sweep_html(res: SweepResult, path: str | Path, title: str = "",
                     notes: Sequence[str] = ()) -> Path:
    rep = Report("suanli simulate --sweep", title)
    sweep_report(res, rep, title)
    for n in notes:
        rep.text(n, note=True)
    return rep.write(path)
