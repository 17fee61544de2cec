"""Trace formats in one registry: each format is one small adapter class that declares its
columns, what it assumes where the trace is silent, the chip its durations were measured on,
and how to detect, load and (where supported) write it.

Add a format by subclassing :class:`TraceFormat` and decorating it with :func:`register`;
``suanli simulate --trace-format NAME``, auto-detection and the docs table
(:func:`format_table`) pick it up.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from suanli.errors import SuanliError
from suanli.fleet import Fleet
from suanli.sched.job import Job
from suanli.sim.traces import (
    GAVEL_REF_STEPS_PER_S,
    JOB_COLUMNS,
    Trace,
    WorkloadRule,
    gavel_steps_to_work,
    load_alibaba,
    load_gavel,
    load_jobs_csv,
    load_philly,
    write_jobs_csv,
)

DEFAULT_REFERENCE_CHIP = "nvidia_a100_sxm_80"


class TraceFormat:
    """One trace format. Subclasses set the class attributes and implement :meth:`load`."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    title: ClassVar[str]  # what the files are, in a few words
    columns: ClassVar[tuple[str, ...]]  # columns (fields) the loader reads
    assumptions: ClassVar[tuple[str, ...]] = ()  # what the loader assumes (also in the notes)
    seed: ClassVar[str] = "nothing"  # what ``seed`` changes
    reference_chip: ClassVar[str] = DEFAULT_REFERENCE_CHIP  # durations were measured on it
    writable: ClassVar[bool] = False

    def detect(self, path: Path, first_line: str) -> bool:
        """Is ``path`` (first line ``first_line``) in this format?"""
        return False

    def load(self, path: Path, *, catalog: Any | None = None, max_jobs: int | None = None,
             seed: int = 0) -> Trace:
        raise NotImplementedError

    def write(self, jobs: Sequence[Job], path: Path) -> Path:
        raise SuanliError(f"trace format '{self.name}' cannot be written (writable: "
                          f"{', '.join(f.name for f in formats() if f.writable)})",
                          field="trace_format")

    def default_fleet(self) -> Fleet | None:
        """The cluster a trace of this format ran on, when neither the trace nor the user
        gives one."""
        return None

    def for_model(self, trace: Trace) -> Trace:
        """The trace made priceable by the performance model (default: as is)."""
        return trace


def _header(first_line: str) -> set[str]:
    return {c.strip() for c in first_line.split(",")}


_REGISTRY: dict[str, TraceFormat] = {}
_ORDER: list[TraceFormat] = []


def register(cls: type[TraceFormat]) -> type[TraceFormat]:
    """Class decorator: add a format (its name and aliases must be new)."""
    fmt = cls()
    for key in (cls.name, *cls.aliases):
        if key in _REGISTRY or key == "auto":
            raise ValueError(f"trace format name '{key}' is taken")
        _REGISTRY[key] = fmt
    _ORDER.append(fmt)
    return cls


def formats() -> list[TraceFormat]:
    """Registered formats, in detection order."""
    return list(_ORDER)


def format_names() -> tuple[str, ...]:
    """Every accepted format name (names and aliases)."""
    return tuple(_REGISTRY)


def get_format(name: str) -> TraceFormat:
    key = name.strip().lower()
    if key not in _REGISTRY:
        raise SuanliError(f"unknown trace format '{name}' (choose from "
                          f"{', '.join(format_names())}, auto)", field="trace_format")
    return _REGISTRY[key]


def detect_format(path: str | Path) -> str:
    """The name of the format of ``path``, from its suffix and first line."""
    p = Path(path)
    try:
        with p.open(encoding="utf-8") as fh:
            first = fh.readline()
    except FileNotFoundError:
        raise SuanliError("file not found", file=p) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuanliError(f"cannot read: {exc}", file=p) from None
    for fmt in _ORDER:
        if fmt.detect(p, first):
            return fmt.name
    raise SuanliError("cannot tell the trace format from the first line; name it (one of "
                      f"{', '.join(f.name for f in _ORDER)})", file=p, where="row 1",
                      field="trace_format")


def load_trace(path: str | Path, fmt: str = "auto", *, catalog: Any | None = None,
               max_jobs: int | None = None, seed: int = 0) -> Trace:
    """Load a trace in any registered format (``auto`` detects it)."""
    name = detect_format(path) if fmt == "auto" else fmt
    return get_format(name).load(Path(path), catalog=catalog, max_jobs=max_jobs, seed=seed)


def write_trace(jobs: Sequence[Job], path: str | Path, fmt: str = "suanli") -> Path:
    """Write jobs in a writable format (suanli's own CSV)."""
    return get_format(fmt).write(jobs, Path(path))


def format_table() -> list[dict[str, str]]:
    """One row per format (for docs and ``--help``)."""
    return [{"format": f.name, "aliases": ", ".join(f.aliases), "files": f.title,
             "columns": ",".join(f.columns), "assumptions": "; ".join(f.assumptions),
             "seed changes": f.seed, "reference chip": f.reference_chip,
             "writable": "yes" if f.writable else "no"} for f in _ORDER]


