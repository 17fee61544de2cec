"""Policies see a read-only SchedulerView at named extension points (issue 8, section 3)."""

from __future__ import annotations

import ast
import runpy
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sched_support import make_cluster
from suanli.sched import Policy, Scheduler, SchedulerView, get_policy, register_policy
from suanli.sched.policies import POLICIES, LeastAttained
from suanli.sched.policy_helpers import time_to_finish
from suanli.sim.engine import run_simulation
from test_sched_policies import RATES, FixedRates, job
from test_sim_engine import make_jobs

SRC = Path(__file__).resolve().parents[1] / "src"
CLUSTER = make_cluster()


def _module_imports(module: str) -> set[str]:
    """suanli modules ``module``'s file imports (``from pkg import mod`` counted as pkg.mod)."""
    path = SRC / (module.replace(".", "/") + ".py")
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("suanli.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("suanli"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                is_mod = (SRC / (sub.replace(".", "/") + ".py")).exists()
                out.add(sub if is_mod else node.module)
    return {m for m in out if (SRC / (m.replace(".", "/") + ".py")).exists()}


def test_policies_do_not_import_the_scheduler() -> None:
    """Not directly and not through any module they import (package __init__ files aside)."""
    seen: set[str] = set()
    todo = ["suanli.sched.policies"]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += _module_imports(m)
    assert "suanli.sched.view" in seen and "suanli.sched.policy_helpers" in seen
    assert "suanli.sched.scheduler" not in seen, sorted(seen)


class Recorder(Policy):
    """FIFO that records what each extension point receives."""

    name = "test-recorder"

    def __init__(self, aware: bool = True, patience: float | None = 3.0) -> None:
        super().__init__(aware, patience)
        self.views: list[object] = []
        self.calls: list[tuple[str, str, int, str]] = []

    def queue_order(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        self.views.append(view)
        return super().queue_order(view, slots, now)

    def score(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
        self.views.append(view)
        return super().score(view, slots, now)

    def reserve(self, job_id: str, pool: int, now: float) -> None:
        self.calls.append(("reserve", job_id, pool, ""))

    def unreserve(self, job_id: str, pool: int, now: float, reason: str) -> None:
        self.calls.append(("unreserve", job_id, pool, reason))


def test_policies_get_a_view_not_the_scheduler() -> None:
    pol = Recorder()
    s = Scheduler(CLUSTER, pol, FixedRates(RATES))
    s.submit(job(0, gang=2), 0.0)
    s.schedule(0.0)
    assert pol.views and all(type(v) is SchedulerView for v in pol.views)
    assert not any(isinstance(getattr(v, a), Scheduler) for v in pol.views
                   for a in SchedulerView.__slots__)


def test_the_view_cannot_change_the_scheduler() -> None:
    s = Scheduler(CLUSTER, get_policy("max-min"), FixedRates(RATES))
    for i in range(3):
        s.submit(job(i, gang=2, work=1e4), 0.0)
    s.schedule(0.0)
    v = s.view()
    slots = np.arange(3)
    before = {k: c.copy() for k, c in s.t.columns().items()}
    rates_before = s._class_matrix().copy()
    # per-job answers are copies: scribbling on them changes nothing
    for arr in (v.rates(slots), v.remaining(slots, 10.0), v.share(slots), v.deficit(slots),
                v.pool(slots), v.gang(slots), v.attained(slots, 10.0), v.restart_s(slots)):
        arr[...] = -7
    # whole arrays are read-only
    for arr in (v.class_rates, v.class_demand, v.capacity, v.power_kw, v.price, v.carbon,
                v.pue, v.wan_gbps, v.pool_site):
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 0
    for k, c in s.t.columns().items():
        np.testing.assert_array_equal(c, before[k], err_msg=k)
    np.testing.assert_array_equal(s._class_matrix(), rates_before)
    with pytest.raises(AttributeError):
        v.round_s_extra = 1.0  # type: ignore[attr-defined]  # __slots__: no new attributes
    assert [j.id for j in v.jobs(slots)] == ["j0", "j1", "j2"]


def test_reserve_and_unreserve_follow_every_start_and_release() -> None:
    class RecordingLas(LeastAttained):
        name = "test-las-recorder"

        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[str, str, int, str]] = []

        def reserve(self, job_id: str, pool: int, now: float) -> None:
            self.calls.append(("reserve", job_id, pool, ""))

        def unreserve(self, job_id: str, pool: int, now: float, reason: str) -> None:
            self.calls.append(("unreserve", job_id, pool, reason))

    rng = np.random.default_rng(5)
    specs = [(float(rng.uniform(0, 2000)), int(rng.choice([1, 2, 4, 8])),
              float(rng.uniform(100, 2e4)), False, False, 0.0, 1.0, "a", None)
             for _ in range(40)]
    pol = RecordingLas()
    res = run_simulation(CLUSTER, make_jobs(specs), pol, FixedRates(RATES),
                         round_s=120.0, record_decisions=True)
    ids = [j.id for j in res.jobs]
    want = [("reserve" if a == "start" else "unreserve", ids[i], p)
            for _, a, i, p, _ in res.decisions]
    assert [c[:3] for c in pol.calls] == want
    reasons = {c[3] for c in pol.calls if c[0] == "unreserve"}
    assert "finished" in reasons and "preempted" in reasons  # LAS does preempt here

    # events outside a pass: a rolled-back start and a cancellation release the devices too
    rec = Recorder()
    s = Scheduler(CLUSTER, rec, FixedRates(RATES))
    s.submit(job(0, gang=2), 0.0)
    s.submit(job(1, gang=2), 0.0)
    (a, b) = s.schedule(0.0)
    s.on_start_failed("j0", 1.0, "no such image")
    s.cancel("j1", 2.0)
    assert rec.calls == [("reserve", "j0", a.pool, ""), ("reserve", "j1", b.pool, ""),
                         ("unreserve", "j0", a.pool, "start failed"),
                         ("unreserve", "j1", b.pool, "cancelled")]


@pytest.fixture
def biggest_first() -> Iterator[type[Policy]]:
    @register_policy
    class BiggestFirst(Policy):
        """A user's policy: big gangs first, each on the pool where its accelerator-seconds
        to finish are fewest."""

        name = "test-biggest-first"
        score_unit = "accelerator-s to finish"

        def queue_order(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
            return -view.gang(slots)

        def score(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
            rows.append(len(slots))
            return time_to_finish(view, slots, now, self.aware) * view.gang(slots)[:, None]

    rows: list[int] = []
    BiggestFirst.rows = rows  # type: ignore[attr-defined]
    try:
        yield BiggestFirst
    finally:
        POLICIES.pop("test-biggest-first")


def test_a_registered_policy_keeps_the_backfill_fast_path(
    biggest_first: type[Policy], monkeypatch: pytest.MonkeyPatch
) -> None:
    import suanli.sched.scheduler as scheduler_mod

    assert Scheduler(CLUSTER, get_policy("test-biggest-first"), FixedRates(RATES)).indexed_backfill

    class Drifting(biggest_first):  # type: ignore[valid-type, misc]
        name = "test-drifting"
        fixed_while_waiting = False

    assert not Scheduler(CLUSTER, Drifting(), FixedRates(RATES)).indexed_backfill

    rng = np.random.default_rng(21)
    traces = [make_jobs([(float(rng.uniform(0, 500)), int(rng.choice([1, 2, 4, 8])),
                          float(rng.uniform(500, 3e4)), bool(rng.random() < 0.2), False, 0.0,
                          1.0, "a", [None, "east", "west"][int(rng.integers(3))])
                         for _ in range(70)]) for _ in range(2)]
    rows: list[int] = biggest_first.rows  # type: ignore[attr-defined]

    def runs() -> tuple[list, int]:
        rows.clear()
        out = [run_simulation(CLUSTER, jobs, pol, FixedRates(RATES), record_decisions=True)
               for jobs in traces for pol in ("test-biggest-first", "test-biggest-first-agnostic")]
        return out, sum(rows)

    monkeypatch.setattr(scheduler_mod, "ELIG_MIN_QUEUE", 0)  # these queues are short
    fast, fast_rows = runs()
    monkeypatch.setattr(biggest_first, "fixed_while_waiting", False)
    plain, plain_rows = runs()
    for a, b in zip(fast, plain, strict=True):
        assert a.decisions == b.decisions, a.policy
    assert fast_rows < plain_rows / 2  # the fast path did skip scoring most waiting jobs


def test_old_style_policies_fail_loudly() -> None:
    with pytest.raises(TypeError, match=r"priority \(now queue_order\)"):
        class Old(Policy):
            def priority(self, sched, slots, now):  # type: ignore[no-untyped-def]
                return slots

    with pytest.raises(TypeError, match=r"scores \(now score\)"):
        class Old2(Policy):
            def scores(self, sched, slots, now):  # type: ignore[no-untyped-def]
                return slots


def test_normalise_puts_a_benefit_score_on_the_cost_scale() -> None:
    """A policy that scores by speed (higher is better) converts it in normalise; the
    patience rule then reads it as "x times slower than the best pool"."""

    class Fastest(Policy):
        name = "test-fastest"
        score_unit = "work units/s (higher is better)"

        def score(self, view: SchedulerView, slots: np.ndarray, now: float) -> np.ndarray:
            return view.rates(slots)

        def normalise(self, view: SchedulerView, slots: np.ndarray,
                      raw: np.ndarray) -> np.ndarray:
            with np.errstate(divide="ignore"):
                return np.where(raw > 0, raw.max(axis=1, keepdims=True) / raw, np.inf)

    chip = {p.index: p.chip_type for p in CLUSTER.pools}
    s = Scheduler(CLUSTER, Fastest(), FixedRates(RATES))
    for i in range(4):  # 8 devices each: fills both fast pools (8 + 4 devices: one fits)
        s.submit(job(i, gang=4, work=1e6), 0.0)
    started = s.schedule(0.0)
    # fast GPUs first; then the NPU (2x slower, within patience 3); never the DCU (4x slower)
    assert [chip[d.pool] for d in started] == ["fast_gpu", "fast_gpu", "fast_gpu", "mid_npu"]
    assert s.waiting_ids() == []


def test_the_documented_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        runpy.run_path(str(SRC.parent / "examples" / "policy_edf.py"), run_name="__main__")
    finally:
        POLICIES.pop("edf", None)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("500 jobs")
    fifo, edf = (int(line.split()[2]) for line in out[1:3])
    assert out[1].startswith("fifo") and out[2].startswith("edf")
    assert edf < fifo  # ordering by deadline misses fewer of them
