"""The executor contract shared by the control plane, the node agent and every backend.

An executor turns a committed scheduling decision into a running job and reports what it
observes. It is level-triggered friendly: ``launch`` with a ``launch_id`` it already knows must
not start the job twice, and ``poll`` only reports observed state.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from suanli.errors import SuanliError


class ExecState(StrEnum):
    """What an executor observed of one launch."""

    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"  # the executor no longer knows the launch (node died, record gone)
    PREEMPTED = "preempted"  # stopped by the backend itself (e.g. Slurm PREEMPTED)

    @property
    def terminal(self) -> bool:
        return self not in (ExecState.STARTING, ExecState.RUNNING)


class LaunchSpec(BaseModel):
    """Everything needed to start one job attempt on assigned devices."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    launch_id: str = Field(description="unique per attempt; launching it twice is a no-op")
    job_id: str
    command: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    workdir: Path | None = None
    log_dir: Path
    chip_id: str | None = None
    vendor: str | None = None
    nodes: list[str] = Field(default_factory=list, description="node names, in order")
    devices: list[list[int]] = Field(
        default_factory=list, description="device indices per entry of ``nodes``"
    )
    time_limit_s: float | None = Field(default=None, gt=0)
    checkpoint_command: list[str] | None = None
    extra: dict[str, Any] = Field(default_factory=dict, description="backend-specific options")


class ExecStatus(BaseModel):
    """One observation of a launch."""

    model_config = ConfigDict(frozen=True)

    launch_id: str
    state: ExecState
    exit_code: int | None = None
    message: str = ""
    backend_id: str | None = None  # pid, Slurm job id, Ray submission id, ...


class ExecutorFeatures(BaseModel):
    """What a backend can do; the scheduler and the service respect it."""

    model_config = ConfigDict(frozen=True)

    preemption_with_checkpoint: bool = False
    fractional_devices: bool = False
    multi_node_gangs: bool = False
    log_streaming: bool = True


@runtime_checkable
class Executor(Protocol):
    """One backend. Implementations live in ``suanli.exec.<name>``."""

    name: str
    features: ExecutorFeatures

    def launch(self, spec: LaunchSpec) -> ExecStatus:
        """Start the attempt (idempotent per ``spec.launch_id``)."""
        ...

    def poll(self, launch_id: str) -> ExecStatus:
        """Observed state of a launch; ``LOST`` if unknown."""
        ...

    def cancel(self, launch_id: str, grace_s: float = 10.0) -> ExecStatus:
        """Stop it: polite signal, then force after ``grace_s``."""
        ...

    def checkpoint(self, launch_id: str) -> bool:
        """Run the job's checkpoint command, if any; True when it succeeded."""
        ...

    def log_paths(self, launch_id: str) -> dict[str, Path]:
        """Where stdout / stderr of the launch are (``{"stdout": ..., "stderr": ...}``)."""
        ...

    def check(self) -> tuple[bool, str]:
        """Is this backend usable on this machine? (ok, one-line explanation) — ``suanli check``."""
        ...


ExecutorFactory = Callable[..., Executor]
_REGISTRY: dict[str, ExecutorFactory] = {}


def register_executor(name: str, factory: ExecutorFactory) -> None:
    """Make an executor available by name (``suanli serve --executor NAME``)."""
    _REGISTRY[name] = factory


def executor_names() -> list[str]:
    return sorted(_REGISTRY)


def get_executor(name: str, **options: Any) -> Executor:
    """Build the executor registered as ``name``."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        known = ", ".join(executor_names()) or "none registered"
        raise SuanliError(f"unknown executor {name!r} (known: {known})", field="executor") from None
    return factory(**options)
