"""Jobs and queues as the scheduler sees them.

A :class:`Job` is one gang-scheduled unit of work: ``gang`` accelerators of a single chip type
inside one site, all started and stopped together. Its ``work`` is counted in the units of its
workload (tokens, FLOP, bytes, or training steps when speeds come from a measured matrix).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from suanli.catalog.schema import Precision
from suanli.perf.workload import Workload

MILLI = 1000  # capacity is accounted in milli-accelerators (fractional GPU requests)


@dataclass(frozen=True, slots=True)
class Job:
    """One job of a trace or one request submitted to a live scheduler."""

    id: str
    arrival: float  # s since the trace start
    gang: int  # accelerators, all of one chip type in one site
    work: float  # in the unit of ``workload`` (or steps for a measured job type)
    queue: str = "default"  # tenant / virtual cluster
    workload: Workload | None = None  # what the performance model prices
    job_type: str | None = None  # key into a measured throughput matrix (Gavel job type)
    precision: Precision | None = None  # required precision; default: the workload's
    mem_gb: float = 0.0  # memory needed per device
    cuda_only: bool = False  # CUDA kernels: needs stack cuda_compat native or binary
    fp64: bool = False  # needs FP64 hardware
    allowed_chips: frozenset[str] | None = None  # chip ids (or opaque type names)
    allowed_sites: frozenset[str] | None = None  # site names or regions
    priority: float = 1.0  # weight in fairness policies
    deadline: float | None = None  # absolute s, informational (reported)
    data_gb: float = 0.0  # input data to move when the job runs outside ``home_site``
    home_site: str | None = None
    gpu_fraction: float = 1.0  # fraction of one device (Alibaba gpu_milli / 1000), gang == 1
    # checkpoint + restart cost of one preemption or migration (s); None = the scheduler's
    # RestartCost rule (from the model size and storage bandwidth)
    restart_s: float | None = None
    # Run time on the trace's original chip, for traces that give durations, not work: a
    # loader sets ``work = 0`` and this; ``suanli.sim.traces.attach_work`` converts it.
    duration_ref: float | None = None
    origin: str = ""  # e.g. "philly.csv row 17": for messages and reports
    # Software stacks the code runs on (ids of catalog/data/stacks.yaml, e.g. from
    # ``suanli port-check``'s allowed stacks); None = any stack.
    stacks: frozenset[str] | None = None

    @property
    def demand_milli(self) -> int:
        """Capacity the job holds while running, in milli-accelerators."""
        return max(1, round(self.gang * self.gpu_fraction * MILLI))

    @property
    def need_precision(self) -> Precision | None:
        if self.precision is not None:
            return self.precision
        if self.workload is not None:
            return Precision(self.workload.precision)
        return None


@dataclass(frozen=True, slots=True)
class Queue:
    """A tenant queue: ``weight`` scales its jobs' fair share, ``quota`` caps its accelerators."""

    name: str
    weight: float = 1.0
    quota: float | None = None  # max accelerators running at once (None = unlimited)


def job_to_plain(job: Job) -> dict[str, Any]:
    """A job as plain data (JSON-able): for scheduler snapshots."""
    d: dict[str, Any] = {}
    for f in fields(job):
        v = getattr(job, f.name)
        if isinstance(v, Workload):
            v = {k: (str(x) if isinstance(x, Precision) else x) for k, x in asdict(v).items()}
        elif isinstance(v, frozenset):
            v = sorted(v)
        elif isinstance(v, Precision):
            v = str(v)
        d[f.name] = v
    return d


def job_from_plain(d: dict[str, Any]) -> Job:
    """Inverse of :func:`job_to_plain`."""
    d = dict(d)
    if d.get("workload") is not None:
        w = dict(d["workload"])
        w["precision"] = Precision(w["precision"])
        d["workload"] = Workload(**w)
    if d.get("precision") is not None:
        d["precision"] = Precision(d["precision"])
    for k in ("allowed_chips", "allowed_sites"):
        if d.get(k) is not None:
            d[k] = frozenset(d[k])
    return Job(**d)
