"""The API's data models, shared by the server and the CLI client (pydantic only).

A job spec (YAML or JSON, ``suanli submit job.yaml``)::

    name: train-demo
    command: ["python", "train.py"]      # or one string, split like a shell would
    args: ["--steps", "100"]
    env: {SEED: "1"}
    resources:
      devices: 8                         # gang: all of one chip type in one site
      chips: [H800, 910B]                # allowed chips (catalogue ids, names, aliases)
      vendors: [NVIDIA]                  # allowed vendors
      sites: [ningxia-zhongwei]          # allowed sites or regions
      min_memory_gb: 40
      precision: bf16
      cuda_only: false
    queue: default
    priority: 1
    workload: {kind: train, model: llama3-8b, tokens: 1.0e9}   # priced by the perf model
    duration_s: 600                      # ... or a run time on reference_chip
    checkpoint_command: ["python", "ckpt.py"]
    restart_cost_s: 30
    max_retries: 1
    time_limit_s: 3600
    stacks: [cuda, rocm]                 # software stacks the code runs on (port-check)
    code: ./src                          # client side only: `suanli submit` runs port-check
                                         # on it and sends its allowed stacks as `stacks`
"""

from __future__ import annotations

import shlex
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Name = Annotated[str, Field(min_length=1, max_length=200)]
EnvKey = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Arg = Annotated[str, Field(max_length=10_000)]
PRECISIONS = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4")


class JobState(StrEnum):
    PENDING = "pending"
    UNRUNNABLE = "unrunnable"
    SCHEDULED = "scheduled"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
ACTIVE = frozenset({JobState.SCHEDULED, JobState.STARTING, JobState.RUNNING})


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    devices: int = Field(default=1, ge=1, le=4096, description="gang size")
    chips: list[Name] | None = Field(default=None, max_length=100)
    vendors: list[Name] | None = Field(default=None, max_length=50)
    sites: list[Name] | None = Field(default=None, max_length=100)
    min_memory_gb: float = Field(default=0.0, ge=0, le=100_000)
    precision: Literal["fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4"] | None = None
    cuda_only: bool = False
    fp64: bool = False


