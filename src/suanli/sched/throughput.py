"""How fast a job class runs on a chip type: the performance model or a measured matrix.

The scheduler never calls a provider per event: :class:`ThroughputMatrix` asks once per
(job class, gang size) for every chip type of the cluster and caches the row.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from suanli.catalog.schema import Chip
from suanli.errors import CannotRun, SuanliError
from suanli.perf import job_rate
from suanli.perf.workload import Workload
from suanli.sched.job import Job


@runtime_checkable
class ThroughputProvider(Protocol):
    """``rate(job_class, chip_type, n)`` -> work units/s of the whole gang; CannotRun if never."""

    name: str

    def key(self, job: Job) -> Hashable | None:
        """The job class this provider prices ``job`` by (None: it cannot price the job)."""
        ...

    def rate(self, job_class: Any, chip_type: str, n: int) -> float: ...


class ModelThroughput:
    """Speeds from the performance model, ``suanli.perf.job_rate(workload, chip, n)``.

    ``chips`` maps chip types to catalogue chips; ``proxies`` maps an opaque chip type (no
    catalogue entry, e.g. Alibaba's undisclosed G2) to a catalogue chip that prices it.
    """

    name = "model"

    def __init__(
        self, chips: Mapping[str, Chip | None], proxies: Mapping[str, Chip] | None = None
    ) -> None:
        self.chips = dict(chips)
        self.proxies = dict(proxies or {})

    def key(self, job: Job) -> Hashable | None:
        return job.workload

    def rate(self, job_class: Any, chip_type: str, n: int) -> float:
        if not isinstance(job_class, Workload):
            raise CannotRun("job has no workload description for the performance model")
        chip = self.chips.get(chip_type) or self.proxies.get(chip_type)
        if chip is None:
            raise CannotRun(f"chip type '{chip_type}' has no catalogue entry to price it")
        return float(job_rate(job_class, chip, n))


def _chip_key(chip_type: str) -> str:
    """'nvidia_v100_sxm2_32' -> 'v100', 'K80' -> 'k80'."""
    s = chip_type.casefold().removeprefix("nvidia_").removeprefix("nvidia ")
    return re.split(r"[_\s\-]", s, maxsplit=1)[0]


class MeasuredThroughput:
    """Speeds measured per (job type, scale factor) and GPU type: Gavel's throughput matrix.

    File layout: ``{gpu: {"('<job type>', <scale factor>)": {"null": steps/s, ...}}}``; only the
    ``"null"`` (running alone) figure is used. Chip types map to the matrix's GPU keys by
    ``chip_map`` or by name ('nvidia_v100' -> 'v100').
    """

    name = "measured"

    def __init__(
        self,
        table: Mapping[str, Mapping[tuple[str, int], float]],
        source: str = "",
        chip_map: Mapping[str, str] | None = None,
    ) -> None:
        self.table = {k: dict(v) for k, v in table.items()}
        self.source = source
        self.chip_map = dict(chip_map or {})
        self.job_types = sorted({jt for v in self.table.values() for jt, _ in v})

    @classmethod
    def from_file(cls, path: str | Path, chip_map: Mapping[str, str] | None = None) -> (
        MeasuredThroughput
    ):
        p = Path(path)
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SuanliError("file not found", file=p) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SuanliError(f"not a readable JSON throughput matrix: {exc}", file=p) from None
        if not isinstance(raw, dict) or not raw:
            raise SuanliError("expected a mapping {gpu: {job key: {...}}}", file=p)
        table: dict[str, dict[tuple[str, int], float]] = {}
        for gpu, entries in raw.items():
            if not isinstance(entries, dict):
                raise SuanliError("expected a mapping of job keys", file=p, where=f"gpu '{gpu}'")
            if gpu.endswith("_unconsolidated"):
                continue  # placement-sensitivity variant; not modelled
            rows: dict[tuple[str, int], float] = {}
            for key, val in entries.items():
                try:
                    name, scale = ast.literal_eval(key)
                    rate = float(val["null"] if isinstance(val, dict) else val)
                    rows[(str(name), int(scale))] = rate
                except (ValueError, SyntaxError, TypeError, KeyError):
                    raise SuanliError(
                        "expected key \"('<job type>', <scale>)\" with a 'null' rate",
                        file=p,
                        where=f"gpu '{gpu}'",
                        field=key,
                    ) from None
            table[gpu] = rows
        return cls(table, source=str(p), chip_map=chip_map)

    def gpu_of(self, chip_type: str) -> str | None:
        if chip_type in self.chip_map:
            return self.chip_map[chip_type]
        if chip_type in self.table:
            return chip_type
        k = _chip_key(chip_type)
        return k if k in self.table else None

    def key(self, job: Job) -> Hashable | None:
        return job.job_type

    def rate(self, job_class: Any, chip_type: str, n: int) -> float:
        gpu = self.gpu_of(chip_type)
        if gpu is None:
            raise CannotRun(f"no measured throughputs for chip type '{chip_type}'")
        r = self.table[gpu].get((job_class, n))
        if r is None or r <= 0:
            raise CannotRun(f"no measurement of '{job_class}' on {n} x {gpu}")
        return float(r)


class ThroughputMatrix:
    """Cached (job class, gang) x chip-type rates for one cluster's chip types."""

    def __init__(self, provider: ThroughputProvider, chip_types: list[str]) -> None:
        self.provider = provider
        self.chip_types = list(chip_types)
        self._rows: dict[tuple[Hashable, int], tuple[np.ndarray, tuple[str | None, ...]]] = {}
        self.calls = 0  # provider calls (for tests: once per class, never per event)

    def row(self, job: Job) -> tuple[np.ndarray, tuple[str | None, ...]]:
        """(rate per chip type, reason per chip type when the rate is 0)."""
        key = self.provider.key(job)
        ck = (key, job.gang)
        hit = self._rows.get(ck)
        if hit is None:
            rates = np.zeros(len(self.chip_types))
            reasons: list[str | None] = []
            for i, ct in enumerate(self.chip_types):
                if key is None:
                    reasons.append(f"no job class for the {self.provider.name} throughputs")
                    continue
                self.calls += 1
                try:
                    r = self.provider.rate(key, ct, job.gang)
                except CannotRun as exc:
                    reasons.append(exc.problem)
                    continue
                if not np.isfinite(r) or r <= 0:
                    reasons.append(f"non-positive rate on {ct}")
                    continue
                rates[i] = r
                reasons.append(None)
            hit = (rates, tuple(reasons))
            self._rows[ck] = hit
        return hit
