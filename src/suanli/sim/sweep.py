"""Parameter sweeps: run a grid of simulations on several cores or a Ray cluster and compare.

A sweep is the product of axes, each a name and its values::

    policy=fifo,max-min;load=1,5,10;seed=1,2,3

(``;`` separates axes, ``,`` values; an axis may also come as its own ``--sweep`` option).
Axes: ``policy``, ``load``, ``seed``, ``scale_fleet``, ``round`` and ``jitter``; an axis not
swept keeps the single value of the run (``--policy``, ``--load``, ...). Each grid point is one
independent run (:func:`run_point`), so points go to local processes
(:class:`~concurrent.futures.ProcessPoolExecutor`) or Ray tasks unchanged, and results are
returned in grid order whatever order they finish in.

:func:`summarise` groups the points by every axis except ``seed`` and gives, per figure, the
mean and a 95 % confidence interval across seeds (Student t, n - 1 degrees of freedom; no
interval for one seed). A seed changes the run only where something is drawn: the synthetic
generator, the workload rules of Philly and Alibaba, the durations of untimed Alibaba lists and
arrival jitter (which a sweep over several seeds turns on, see :data:`SWEEP_JITTER`).
"""

from __future__ import annotations

import itertools
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any

from suanli.errors import SuanliError

AXES = ("policy", "load", "seed", "scale_fleet", "round", "jitter")
SWEEP_JITTER = 0.2  # arrival jitter a sweep over several seeds uses unless one is given
# (metric key in the point result, label, unit scale)
FIGURES: tuple[tuple[str, str, float], ...] = (
    ("jct_mean_s", "mean JCT h", 1 / 3600),
    ("jct_p99_s", "p99 JCT h", 1 / 3600),
    ("wait_mean_s", "mean wait h", 1 / 3600),
    ("makespan_s", "makespan h", 1 / 3600),
    ("utilisation", "util %", 100.0),
    ("energy_kwh", "energy MWh", 1 / 1000),
    ("preemptions_per_job", "preempt/job", 1.0),
    ("completed", "done", 1.0),
)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RunConfig:
    """What every point of a sweep shares (the inputs of :func:`suanli.sim.setup.prepare`)."""

    fleet: str | None = None
    trace: str | None = None
    trace_format: str = "auto"
    throughputs: str | None = None
    max_jobs: int | None = None
    catalog_files: tuple[str, ...] = ()
    queues: tuple[tuple[str, float, float | None], ...] = ()  # (name, weight, quota)


@dataclass(frozen=True)
class SweepPoint:
    """One run of the grid."""

    policy: str
    load: float = 1.0
    seed: int = 0
    scale_fleet: float = 1.0
    round: float = 360.0
    jitter: float = 0.0

    def key(self) -> tuple[Any, ...]:
        """The point without its seed: points with equal keys are replicates."""
        return (self.policy, self.load, self.scale_fleet, self.round, self.jitter)


@dataclass
class SweepResult:
    axes: dict[str, list[Any]]
    points: list[dict[str, Any]]  # one per grid point, in grid order
    summary: list[dict[str, Any]]  # one per point key, mean and CI per figure
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------- the grid
def _value(axis: str, text: str) -> Any:
    t = text.strip()
    if axis == "policy":
        from suanli.sched.policies import get_policy

        get_policy(t)  # an unknown policy is an error now, not in a worker later
        return t
    try:
        v = float(t)
    except ValueError:
        raise SuanliError(f"axis {axis}: '{t}' is not a number", field="sweep") from None
    if not math.isfinite(v):
        raise SuanliError(f"axis {axis}: '{t}' is not a finite number", field="sweep")
    if axis == "seed":
        if v != int(v) or not 0 <= v <= 2**32 - 1:
            raise SuanliError(f"axis seed: '{t}' is not a whole number in [0, 2^32)",
                              field="sweep")
        return int(v)
    if axis == "jitter" and not 0 <= v <= 1:
        raise SuanliError(f"axis jitter: must be in [0, 1], got {t}", field="sweep")
    if axis == "round" and not 1 <= v <= 7 * 86400:
        raise SuanliError(f"axis round: must be in [1, 604800] s, got {t}", field="sweep")
    if axis in ("load", "scale_fleet") and not 0 < v <= 1e4:
        raise SuanliError(f"axis {axis}: must be > 0 and <= 10000, got {t}", field="sweep")
    return v