class WorkloadSpec(BaseModel):
    """What the performance model prices: rate per chip type, work in tokens / FLOP / bytes."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["train", "infer", "hpc"]
    model: Name | None = None
    precision: Literal["fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4"] = "bf16"
    seq_len: int = Field(default=2048, ge=1, le=10_000_000)
    batch: int = Field(default=256, ge=1, le=10_000_000)
    hpc_kernel: Literal["hpl", "stream"] = "hpl"
    work: float = Field(gt=0, le=1e30, description="tokens (train/infer), FLOP or bytes (hpc)")


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = "job"
    command: list[Arg] = Field(min_length=1, max_length=1000)
    args: list[Arg] = Field(default_factory=list, max_length=1000)
    env: dict[EnvKey, Arg] = Field(default_factory=dict, max_length=500)
    workdir: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    resources: Resources = Field(default_factory=Resources)
    queue: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")] = (
        "default"
    )
    priority: float = Field(default=1.0, gt=0, le=1000)
    workload: WorkloadSpec | None = None
    duration_s: float | None = Field(default=None, gt=0, le=1e9)
    reference_chip: Name = "nvidia_a100_sxm_80"
    checkpoint_command: list[Arg] | None = Field(default=None, min_length=1, max_length=1000)
    restart_cost_s: float = Field(default=0.0, ge=0, le=1e7)
    max_retries: int = Field(default=0, ge=0, le=100)
    time_limit_s: float | None = Field(default=None, gt=0, le=1e9)
    stacks: list[Annotated[str, Field(min_length=1, max_length=50)]] | None = Field(
        default=None, max_length=50,
        description="software stacks (catalog/data/stacks.yaml ids) the code runs on, e.g. "
                    "the allowed stacks of `suanli port-check`; the scheduler keeps the job "
                    "off chips of other stacks. None = any stack")
    stacks_source: Annotated[str, Field(max_length=500)] | None = Field(
        default=None, description="where ``stacks`` came from (set by `suanli submit`)")

    @field_validator("stacks")
    @classmethod
    def _known_stacks(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        from suanli.catalog.stacks import default_stacks

        table = default_stacks()
        out: list[str] = []
        for name in v:
            s = table.resolve(name)
            if s is None:
                raise ValueError(f"unknown software stack '{name}' "
                                 f"(known: {', '.join(table.ids)})")
            if s.id not in out:
                out.append(s.id)
        return out

    @field_validator("command", "checkpoint_command", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                parts = shlex.split(v)
            except ValueError as exc:
                raise ValueError(f"cannot split the command like a shell: {exc}") from None
            return parts
        return v

    @field_validator("command")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v or not v[0].strip():
            raise ValueError("the program name must not be empty")
        if "\0" in "".join(v):
            raise ValueError("arguments must not contain NUL characters")
        return v

    @field_validator("env")
    @classmethod
    def _env_values(cls, v: dict[str, str]) -> dict[str, str]:
        if any("\0" in x for x in v.values()):
            raise ValueError("environment values must not contain NUL characters")
        return v

    @model_validator(mode="after")
    def _one_work_source(self) -> JobSpec:
        if self.workload is not None and self.duration_s is not None:
            raise ValueError("give either workload or duration_s, not both")
        return self

    @property
    def argv(self) -> list[str]:
        return [*self.command, *self.args]


class JobSubmit(BaseModel):
    """A submission: the spec plus an optional idempotency key (also the header)."""

    model_config = ConfigDict(extra="forbid")

    spec: JobSpec
    idempotency_key: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class BatchSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[JobSubmit] = Field(min_length=1)


class Allocation(BaseModel):
    launch_id: str
    attempt: int
    pool: str
    chip: str
    site: str
    nodes: list[str]
    devices: list[list[int]]
    active: bool
    created_at: datetime
    released_at: datetime | None = None
    exit_code: int | None = None


class Job(BaseModel):
    id: int
    name: str
    tenant: str
    user: str
    queue: str
    priority: float
    state: JobState
    reason: str = ""
    devices: int
    submitted_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    attempts: int = 0
    idempotency_key: str | None = None
    spec: JobSpec | None = None
    allocation: Allocation | None = None


class JobEvent(BaseModel):
    id: int
    job_id: int
    time: datetime
    state: JobState
    reason: str = ""


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int | None = None
    next_cursor: str | None = None


class LogChunk(BaseModel):
    data: str
    offset: int = Field(description="byte offset to ask for next")
    eof: bool = Field(description="the attempt has ended and everything was read")
    state: JobState
    attempt: int | None = None


class Node(BaseModel):
    id: int | None = None
    name: str
    site: str
    group: str
    chip: str
    vendor: str | None = None
    devices: int
    devices_busy: int
    simulated: bool
    state: str = Field(description="ready | draining (no new work; what runs there "
                       "finishes) | drained (nothing runs there) | lost (missed heartbeats)")
    drain: bool = Field(default=False, description="drained by an operator "
                        "(`suanli nodes drain`) until undrained")
    agent: bool = Field(default=False, description="registered by `suanli agent`")
    last_seen: datetime | None = Field(default=None, description="agent's last heartbeat")
    driver_version: str | None = None


class Queue(BaseModel):
    name: str
    weight: float = 1.0
    quota_devices: float | None = None
    pending: int = 0
    running: int = 0


class QueueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")]
    weight: float = Field(default=1.0, gt=0, le=1e6)
    quota_devices: float | None = Field(default=None, ge=0, le=1e9)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@\-]+$")]
    scopes: list[Literal["admin", "submit", "read", "node"]] = Field(min_length=1, max_length=4)
    tenant: Annotated[str, Field(min_length=1, max_length=100,
                                 pattern=r"^[A-Za-z0-9_.\-]+$")] | None = None
    name: Annotated[str, Field(max_length=100)] = ""


class Token(BaseModel):
    id: int
    tenant: str
    user: str
    scopes: list[str]
    name: str = ""
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


class TokenCreated(Token):
    token: str = Field(description="shown once; only its hash is stored")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    schema_revision: str | None = None
    database: str
    scheduler_leader: bool
    executor: str


class Problem(BaseModel):
    """Error body: ``detail`` is one line naming the field and the problem."""

    detail: str
    field: str | None = None


SortKey = Literal["id", "-id", "submitted_at", "-submitted_at", "priority", "-priority"]
