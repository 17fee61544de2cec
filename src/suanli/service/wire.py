"""The node-agent wire protocol's bodies (pydantic only), shared by the control plane
(:mod:`suanli.service.agents`) and the agent (:mod:`suanli.agent.client`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from suanli.exec.base import ExecStatus, ExecutorFeatures, LaunchSpec
from suanli.probes.base import Device


class NodeRegistration(BaseModel):
    hostname: Annotated[str, Field(min_length=1, max_length=200,
                                   pattern=r"^[A-Za-z0-9_.\-]+$")]
    devices: list[Device] = Field(default_factory=list, max_length=4096)
    executor: str
    features: ExecutorFeatures
    agent_version: str
    site: Annotated[str, Field(min_length=1, max_length=200,
                               pattern=r"^[A-Za-z0-9_.\-]+$")] | None = None


class Registered(BaseModel):
    node_id: str
    heartbeat_s: float = Field(default=5.0, gt=0)


class Heartbeat(BaseModel):
    statuses: list[ExecStatus] = Field(default_factory=list)
    log_tails: dict[str, str] = Field(default_factory=dict)


class Assignment(BaseModel):
    launch: list[LaunchSpec] = Field(default_factory=list)
    cancel: list[str] = Field(default_factory=list)
