"""Scaling work in the scheduler must not change what it decides.

* ``Scheduler._upgrade`` (migrate running jobs to a much faster pool when nobody waits) is
  vectorised and gated; it must make exactly the moves of the plain per-job loop.
* Back-fill (``Scheduler._fill``) only plans the waiting jobs that fit a pool they would take;
  it must place exactly the jobs the plan over every waiting job places.
* The share LPs aggregate identical jobs into classes; that must give the per-job optimum.
"""

from __future__ import annotations

import numpy as np
import pytest

from suanli.sched import Scheduler, get_policy, lp
from suanli.sched.policies import Policy
from suanli.sched.policy_helpers import time_to_finish
from suanli.sched.scheduler import UPGRADE_GAIN, Decision
from suanli.sim.engine import run_simulation
from test_sched_policies import RATES, FixedRates, job
from test_sim_engine import CLUSTER, POLICIES, make_jobs


def plain_upgrade(self: Scheduler, now: float) -> list[Decision]:
    """Reference: every running job, in order of time saved, takes its fastest pool that has
    room at its turn and where it would finish in under UPGRADE_GAIN of its time left."""
    run = np.array(sorted(self.running), dtype=np.int64)
    t = time_to_finish(self.view(), run, now)
    cur = self.t.pool[run]
    here = t[np.arange(len(run)), cur]
    t = t + self.t.restart_s[run][:, None]
    t[np.arange(len(run)), cur] = here
    free = self.free.copy()
    out: list[Decision] = []
    for k in np.argsort(-(here - t.min(axis=1)), kind="stable"):
        s = int(run[k])
        d = int(self.t.demand[s])
        ok = (free >= d) & (t[k] < UPGRADE_GAIN * here[k])
        if not ok.any():
            continue
        p = int(np.argmin(np.where(ok, t[k], np.inf)))
        free[p] -= d
        free[cur[k]] += d
        out.append(self._stop(s, now, "moved"))
        out.append(self._start(s, p, now))
        self.stats["migrations"] += 1
    return out


def random_specs(rng: np.random.Generator, n: int) -> list[tuple]:
    out = []
    for _ in range(n):
        out.append((
            float(rng.uniform(0, 3000)), int(rng.choice([1, 1, 2, 4, 8])),
            float(rng.uniform(10, 4e4)), bool(rng.random() < 0.2), bool(rng.random() < 0.1),
            0.0, 1.0, "a", [None, "east", "west"][int(rng.integers(3))],
        ))
    return out


