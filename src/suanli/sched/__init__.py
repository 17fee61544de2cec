"""Scheduling: jobs, filter -> score -> allocate plugins, policies, the Scheduler object."""

from suanli.sched.cluster import ClusterSpec, ClusterState, Pool
from suanli.sched.job import Job, Queue
from suanli.sched.policies import (
    Policy,
    SharePolicy,
    get_policy,
    policy_names,
    register_policy,
)
from suanli.sched.scheduler import Decision, Scheduler
from suanli.sched.throughput import (
    MeasuredThroughput,
    ModelThroughput,
    ThroughputMatrix,
    ThroughputProvider,
)
from suanli.sched.view import SchedulerView

__all__ = [
    "ClusterSpec",
    "ClusterState",
    "Decision",
    "Job",
    "MeasuredThroughput",
    "ModelThroughput",
    "Policy",
    "Pool",
    "Queue",
    "Scheduler",
    "SchedulerView",
    "SharePolicy",
    "ThroughputMatrix",
    "ThroughputProvider",
    "get_policy",
    "policy_names",
    "register_policy",
]
