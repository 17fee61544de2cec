"""Performance model: time, throughput, memory fit and MFU of jobs on catalogued chips."""

from suanli.perf.api import job_rate
from suanli.perf.workload import Workload

__all__ = ["Workload", "job_rate"]
