"""Simulation tables and HTML sections (``suanli simulate --html`` and combined reports)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from suanli.report.html import Report
from suanli.sim.engine import SimResult

COLUMNS = (
    "policy", "done", "unrunnable", "mean JCT h", "median JCT h", "p99 JCT h", "mean wait h",
    "makespan h", "util %", "energy MWh", "cost kCNY", "rho mean", "rho max", "JCT vs first",
    "wall s",
)


def _h(x: float | None) -> float | None:
    return None if x is None else x / 3600.0


def summary_rows(results: Sequence[SimResult]) -> list[list[Any]]:
    """One row per run (COLUMNS), the last column comparing mean JCT with the first run."""
    rows: list[list[Any]] = []
    base = results[0].metrics["jct_s"]["mean"] if results else None
    for r in results:
        m = r.metrics
        mean = m["jct_s"]["mean"]
        ratio = (mean / base) if (mean and base) else None
        rows.append([
            r.policy, m["completed"], m["unrunnable"], _h(mean), _h(m["jct_s"]["median"]),
            _h(m["jct_s"]["p99"]), _h(m["queueing_s"]["mean"]), _h(m["makespan_s"]),
            100 * m["utilisation"], m["energy_kwh"] / 1000, m["cost_cny"] / 1000,
            m["fairness_rho"]["mean"], m["fairness_rho"]["max"], ratio, m["wall_s"],
        ])
    return rows


def preemption_lines(results: Sequence[SimResult]) -> list[str]:
    """One line per run: preemptions and moves per job, accelerator-hours lost to them."""
    out = []
    for r in results:
        p = r.metrics["preemption"]
        out.append(f"{r.policy}: {p['per_job_mean']:.2f} preemptions + "
                   f"{p['migrations_per_job_mean']:.2f} moves per job, "
                   f"{p['lost_acc_h']:.1f} accelerator-h lost to data staging and restarts")
    return out


def _grid(res: SimResult, n: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times h, accelerators in use, queue length) sampled on a regular grid (step hold)."""
    t = res.timeline_t
    if len(t) == 0:
        z = np.zeros(1)
        return z, z, z
    g = np.linspace(t[0], t[-1], n) if t[-1] > t[0] else t[:1]
    idx = np.clip(np.searchsorted(t, g, side="right") - 1, 0, len(t) - 1)
    used = res.timeline_used.sum(axis=1)[idx]
    return g / 3600.0, used, res.timeline_queue[idx].astype(float)


def sim_report(results: Sequence[SimResult], report: Report, notes: Sequence[str] = ()) -> None:
    """Add the simulation sections (summary, plots, unrunnable jobs, assumptions) to ``report``."""
    import plotly.graph_objects as go

    if not results:
        report.text("No simulation results.", note=True)
        return
    c = results[0].cluster
    report.heading("Scheduling simulation")
    report.text(
        f"{len(results[0].jobs)} jobs on {c.fleet_name}: {c.devices} accelerators in "
        f"{len(c.pools)} pools ({len(c.sites)} sites, {len(c.chip_types)} chip types)."
    )
    report.table(COLUMNS, summary_rows(results))

    fig = go.Figure()
    for r in results:
        jct = np.sort((r.finish - np.array([j.arrival for j in r.jobs]))[r.completed]) / 3600
        if len(jct):
            y = np.arange(1, len(jct) + 1) / len(jct)
            fig.add_trace(go.Scatter(x=jct, y=y, mode="lines", name=r.policy))
    fig.update_layout(title="JCT CDF", xaxis_title="job completion time (h)",
                      yaxis_title="fraction of jobs", xaxis_type="log", height=420)
    report.figure(fig)

    fu, fq = go.Figure(), go.Figure()
    for r in results:
        th, used, q = _grid(r)
        fu.add_trace(go.Scatter(x=th, y=100 * used / max(c.devices, 1), mode="lines",
                                name=r.policy, line_shape="hv"))
        fq.add_trace(go.Scatter(x=th, y=q, mode="lines", name=r.policy, line_shape="hv"))
    fu.update_layout(title="Utilisation over time", xaxis_title="time (h)",
                     yaxis_title="accelerators in use (%)", height=380)
    fq.update_layout(title="Queue length over time", xaxis_title="time (h)",
                     yaxis_title="jobs waiting", height=380)
    report.figure(fu)
    report.figure(fq)

    fs = go.Figure()
    for ct in c.chip_types:
        fs.add_trace(go.Bar(
            name=ct, x=[r.policy for r in results],
            y=[100 * r.metrics["by_chip_type"][ct]["share"] for r in results],
        ))
    fs.update_layout(barmode="stack", title="Share of delivered device-hours per chip type",
                     yaxis_title="%", height=400)
    report.figure(fs)

    report.heading("Utilisation per pool")
    report.table(
        ["pool", "devices", *[r.policy for r in results]],
        [[p.label, p.devices, *[100 * r.metrics["utilisation_by_pool"][p.label] for r in results]]
         for p in c.pools],
    )
    for key, label in (("by_chip_type", "chip type"), ("by_site", "site")):
        names = list(results[0].metrics[key])
        report.table(
            [label, "devices", *[f"{r.policy} util %" for r in results]],
            [[n, results[0].metrics[key][n]["devices"],
              *[100 * r.metrics[key][n]["utilisation"] for r in results]] for n in names],
        )
    report.heading("Delivered compute and energy")
    precs = sorted({k for r in results for k in r.metrics["eflops_h_by_precision"]})
    report.table(
        ["policy", *[f"EFLOPS·h {p}" for p in precs], "energy kWh", "cost CNY", "CO2 kg"],
        [[r.policy, *[r.metrics["eflops_h_by_precision"].get(p, 0.0) for p in precs],
          r.metrics["energy_kwh"], r.metrics["cost_cny"], r.metrics["carbon_kg"]]
         for r in results],
    )
    unr = results[0].metrics["unrunnable_reasons"]
    report.heading("Jobs that could not run")
    if unr:
        report.table(["reason", "jobs"], [[u["reason"], u["jobs"]] for u in unr])
    else:
        report.text("Every job could run somewhere in the fleet.")
    report.heading("Assumptions")
    for n in [*notes, *results[0].notes]:
        report.text(n, note=True)
    unknown = results[0].metrics.get("energy_unknown_for") or []
    if unknown:
        report.text("TDP unknown in the catalogue, so energy, cost and carbon leave out the busy "
                    f"time on: {', '.join(unknown)} (the totals are lower bounds)", note=True)


def write_sim_html(results: Sequence[SimResult], path: str | Path,
                   notes: Sequence[str] = ()) -> Path:
    rep = Report("suanli simulate", "trace-driven scheduling simulation")
    sim_report(results, rep, notes)
    return rep.write(path)