def parse_sweep(specs: Sequence[str]) -> dict[str, list[Any]]:
    """``["policy=fifo,max-min;load=1,5"]`` -> ``{"policy": [...], "load": [1.0, 5.0]}``."""
    axes: dict[str, list[Any]] = {}
    for spec in specs:
        for part in spec.split(";"):
            if not part.strip():
                continue
            name, sep, values = part.partition("=")
            axis = name.strip().lower().replace("-", "_")
            if not sep or not axis:
                raise SuanliError(f"expected AXIS=V1,V2,... got '{part.strip()}'", field="sweep")
            if axis not in AXES:
                raise SuanliError(f"unknown axis '{name.strip()}' (axes: {', '.join(AXES)})",
                                  field="sweep")
            if axis in axes:
                raise SuanliError(f"axis {axis} given twice", field="sweep")
            vals = [_value(axis, v) for v in values.split(",") if v.strip()]
            if not vals:
                raise SuanliError(f"axis {axis} has no values", field="sweep")
            if len(set(vals)) != len(vals):
                raise SuanliError(f"axis {axis} repeats a value", field="sweep")
            axes[axis] = vals
    if not axes:
        raise SuanliError("no axes (e.g. policy=fifo,max-min;load=1,5;seed=1,2,3)",
                          field="sweep")
    return axes


def grid(axes: dict[str, list[Any]], base: SweepPoint, jitter_given: bool = True,
         max_points: int = 10_000) -> list[SweepPoint]:
    """Every combination of the axes; axes not given keep ``base``'s value. Several seeds
    without any jitter given get :data:`SWEEP_JITTER`, so that a seed changes the arrivals."""
    if len(axes.get("seed", ())) > 1 and not jitter_given and "jitter" not in axes:
        base = replace(base, jitter=SWEEP_JITTER)
    names = list(axes)
    n = math.prod(len(v) for v in axes.values())
    if n > max_points:
        raise SuanliError(f"{n} points; at most {max_points}", field="sweep")
    return [replace(base, **dict(zip(names, combo, strict=True)))
            for combo in itertools.product(*(axes[a] for a in names))]


# ----------------------------------------------------------------------- one point
@lru_cache(maxsize=4)
def _setup(cfg: RunConfig, seed: int, scale_fleet: float, load: float, jitter: float) -> Any:
    from suanli.sim.setup import prepare

    return prepare(fleet=cfg.fleet, trace=cfg.trace, trace_format=cfg.trace_format,
                   throughputs=cfg.throughputs, seed=seed, scale_fleet=scale_fleet,
                   max_jobs=cfg.max_jobs, load=load, jitter=jitter,
                   catalog_files=list(cfg.catalog_files) or None)


def run_point(cfg: RunConfig, point: SweepPoint) -> dict[str, Any]:
    """Simulate one grid point; returns plain data (what crosses a process or Ray boundary).
    Setups are cached per process, so the policies of one (seed, load, ...) share a trace."""
    from suanli.sched.job import Queue
    from suanli.sim.engine import run_simulation

    s = _setup(cfg, point.seed, point.scale_fleet, point.load, point.jitter)
    queues = [Queue(n, weight=w, quota=q) for n, w, q in cfg.queues]
    res = run_simulation(s.cluster, s.trace.jobs, point.policy, s.provider, round_s=point.round,
                         queues=queues, notes=s.notes)
    m = res.metrics
    return {
        **asdict(point),
        "label": res.policy,
        "jobs": m["jobs"],
        "completed": m["completed"],
        "unrunnable": m["unrunnable"],
        "jct_mean_s": m["jct_s"]["mean"],
        "jct_p99_s": m["jct_s"]["p99"],
        "wait_mean_s": m["queueing_s"]["mean"],
        "makespan_s": m["makespan_s"],
        "utilisation": m["utilisation"],
        "energy_kwh": m["energy_kwh"],
        "cost_cny": m["cost_cny"],
        "preemptions_per_job": m["preemption"]["per_job_mean"],
        "lost_acc_h": m["preemption"]["lost_acc_h"],
        "rho_mean": m["fairness_rho"]["mean"],
        "events": m["events"],
        "wall_s": m["wall_s"],
        "accelerators": s.cluster.devices,
        "notes": s.notes,
        "worker_pid": os.getpid(),
    }


# ----------------------------------------------------------------------- running the grid
def run_sweep(cfg: RunConfig, points: Sequence[SweepPoint], *, jobs: int = 1,
              ray_address: str | None = None, progress: Progress | None = None
              ) -> list[dict[str, Any]]:
    """Run every point: in this process (``jobs=1``), in ``jobs`` local processes, or as Ray
    tasks on the cluster at ``ray_address``. Results come back in grid order."""
    if ray_address:
        return _run_ray(cfg, points, ray_address, progress)
    out: list[dict[str, Any] | None] = [None] * len(points)
    if jobs <= 1 or len(points) <= 1:
        for i, p in enumerate(points):
            out[i] = run_point(cfg, p)
            if progress:
                progress(i + 1, len(points))
        return [r for r in out if r is not None]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: the parent may run a progress-bar thread, which fork would copy in a bad state
    ctx = multiprocessing.get_context("spawn")
    order = _by_setup(points)  # points sharing a trace run back to back (setup cache)
    with ProcessPoolExecutor(max_workers=min(jobs, len(points)), mp_context=ctx) as pool:
        futs = {pool.submit(run_point, cfg, points[i]): i for i in order}
        for done, fut in enumerate(as_completed(futs), start=1):
            out[futs[fut]] = fut.result()
            if progress:
                progress(done, len(points))
    return [r for r in out if r is not None]