@pytest.mark.parametrize("rates", [RATES, {"fast_gpu": 5.0, "mid_npu": 1.5, "slow_dcu": 1.0}])
def test_vectorised_upgrade_makes_the_same_moves_as_the_plain_loop(
    rates: dict[str, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(7)
    traces = [make_jobs(random_specs(rng, int(rng.integers(20, 80)))) for _ in range(12)]
    fast = [run_simulation(CLUSTER, jobs, pol, FixedRates(rates), record_decisions=True)
            for jobs in traces for pol in ("max-min", "las")]
    monkeypatch.setattr(Scheduler, "_upgrade", plain_upgrade)
    plain = [run_simulation(CLUSTER, jobs, pol, FixedRates(rates), record_decisions=True)
             for jobs in traces for pol in ("max-min", "las")]
    for a, b in zip(fast, plain, strict=True):
        assert a.decisions == b.decisions
        assert a.stats["migrations"] == b.stats["migrations"]
        np.testing.assert_array_equal(a.finish, b.finish)
    assert sum(r.stats["migrations"] for r in fast) > 0  # the cases do exercise migration


def test_only_jobs_with_a_much_faster_pool_are_upgrade_candidates() -> None:
    s = Scheduler(CLUSTER, get_policy("max-min"), FixedRates(RATES))
    pools = {p.chip_type: i for i, p in enumerate(CLUSTER.pools) if p.site == "east"}
    npu = next(i for i, p in enumerate(CLUSTER.pools) if p.chip_type == "mid_npu")
    s.submit(job(0, gang=8, work=1e5), 0.0)
    s.submit(job(1, gang=8, work=1e5, allowed_chips=frozenset({"fast_gpu", "slow_dcu"})), 0.0)
    s.submit(job(2, gang=8, work=1e5, allowed_chips=frozenset({"fast_gpu", "mid_npu"})), 0.0)
    # j0 takes the east fast GPUs; j1 waits for a pool within patience (DCU is 4x slower)
    s.schedule(0.0)
    s._start(1, pools["slow_dcu"], 0.0)  # force j1 onto the 4x slower DCU
    assert s.t.pool[2] == npu  # the NPU is exactly 2x slower: never worth a migration
    assert s._subopt == {1}
    assert s._subopt_groups == {(int(s.t.cls[1]), pools["slow_dcu"]): 1}
    s.on_finish("j0", 10.0)  # fast GPUs free, nobody waits
    out = s.schedule(10.0)
    assert [(d.action, d.job_id, d.pool) for d in out] == [
        ("stop", "j1", pools["slow_dcu"]), ("start", "j1", pools["fast_gpu"])]
    assert s._subopt == set() and s._subopt_groups == {}
    assert s.stats["migrations"] == 1


@pytest.mark.parametrize("part", [0, 1, 2])
def test_backfill_shortcut_places_the_same_jobs(part: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Six random traces (seed 11), split in three tests of two traces to keep each short."""
    import suanli.sched.scheduler as scheduler_mod

    rng = np.random.default_rng(11)
    traces = [make_jobs(random_specs(rng, int(rng.integers(20, 80)))) for _ in range(6)]
    traces = traces[2 * part:2 * part + 2]
    pols = [*POLICIES, "balanced", "ftf-agnostic", "max-throughput-agnostic"]

    def runs() -> list:
        return [run_simulation(CLUSTER, jobs, pol, FixedRates(RATES), round_s=120.0,
                               record_decisions=True) for jobs in traces for pol in pols]

    # the shortcut always on (these queues are short), and switching on and off at 5 waiting
    monkeypatch.setattr(scheduler_mod, "ELIG_MIN_QUEUE", 0)
    always = runs()
    monkeypatch.setattr(scheduler_mod, "ELIG_MIN_QUEUE", 5)
    switching = runs()
    monkeypatch.setattr(Policy, "fixed_while_waiting", False)
    assert not Scheduler(CLUSTER, get_policy("fifo"), FixedRates(RATES)).indexed_backfill
    plain = runs()
    for a, b, c in zip(always, switching, plain, strict=True):
        assert a.decisions == c.decisions, a.policy
        assert b.decisions == c.decisions, b.policy
        np.testing.assert_array_equal(a.finish, c.finish)


def per_job(R: np.ndarray, m: np.ndarray, g: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
    idx = np.repeat(np.arange(len(m)), m.astype(int))
    return R[idx], np.ones(len(idx)), g[idx], w[idx], idx


def max_min_objective(X: np.ndarray, R: np.ndarray, m: np.ndarray, w: np.ndarray
                      ) -> tuple[float, float]:
    eff = (X * R).sum(axis=1) / R.max(axis=1)
    return float((eff / w).min()), float((m * eff).sum())


@pytest.mark.parametrize("seed", range(5))
def test_class_aggregation_gives_the_per_job_max_min_optimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    C, P = 6, 4
    R = rng.uniform(0.5, 5, (C, P)) * (rng.random((C, P)) > 0.25)
    R[:, 0] = np.maximum(R[:, 0], 0.5)  # every class can run somewhere
    m = rng.integers(1, 6, C).astype(float)
    g = rng.choice([1.0, 2.0, 4.0], C)
    w = rng.choice([1.0, 2.0], C)
    cap = rng.choice([4.0, 8.0, 16.0], P)
    Xc = lp.max_min(R, m, g, w, cap)
    Rj, mj, gj, wj, idx = per_job(R, m, g, w)
    Xj = lp.max_min(Rj, mj, gj, wj, cap)
    zc, tc = max_min_objective(Xc, R, m, w)
    zj, tj = max_min_objective(Xj, Rj, mj, wj)
    assert zc == pytest.approx(zj, abs=1e-6)
    assert tc == pytest.approx(tj, rel=1e-6, abs=1e-6)
    # the class solution, given to every job of the class, is feasible for the per-job LP
    Xe = Xc[idx]
    assert ((gj @ Xe) <= cap + 1e-6).all() and (Xe.sum(axis=1) <= 1 + 1e-6).all()


def test_owed_elsewhere_index_matches_a_scan_of_running_jobs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Share policies keep rounds going while nobody waits if a running job has a time share
    on another pool with room for it. The scheduler answers that from per-pool counts kept on
    every start and stop (rebuilt when shares change); it must always equal a scan of every
    running job, and both answers must occur."""
    fast = Scheduler._owed_elsewhere
    seen = {True: 0, False: 0}

    def checked(self: Scheduler) -> bool:
        got = fast(self)
        scan = False
        if self.running and (self.free > 0).any():
            run = np.array(list(self.running), dtype=np.int64)
            room = self.free[None, :] >= self.t.demand[run][:, None]
            room[np.arange(len(run)), self.t.pool[run]] = False
            scan = bool(((self.t.share[run] > 1e-6) & room).any())
        assert got == scan
        seen[got] += 1
        return got

    monkeypatch.setattr(Scheduler, "_owed_elsewhere", checked)
    rng = np.random.default_rng(5)
    for _ in range(6):
        jobs = make_jobs(random_specs(rng, int(rng.integers(10, 40))))
        for pol in ("max-min", "max-min-agnostic", "max-throughput", "ftf"):
            run_simulation(CLUSTER, jobs, pol, FixedRates(RATES), round_s=120.0)
    assert seen[True] > 0 and seen[False] > 0, seen
