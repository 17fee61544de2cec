"""Allocation LPs over the (job class x pool) time-share matrix, solved with HiGHS.

Notation (all arrays over *classes* c: interchangeable jobs aggregated, and pools p):

* ``R[c, p]`` rate of one job of class c on pool p (0 = cannot run there);
* ``m[c]`` number of active jobs of the class, ``g[c]`` accelerators each holds;
* ``X[c, p]`` fraction of time each job of class c runs on pool p (the answer).

Shared constraints: a job is in at most one place at a time (``sum_p X[c, p] <= 1``) and a pool
is not over-committed on average (``sum_c m[c] g[c] X[c, p] <= cap[p]``). Aggregating identical
jobs is exact for these objectives: the optimum can always be taken symmetric within a class.

When the LP would exceed ``max_vars`` variables (or HiGHS fails) :func:`water_fill` gives a
greedy approximation.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

MAX_VARS = 40_000


def _pairs(R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cs, ps = np.nonzero(R > 0)
    return cs, ps


def _base_constraints(
    cs: np.ndarray, ps: np.ndarray, m: np.ndarray, g: np.ndarray, cap: np.ndarray, extra: int
) -> tuple[sp.csr_matrix, np.ndarray, int]:
    """Rows: one-place-at-a-time per class, capacity per pool. ``extra`` trailing variables."""
    C, P, K = len(m), len(cap), len(cs)
    rows = np.concatenate([cs, C + ps])
    cols = np.concatenate([np.arange(K), np.arange(K)])
    vals = np.concatenate([np.ones(K), m[cs] * g[cs]])
    A = sp.csr_matrix((vals, (rows, cols)), shape=(C + P, K + extra))
    b = np.concatenate([np.ones(C), cap.astype(float)])
    return A, b, K


def _solve(c: np.ndarray, A: sp.csr_matrix, b: np.ndarray, bounds: list) -> np.ndarray | None:
    res = linprog(c, A_ub=A, b_ub=b, bounds=bounds, method="highs")
    if res.status != 0 or res.x is None:
        return None
    return np.asarray(res.x)


def _to_matrix(x: np.ndarray, cs: np.ndarray, ps: np.ndarray, shape: tuple[int, int]) -> (
    np.ndarray
):
    X = np.zeros(shape)
    X[cs, ps] = np.clip(x[: len(cs)], 0.0, 1.0)
    return X


def max_min(
    R: np.ndarray,
    m: np.ndarray,
    g: np.ndarray,
    w: np.ndarray,
    cap: np.ndarray,
    max_vars: int = MAX_VARS,
    norm: np.ndarray | None = None,
) -> np.ndarray:
    """Maximise the minimum over classes of (normalised effective throughput / weight).

    Effective throughput of class c is ``sum_p X[c,p] R[c,p]`` normalised by ``norm[c]``
    (default: the class's best single-pool rate, so 1.0 means "runs all the time on its
    fastest pool"). A small secondary term maximises total normalised throughput so no
    capacity is left idle at the optimum. Gang weighting (a job of g devices counts g times
    its normalised throughput) is the caller's: pass ``w / g`` as the weight.
    """
    C, P = R.shape
    if C == 0:
        return np.zeros((0, P))
    if norm is None:
        norm = R.max(axis=1)
    norm = np.array(norm, dtype=float)
    norm[norm <= 0] = 1.0
    Rn = R / norm[:, None]
    cs, ps = _pairs(R)
    if len(cs) == 0:
        return np.zeros((C, P))
    if len(cs) > max_vars:
        return water_fill(R, m, g, w, cap)
    A, b, K = _base_constraints(cs, ps, m, g, cap, extra=1)
    # w_c z - sum_p Rn[c,p] X[c,p] <= 0
    rows = np.concatenate([cs, np.arange(C)])
    cols = np.concatenate([np.arange(K), np.full(C, K)])
    vals = np.concatenate([-Rn[cs, ps], np.maximum(w, 1e-9)])
    A2 = sp.csr_matrix((vals, (rows, cols)), shape=(C, K + 1))
    A = sp.vstack([A, A2]).tocsr()
    b = np.concatenate([b, np.zeros(C)])
    eps = 1e-3 / max(1.0, float(m.sum()))
    cost = np.concatenate([-eps * m[cs] * Rn[cs, ps], [-1.0]])
    x = _solve(cost, A, b, [(0, 1)] * K + [(0, None)])
    if x is None:
        return water_fill(R, m, g, w, cap)
    return _to_matrix(x, cs, ps, (C, P))


def equal_share_rate(R: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Rate of each class under an equal split of its time over the pools it can use, in
    proportion to their devices (Gavel's ``X^equal``): ``sum_p cap[p] R[c,p] / sum_p cap[p]``
    over the pools where ``R[c,p] > 0``."""
    feas = R > 0
    capf = np.asarray(cap, dtype=float)[None, :] * feas
    tot = capf.sum(axis=1)
    out = (capf * R).sum(axis=1) / np.maximum(tot, 1e-300)
    return np.where(tot > 0, out, 0.0)


def spread(X: np.ndarray, R: np.ndarray, m: np.ndarray, g: np.ndarray, cap: np.ndarray
           ) -> np.ndarray:
    """Each class's total time share ``t[c] = sum_p X[c,p]`` kept, spread over the pools it
    can use as evenly as capacity allows: as close as possible (max-min of the ratio) to
    ``t[c] * cap[p] / sum of cap over its pools``.

    For heterogeneity-agnostic policies all pools a job can use look alike, so their LP has
    many optima and a solver returns an arbitrary vertex (some classes all on one chip type,
    and another vertex at the next solve); spreading is the choice that does not pretend to
    know which type suits a job, and it is stable from one solve to the next.
    """
    C, P = X.shape
    cs, ps = _pairs(R)
    if C == 0 or len(cs) == 0:
        return X
    capa = np.asarray(cap, dtype=float)
    t = X.sum(axis=1)
    feas = R > 0
    capf = capa[None, :] * feas
    tgt = t[:, None] * capf / np.maximum(capf.sum(axis=1, keepdims=True), 1e-300)
    Y = tgt
    load = ((m * g)[:, None] * Y).sum(axis=0)
    if (load <= capa * (1 + 1e-6) + 1e-9).all():
        over = np.where(load > capa, capa / np.maximum(load, 1e-300), 1.0)
        return Y * over[None, :]
    if len(cs) > MAX_VARS:
        return X
    K = len(cs)
    # capacity rows, then z * tgt - X <= 0 per pair
    rows = np.concatenate([ps, P + np.arange(K), P + np.arange(K)])
    cols = np.concatenate([np.arange(K), np.arange(K), np.full(K, K)])
    vals = np.concatenate([(m * g)[cs], -np.ones(K), tgt[cs, ps]])
    A = sp.csr_matrix((vals, (rows, cols)), shape=(P + K, K + 1))
    b = np.concatenate([capa * (1 + 1e-7) + 1e-9, np.zeros(K)])
    Aeq = sp.csr_matrix((np.ones(K), (cs, np.arange(K))), shape=(C, K + 1))
    cost = np.zeros(K + 1)
    cost[K] = -1.0
    res = linprog(cost, A_ub=A, b_ub=b, A_eq=Aeq, b_eq=t, bounds=[(0, 1)] * K + [(0, 1)],
                  method="highs")
    if res.status != 0 or res.x is None:
        return X
    return _to_matrix(np.asarray(res.x), cs, ps, (C, P))


def max_throughput(
    R: np.ndarray, m: np.ndarray, g: np.ndarray, cap: np.ndarray, max_vars: int = MAX_VARS,
    value: np.ndarray | None = None,
) -> np.ndarray:
    """Maximise the total normalised throughput ``sum_c v_c m_c sum_p X[c,p] R[c,p] / best_c``
    (``v`` = ``value``, default 1; the policy passes the gang size so that a job's throughput
    counts per device it occupies)."""
    C, P = R.shape
    norm = R.max(axis=1) if C else np.zeros(0)
    norm[norm <= 0] = 1.0
    Rn = R / norm[:, None] if C else R
    cs, ps = _pairs(R)
    if len(cs) == 0:
        return np.zeros((C, P))
    if len(cs) > max_vars:
        return water_fill(R, m, g, np.ones(C), cap)
    A, b, K = _base_constraints(cs, ps, m, g, cap, extra=0)
    v = np.ones(C) if value is None else np.asarray(value, dtype=float)
    x = _solve(-(v * m)[cs] * Rn[cs, ps], A, b, [(0, 1)] * K)
    if x is None:
        return water_fill(R, m, g, np.ones(C), cap)
    return _to_matrix(x, cs, ps, (C, P))


def min_makespan(
    R: np.ndarray,
    m: np.ndarray,
    g: np.ndarray,
    cap: np.ndarray,
    remaining: np.ndarray,
    max_vars: int = MAX_VARS,
) -> np.ndarray:
    """Minimise the time until every active job is done.

    With ``y = 1 / makespan``: maximise y s.t. ``sum_p X[c,p] R[c,p] >= remaining[c] * y``
    (``remaining[c]`` = the largest remaining work in the class), which is linear.
    """
    C, P = R.shape
    cs, ps = _pairs(R)
    if len(cs) == 0:
        return np.zeros((C, P))
    if len(cs) > max_vars:
        return water_fill(R, m, g, remaining / np.maximum(R.max(axis=1), 1e-12), cap)
    scale = float(np.max(remaining)) or 1.0
    rem = remaining / scale
    A, b, K = _base_constraints(cs, ps, m, g, cap, extra=1)
    # rem_c y - sum_p R X <= 0, with R scaled per class to keep the LP well conditioned
    rs = R.max(axis=1)
    rs[rs <= 0] = 1.0
    rows = np.concatenate([cs, np.arange(C)])
    cols = np.concatenate([np.arange(K), np.full(C, K)])
    vals = np.concatenate([-R[cs, ps] / rs[cs], rem / rs])
    A2 = sp.csr_matrix((vals, (rows, cols)), shape=(C, K + 1))
    A = sp.vstack([A, A2]).tocsr()
    b = np.concatenate([b, np.zeros(C)])
    eps = 1e-4 / max(1.0, float(m.sum()))
    cost = np.concatenate([-eps * m[cs] * R[cs, ps] / rs[cs], [-1.0]])
    x = _solve(cost, A, b, [(0, 1)] * K + [(0, None)])
    if x is None:
        return water_fill(R, m, g, remaining / np.maximum(R.max(axis=1), 1e-12), cap)
    return _to_matrix(x, cs, ps, (C, P))


def water_fill(
    R: np.ndarray, m: np.ndarray, g: np.ndarray, w: np.ndarray, cap: np.ndarray
) -> np.ndarray:
    """Greedy approximation of a weighted heterogeneity-aware fair share (no LP).

    Every class is entitled to the same time fraction scaled by its weight (capped at 1), as if
    the cluster were homogeneous; classes are then handed pools in order of how much they gain
    from their fastest pool relative to their average pool (comparative advantage), each taking
    its entitlement from its fastest pool with room left, then the next fastest.
    """
    C, P = R.shape
    X = np.zeros((C, P))
    if C == 0:
        return X
    demand = m * g
    ww = np.maximum(w, 1e-9)
    share = np.minimum(1.0, ww * float(cap.sum()) / max(float((demand * ww).sum()), 1e-12))
    feas = R > 0
    mean = np.where(feas.any(axis=1), (R * feas).sum(axis=1) / np.maximum(feas.sum(axis=1), 1), 1)
    adv = R.max(axis=1) / np.maximum(mean, 1e-12)
    left = cap.astype(float).copy()
    for c in np.argsort(-adv, kind="stable"):
        need = share[c]
        for p in np.argsort(-R[c], kind="stable"):
            if need <= 1e-12 or R[c, p] <= 0:
                break
            if left[p] <= 1e-12 or demand[c] <= 0:
                continue
            take = min(need, left[p] / demand[c])
            X[c, p] += take
            left[p] -= take * demand[c]
            need -= take
    return X
