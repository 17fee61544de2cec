"""Metering tables and HTML sections (shared by ``suanli meter`` and combined reports)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from suanli.fleet.metering import (
    CLASS_PRECISION,
    CLASS_ZH,
    CLASSES,
    POLICY,
    ComputeClass,
    MeterResult,
    SiteMeter,
    Tally,
)
from suanli.report.html import Report
from suanli.report.numbers import fmt

CLASS_COLOURS = {"general": "#7f8c8d", "intelligent": "#c0392b", "supercomputing": "#2c3e50"}


def cell(t: Tally, scale: float = 1.0, digits: int = 1) -> str:
    """A tally as text: the known sum, plus how many accelerators are unknown."""
    if t.total == 0:
        return "—"
    if t.unknown == t.total:
        return f"unknown ({t.unknown}/{t.total})"
    s = fmt(t.value * scale, digits)
    return f"{s} ({t.unknown}/{t.total} unknown)" if t.unknown else s


def flops(pflops: float) -> str:
    """PFLOPS below 1 EFLOPS, EFLOPS above."""
    return f"{pflops / 1e3:,.3f} EFLOPS" if pflops >= 1e3 else f"{pflops:,.1f} PFLOPS"


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


CLASS_SHORT = {"general": "General", "intelligent": "Intelligent",
               "supercomputing": "Supercomp."}


def class_header(c: ComputeClass) -> str:
    return f"{CLASS_SHORT[c]} {CLASS_ZH[c][:2]} {CLASS_PRECISION[c].upper()}"


COMPUTE_TITLE = "Compute by class, PFLOPS dense peak (each class at its own precision)"
COMPUTE_HEADERS = [
    "Site",
    "Accel.",
    *(class_header(c) for c in CLASSES),
    "FP32-equiv.",
    "Intelligent share",
]


def compute_rows(result: MeterResult) -> list[list[str]]:
    """Per site and total: each class at its own precision, FP32-equivalent, share."""
    rows = []
    for s in [*result.sites, result.total]:
        rows.append(
            [
                s.name,
                f"{s.accelerators:,}",
                *(cell(s.class_pflops[str(c)]) for c in CLASSES),
                cell(s.fp32e_pflops),
                pct(s.intelligent_share),
            ]
        )
    return rows


PRECISION_HEADERS = ["Precision", "Fleet dense peak PFLOPS", "Unknown", "Unsupported"]


def precision_rows(result: MeterResult) -> list[list[str]]:
    rows = []
    for p, t in result.total.compute_pflops.items():
        unit = "POPS" if p.startswith("int") else "PFLOPS"
        rows.append(
            [
                p.upper(),
                f"{fmt(t.value)} {unit}",
                f"{t.unknown} of {t.total}" if t.unknown else "0",
                str(t.unsupported),
            ]
        )
    return rows


RESOURCE_HEADERS = [
    "Site",
    "PUE",
    "Memory TB",
    "HBM TB/s",
    "IT kW",
    "Facility MW",
    "GWh/yr",
    "M CNY/yr",
    "kt CO2/yr",
]
UNKNOWN_HEADER = "* not counted (figure unknown)"


def partial(t: Tally, scale: float = 1.0, digits: int = 1) -> str:
    """The known sum, marked '*' when some accelerators are unknown (see the last column)."""
    if t.total and t.unknown == t.total:
        return "unknown"
    return fmt(t.value * scale, digits) + ("*" if t.unknown else "")


def unknown_summary(s: SiteMeter) -> str:
    parts = [
        f"{label} {t.unknown} of {t.total}"
        for label, t in (("memory", s.memory_tb), ("HBM BW", s.hbm_bw_tbs),
                         ("TDP", s.it_power_kw))
        if t.unknown
    ]
    return "; ".join(parts) or "—"


def resource_rows(result: MeterResult, with_unknown: bool = True) -> list[list[str]]:
    """Per site and total; ``with_unknown`` adds a last column naming what was not counted."""
    rows = []
    for s in [*result.sites, result.total]:
        pue = "—" if s.pue is None else f"{s.pue:.2f}"  # total: facility / IT power
        rows.append(
            [
                s.name,
                pue,
                partial(s.memory_tb),
                partial(s.hbm_bw_tbs, digits=0),
                partial(s.it_power_kw, digits=0),
                partial(s.facility_power_kw, 1e-3, 2),
                partial(s.energy_mwh_year, 1e-3, 2),
                partial(s.cost_cny_year, 1e-6, 2),
                partial(s.carbon_t_year, 1e-3, 2),
                *([unknown_summary(s)] if with_unknown else []),
            ]
        )
    return rows


GROUP_HEADERS = ["Site", "Node group", "Chip", "Accelerators", "Class", "PFLOPS (class basis)",
                 "Why this class"]


def group_rows(result: MeterResult) -> list[list[str]]:
    return [
        [
            g.site,
            g.group,
            g.chip_name,
            f"{g.accelerators:,}",
            f"{g.compute_class} ({CLASS_PRECISION[g.compute_class].upper()})",
            fmt(g.class_pflops),
            g.class_reason,
        ]
        for g in result.groups
    ]


def summary_lines(result: MeterResult) -> list[str]:
    """A few sentences: headline totals and the 35% intelligent-share comparison."""
    t = result.total
    intel = t.class_pflops["intelligent"]
    target = POLICY["target_intelligent_share"]
    share = t.intelligent_share
    n_sites = len(result.sites)
    lines = [
        f"{result.fleet}: {t.accelerators:,} accelerators in {n_sites} "
        f"site{'s' if n_sites != 1 else ''}.",
        f"Intelligent compute (FP16): {flops(intel.value)}"
        + (f" ({intel.note()})" if intel.unknown else "")
        + f"; FP32-equivalent total {flops(t.fp32e_pflops.value)}.",
    ]
    if share is not None:
        verdict = "above" if share >= target else "below"
        lines.append(
            f"Intelligent share {share:.1%} (FP32-equivalent basis; "
            f"{pct(t.intelligent_share_native)} summing each class at its own precision) is "
            f"{verdict} the national "
            f"{target:.0%} target for {POLICY['year']}"
            + (
                " (only accelerators are listed: CPU servers, the general class, are not "
                "described, so this share overstates the facility's)."
                if t.class_accelerators["general"] == 0
                else "."
            )
        )
    power = (
        f"Facility power {t.facility_power_kw.value / 1e3:,.2f} MW; "
        f"{t.energy_mwh_year.value / 1e3:,.2f} GWh/yr, "
        f"{t.cost_cny_year.value / 1e6:,.2f} M CNY/yr, "
        f"{t.carbon_t_year.value / 1e3:,.2f} kt CO2/yr at {result.options.utilisation:.0%} "
        "utilisation"
    )
    if t.it_power_kw.unknown:
        power += (
            f" (TDP unknown for {t.it_power_kw.unknown} of {t.it_power_kw.total} accelerators:"
            " not counted, so these are lower bounds)"
        )
    lines.append(power + ".")
    return lines


# --- plots ---------------------------------------------------------------------------


def _site_list(result: MeterResult) -> list[SiteMeter]:
    return list(result.sites)


def class_bar(result: MeterResult) -> Any:
    """Stacked bar: FP32-equivalent compute per site, split by class."""
    import plotly.graph_objects as go

    sites = _site_list(result)
    conv = result.options.conversion
    fig = go.Figure()
    for c in CLASSES:
        fig.add_bar(
            name=f"{c} {CLASS_ZH[c]}",
            x=[s.name for s in sites],
            y=[s.class_pflops[str(c)].value * conv.factor(c) for s in sites],
            marker_color=CLASS_COLOURS[str(c)],
        )
    fig.update_layout(
        barmode="stack",
        title="Compute by class per site (FP32-equivalent PFLOPS; "
        f"FP16 x {conv.fp16_to_fp32:g}, FP64 x {conv.fp64_to_fp32:g})",
        yaxis_title="PFLOPS (FP32-equivalent)",
        height=420,
    )
    return fig


def chip_pie(result: MeterResult) -> Any:
    import plotly.graph_objects as go

    counts: dict[str, int] = defaultdict(int)
    for g in result.groups:
        counts[f"{g.vendor} {g.chip_name}"] += g.accelerators
    labels = sorted(counts, key=lambda k: -counts[k])
    fig = go.Figure(go.Pie(labels=labels, values=[counts[k] for k in labels], hole=0.35))
    fig.update_layout(title="Accelerators by vendor and chip", height=420)
    return fig


def power_bar(result: MeterResult) -> Any:
    import plotly.graph_objects as go

    sites = _site_list(result)
    it = [s.it_power_kw.value / 1e3 for s in sites]
    overhead = [s.facility_power_kw.value / 1e3 - i for s, i in zip(sites, it, strict=True)]
    fig = go.Figure()
    fig.add_bar(name="accelerator TDP (IT)", x=[s.name for s in sites], y=it,
                marker_color="#c0392b")
    fig.add_bar(name="facility overhead (PUE - 1)", x=[s.name for s in sites], y=overhead,
                marker_color="#95a5a6")
    unknown = [f"{s.name}: {s.it_power_kw.note()}" for s in sites if s.it_power_kw.unknown]
    title = "Power per site (MW)"
    if unknown:
        title += " — TDP unknown for some accelerators, not counted"
    fig.update_layout(barmode="stack", title=title, yaxis_title="MW", height=420)
    return fig


# --- report -------------------------------------------------------------------------


def meter_report(result: MeterResult, report: Report) -> Report:
    """Append the metering sections to ``report`` (and return it)."""
    report.heading(f"Compute metering — {result.fleet}")
    for line in summary_lines(result):
        report.text(line)
    report.heading(COMPUTE_TITLE)
    report.table(COMPUTE_HEADERS, compute_rows(result))
    report.figure(class_bar(result))
    report.heading("Compute by precision (whole fleet, dense peak)")
    report.table(PRECISION_HEADERS, precision_rows(result))
    report.figure(chip_pie(result))
    report.heading("Memory, power, energy, cost and carbon")
    report.table([*RESOURCE_HEADERS, UNKNOWN_HEADER], resource_rows(result))
    report.figure(power_bar(result))
    report.heading("Node groups and their class")
    report.table(GROUP_HEADERS, group_rows(result))
    report.heading("Method and caveats")
    for note in result.notes():
        report.text(note, note=True)
    return report


def build_meter_report(result: MeterResult) -> Report:
    """A stand-alone metering report."""
    sub = f"Fleet file: {result.source}" if result.source else ""
    return meter_report(result, Report(title=f"算力 metering: {result.fleet}", subtitle=sub))


def to_json(result: MeterResult, html: str | None = None) -> dict[str, Any]:
    d = result.as_dict()
    if html:
        d["html"] = html
    d["summary"] = summary_lines(result)
    return d
