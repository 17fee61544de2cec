"""Trace loaders (Philly, Alibaba 2023, Gavel, suanli CSV), a seeded synthetic generator and
the workload rule for traces that carry no workload description.

Every loader validates as it reads: a missing column, a non-numeric field, a negative duration
or an unknown chip in a constraint raises one :class:`SuanliError` naming file, row and column.
Rows are numbered like a spreadsheet: the header is row 1, the first job row 2 (Gavel traces
have no header: line 1 is the first job).

Traces that give durations instead of work set ``Job.duration_ref`` (run time on the trace's
original chip); :func:`attach_work` turns it into work with the throughput provider:
``work = duration_ref x rate(workload, reference chip, gang)``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from suanli.catalog.schema import Precision
from suanli.errors import CannotRun, SuanliError
from suanli.fleet.schema import Fleet
from suanli.perf.workload import Workload
from suanli.sched.job import Job
from suanli.sched.throughput import ThroughputProvider
from suanli.sim.rows import Row, flag, names, number, parse_row

# Bounds on trace rows: a time beyond ten years or a gang beyond a million devices is a
# typo, not a job (and would only produce a misleading "never fitted" reason later).
MAX_SECONDS = 10 * 365.25 * 86400.0
MAX_GANG = 1_000_000


@dataclass
class Trace:
    """Jobs of a trace plus what the loader assumed (shown in reports)."""

    jobs: list[Job]
    source: str
    format: str
    notes: list[str] = field(default_factory=list)
    fleet: Fleet | None = None  # a trace that describes its own cluster (Alibaba node list)
    opaque_chips: frozenset[str] = frozenset()  # chip types with no catalogue entry
    reference_chip: str | None = None  # chip the durations were measured on
    nodes: list[TraceNode] = field(default_factory=list)  # the trace's own nodes, if listed


# ----------------------------------------------------------------------- workload rule
@dataclass(frozen=True)
class WorkloadRule:
    """Seeded rule giving trace jobs a workload when the trace has none.

    Each job draws independently (``seed``, then the job's row): its kind from the mix, whether
    it needs CUDA-only kernels, and its memory per device. Training and inference use FP16
    (supported from Pascal on, so every reference GPU can price it); HPC jobs are FP64 HPL.
    """

    seed: int = 0
    train: float = 1.0
    infer: float = 0.0
    hpc: float = 0.0
    cuda_only: float = 0.2
    mem_gb: tuple[float, float] = (4.0, 16.0)

    def describe(self) -> str:
        return (
            f"workloads drawn by a seeded rule (seed {self.seed}): train {self.train:.0%}, "
            f"infer {self.infer:.0%}, hpc {self.hpc:.0%}; {self.cuda_only:.0%} need CUDA-only "
            f"kernels; memory per device uniform {self.mem_gb[0]:g}-{self.mem_gb[1]:g} GB"
        )

    def draw(self, n: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        mix = np.array([self.train, self.infer, self.hpc], dtype=float)
        mix = mix / mix.sum()
        return {
            "kind": rng.choice(3, size=n, p=mix),
            "cuda": rng.random(n) < self.cuda_only,
            "mem": rng.uniform(self.mem_gb[0], self.mem_gb[1], size=n).round(0),
        }


# The rule's workloads: small models so a 1-device job fits a 16 GB card of the Philly era.
WORKLOADS: tuple[Workload, ...] = (
    Workload(kind="train", model="mpt-350m", precision=Precision.FP16, seq_len=1024, batch=32),
    Workload(kind="infer", model="mpt-1b", precision=Precision.FP16, seq_len=1024, batch=16),
    Workload(kind="hpc", precision=Precision.FP64, hpc_kernel="hpl"),
)


def _apply_rule(jobs: list[Job], rule: WorkloadRule) -> list[Job]:
    d = rule.draw(len(jobs))
    out = []
    for i, j in enumerate(jobs):
        k = int(d["kind"][i])
        out.append(
            replace(
                j,
                workload=WORKLOADS[k],
                fp64=k == 2,
                cuda_only=bool(d["cuda"][i]),
                mem_gb=float(d["mem"][i]) if k != 2 else 8.0,
            )
        )
    return out


# ----------------------------------------------------------------------- CSV helpers
class _Rows:
    """CSV reader that validates columns and converts fields with row/column errors."""

    def __init__(self, path: Path, required: Sequence[str], delimiter: str = ",") -> None:
        self.path = path
        self.required = required
        self.delimiter = delimiter

    def header(self) -> list[str]:
        """The column names (row 1)."""
        for _ in self._open(header_only=True):
            pass
        return self._header

    def __iter__(self) -> Iterator[tuple[int, dict[str, str]]]:
        return self._open()

    def _open(self, header_only: bool = False) -> Iterator[tuple[int, dict[str, str]]]:
        p = self.path
        if not p.exists():
            raise SuanliError("file not found", file=p)
        try:
            fh = p.open(encoding="utf-8", newline="")
        except OSError as exc:
            raise SuanliError(f"cannot read: {exc}", file=p) from None
        with fh:
            reader = csv.reader(fh, delimiter=self.delimiter)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise SuanliError("empty file (no header row)", file=p) from None
            except (csv.Error, UnicodeDecodeError) as exc:
                raise SuanliError(f"not a CSV file: {exc}", file=p, where="row 1") from None
            missing = [c for c in self.required if c not in header]
            if missing:
                raise SuanliError(
                    f"missing column(s) {', '.join(missing)} (found: {', '.join(header)})",
                    file=p,
                    where="row 1",
                )
            self._header = header
            if header_only:
                return
            idx = {h: i for i, h in enumerate(header)}
            row_no = 1
            try:
                for rec in reader:
                    row_no += 1
                    if not rec or all(not x.strip() for x in rec):
                        continue
                    if len(rec) < len(header):
                        rec = rec + [""] * (len(header) - len(rec))
                    yield row_no, {h: rec[i].strip() for h, i in idx.items()}
            except (csv.Error, UnicodeDecodeError) as exc:
                raise SuanliError(f"malformed CSV: {exc}", file=p, where=f"row {row_no}") from None

    def num(
        self, row: int, rec: dict[str, str], col: str, *, ge: float | None = 0.0,
        optional: bool = False, le: float | None = None, gt: float | None = None,
    ) -> float:
        raw = rec.get(col, "")
        if raw == "" and optional:
            return float("nan")
        try:
            v = float(raw)
        except ValueError:
            what = "is empty" if raw == "" else f"'{raw}' is not a number"
            raise SuanliError(what, file=self.path, where=f"row {row}", field=col) from None
        if not np.isfinite(v):
            raise SuanliError(f"'{raw}' is not a finite number", file=self.path,
                              where=f"row {row}", field=col)
        if ge is not None and v < ge:
            raise SuanliError(f"must be >= {ge:g}, got {raw}", file=self.path,
                              where=f"row {row}", field=col)
        if gt is not None and v <= gt:
            raise SuanliError(f"must be > {gt:g}, got {raw}", file=self.path,
                              where=f"row {row}", field=col)
        if le is not None and v > le:
            raise SuanliError(f"must be <= {le:g}, got {raw}", file=self.path,
                              where=f"row {row}", field=col)
        return v


def _limit(jobs: list[Job], max_jobs: int | None) -> list[Job]:
    """The first ``max_jobs`` jobs by arrival (stable for equal arrival times)."""
    if max_jobs is not None and max_jobs < len(jobs):
        jobs = sorted(jobs, key=lambda j: j.arrival)[:max_jobs]
    return jobs


# ----------------------------------------------------------------------- Philly
_PHILLY_TIME = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?")


def _philly_time(raw: Any) -> str:
    ts = str(raw or "").strip()
    if not _PHILLY_TIME.fullmatch(ts):
        raise PydanticCustomError("time", "'{ts}' is not a 'YYYY-MM-DD HH:MM:SS' time",
                                  {"ts": ts})
    return ts


class PhillyRow(Row):
    """One job of a Philly trace: ``timestamp,duration,num_gpus,gpu_time,cluster``."""

    duration: Annotated[float, number(gt=0, le=MAX_SECONDS)]  # s on the original GPUs
    num_gpus: Annotated[float, number(ge=1, le=MAX_GANG, whole=True)]
    timestamp: Annotated[str, BeforeValidator(_philly_time)]
    cluster: str = ""  # virtual cluster -> queue


def load_philly(
    path: str | Path, *, rule: WorkloadRule | None = None, max_jobs: int | None = None
) -> Trace:
    """Microsoft Philly: ``timestamp,duration,num_gpus,gpu_time,cluster`` (duration in s)."""
    p = Path(path)
    rows = _Rows(p, ("timestamp", "duration", "num_gpus", "cluster"))
    stamps: list[str] = []
    jobs: list[Job] = []
    for r, rec in rows:
        row = parse_row(PhillyRow, rec, p, f"row {r}")
        stamps.append(row.timestamp)
        jobs.append(
            Job(id=f"philly-{r}", arrival=0.0, gang=int(row.num_gpus), work=0.0,
                queue=row.cluster or "default", duration_ref=row.duration,
                origin=f"{p.name} row {r}")
        )
    if not jobs:
        raise SuanliError("trace has no jobs", file=p)
    try:
        t = np.array(stamps, dtype="datetime64[s]").astype(np.int64)
    except ValueError as exc:
        raise SuanliError(f"bad timestamp: {exc}", file=p, field="timestamp") from None
    t = t - t.min()
    jobs = [replace(j, arrival=float(ti)) for j, ti in zip(jobs, t, strict=True)]
    jobs = _limit(jobs, max_jobs)
    rule = rule or WorkloadRule()
    return Trace(
        jobs=_apply_rule(jobs, rule),
        source=str(p),
        format="philly",
        notes=[f"Philly trace has no workload descriptions: {rule.describe()}"],
    )


# ----------------------------------------------------------------------- Alibaba 2023
# Alibaba GPU model names -> catalogue chip ids tried in order; G1, G2 and G3 are undisclosed
# and stay opaque chip types named alibaba_g1 / alibaba_g2 / alibaba_g3.
ALIBABA_CHIPS: dict[str, tuple[str, ...]] = {
    "T4": ("nvidia_t4",),
    "P100": ("nvidia_p100",),
    "V100M16": ("nvidia_v100_16", "nvidia_v100_sxm2_16", "nvidia_v100"),
    "V100M32": ("nvidia_v100_32", "nvidia_v100_sxm2_32", "nvidia_v100"),
    "A10": ("nvidia_a10",),
    "G1": (),
    "G2": (),
    "G3": (),
}
# Durations assumed for pod lists without times (openb_pod_list_multigpu*): log-normal fitted
# to the 7,064 GPU pods of openb_pod_list_default.csv (deletion - scheduled time): median
# 491.5 s, sigma of ln(duration) 1.97; clipped to [1 s, 30 days].
UNTIMED_MEDIAN_S = 491.5
UNTIMED_SIGMA = 1.97
UNTIMED_MAX_S = 30 * 86400.0


def alibaba_chip(model: str, catalog: Any | None) -> str:
    """Chip type for an Alibaba model name: a catalogue id, else ``alibaba_<model>``."""
    for cid in ALIBABA_CHIPS.get(model, ()):
        if catalog is not None and cid in catalog:
            return str(catalog.get(cid).id)
    return f"alibaba_{model.casefold()}"


def _alibaba_models(raw: Any) -> frozenset[str] | None:
    spec = frozenset(m.strip() for m in str(raw or "").split("|") if m.strip())
    for m in sorted(spec):
        if m not in ALIBABA_CHIPS:
            raise PydanticCustomError(
                "chip", "unknown chip '{m}' in constraint (known: {known})",
                {"m": m, "known": ", ".join(ALIBABA_CHIPS)})
    return spec or None


class AlibabaNodeRow(Row):
    """One row of ``openb_node_list_*.csv``: ``sn,cpu_milli,memory_mib,gpu,model``."""

    sn: str = ""
    cpu_milli: Annotated[float, number(ge=0)] = 0.0
    memory_mib: Annotated[float, number(ge=0)] = 0.0
    gpu: Annotated[float, number(ge=0, le=MAX_GANG, whole=True)]
    model: str = ""

    @field_validator("model")
    @classmethod
    def _known(cls, v: str, info: ValidationInfo) -> str:
        if v in ("", "nan") and not info.data.get("gpu"):
            return ""  # a CPU-only node (openb_node_list_all_node.csv)
        if v not in ALIBABA_CHIPS:
            raise PydanticCustomError("model", "unknown GPU model '{v}' (known: {known})",
                                      {"v": v, "known": ", ".join(ALIBABA_CHIPS)})
        return v


@dataclass(frozen=True)
class TraceNode:
    """One node of a trace's own cluster, as plain data (for node-aware scheduling)."""

    node_id: str
    chip: str  # chip type (catalogue id or opaque name); "" for a CPU-only node
    devices: int
    cpu_milli: float = 0.0
    memory_mib: float = 0.0


def load_alibaba_node_list(path: str | Path, catalog: Any | None = None) -> list[TraceNode]:
    """Every node of an Alibaba node list (``openb_node_list_gpu_node.csv`` or
    ``..._all_node.csv``, which also lists CPU-only nodes with ``gpu = 0``)."""
    p = Path(path)
    rows = _Rows(p, ("sn", "gpu", "model"))
    nodes: list[TraceNode] = []
    for r, rec in rows:
        row = parse_row(AlibabaNodeRow, rec, p, f"row {r}")
        n = int(row.gpu)
        nodes.append(TraceNode(node_id=row.sn or f"node-{r}",
                               chip=alibaba_chip(row.model, catalog) if n else "", devices=n,
                               cpu_milli=row.cpu_milli, memory_mib=row.memory_mib))
    if not any(n.devices for n in nodes):
        raise SuanliError("node list has no GPU nodes", file=p)
    return nodes


def nodes_to_fleet(nodes: Sequence[TraceNode], name: str) -> Fleet:
    """A one-site fleet with one node group per (chip, devices per node); CPU-only nodes are
    left out."""
    groups: dict[tuple[str, int], int] = {}
    for nd in nodes:
        if nd.devices:
            groups[(nd.chip, nd.devices)] = groups.get((nd.chip, nd.devices), 0) + 1
    return Fleet.model_validate({
        "name": name,
        "sites": [{
            "name": "alibaba",
            "node_groups": [{"chip": c, "chips_per_node": n, "nodes": k}
                            for (c, n), k in sorted(groups.items())],
        }],
    })


def load_alibaba_nodes(path: str | Path, catalog: Any | None = None) -> Fleet:
    """Alibaba node list (``sn,cpu_milli,memory_mib,gpu,model``) as a one-site fleet."""
    p = Path(path)
    return nodes_to_fleet(load_alibaba_node_list(p, catalog), f"alibaba ({p.name})")


class AlibabaPodRow(Row):
    """One row of an ``openb_pod_list_*.csv``. The timed lists have all eleven columns
    (``name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,
    deletion_time,scheduled_time``); the multigpu lists only the first five. A missing column
    takes the default below (its assumption is stated by the loader)."""

    name: str = ""
    num_gpu: Annotated[float, number(ge=0, le=MAX_GANG, whole=True)]
    gpu_milli: Annotated[float, number(ge=0)] = 1000.0
    creation_time: Annotated[float | None, number(ge=0, le=MAX_SECONDS, optional=True)] = None
    deletion_time: Annotated[float | None, number(ge=0, le=MAX_SECONDS, optional=True)] = None
    scheduled_time: Annotated[float | None, number(ge=0, le=MAX_SECONDS, optional=True)] = None
    gpu_spec: Annotated[frozenset[str] | None, BeforeValidator(_alibaba_models)] = None
    qos: str = ""


ALIBABA_TIME_COLUMNS = ("creation_time", "deletion_time", "scheduled_time")


def load_alibaba(
    path: str | Path,
    *,
    nodes: str | Path | None = None,
    catalog: Any | None = None,
    rule: WorkloadRule | None = None,
    max_jobs: int | None = None,
    seed: int = 0,
) -> Trace:
    """Any Alibaba 2023 pod list; ``nodes`` (node list CSV) is found next to it when not given.

    Pod lists with times (default, gpuspec*, cpu*, gpushare*) give arrival = creation time and
    duration = deletion - scheduled time. Lists without (multigpu*: ``name,cpu_milli,
    memory_mib,num_gpu,gpu_milli``) are run as the FGD simulator runs them: every pod arrives
    at 0 in file order; durations are drawn (``seed``) from the log-normal fitted to the default
    list; no GPU-type constraints; one queue."""
    p = Path(path)
    rows = _Rows(p, ("num_gpu",))
    header = set(rows.header())
    timed = set(ALIBABA_TIME_COLUMNS[:2]) <= header
    if not timed and header & set(ALIBABA_TIME_COLUMNS):
        raise SuanliError("has some of creation_time/deletion_time but not both", file=p,
                          where="row 1")
    jobs: list[Job] = []
    cpu_only = 0
    never_scheduled = 0
    for r, rec in rows:
        where = f"row {r}"
        row = parse_row(AlibabaPodRow, rec, p, where)
        g = int(row.num_gpu)
        if g == 0:
            cpu_only += 1
            continue
        arrival, dur = 0.0, 1.0
        if timed:
            if row.creation_time is None or row.deletion_time is None:
                col = "creation_time" if row.creation_time is None else "deletion_time"
                raise SuanliError("is empty", file=p, where=where, field=col)
            arrival = row.creation_time
            sched_t = row.scheduled_time
            if sched_t is None:
                never_scheduled += 1
                sched_t = row.creation_time
            dur = row.deletion_time - sched_t
            if dur < 0:
                raise SuanliError(f"negative duration: deletion_time {rec['deletion_time']} < "
                                  f"scheduled_time {sched_t:g}", file=p, where=where,
                                  field="deletion_time")
        allowed = (frozenset(alibaba_chip(m, catalog) for m in sorted(row.gpu_spec))
                   if row.gpu_spec else None)
        milli = row.gpu_milli
        frac = milli / 1000.0 if g == 1 and 0 < milli < 1000 else 1.0
        jobs.append(
            Job(id=row.name or f"pod-{r}", arrival=arrival, gang=g, work=0.0,
                queue=row.qos or "default", allowed_chips=allowed, gpu_fraction=frac,
                duration_ref=max(dur, 1.0), origin=f"{p.name} {where}")
        )
    if not jobs:
        raise SuanliError("trace has no GPU jobs", file=p)
    notes = []
    if not timed:
        rng = np.random.default_rng(seed)
        durs = np.clip(rng.lognormal(np.log(UNTIMED_MEDIAN_S), UNTIMED_SIGMA, len(jobs)),
                       1.0, UNTIMED_MAX_S).round(1)
        jobs = [replace(j, duration_ref=float(d)) for j, d in zip(jobs, durs, strict=True)]
        notes.append(
            "pod list without times: every pod arrives at 0 in file order; durations drawn "
            f"(seed {seed}) from a log-normal with median {UNTIMED_MEDIAN_S:g} s and sigma "
            f"{UNTIMED_SIGMA:g} (fitted to the GPU pods of openb_pod_list_default.csv)")
    missing = [c for c in ("gpu_milli", "gpu_spec", "qos") if c not in header]
    if missing:
        notes.append(f"columns {', '.join(missing)} absent: "
                     + "; ".join({"gpu_milli": "whole devices (gpu_milli = 1000)",
                                  "gpu_spec": "no GPU-type constraints",
                                  "qos": "one queue (default)"}[c] for c in missing))
    jobs = _limit(jobs, max_jobs)
    rule = rule or WorkloadRule(seed=seed, train=0.4, infer=0.6)
    jobs = _apply_rule(jobs, rule)
    notes = [f"Alibaba trace has no workload descriptions: {rule.describe()}",
             f"{cpu_only} CPU-only pods (num_gpu = 0) are not GPU jobs and were left out",
             ("durations are deletion - scheduled time; " if timed else "")
             + "fractional gpu_milli is modelled as a share of one device at that share of "
             "its speed", *notes]
    if never_scheduled:
        notes.append(f"{never_scheduled} pods never scheduled in the original cluster: "
                     "duration taken as deletion - creation time")
    fleet = None
    node_list: list[TraceNode] = []
    node_file = Path(nodes) if nodes else _sibling_nodes(p)
    if node_file is not None:
        node_list = load_alibaba_node_list(node_file, catalog)
        fleet = nodes_to_fleet(node_list, f"alibaba ({node_file.name})")
        notes.append(f"cluster from the node list {node_file.name}")
    opaque = frozenset(f"alibaba_{m.casefold()}" for m in ALIBABA_CHIPS)
    return Trace(jobs=jobs, source=str(p), format="alibaba" if timed else "alibaba-untimed",
                 notes=notes, fleet=fleet, opaque_chips=opaque, reference_chip=None,
                 nodes=node_list)


def _sibling_nodes(p: Path) -> Path | None:
    hits = sorted(p.parent.glob("*node_list*.csv"))
    return hits[0] if hits else None


# ----------------------------------------------------------------------- Gavel
_GAVEL_FIELDS = ("job_type", "command", "working_directory", "num_steps_arg", "needs_data_dir",
                 "total_steps", "scale_factor", "priority_weight", "SLO", "arrival_time")


def gavel_workload(job_type: str) -> Workload:
    """Documented rule for pricing a Gavel job type with the performance model: FP32 training
    (the K80 has no FP16) of mpt-125m with the job type's batch size (default 32) and 512-token
    samples."""
    m = re.search(r"batch size (\d+)", job_type)
    return Workload(kind="train", model="mpt-125m", precision=Precision.FP32, seq_len=512,
                    batch=int(m.group(1)) if m else 32)


def load_gavel(path: str | Path, *, max_jobs: int | None = None) -> Trace:
    """Gavel trace: 10 tab-separated fields per line (see module docs); work = total steps."""
    p = Path(path)
    if not p.exists():
        raise SuanliError("file not found", file=p)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SuanliError(f"cannot read: {exc}", file=p) from None
    jobs: list[Job] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        f = line.split("\t")
        if len(f) != 10:
            raise SuanliError(f"expected 10 tab-separated fields, got {len(f)}", file=p,
                              where=f"line {n}")
        vals: dict[str, float] = {}
        for i in (5, 6, 7, 8, 9):
            try:
                vals[_GAVEL_FIELDS[i]] = float(f[i])
            except ValueError:
                raise SuanliError(f"'{f[i]}' is not a number", file=p, where=f"line {n}",
                                  field=_GAVEL_FIELDS[i]) from None
        steps, scale = vals["total_steps"], vals["scale_factor"]
        if steps <= 0:
            raise SuanliError(f"must be > 0, got {f[5]}", file=p, where=f"line {n}",
                              field="total_steps")
        if scale < 1 or scale != int(scale):
            raise SuanliError(f"must be a whole number >= 1, got {f[6]}", file=p,
                              where=f"line {n}", field="scale_factor")
        if vals["arrival_time"] < 0:
            raise SuanliError(f"must be >= 0, got {f[9]}", file=p, where=f"line {n}",
                              field="arrival_time")
        jt = f[0].strip()
        slo = vals["SLO"]
        jobs.append(
            Job(id=f"gavel-{n}", arrival=vals["arrival_time"], gang=int(scale), work=steps,
                job_type=jt, workload=gavel_workload(jt), priority=max(vals["priority_weight"],
                1e-6), deadline=vals["arrival_time"] + slo if slo > 0 else None,
                origin=f"{p.name} line {n}")
        )
    if not jobs:
        raise SuanliError("trace has no jobs", file=p)
    return Trace(jobs=_limit(jobs, max_jobs), source=str(p), format="gavel",
                 notes=["Gavel trace: work = total steps of each job"])


GAVEL_REF_STEPS_PER_S = 10.0  # ~ median isolated V100 rate of Gavel's 26 job types (10.8)


def gavel_steps_to_work(trace: Trace) -> Trace:
    """For runs priced by the performance model (no measured matrix): each job's duration on
    the reference chip (nvidia_v100) is taken as steps / GAVEL_REF_STEPS_PER_S; its workload is
    :func:`gavel_workload`; :func:`attach_work` then turns the duration into work."""
    jobs = [replace(j, work=0.0, duration_ref=j.work / GAVEL_REF_STEPS_PER_S,
                    workload=j.workload or gavel_workload(j.job_type or ""))
            for j in trace.jobs]
    notes = [*trace.notes, "no measured throughputs given: Gavel jobs priced by the performance "
             "model as FP32 mpt-125m training (gavel_workload); each job's duration on "
             f"nvidia_v100 = steps / {GAVEL_REF_STEPS_PER_S:g} steps/s"]
    return replace(trace, jobs=jobs, notes=notes, reference_chip="nvidia_v100")


# ----------------------------------------------------------------------- suanli CSV
JOB_COLUMNS = ("id", "queue", "arrival_s", "gang", "work", "duration_ref_s", "kind", "model",
               "precision", "seq_len", "batch", "hpc_kernel", "mem_gb", "cuda_only", "fp64",
               "allowed_chips", "allowed_sites", "priority", "deadline_s", "data_gb",
               "home_site", "gpu_fraction", "job_type")


def write_jobs_csv(jobs: Sequence[Job], path: str | Path) -> Path:
    """Write jobs in suanli's own trace format (``--trace-format synthetic``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(JOB_COLUMNS)
        for j in jobs:
            wl = j.workload
            w.writerow([
                j.id, j.queue, f"{j.arrival:.3f}", j.gang, f"{j.work:.6g}" if j.work else "",
                f"{j.duration_ref:.3f}" if j.duration_ref else "",
                wl.kind if wl else "", (wl.model or "") if wl else "",
                Precision(wl.precision).value if wl else (j.precision or ""),
                wl.seq_len if wl else "", wl.batch if wl else "", wl.hpc_kernel if wl else "",
                f"{j.mem_gb:g}", int(j.cuda_only), int(j.fp64),
                "|".join(sorted(j.allowed_chips)) if j.allowed_chips else "",
                "|".join(sorted(j.allowed_sites)) if j.allowed_sites else "",
                f"{j.priority:g}", f"{j.deadline:.3f}" if j.deadline is not None else "",
                f"{j.data_gb:g}", j.home_site or "", f"{j.gpu_fraction:g}", j.job_type or "",
            ])
    return p


def _stack_ids(names: frozenset[str] | None, p: Path, where: str) -> frozenset[str] | None:
    from suanli.catalog.stacks import stack_ids

    try:
        return None if names is None else stack_ids(names)
    except SuanliError as exc:
        raise SuanliError(exc.problem, file=p, where=where, field="stacks") from None




def check_job_names(jobs: Sequence[Job], pools: Sequence[Any], catalog: Any = None) -> None:
    """Every name in a job's ``allowed_chips`` must be a chip of the cluster or of ``catalog``
    (id, name or alias), every ``allowed_sites`` name a site or region of the cluster. An
    unknown name would silently make the job unrunnable, so it is an error naming the trace
    row and column. (A catalogued chip the fleet lacks is legitimate: the job cannot run
    there and is reported as such.)"""
    chips: set[str] = set()
    sites: set[str] = set()
    for pool in pools:
        chips.add(pool.chip_type)
        if pool.chip is not None:
            chips |= {pool.chip.id, pool.chip.name, *pool.chip.aliases}
        sites.add(pool.site)
        if pool.region:
            sites.add(pool.region)
    for job in jobs:
        for col, allowed, known, what in (("allowed_chips", job.allowed_chips, chips, "chip"),
                                          ("allowed_sites", job.allowed_sites, sites, "site")):
            bad = sorted(n for n in set(allowed or ()) - known
                         if not (what == "chip" and catalog is not None and n in catalog))
            if not bad:
                continue
            file, _, row = (job.origin or "").rpartition(" row ")
            valid = sorted({p.chip_type for p in pools} if what == "chip" else sites)
            raise SuanliError(
                f"unknown {what} {', '.join(repr(b) for b in bad)} (this fleet has: "
                f"{', '.join(valid)})", file=file or None,
                where=f"row {row}" if file else f"job {job.id}", field=col)


def _one_of(col: str, allowed: tuple[str, ...]) -> BeforeValidator:
    def check(raw: Any) -> str:
        v = str(raw or "").strip()
        if v and v not in allowed:
            raise PydanticCustomError("choice", "{col} must be {ok}, got '{v}'",
                                      {"col": col, "ok": " or ".join(allowed), "v": v})
        return v

    return BeforeValidator(check)


def _precision(raw: Any) -> str:
    v = str(raw or "").strip()
    if v:
        try:
            Precision(v)
        except ValueError:
            raise PydanticCustomError("precision", "unknown precision '{v}'", {"v": v}) from None
    return v


class JobRow(Row):
    """One row of suanli's own trace CSV (docs/scheduling.md lists every column)."""

    id: str = ""
    queue: str = ""
    gang: Annotated[float, number(ge=1, le=MAX_GANG, whole=True)]
    work: Annotated[float | None, number(ge=0, optional=True)] = None
    duration_ref_s: Annotated[float | None, number(ge=0, le=MAX_SECONDS, optional=True)] = None
    kind: Annotated[str, _one_of("kind", ("train", "infer", "hpc"))] = ""
    precision: Annotated[str, BeforeValidator(_precision)] = ""
    hpc_kernel: Annotated[str, _one_of("hpc_kernel", ("hpl", "stream"))] = ""
    model: str = ""
    seq_len: Annotated[float | None, number(ge=1, optional=True)] = None
    batch: Annotated[float | None, number(ge=1, optional=True)] = None
    arrival_s: Annotated[float, number(ge=0, le=MAX_SECONDS)]
    mem_gb: Annotated[float | None, number(ge=0, optional=True)] = None
    cuda_only: Annotated[bool, flag()] = False
    fp64: Annotated[bool, flag()] = False
    allowed_chips: Annotated[frozenset[str] | None, names()] = None
    allowed_sites: Annotated[frozenset[str] | None, names()] = None
    priority: Annotated[float | None, number(gt=0, optional=True)] = None
    deadline_s: Annotated[float | None, number(ge=0, le=MAX_SECONDS, optional=True)] = None
    data_gb: Annotated[float | None, number(ge=0, optional=True)] = None
    home_site: str = ""
    gpu_fraction: Annotated[float | None, number(gt=0, le=1, optional=True)] = None
    job_type: str = ""
    stacks: Annotated[frozenset[str] | None, names()] = None  # allowed software stacks, a|b

    def workload(self) -> Workload | None:
        if not self.kind:
            return None
        return Workload(
            kind=self.kind,  # type: ignore[arg-type]
            model=self.model or None,
            precision=Precision(self.precision or "bf16"),
            seq_len=int(self.seq_len) if self.seq_len else 2048,
            batch=int(self.batch) if self.batch else 256,
            hpc_kernel=self.hpc_kernel or "hpl",  # type: ignore[arg-type]
        )


def load_jobs_csv(path: str | Path, *, max_jobs: int | None = None) -> Trace:
    """Read suanli's own trace format (as written by :func:`write_jobs_csv`)."""
    p = Path(path)
    rows = _Rows(p, ("id", "arrival_s", "gang", "kind", "precision"))
    jobs: list[Job] = []
    seen: set[str] = set()
    for r, rec in rows:
        where = f"row {r}"
        jid = rec["id"] or f"job-{r}"
        if jid in seen:
            raise SuanliError(f"duplicate job id '{jid}'", file=p, where=where, field="id")
        seen.add(jid)
        row = parse_row(JobRow, rec, p, where)
        work, dur = row.work or 0.0, row.duration_ref_s or 0.0
        if not (work > 0) and not (dur > 0):
            raise SuanliError("needs work > 0 or duration_ref_s > 0", file=p, where=where,
                              field="work")
        jobs.append(Job(
            id=jid, queue=row.queue or "default", arrival=row.arrival_s, gang=int(row.gang),
            work=work, duration_ref=dur if dur > 0 else None, workload=row.workload(),
            mem_gb=row.mem_gb or 0.0, cuda_only=row.cuda_only, fp64=row.fp64,
            allowed_chips=row.allowed_chips, allowed_sites=row.allowed_sites,
            priority=row.priority or 1.0, deadline=row.deadline_s, data_gb=row.data_gb or 0.0,
            home_site=row.home_site or None,
            gpu_fraction=row.gpu_fraction if row.gpu_fraction is not None else 1.0,
            job_type=row.job_type or None, origin=f"{p.name} {where}",
            stacks=_stack_ids(row.stacks, p, where),
        ))
    if not jobs:
        raise SuanliError("trace has no jobs", file=p)
    return Trace(jobs=_limit(jobs, max_jobs), source=str(p), format="suanli")


# ----------------------------------------------------------------------- synthetic
def synthetic_jobs(
    n: int = 500,
    *,
    seed: int = 0,
    mean_interarrival_s: float = 120.0,
    sites: Sequence[str] = (),
    mix: tuple[float, float, float] = (0.6, 0.3, 0.1),
    cuda_only: float = 0.25,
    queues: Sequence[str] = ("research", "production", "batch"),
) -> list[Job]:
    """Seeded synthetic trace: Poisson arrivals, gang sizes 1-64 (mostly small), log-normal
    durations (median ~40 min on the reference chip), a train/infer/hpc mix (HPC jobs need
    FP64), a share of CUDA-only jobs, data sets of 0-2 TB with a home site."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(mean_interarrival_s, n))
    gangs = rng.choice([1, 2, 4, 8, 16, 32, 64], size=n,
                       p=[0.45, 0.15, 0.15, 0.15, 0.06, 0.03, 0.01])
    durations = np.clip(rng.lognormal(np.log(2400.0), 1.2, n), 60.0, 7 * 86400.0)
    kinds = rng.choice(3, size=n, p=np.asarray(mix) / sum(mix))
    cuda = rng.random(n) < cuda_only
    mem = rng.uniform(8, 60, n).round(0)
    data = np.where(rng.random(n) < 0.5, rng.uniform(10, 2000, n).round(0), 0.0)
    home = rng.integers(0, max(len(sites), 1), n)
    qs = rng.integers(0, len(queues), n)
    prio = rng.choice([1.0, 2.0], size=n, p=[0.8, 0.2])
    jobs = []
    for i in range(n):
        k = int(kinds[i])
        jobs.append(Job(
            id=f"syn-{i:05d}", queue=queues[int(qs[i])], arrival=float(arrivals[i].round(3)),
            gang=int(gangs[i]), work=0.0, duration_ref=float(durations[i].round(1)),
            workload=WORKLOADS[k], fp64=k == 2, cuda_only=bool(cuda[i]),
            mem_gb=float(mem[i]) if k != 2 else 8.0, priority=float(prio[i]),
            data_gb=float(data[i]) if sites else 0.0,
            home_site=sites[int(home[i])] if sites else None, origin=f"synthetic job {i}",
        ))
    return jobs


def demo_trace_path() -> Path:
    return Path(str(resources.files("suanli.sim") / "data" / "demo_trace.csv"))


# ----------------------------------------------------------------------- registry shims
# Detection and loading by format name live in :mod:`suanli.sim.formats` (one adapter class
# per format); these names stay importable from here.
def detect_format(path: str | Path) -> str:
    """See :func:`suanli.sim.formats.detect_format`."""
    from suanli.sim.formats import detect_format as detect

    return detect(path)


def load_trace(path: str | Path, fmt: str = "auto", *, catalog: Any | None = None,
               max_jobs: int | None = None, seed: int = 0) -> Trace:
    """See :func:`suanli.sim.formats.load_trace`."""
    from suanli.sim.formats import load_trace as load

    return load(path, fmt, catalog=catalog, max_jobs=max_jobs, seed=seed)


def __getattr__(name: str) -> Any:
    if name == "FORMATS":  # every accepted --trace-format name, from the registry
        from suanli.sim.formats import FORMATS

        return FORMATS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------- arrivals, work
def jitter_arrivals(jobs: Sequence[Job], jitter: float, seed: int) -> list[Job]:
    """Jobs with every inter-arrival gap multiplied by a seeded factor uniform in
    ``[1 - jitter, 1 + jitter]``: the order of arrivals and (in expectation) the arrival rate
    stay, the exact instants change with ``seed``. Jobs that arrive together stay together."""
    if not 0 <= jitter <= 1:
        raise SuanliError(f"must be in [0, 1], got {jitter:g}", field="jitter")
    if not jobs or jitter == 0:
        return list(jobs)
    order = sorted(range(len(jobs)), key=lambda i: (jobs[i].arrival, i))
    t = np.array([jobs[i].arrival for i in order])
    gaps = np.diff(t, prepend=t[0])
    rng = np.random.default_rng(seed)
    factors = 1.0 + rng.uniform(-jitter, jitter, len(t))
    new_t = t[0] + np.cumsum(gaps * factors)
    out = list(jobs)
    for k, i in enumerate(order):
        out[i] = replace(jobs[i], arrival=float(new_t[k]))
    return out


def attach_work(
    jobs: Sequence[Job],
    provider: ThroughputProvider,
    reference: str,
    fallbacks: Sequence[str] = (),
) -> tuple[list[Job], list[str]]:
    """Give jobs that only have ``duration_ref`` their work: duration x rate on ``reference``
    (else the first of ``fallbacks`` that can run the job). Notes say what was assumed."""
    out: list[Job] = []
    cache: dict[tuple[Hashable, int], tuple[float, str] | None] = {}
    moved = 0
    dropped = 0
    for j in jobs:
        if j.work > 0 or j.duration_ref is None:
            out.append(j)
            continue
        key = (provider.key(j), j.gang)
        if key not in cache:
            cache[key] = _first_rate(provider, key[0], j.gang, [reference, *fallbacks])
        r = cache[key]
        if r is None:
            dropped += 1
            out.append(replace(j, work=j.duration_ref))  # cannot price: 1 unit/s placeholder
            continue
        if r[1] != reference:
            moved += 1
        out.append(replace(j, work=j.duration_ref * j.gpu_fraction * r[0]))
    notes = [f"trace durations are taken as run times on {reference}: work = duration x its "
             "modelled rate"]
    if moved:
        notes.append(f"{moved} jobs cannot run on {reference}; their durations were taken on "
                     "the first fallback chip that can run them")
    if dropped:
        notes.append(f"{dropped} jobs cannot be priced on any reference chip")
    return out, notes


def _first_rate(provider: ThroughputProvider, key: Hashable, n: int,
                chips: Sequence[str]) -> tuple[float, str] | None:
    for c in chips:
        try:
            r = provider.rate(key, c, n)
        except CannotRun:
            continue
        if r > 0:
            return r, c
    return None

