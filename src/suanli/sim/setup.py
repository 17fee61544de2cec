"""Assemble a simulation from user inputs: fleet, trace, throughput source, work conversion.

This is what ``suanli simulate`` and the benchmarks call; it holds the defaulting rules:

* no trace: the bundled demo trace (``suanli/sim/data/demo_trace.csv``); format
  ``synthetic`` without a file: a fresh seeded synthetic trace;
* no fleet: the trace's own cluster (Alibaba node list next to the pod list), else the trace
  format's default cluster (Gavel's for Gavel traces), else the bundled demo fleet;
* durations -> work on the format's reference chip (:mod:`suanli.sim.formats`).

Errors name the parameter (``scale_fleet``, ``trace_format``, ...), never a command-line
flag: the CLI maps parameter names to its flags.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from suanli.catalog.loader import Catalog, load_catalog
from suanli.errors import SuanliError
from suanli.fleet import Fleet, demo_fleet_path, load_fleet
from suanli.sched.cluster import ClusterSpec
from suanli.sched.throughput import MeasuredThroughput, ModelThroughput, ThroughputProvider
from suanli.sim.formats import (
    DEFAULT_REFERENCE_CHIP,
    format_names,
    gavel_fleet,
    get_format,
    load_trace,
)
from suanli.sim.traces import (
    Trace,
    attach_work,
    demo_trace_path,
    jitter_arrivals,
    load_jobs_csv,
    synthetic_jobs,
)

FALLBACK_CHIPS = ("nvidia_v100", "nvidia_a100_sxm_80", "nvidia_h800_sxm", "hygon_k100_ai")
GENERATED = "synthetic"  # trace_format without a trace file: generate jobs

__all__ = ["FALLBACK_CHIPS", "SimSetup", "gavel_fleet", "prepare"]


@dataclass
class SimSetup:
    cluster: ClusterSpec
    trace: Trace
    provider: ThroughputProvider
    fleet: Fleet
    notes: list[str] = field(default_factory=list)


def _check(scale_fleet: float, load: float, max_jobs: int | None, jitter: float,
           trace_format: str) -> None:
    if not scale_fleet > 0:
        raise SuanliError(f"must be > 0, got {scale_fleet}", field="scale_fleet")
    if not load > 0:
        raise SuanliError(f"must be > 0, got {load}", field="load")
    if max_jobs is not None and max_jobs < 1:
        raise SuanliError(f"must be >= 1, got {max_jobs}", field="max_jobs")
    if not 0 <= jitter <= 1:
        raise SuanliError(f"must be in [0, 1], got {jitter:g}", field="jitter")
    if trace_format != "auto":
        get_format(trace_format)


def _trace(trace: str | Path | None, trace_format: str, cat: Catalog, fl: Fleet | None,
           max_jobs: int | None, seed: int) -> Trace:
    if trace is not None:
        return load_trace(trace, trace_format, catalog=cat, max_jobs=max_jobs, seed=seed)
    if trace_format == GENERATED:
        sites = [s.name for s in (fl or _demo_fleet(cat)).sites]
        n = max_jobs or 500
        return Trace(synthetic_jobs(n, seed=seed, sites=sites), source=f"synthetic (seed {seed})",
                     format=GENERATED, notes=[f"synthetic trace: {n} jobs, seed {seed}"])
    if trace_format == "auto":
        tr = load_jobs_csv(demo_trace_path(), max_jobs=max_jobs)
        tr.notes.append("bundled demo trace (synthetic, seed 0)")
        return tr
    raise SuanliError(f"trace format '{trace_format}' needs a trace file", field="trace")


def prepare(
    *,
    fleet: str | Path | None = None,
    trace: str | Path | None = None,
    trace_format: str = "auto",
    throughputs: str | Path | None = None,
    seed: int = 0,
    scale_fleet: float = 1.0,
    max_jobs: int | None = None,
    load: float = 1.0,
    jitter: float = 0.0,
    catalog_files: Iterable[str | Path] | None = None,
    catalog: Catalog | None = None,
) -> SimSetup:
    """Everything a run needs, with the defaults documented in the module. ``seed`` seeds the
    synthetic generator, the workload rules and ``jitter`` (each inter-arrival gap times a
    factor uniform in [1 - jitter, 1 + jitter])."""
    cat = catalog if catalog is not None else load_catalog(catalog_files)
    trace_format = trace_format.strip().lower()
    _check(scale_fleet, load, max_jobs, jitter, trace_format)
    fl: Fleet | None = load_fleet(fleet, cat).fleet if fleet is not None else None

    # --- trace
    tr = _trace(trace, trace_format, cat, fl, max_jobs, seed)
    fmt = get_format(tr.format) if tr.format in format_names() else None
    if max_jobs is not None:
        tr.notes.append(f"only the first {max_jobs} jobs by arrival")
    if jitter > 0:
        tr.jobs = jitter_arrivals(tr.jobs, jitter, seed)
        tr.notes.append(f"arrival jitter {jitter:g}: each inter-arrival gap multiplied by a "
                        f"factor uniform in [{1 - jitter:g}, {1 + jitter:g}] drawn with the seed")
    if load != 1.0:
        tr.jobs = [replace(j, arrival=j.arrival / load) for j in tr.jobs]
        tr.notes.append(f"arrival rate multiplied by {load:g} (inter-arrival times / {load:g})")

    # --- fleet
    if fl is None:
        fl = tr.fleet or (fmt.default_fleet() if fmt else None) or _demo_fleet(cat)
    if scale_fleet != 1.0:
        fl = fl.scaled(scale_fleet)
    cluster = ClusterSpec.from_fleet(fl, cat, opaque=tr.opaque_chips or None)

    # --- throughputs and work
    notes = list(tr.notes)
    provider: ThroughputProvider
    if throughputs is not None:
        provider = MeasuredThroughput.from_file(throughputs)
        if any(j.job_type is None for j in tr.jobs):
            raise SuanliError("measured throughputs need a trace with job types (Gavel format); "
                              "this trace has none", field="throughputs")
        notes.append(f"job speeds from the measured matrix {Path(throughputs).name}")
        return SimSetup(cluster=cluster, trace=tr, provider=provider, fleet=fl,
                        notes=list(dict.fromkeys(notes)))
    ref = fmt.reference_chip if fmt else DEFAULT_REFERENCE_CHIP
    provider = _model_provider(cluster, cat, ref, notes)
    if fmt is not None:
        priced = fmt.for_model(tr)
        if priced is not tr:
            tr = priced
            notes.append(tr.notes[-1])
    if any(j.duration_ref is not None and j.work <= 0 for j in tr.jobs):
        if ref not in cat:
            raise SuanliError(f"reference chip {ref} is not in the catalogue")
        jobs, wnotes = attach_work(tr.jobs, provider, ref, [c for c in FALLBACK_CHIPS
                                                             if c in cat])
        tr.jobs = jobs
        tr.reference_chip = ref
        notes += wnotes
    return SimSetup(cluster=cluster, trace=tr, provider=provider, fleet=fl,
                    notes=list(dict.fromkeys(notes)))


def _model_provider(cluster: ClusterSpec, cat: Catalog, ref: str,
                    notes: list[str]) -> ModelThroughput:
    chips = {p.chip_type: p.chip for p in cluster.pools if p.chip is not None}
    extra = {c: cat.get(c) for c in (ref, *FALLBACK_CHIPS) if c in cat}
    proxies = {}
    if ref in cat:
        proxies = {p.chip_type: cat.get(ref) for p in cluster.pools if p.chip is None}
        if proxies:
            notes.append(f"opaque chip types {', '.join(sorted(proxies))} (no catalogue "
                         f"entry) are priced as the reference chip {ref}")
    notes.append("job speeds from the performance model (suanli.perf.job_rate)")
    return ModelThroughput({**extra, **chips}, proxies=proxies)


def _demo_fleet(cat: Catalog) -> Fleet:
    return load_fleet(demo_fleet_path(), cat).fleet