def _by_setup(points: Sequence[SweepPoint]) -> list[int]:
    return sorted(range(len(points)), key=lambda i: (points[i].seed, points[i].load,
                                                     points[i].scale_fleet, points[i].jitter, i))


def _run_ray(cfg: RunConfig, points: Sequence[SweepPoint], address: str,
             progress: Progress | None) -> list[dict[str, Any]]:
    import logging

    host, _, port = address.rpartition(":")
    if host and port.isdigit():
        _reachable(host, int(port), address)
        if host in ("127.0.0.1", "localhost", "::1"):
            # a loopback head is a one-machine cluster: without this Ray swaps 127.0.0.1 for
            # the machine's outward address, where a head bound to loopback is not listening
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            consts = sys.modules.get("ray._private.ray_constants")
            if consts is not None and getattr(consts, "ENABLE_RAY_CLUSTER", False):
                raise SuanliError("Ray was imported in this process before "
                                  "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 was set, so it would "
                                  f"not reach the loopback head at '{address}': set it in the "
                                  "environment", field="ray")
    try:
        import ray
    except ImportError:
        raise SuanliError("Ray is not installed: pip install 'suanli[ray]'",
                          field="ray") from None
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        except Exception as exc:  # ray raises ConnectionError, RuntimeError, ValueError...
            raise SuanliError(f"cannot connect to the Ray cluster at '{address}': "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                              field="ray") from None
    try:
        task = ray.remote(num_cpus=1, max_retries=1)(run_point)
        refs = [task.remote(cfg, p) for p in points]
        index = {ref: i for i, ref in enumerate(refs)}
        out: list[dict[str, Any] | None] = [None] * len(points)
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                out[index[ref]] = ray.get(ref)
            if progress:
                progress(len(points) - len(pending), len(points))
        return [r for r in out if r is not None]
    finally:
        if started_here:
            ray.shutdown()


def _reachable(host: str, port: int, address: str, timeout_s: float = 5.0) -> None:
    """Fail fast (Ray itself retries for minutes) when nothing listens at the address."""
    import socket

    try:
        socket.create_connection((host.strip("[]"), port), timeout=timeout_s).close()
    except OSError as exc:
        raise SuanliError(f"cannot connect to the Ray cluster at '{address}': "
                          f"{exc.strerror or exc}", field="ray") from None


# ----------------------------------------------------------------------- comparison
def _ci95(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and half-width of the 95 % confidence interval (Student t)."""
    xs = [v for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None, None
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return mean, None
    from scipy.stats import t

    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    return mean, float(t.ppf(0.975, len(xs) - 1)) * sd / math.sqrt(len(xs))


def summarise(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per point key (all axes but seed), in first-seen order: seeds, and for every figure
    its mean and 95 % CI half-width across seeds."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in points:
        k = (r["policy"], r["load"], r["scale_fleet"], r["round"], r["jitter"])
        groups.setdefault(k, []).append(r)
    out = []
    for (pol, load, scale, rnd, jit), rs in groups.items():
        row: dict[str, Any] = {"policy": pol, "load": load, "scale_fleet": scale, "round": rnd,
                               "jitter": jit, "seeds": [r["seed"] for r in rs]}
        for key, _, _ in FIGURES:
            mean, half = _ci95([r[key] for r in rs])
            row[key] = {"mean": mean, "ci95": half, "values": [r[key] for r in rs]}
        out.append(row)
    return out


def sweep(cfg: RunConfig, axes: dict[str, list[Any]], base: SweepPoint, *,
          jitter_given: bool = True, jobs: int = 1, ray_address: str | None = None,
          progress: Progress | None = None) -> SweepResult:
    """Parse nothing, run everything: the grid, its points and their comparison."""
    points = grid(axes, base, jitter_given)
    results = run_sweep(cfg, points, jobs=jobs, ray_address=ray_address, progress=progress)
    notes = list(dict.fromkeys(n for r in results for n in r["notes"]))
    if points and points[0].jitter and "jitter" not in axes and not jitter_given:
        notes.insert(0, f"seeds vary the arrivals: jitter {SWEEP_JITTER:g} (the sweep default "
                        "over several seeds)")
    for r in results:
        r.pop("notes", None)
    return SweepResult(axes=axes, points=results, summary=summarise(results), notes=notes)


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)
