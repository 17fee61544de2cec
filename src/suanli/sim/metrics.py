"""Figures of a simulation run: JCT, queueing, makespan, utilisation, compute, energy, cost,
fairness and the jobs that could not run.

Definitions (also in docs/scheduling.md):

* JCT = finish - arrival; queueing delay = first start - arrival (completed jobs only).
* Utilisation of a pool = device-seconds computing / (devices x makespan).
* Delivered compute = device-hours computing x the chip's dense peak at the job's precision
  (peak-equivalent EFLOPS-hours, not achieved FLOPs).
* Energy = device-hours computing x catalogue TDP x site PUE (idle power not counted);
  cost = energy x site electricity price; carbon = energy x site carbon intensity.
* Finish-time fairness rho = JCT / (time the job would take alone on 1/n of the cluster, n =
  active jobs when it arrived); rho <= 1 means the job did no worse than its fair share.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from suanli.sim.result import SimResult


def _stats(x: np.ndarray) -> dict[str, float | None]:
    if len(x) == 0:
        return {"mean": None, "median": None, "p99": None, "max": None}
    return {
        "mean": float(np.mean(x)),
        "median": float(np.median(x)),
        "p99": float(np.percentile(x, 99)),
        "max": float(np.max(x)),
    }


def summarize(res: SimResult) -> dict[str, Any]:
    c = res.cluster
    arrival = np.array([j.arrival for j in res.jobs])
    done = res.completed
    jct = (res.finish - arrival)[done]
    wait = (res.start - arrival)[done]
    t0 = float(arrival.min()) if len(arrival) else 0.0
    t_end = float(np.nanmax(res.finish)) if done.any() else t0
    makespan = max(t_end - t0, 0.0)
    span = max(makespan, 1e-9)
    devices = np.array([p.devices for p in c.pools], dtype=float)
    util_pool = res.busy_dev_s / (devices * span)
    by_type: dict[str, dict[str, float]] = {}
    by_site: dict[str, dict[str, float]] = {}
    for p, pool in enumerate(c.pools):
        for key, acc in ((pool.chip_type, by_type), (pool.site, by_site)):
            a = acc.setdefault(key, {"devices": 0.0, "busy_dev_h": 0.0})
            a["devices"] += pool.devices
            a["busy_dev_h"] += res.busy_dev_s[p] / 3600
    for acc in (by_type, by_site):
        for a in acc.values():
            a["utilisation"] = a["busy_dev_h"] * 3600 / (a["devices"] * span)
    total_busy = float(res.busy_dev_s.sum())
    for a in by_type.values():
        a["share"] = a["busy_dev_h"] * 3600 / total_busy if total_busy else 0.0
    # Energy only where the catalogue knows the TDP: unknown stays unknown (the busy
    # device-hours it leaves out are reported), so these totals are lower bounds.
    known = np.array([p.power_known for p in c.pools], dtype=bool)
    energy_p = np.where(known, res.busy_dev_s / 3600 * c.power_kw * c.pue, 0.0)  # kWh/pool
    rho = (jct / np.maximum(res.iso_time[done], 1e-9)) if done.any() else np.zeros(0)
    reasons = Counter(res.unrunnable.values())
    started = ~np.isnan(res.start)
    n_started = max(int(started.sum()), 1)
    return {
        "policy": res.policy,
        "jobs": len(res.jobs),
        "completed": int(done.sum()),
        "unrunnable": len(res.unrunnable),
        "unrunnable_reasons": [{"reason": r, "jobs": n} for r, n in reasons.most_common(10)],
        "jct_s": _stats(jct),
        "queueing_s": _stats(wait),
        "makespan_s": makespan,
        "utilisation": float(total_busy / (devices.sum() * span)) if len(devices) else 0.0,
        "utilisation_by_pool": {p.label: float(u) for p, u in zip(c.pools, util_pool, strict=True)},
        "by_chip_type": by_type,
        "by_site": by_site,
        "eflops_h_by_precision": {
            k: v / 3600 / 1e18 for k, v in sorted(res.flops_by_precision.items())
        },
        "energy_kwh": float(energy_p.sum()),
        "cost_cny": float((energy_p * c.price).sum()),
        "carbon_kg": float((energy_p * c.carbon).sum()),
        "fairness_rho": {
            "mean": float(rho.mean()) if len(rho) else None,
            "max": float(rho.max()) if len(rho) else None,
            "share_le_1": float((rho <= 1.0 + 1e-9).mean()) if len(rho) else None,
        },
        "preemption": {
            # over jobs that started at least once
            "per_job_mean": float(res.preemptions.sum() / n_started),
            "per_job_max": int(res.preemptions.max()) if len(res.preemptions) else 0,
            "migrations_per_job_mean": float(res.migrations.sum() / n_started),
            "total": int(res.preemptions.sum()),
            "migrations": int(res.migrations.sum()),
            # accelerator-hours held by jobs without progress (data staging, restart costs)
            "lost_acc_h": float(res.lost_dev_s.sum() / 3600),
            "lost_share_of_busy": float(res.lost_dev_s.sum() / total_busy) if total_busy else 0.0,
        },
        "work_done": float(res.work_done.sum()),
        "events": res.events,
        "wall_s": res.wall_s,
        "events_per_s": res.events / res.wall_s if res.wall_s > 0 else None,
        "scheduler": res.stats,
        "notes": res.notes,
        "energy_unknown_for": sorted({p.chip_type for p in c.pools if not p.power_known}),
        "energy_excluded_busy_dev_h": float(res.busy_dev_s[~known].sum() / 3600),
    }
