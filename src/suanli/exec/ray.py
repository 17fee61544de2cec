"""Ray executor: a Ray cluster is a site; chip types are Ray custom resources.

Each launch is a Ray job (job submission API, served by the head's dashboard): the job's
command is the entrypoint, its environment the runtime env, and the chip type a custom
resource reserved for the entrypoint (``chip:<chip id>``, one unit per device; fractions are
allowed). The submission id is the launch id, so launching twice is a no-op. Needs the
optional extra: ``pip install 'suanli[ray]'``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import time
from pathlib import Path
from typing import Any

from suanli.errors import SuanliError
from suanli.exec.base import (
    ExecState,
    ExecStatus,
    ExecutorFeatures,
    LaunchSpec,
    register_executor,
)
from suanli.exec.compat import unsupported

ADDRESS_ENV = "SUANLI_RAY_ADDRESS"
RESOURCE_PREFIX = "chip:"

STATE_MAP = {
    "PENDING": ExecState.STARTING,
    "RUNNING": ExecState.RUNNING,
    "SUCCEEDED": ExecState.SUCCEEDED,
    "FAILED": ExecState.FAILED,
    "STOPPED": ExecState.CANCELLED,
}


def map_state(ray_status: str) -> ExecState:
    """A Ray ``JobStatus`` value -> ExecState (unknown values are LOST)."""
    return STATE_MAP.get(str(ray_status).rsplit(".", 1)[-1].upper(), ExecState.LOST)


def chip_resource(chip_id: str) -> str:
    return f"{RESOURCE_PREFIX}{chip_id}"


def entrypoint(spec: LaunchSpec) -> str:
    cmd = shlex.join(spec.command)
    return f"cd {shlex.quote(str(spec.workdir))} && {cmd}" if spec.workdir else cmd


def submit_kwargs(spec: LaunchSpec) -> dict[str, Any]:
    """Arguments of ``JobSubmissionClient.submit_job`` for a launch."""
    resources: dict[str, float] = {}
    if spec.chip_id:
        count = spec.extra.get("chip_units")
        if count is None:
            count = sum(len(d) for d in spec.devices) or 1
        if float(count) <= 0:
            raise SuanliError(f"chip_units must be positive, got {count}",
                              where=spec.launch_id, field="extra.chip_units")
        resources[chip_resource(spec.chip_id)] = float(count)
    return {
        "entrypoint": entrypoint(spec),
        "submission_id": spec.launch_id,
        "runtime_env": {"env_vars": dict(spec.env)},
        "entrypoint_resources": resources or None,
        "entrypoint_num_cpus": float(spec.extra.get("num_cpus", 0)),
        "metadata": {"suanli_job": spec.job_id, "suanli_launch": spec.launch_id},
    }


class RayExecutor:
    """Submit, follow and stop Ray jobs through the head node's job submission API."""

    name = "ray"
    features = ExecutorFeatures(
        preemption_with_checkpoint=True,  # checkpoint command as its own short Ray job
        fractional_devices=True,  # custom resources may be fractional (extra.chip_units)
        multi_node_gangs=False,  # one entrypoint per job; gangs are the job's own placement
        log_streaming=True,
    )

    def __init__(self, address: str | None = None, timeout_s: float = 30.0, **_: Any) -> None:
        self.address = address or os.environ.get(ADDRESS_ENV) or "http://127.0.0.1:8265"
        self.timeout_s = timeout_s
        self._client: Any = None
        self._specs: dict[str, LaunchSpec] = {}

    def client(self) -> Any:
        if self._client is None:
            try:
                from ray.job_submission import JobSubmissionClient
            except ImportError:
                raise SuanliError("the Ray executor needs Ray: pip install 'suanli[ray]'",
                                  field="executor") from None
            try:
                self._client = JobSubmissionClient(self.address)
            except Exception as exc:
                raise SuanliError(f"cannot reach Ray at {self.address}: "
                                  f"{' '.join(str(exc).split())[:200]}",
                                  field="executor") from None
        return self._client

    def _info(self, launch_id: str) -> Any | None:
        try:
            return self.client().get_job_info(launch_id)
        except SuanliError:
            raise
        except Exception:  # RuntimeError "does not exist" from the API
            return None

    def _status(self, launch_id: str, info: Any) -> ExecStatus:
        state = map_state(info.status)
        msg = " ".join(str(info.message or "").split())
        code = info.driver_exit_code if state.terminal else None
        if state is ExecState.SUCCEEDED and code is None:
            code = 0
        return ExecStatus(launch_id=launch_id, state=state, exit_code=code,
                          message=f"ray {info.status}: {msg}"[:300],
                          backend_id=info.submission_id)

    # -- the Executor protocol -----------------------------------------------------------------
    def launch(self, spec: LaunchSpec) -> ExecStatus:
        why = unsupported(self.features, spec)
        if why:
            return ExecStatus(launch_id=spec.launch_id, state=ExecState.FAILED, message=why)
        self._specs[spec.launch_id] = spec
        if self._info(spec.launch_id) is not None:
            return self.poll(spec.launch_id)
        try:
            sid = self.client().submit_job(**submit_kwargs(spec))
        except SuanliError:
            raise
        except Exception as exc:
            return ExecStatus(launch_id=spec.launch_id, state=ExecState.FAILED,
                              message=f"Ray refused the job: {' '.join(str(exc).split())[:250]}")
        return ExecStatus(launch_id=spec.launch_id, state=ExecState.STARTING,
                          message="submitted", backend_id=sid)

    def poll(self, launch_id: str) -> ExecStatus:
        info = self._info(launch_id)
        if info is None:
            return ExecStatus(launch_id=launch_id, state=ExecState.LOST,
                              message="Ray has no job with this submission id")
        status = self._status(launch_id, info)
        if status.state.terminal:
            self.sync_logs(launch_id)
        return status

    def cancel(self, launch_id: str, grace_s: float = 10.0) -> ExecStatus:
        """``stop_job``: Ray sends SIGTERM, then SIGKILL; we wait for a terminal state."""
        if self._info(launch_id) is None:
            return self.poll(launch_id)
        with contextlib.suppress(Exception):  # already finished: poll tells
            self.client().stop_job(launch_id)
        deadline = time.monotonic() + grace_s + 10.0
        status = self.poll(launch_id)
        while not status.state.terminal and time.monotonic() < deadline:
            time.sleep(0.3)
            status = self.poll(launch_id)
        return status

    def checkpoint(self, launch_id: str) -> bool:
        """Run the checkpoint command as a short Ray job with the launch's environment."""
        spec = self._specs.get(launch_id)
        if spec is None or not spec.checkpoint_command:
            return False
        ck = spec.model_copy(update={"command": spec.checkpoint_command, "chip_id": None,
                                     "launch_id": f"{launch_id}-ckpt-{time.time_ns()}"})
        sid = self.client().submit_job(**submit_kwargs(ck))
        deadline = time.monotonic() + max(self.timeout_s, 120.0)
        while time.monotonic() < deadline:
            info = self._info(sid)
            if info is not None and map_state(info.status).terminal:
                return map_state(info.status) is ExecState.SUCCEEDED
            time.sleep(0.3)
        return False

    def logs(self, launch_id: str) -> str:
        """The job's combined output so far (Ray merges stdout and stderr)."""
        try:
            return str(self.client().get_job_logs(launch_id))
        except SuanliError:
            raise
        except Exception:
            return ""

    def sync_logs(self, launch_id: str) -> None:
        paths = self.log_paths(launch_id)
        if paths:
            paths["stdout"].parent.mkdir(parents=True, exist_ok=True)
            paths["stdout"].write_text(self.logs(launch_id), encoding="utf-8")

    def log_paths(self, launch_id: str) -> dict[str, Path]:
        """Ray merges the streams: both keys name one file, refreshed on ``poll``/``sync_logs``."""
        spec = self._specs.get(launch_id)
        if spec is None:
            return {}
        path = spec.log_dir / f"{launch_id}.log"
        return {"stdout": path, "stderr": path}

    def check(self) -> tuple[bool, str]:
        try:
            client = self.client()
            version = client.get_version()
        except SuanliError as exc:
            return False, exc.problem
        except Exception as exc:
            return False, f"Ray at {self.address}: {' '.join(str(exc).split())[:200]}"
        return True, f"Ray job API at {self.address} (API version {version})"


register_executor("ray", RayExecutor)
