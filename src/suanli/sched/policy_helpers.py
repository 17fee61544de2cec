"""Building blocks for policies, computed from a :class:`~suanli.sched.view.SchedulerView`.

Estimates every policy may want (rates as an agnostic policy sees them, time to finish, data
staging time) and the aggregation of jobs into classes that the share LPs solve over. They are
plain functions of the view, so a user's policy uses them exactly as the built-in ones do.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from suanli.sched.job import MILLI
from suanli.sched.view import SchedulerView

INF = np.inf


def seen_rates(view: SchedulerView, slots: np.ndarray, aware: bool) -> np.ndarray:
    """(job x pool) rates as the policy sees them: the real ones (aware), or every pool the
    job can use at the job's mean rate over those pools (agnostic: all chips look alike)."""
    R = view.rates(slots)
    return R if aware else agnostic(R)


def agnostic(R: np.ndarray) -> np.ndarray:
    """Each row's feasible entries replaced by the row's mean over them."""
    feas = R > 0
    mean = R.sum(axis=1) / np.maximum(feas.sum(axis=1), 1)
    return np.where(feas, mean[:, None], 0.0)


def stage_seconds(view: SchedulerView, slots: np.ndarray) -> np.ndarray:
    """(job x pool) seconds to move each job's data to each pool's site (0 where it is)."""
    ds = view.data_site(slots)
    if not (ds >= 0).any():  # no job here has data to move (e.g. Philly): all zeros
        return np.zeros((len(slots), view.n_pools))
    gb = view.data_gb(slots)
    t = (gb[:, None] * 8.0) / view.wan_gbps[None, :]
    here = (ds[:, None] < 0) | (ds[:, None] == view.pool_site[None, :])
    return np.where(here, 0.0, t)


def time_to_finish(view: SchedulerView, slots: np.ndarray, now: float,
                   aware: bool = True) -> np.ndarray:
    """(job x pool) seconds until each job would be done there if it started now: data
    staging + remaining work / rate; ``inf`` where it cannot run. Agnostic: 0 on every pool
    it can use (all look alike; the allocator then balances load)."""
    R = seen_rates(view, slots, aware)
    with np.errstate(divide="ignore", invalid="ignore"):
        if not aware:
            return np.where(R > 0, 0.0, INF)
        rem = view.remaining(slots, now)[:, None]
        t: np.ndarray = np.where(R > 0, rem / R, INF)
        if (view.data_site(slots) >= 0).any():  # else staging is 0 everywhere
            t += stage_seconds(view, slots)
    return t


class ClassProblem(NamedTuple):
    """``slots`` aggregated into classes of interchangeable jobs, the input of the share LPs
    (:mod:`suanli.sched.lp`): per class c, ``R[c]`` rates per pool, ``m[c]`` jobs, ``g[c]``
    accelerators each, ``w[c]`` weight; ``cap`` accelerators per pool; ``inv[i]`` the class
    row of ``slots[i]``; ``ids`` the scheduler's class ids."""

    R: np.ndarray
    m: np.ndarray
    g: np.ndarray
    w: np.ndarray
    cap: np.ndarray
    inv: np.ndarray
    ids: np.ndarray


def class_problem(view: SchedulerView, slots: np.ndarray, aware: bool) -> ClassProblem:
    ucls, inv, m = np.unique(view.job_class(slots), return_inverse=True, return_counts=True)
    R = view.class_rates[ucls]
    if not aware:
        R = agnostic(R)
    g = view.class_demand.astype(float)[ucls] / MILLI
    w = view.class_weight[ucls]
    return ClassProblem(R, m.astype(float), g, w, view.capacity, inv, ucls)
