"""Per-job state of the scheduler as one declared table of numpy columns.

A *slot* is the row of one submitted job (assigned in submit order, never reused). The columns
grow together; nothing outside :mod:`suanli.sched` sees slot numbers (events and decisions name
jobs by id).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# job states
WAITING, RUNNING, DONE, UNRUNNABLE, CANCELLED, FAILED = 0, 1, 2, 3, 4, 5
STATE_NAMES = ("waiting", "running", "done", "unrunnable", "cancelled", "failed")


def _grown(old: np.ndarray | None, shape: tuple[int, ...], dtype: Any, fill: float) -> np.ndarray:
    new = np.full(shape, fill, dtype=dtype)
    if old is not None:
        new[: len(old)] = old
    return new


class SlotTable:
    """Columns indexed by slot; ``share``, ``deficit`` and ``recv`` are slot x pool."""

    P: int
    cap: int
    demand: np.ndarray  # milli-accelerators held while running
    work: np.ndarray  # total work units
    arrival: np.ndarray  # arrival time
    weight: np.ndarray  # priority x queue weight
    qidx: np.ndarray  # queue index
    cls: np.ndarray  # class of interchangeable jobs
    state: np.ndarray  # WAITING, RUNNING, ...
    pool: np.ndarray  # pool while running, else -1
    done: np.ndarray  # work settled at the last stop or progress report
    ckpt: np.ndarray  # work saved at the last checkpoint
    prog_t: np.ndarray  # time progress (re)starts: after staging and restart
    seg_t0: np.ndarray  # start of the running segment
    rate_now: np.ndarray  # rate while running (estimate or measured)
    attained: np.ndarray  # accelerator-seconds of past segments
    iso_time: np.ndarray  # time alone on 1/n of the cluster (fairness reference)
    data_site: np.ndarray  # site of its data, -1 = none
    data_gb: np.ndarray  # data to move when it runs at another site
    acct_t: np.ndarray  # last time its received time was charged
    restart_s: np.ndarray  # checkpoint + restart cost of one preemption
    starts: np.ndarray  # times started
    failures: np.ndarray  # failed starts and runs
    not_before: np.ndarray  # earliest (re)start after a failure (backoff)
    share: np.ndarray  # LP time share per pool
    deficit: np.ndarray  # seconds owed per pool
    recv: np.ndarray  # seconds received per pool since the last round

    def __init__(self, P: int, cap: int = 1024) -> None:
        self.P = P
        self.cap = 0
        self.grow(max(cap, 1))

    def grow(self, cap: int) -> None:
        """Make room for ``cap`` slots, keeping the rows already there."""
        fresh = self.cap == 0
        P = self.P
        self.demand = _grown(None if fresh else self.demand, (cap,), np.int64, 0)
        self.work = _grown(None if fresh else self.work, (cap,), float, 0)
        self.arrival = _grown(None if fresh else self.arrival, (cap,), float, 0)
        self.weight = _grown(None if fresh else self.weight, (cap,), float, 1.0)
        self.qidx = _grown(None if fresh else self.qidx, (cap,), np.int64, 0)
        self.cls = _grown(None if fresh else self.cls, (cap,), np.int64, 0)
        self.state = _grown(None if fresh else self.state, (cap,), np.int8, 0)
        self.pool = _grown(None if fresh else self.pool, (cap,), np.int64, -1)
        self.done = _grown(None if fresh else self.done, (cap,), float, 0)
        self.ckpt = _grown(None if fresh else self.ckpt, (cap,), float, 0)
        self.prog_t = _grown(None if fresh else self.prog_t, (cap,), float, 0)
        self.seg_t0 = _grown(None if fresh else self.seg_t0, (cap,), float, 0)
        self.rate_now = _grown(None if fresh else self.rate_now, (cap,), float, 0)
        self.attained = _grown(None if fresh else self.attained, (cap,), float, 0)
        self.iso_time = _grown(None if fresh else self.iso_time, (cap,), float, 0)
        self.data_site = _grown(None if fresh else self.data_site, (cap,), np.int64, -1)
        self.data_gb = _grown(None if fresh else self.data_gb, (cap,), float, 0)
        self.acct_t = _grown(None if fresh else self.acct_t, (cap,), float, 0)
        self.restart_s = _grown(None if fresh else self.restart_s, (cap,), float, 0)
        self.starts = _grown(None if fresh else self.starts, (cap,), np.int64, 0)
        self.failures = _grown(None if fresh else self.failures, (cap,), np.int64, 0)
        self.not_before = _grown(None if fresh else self.not_before, (cap,), float, 0)
        self.share = _grown(None if fresh else self.share, (cap, P), float, 0)
        self.deficit = _grown(None if fresh else self.deficit, (cap, P), float, 0)
        self.recv = _grown(None if fresh else self.recv, (cap, P), float, 0)
        self.cap = cap

    def columns(self) -> dict[str, np.ndarray]:
        """Every column by name."""
        return {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}

    def to_plain(self, n: int) -> dict[str, list[Any]]:
        """The first ``n`` rows as plain lists (JSON-able)."""
        return {k: v[:n].tolist() for k, v in self.columns().items()}

    def load_plain(self, data: dict[str, list[Any]]) -> None:
        """Overwrite the first rows with :meth:`to_plain` output (room must exist)."""
        for k, v in self.columns().items():
            rows = np.asarray(data[k], dtype=v.dtype)
            if len(rows):
                v[: len(rows)] = rows
