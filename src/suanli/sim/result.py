"""What a simulation run produced, as plain arrays: the engine fills it, :mod:`.metrics` and the
reports read it (neither needs the engine)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from suanli.sched.cluster import ClusterSpec
from suanli.sched.job import Job

# (time, "start" | "stop" | "finish", job index, pool, milli-accelerators)
DecisionRecord = tuple[float, str, int, int, int]


@dataclass
class SimResult:
    """Everything a run produced; :mod:`suanli.sim.metrics` turns it into figures."""

    policy: str
    cluster: ClusterSpec
    jobs: list[Job]
    start: np.ndarray  # first start time, nan if never
    finish: np.ndarray  # nan if not completed
    first_pool: np.ndarray  # pool of the first start, -1 if never started
    work_done: np.ndarray
    iso_time: np.ndarray  # time alone on 1/n of the cluster (fairness reference)
    preemptions: np.ndarray  # per job: times stopped before finishing and not moved at once
    migrations: np.ndarray  # per job: times stopped and restarted elsewhere at the same time
    lost_dev_s: np.ndarray  # per job: device-seconds held without progress (staging, restarts)
    unrunnable: dict[str, str]
    busy_dev_s: np.ndarray  # per pool, device-seconds computing
    held_dev_s: np.ndarray  # per pool, device-seconds allocated (incl. data staging)
    flops_by_precision: dict[str, float]  # peak-equivalent FLOP delivered
    timeline_t: np.ndarray
    timeline_used: np.ndarray  # (T, pools) accelerators in use
    timeline_queue: np.ndarray  # jobs waiting
    events: int
    wall_s: float
    stats: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    decisions: list[DecisionRecord] = field(default_factory=list)  # when recorded

    @property
    def completed(self) -> np.ndarray:
        return ~np.isnan(self.finish)