# ----------------------------------------------------------------------- the formats
@register
class GavelFormat(TraceFormat):
    name = "gavel"
    title = "Gavel traces (10 tab-separated fields per line, no header; *.trace)"
    columns = ("job_type", "command", "working_directory", "num_steps_arg", "needs_data_dir",
               "total_steps", "scale_factor", "priority_weight", "SLO", "arrival_time")
    assumptions = (
        "work = total steps; gang = scale factor; deadline = arrival + SLO when SLO > 0",
        "without --throughputs: FP32 mpt-125m training, duration on nvidia_v100 = steps / "
        f"{GAVEL_REF_STEPS_PER_S:g} steps/s",
        "no fleet given: Gavel's cluster (36 K80 + 36 P100 + 36 V100)",
    )
    reference_chip = "nvidia_v100"

    def detect(self, path: Path, first_line: str) -> bool:
        return path.suffix == ".trace" or first_line.count("\t") == 9

    def load(self, path: Path, *, catalog: Any | None = None, max_jobs: int | None = None,
             seed: int = 0) -> Trace:
        return load_gavel(path, max_jobs=max_jobs)

    def default_fleet(self) -> Fleet:
        return gavel_fleet()

    def for_model(self, trace: Trace) -> Trace:
        return gavel_steps_to_work(trace)


@register
class PhillyFormat(TraceFormat):
    name = "philly"
    title = "Microsoft Philly job log (as prepared by the Sia artifacts)"
    columns = ("timestamp", "duration", "num_gpus", "cluster")
    assumptions = (
        "arrival = timestamp - first timestamp; queue = virtual cluster",
        "duration = run time on nvidia_p100 (a Pascal card like Philly's)",
        "workloads drawn by a seeded rule (100 % FP16 mpt-350m training)",
    )
    seed = "workloads (kind, CUDA-only, memory)"
    reference_chip = "nvidia_p100"

    def detect(self, path: Path, first_line: str) -> bool:
        return {"timestamp", "duration", "num_gpus"} <= _header(first_line)

    def load(self, path: Path, *, catalog: Any | None = None, max_jobs: int | None = None,
             seed: int = 0) -> Trace:
        return load_philly(path, rule=WorkloadRule(seed=seed), max_jobs=max_jobs)


ALIBABA_TIMED = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec", "qos",
                 "pod_phase", "creation_time", "deletion_time", "scheduled_time")


@register
class AlibabaFormat(TraceFormat):
    name = "alibaba"
    title = ("Alibaba cluster-trace-gpu-v2023 pod lists with times: openb_pod_list_default, "
             "gpuspec05/10/20/25/33, cpu0/037/050/072/100/200/235/250/300, "
             "gpushare20/40/60/80/100")
    columns = ALIBABA_TIMED
    assumptions = (
        "arrival = creation_time; duration = deletion - scheduled time (deletion - creation "
        "for pods never scheduled) on nvidia_t4",
        "gpu_spec -> allowed chips; gpu_milli < 1000 -> that share of one device; "
        "queue = qos; CPU-only pods left out",
        "workloads drawn by a seeded rule (40 % training, 60 % inference)",
        "cluster = the openb_node_list_*.csv next to the pod list, if any",
    )
    seed = "workloads (kind, CUDA-only, memory)"
    reference_chip = "nvidia_t4"

    def detect(self, path: Path, first_line: str) -> bool:
        return {"num_gpu", "gpu_milli", "creation_time"} <= _header(first_line)

    def load(self, path: Path, *, catalog: Any | None = None, max_jobs: int | None = None,
             seed: int = 0) -> Trace:
        tr = load_alibaba(path, catalog=catalog, max_jobs=max_jobs, seed=seed)
        if tr.format != self.name:
            raise SuanliError("has no creation_time/deletion_time columns: use trace format "
                              "alibaba-untimed", file=path, where="row 1")
        return tr


@register
class AlibabaUntimedFormat(TraceFormat):
    name = "alibaba-untimed"
    aliases = ("alibaba-multigpu",)
    title = ("Alibaba cluster-trace-gpu-v2023 pod lists without times: "
             "openb_pod_list_multigpu20/30/40/50")
    columns = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
    assumptions = (
        "every pod arrives at 0, in file order (as in the FGD simulator)",
        "durations drawn from a log-normal (median 491.5 s, sigma 1.97) fitted to the GPU pods "
        "of openb_pod_list_default, taken on nvidia_t4",
        "no GPU-type constraints; one queue (no qos)",
        "workloads drawn by a seeded rule (40 % training, 60 % inference)",
    )
    seed = "durations and workloads"
    reference_chip = "nvidia_t4"

    def detect(self, path: Path, first_line: str) -> bool:
        cols = _header(first_line)
        return {"num_gpu", "gpu_milli"} <= cols and "creation_time" not in cols

    def load(self, path: Path, *, catalog: Any | None = None, max_jobs: int | None = None,
             seed: int = 0) -> Trace:
        tr = load_alibaba(path, catalog=catalog, max_jobs=max_jobs, seed=seed)
        if tr.format != self.name:
            raise SuanliError("has creation_time/deletion_time columns: use trace format "
                              "alibaba", file=path, where="row 1")
        return tr


@register
class SuanliFormat(TraceFormat):
    name = "suanli"
    aliases = ("csv", "synthetic")
    title = "suanli's own job CSV (write_jobs_csv; the bundled demo trace; examples/jobs.csv)"
    columns = JOB_COLUMNS
    assumptions = ("jobs with only duration_ref_s: the duration is on nvidia_a100_sxm_80",)
    writable = True

    def detect(self, path: Path, first_line: str) -> bool:
        return {"id", "arrival_s", "gang"} <= _header(first_line)

    def load(self, path: Path, *, catalog: Any | None = None, max_jobs: int | None = None,
             seed: int = 0) -> Trace:
        return load_jobs_csv(path, max_jobs=max_jobs)

    def write(self, jobs: Sequence[Job], path: Path) -> Path:
        return write_jobs_csv(jobs, path)


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


FORMATS: tuple[str, ...] = format_names()
