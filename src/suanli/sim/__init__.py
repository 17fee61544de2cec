"""Trace-driven discrete-event simulator driving the scheduler."""

from suanli.sim.engine import SimResult, run_simulation
from suanli.sim.setup import SimSetup, gavel_fleet, prepare
from suanli.sim.traces import (
    Trace,
    WorkloadRule,
    attach_work,
    load_trace,
    synthetic_jobs,
    write_jobs_csv,
)

__all__ = [
    "SimResult",
    "SimSetup",
    "Trace",
    "WorkloadRule",
    "attach_work",
    "gavel_fleet",
    "load_trace",
    "prepare",
    "run_simulation",
    "synthetic_jobs",
    "write_jobs_csv",
]
