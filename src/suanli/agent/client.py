"""The agent's view of the control plane: three calls, JSON over HTTP with a bearer token.

    POST /api/v1/agent/register              NodeRegistration -> Registered
    POST /api/v1/agent/{node_id}/heartbeat   Heartbeat        -> Assignment
    (every request: ``Authorization: Bearer <node token>``)

A heartbeat carries the observed status of every launch the agent still holds (terminal ones
once, with a log tail); the answer carries launches to start and launch ids to cancel.
Starting is idempotent per launch id, so the server may repeat an assignment until it sees it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Protocol

from pydantic import BaseModel

from suanli.errors import SuanliError
from suanli.service.wire import Assignment, Heartbeat, NodeRegistration, Registered

API = "/api/v1/agent"
__all__ = ["Assignment", "ControlPlane", "Heartbeat", "HttpControlPlane", "NodeRegistration",
           "Registered", "Unreachable"]


class ControlPlane(Protocol):
    def register(self, reg: NodeRegistration) -> Registered: ...

    def heartbeat(self, node_id: str, beat: Heartbeat) -> Assignment: ...


class Unreachable(SuanliError):
    """The control plane did not answer (network down, server restarting)."""


class HttpControlPlane:
    """:class:`ControlPlane` over HTTP (stdlib only)."""

    def __init__(self, server: str, token: str, timeout_s: float = 10.0) -> None:
        if not server.startswith(("http://", "https://")):
            raise SuanliError(f"server URL must start with http:// or https://, got {server!r}",
                              field="--server")
        self.server = server.rstrip("/")
        self._token = token
        self.timeout_s = timeout_s

    def _post(self, path: str, body: BaseModel) -> Any:
        req = urllib.request.Request(
            self.server + path,
            data=body.model_dump_json().encode(),
            method="POST",
            headers={"Content-Type": "application/json",
                     "Authorization": f"Bearer {self._token}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read().decode() or "{}")
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise SuanliError("the control plane refused the node token",
                                  field="--token") from None
            raise Unreachable(f"{self.server}{path}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
            raise Unreachable(f"{self.server}{path}: {' '.join(str(exc).split())}") from None

    def register(self, reg: NodeRegistration) -> Registered:
        return Registered.model_validate(self._post(f"{API}/register", reg))

    def heartbeat(self, node_id: str, beat: Heartbeat) -> Assignment:
        return Assignment.model_validate(self._post(f"{API}/{node_id}/heartbeat", beat))
