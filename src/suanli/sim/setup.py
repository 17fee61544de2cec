"""Assemble a simulation from user inputs: fleet, trace, throughput source, work conversion.

This is what ``suanli simulate`` and the benchmarks call; it holds the defaulting rules:

* no ``--trace``: the bundled demo trace (``suanli/sim/data/demo_trace.csv``); format
  ``synthetic`` without a file: a fresh seeded synthetic trace;
* no ``--fleet``: the trace's own cluster (Alibaba node list next to the pod list), the Gavel
  cluster (36 K80 + 36 P100 + 36 V100) for Gavel traces, else the bundled demo fleet;
* durations -> work on a reference chip (Philly: P100, Alibaba: T4, suanli CSV: A100).
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
from suanli.sim.traces import (
    FORMATS,
    Trace,
    attach_work,
    demo_trace_path,
    gavel_steps_to_work,
    load_jobs_csv,
    load_trace,
    synthetic_jobs,
)

REFERENCE_CHIP = {
    "philly": "nvidia_p100",
    "alibaba": "nvidia_t4",
    "synthetic": "nvidia_a100_sxm_80",
    "gavel": "nvidia_v100",
}
FALLBACK_CHIPS = ("nvidia_v100", "nvidia_a100_sxm_80", "nvidia_h800_sxm", "hygon_k100_ai")


@dataclass
class SimSetup:
    cluster: ClusterSpec
    trace: Trace
    provider: ThroughputProvider
    fleet: Fleet
    notes: list[str] = field(default_factory=list)


def gavel_fleet(per_type: int = 36) -> Fleet:
    """Gavel's simulated cluster: ``per_type`` each of K80, P100 and V100 in 4-GPU servers."""
    nodes = max(1, per_type // 4)
    return Fleet.model_validate(
        {
            "name": f"gavel {per_type}xK80 + {per_type}xP100 + {per_type}xV100",
            "sites": [
                {
                    "name": "gavel",
                    "node_groups": [
                        {"chip": c, "chips_per_node": 4, "nodes": nodes}
                        for c in ("nvidia_k80", "nvidia_p100", "nvidia_v100")
                    ],
                }
            ],
        }
    )


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
    catalog_files: Iterable[str | Path] | None = None,
    catalog: Catalog | None = None,
) -> SimSetup:
    """Everything a run needs, with the defaults documented in the module."""
    cat = catalog if catalog is not None else load_catalog(catalog_files)
    if scale_fleet <= 0:
        raise SuanliError(f"must be > 0, got {scale_fleet}", field="--scale-fleet")
    if load <= 0:
        raise SuanliError(f"must be > 0, got {load}", field="--load")
    if max_jobs is not None and max_jobs < 1:
        raise SuanliError(f"must be >= 1, got {max_jobs}", field="--max-jobs")
    if trace_format not in ("auto", *FORMATS):
        raise SuanliError(f"unknown trace format '{trace_format}' (choose from "
                          f"{', '.join(FORMATS)}, auto)", field="--trace-format")
    fl: Fleet | None = load_fleet(fleet, cat).fleet if fleet is not None else None

    # --- trace
    if trace is not None:
        tr = load_trace(trace, trace_format, catalog=cat, max_jobs=max_jobs, seed=seed)
    elif trace_format == "synthetic":
        sites = [s.name for s in (fl or _demo_fleet(cat)).sites]
        n = max_jobs or 500
        tr = Trace(synthetic_jobs(n, seed=seed, sites=sites), source=f"synthetic (seed {seed})",
                   format="synthetic", notes=[f"synthetic trace: {n} jobs, seed {seed}"])
    elif trace_format in ("auto",):
        tr = load_jobs_csv(demo_trace_path(), max_jobs=max_jobs)
        tr.notes.append("bundled demo trace (synthetic, seed 0)")
    else:
        raise SuanliError(f"--trace-format {trace_format} needs --trace FILE", field="--trace")
    if max_jobs is not None:
        tr.notes.append(f"--max-jobs {max_jobs}: at most the first {max_jobs} jobs by arrival")
    if load != 1.0:
        tr.jobs = [replace(j, arrival=j.arrival / load) for j in tr.jobs]
        tr.notes.append(f"arrival rate multiplied by {load:g} (inter-arrival times / {load:g})")

    # --- fleet
    if fl is None:
        if tr.fleet is not None:
            fl = tr.fleet
        elif tr.format == "gavel":
            fl = gavel_fleet()
        else:
            fl = _demo_fleet(cat)
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
                              "this trace has none", field="--throughputs")
        notes.append(f"job speeds from the measured matrix {Path(throughputs).name}")
    else:
        ref = REFERENCE_CHIP.get(tr.format, "nvidia_a100_sxm_80")
        chips = {p.chip_type: p.chip for p in cluster.pools if p.chip is not None}
        extra = {c: cat.get(c) for c in (ref, *FALLBACK_CHIPS) if c in cat}
        proxies = {}
        if ref in cat:
            proxies = {p.chip_type: cat.get(ref) for p in cluster.pools if p.chip is None}
            if proxies:
                notes.append(f"opaque chip types {', '.join(sorted(proxies))} (no catalogue "
                             f"entry) are priced as the reference chip {ref}")
        provider = ModelThroughput({**extra, **chips}, proxies=proxies)
        notes.append("job speeds from the performance model (suanli.perf.job_rate)")
        if tr.format == "gavel":
            tr = gavel_steps_to_work(tr)
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


def _demo_fleet(cat: Catalog) -> Fleet:
    return load_fleet(demo_fleet_path(), cat).fleet
