"""The node agent: discovers accelerators, registers with the control plane, heartbeats, and
runs the launches assigned to its node with an executor.

The control plane is reached through :class:`~suanli.agent.client.ControlPlane` (a small
protocol); :class:`~suanli.agent.client.HttpControlPlane` speaks the JSON-over-HTTP API
described in docs/executors.md. The service side of that API is not part of this package.
"""

from suanli.agent.client import (
    Assignment,
    ControlPlane,
    HttpControlPlane,
    NodeRegistration,
    Registered,
)
from suanli.agent.loop import Agent, run_agent

__all__ = [
    "Agent",
    "Assignment",
    "ControlPlane",
    "HttpControlPlane",
    "NodeRegistration",
    "Registered",
    "run_agent",
]
