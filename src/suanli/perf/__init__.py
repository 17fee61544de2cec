"""Performance model: time, throughput, memory fit and MFU of jobs on catalogued chips."""

from suanli.perf.api import job_rate
from suanli.perf.estimate import InferEstimate, TrainEstimate, estimate_infer, estimate_train
from suanli.perf.hpc import HpcResult, estimate_hpc
from suanli.perf.workload import Workload

__all__ = [
    "HpcResult",
    "InferEstimate",
    "TrainEstimate",
    "Workload",
    "estimate_hpc",
    "estimate_infer",
    "estimate_train",
    "job_rate",
]
