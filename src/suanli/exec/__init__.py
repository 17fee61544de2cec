"""Executors: carry out the scheduler's decisions on real (or simulated) devices.

One small adapter per backend (local processes, Slurm, Ray, ...) behind the :class:`Executor`
protocol in :mod:`suanli.exec.base`, registered by name, each declaring its features.
"""

from suanli.exec.base import (
    ExecState,
    ExecStatus,
    Executor,
    ExecutorFeatures,
    LaunchSpec,
    executor_names,
    get_executor,
    register_executor,
)

__all__ = [
    "ExecState",
    "ExecStatus",
    "Executor",
    "ExecutorFeatures",
    "LaunchSpec",
    "executor_names",
    "get_executor",
    "register_executor",
]
