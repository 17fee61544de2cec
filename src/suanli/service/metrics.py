"""Prometheus metrics (prometheus-client): jobs by state, queue length, busy devices per chip
type and site, scheduling pass latency, API latency."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from suanli.service.db import AllocationRow, JobRow


class _DbCollector(Collector):
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[Any]:
        by_state = GaugeMetricFamily("suanli_jobs", "Jobs by state (all tenants)",
                                     labels=["state"])
        queue = GaugeMetricFamily("suanli_queue_pending_jobs", "Pending jobs per queue",
                                  labels=["queue"])
        busy = GaugeMetricFamily("suanli_devices_busy", "Devices held by active allocations",
                                 labels=["chip", "site"])
        with self.sessions() as s:
            for st, n in s.execute(select(JobRow.state, func.count()).group_by(JobRow.state)):
                by_state.add_metric([st], n)
            for q, n in s.execute(select(JobRow.queue, func.count())
                                  .where(JobRow.state == "pending").group_by(JobRow.queue)):
                queue.add_metric([q], n)
            acc: dict[tuple[str, str], int] = {}
            for chip, site, devs in s.execute(select(AllocationRow.chip, AllocationRow.site,
                                                     AllocationRow.devices)
                                              .where(AllocationRow.active.is_(True))):
                acc[(chip, site)] = acc.get((chip, site), 0) + sum(len(d) for d in devs)
            for (chip, site), n in acc.items():
                busy.add_metric([chip, site], n)
        yield by_state
        yield queue
        yield busy


class ServiceMetrics:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.registry = CollectorRegistry()
        self.api_latency = Histogram(
            "suanli_api_request_seconds", "API request latency", ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.sched_pass = Histogram(
            "suanli_scheduling_pass_seconds", "Scheduler loop pass latency",
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
        self.registry.register(_DbCollector(sessions))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
