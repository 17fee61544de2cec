"""Slurm executor: a Slurm cluster is a site whose partitions are pools.

suanli chooses the partition (chip type) and the moment; Slurm's own scheduler places the job
inside the partition. Launch = ``sbatch --parsable`` of a generated batch script; follow =
``squeue --json`` while Slurm still lists the job, ``sacct`` afterwards; cancel = ``scancel``.
Only the command-line tools are used (pyslurm does not match 22.05).

Options a launch may carry in ``LaunchSpec.extra``: ``partition``, ``gres_type``,
``gpus_per_node``, ``nodes``, ``ntasks``, ``cpus_per_task``, ``mem_mb``, ``account``, ``qos``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
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

# Slurm job states (squeue/sacct base states) -> what suanli observed.
STATE_MAP: dict[str, ExecState] = {
    "PENDING": ExecState.STARTING,
    "CONFIGURING": ExecState.STARTING,
    "REQUEUED": ExecState.STARTING,
    "REQUEUE_HOLD": ExecState.STARTING,
    "REQUEUE_FED": ExecState.STARTING,
    "RESV_DEL_HOLD": ExecState.STARTING,
    "RUNNING": ExecState.RUNNING,
    "COMPLETING": ExecState.RUNNING,
    "SIGNALING": ExecState.RUNNING,
    "STAGE_OUT": ExecState.RUNNING,
    "RESIZING": ExecState.RUNNING,
    "SUSPENDED": ExecState.RUNNING,
    "STOPPED": ExecState.RUNNING,
    "COMPLETED": ExecState.SUCCEEDED,
    "FAILED": ExecState.FAILED,
    "TIMEOUT": ExecState.FAILED,
    "OUT_OF_MEMORY": ExecState.FAILED,
    "BOOT_FAIL": ExecState.FAILED,
    "DEADLINE": ExecState.FAILED,
    "SPECIAL_EXIT": ExecState.FAILED,
    "CANCELLED": ExecState.CANCELLED,
    "REVOKED": ExecState.CANCELLED,
    "PREEMPTED": ExecState.PREEMPTED,
    "NODE_FAIL": ExecState.LOST,  # the node died under the job: not the job's fault
}

_WHY = {
    "TIMEOUT": "hit its time limit",
    "OUT_OF_MEMORY": "ran out of memory",
    "NODE_FAIL": "a node of the job failed",
    "PREEMPTED": "preempted by Slurm",
    "BOOT_FAIL": "node boot failure",
    "DEADLINE": "missed its deadline",
}


def map_state(slurm_state: str) -> ExecState:
    """One Slurm state (``"CANCELLED by 0"``, ``"RUNNING"``, ``["PENDING"]``) -> ExecState."""
    base = slurm_state.strip().split()[0].upper() if slurm_state.strip() else ""
    base = base.rstrip("+")
    return STATE_MAP.get(base, ExecState.LOST)


def _exit(code: Any) -> tuple[int | None, int | None]:
    """(exit code, signal) from squeue's number/object or sacct's ``"2:0"``."""
    if isinstance(code, dict):  # Slurm >= 23 prints {"status": ..., "return_code": ...}
        rc = code.get("return_code")
        sig = code.get("signal", {}).get("id") if isinstance(code.get("signal"), dict) else None
        return (rc if isinstance(rc, int) else None), (sig if isinstance(sig, int) else None)
    if isinstance(code, int):  # 22.05 squeue: wait status (exit << 8 | signal)
        return code >> 8, (code & 0x7F) or None
    m = re.fullmatch(r"\s*(\d+):(\d+)\s*", str(code))
    if m:
        return int(m.group(1)), int(m.group(2)) or None
    return None, None


def status_from(
    launch_id: str, job_id: str, slurm_state: str, exit_code: Any, reason: str = ""
) -> ExecStatus:
    """Build the observation suanli reports for one Slurm record."""
    state = map_state(slurm_state)
    base = slurm_state.split()[0].upper().rstrip("+") if slurm_state.strip() else "UNKNOWN"
    rc, sig = _exit(exit_code) if state.terminal else (None, None)
    parts = [f"slurm {base}"]
    if base in _WHY:
        parts.append(_WHY[base])
    if sig:
        parts.append(f"signal {sig}")
    if reason and reason not in ("None", "(null)"):
        parts.append(f"reason {reason}")
    if state is ExecState.LOST and base not in STATE_MAP:
        parts.append("unknown Slurm state")
    return ExecStatus(
        launch_id=launch_id,
        state=state,
        exit_code=rc,
        message="; ".join(parts),
        backend_id=job_id,
    )


def parse_squeue_json(text: str) -> list[dict[str, Any]]:
    """Jobs of ``squeue --json``: job_id, name, state, exit_code, reason (22.05 and later)."""
    data = json.loads(text)
    out = []
    for job in data.get("jobs", []):
        state = job.get("job_state", "")
        if isinstance(state, list):  # Slurm >= 23.02 prints a list of flags
            state = state[0] if state else ""
        out.append(
            {
                "job_id": str(job.get("job_id")),
                "name": str(job.get("name", "")),
                "state": str(state),
                "exit_code": job.get("exit_code"),
                "reason": str(job.get("state_reason", "")),
            }
        )
    return out


def parse_sacct(text: str) -> list[dict[str, Any]]:
    """``sacct -X -n -P -o JobID,JobName,State,ExitCode,Reason`` lines."""
    out = []
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 4 or not parts[0].strip():
            continue
        out.append(
            {
                "job_id": parts[0].strip(),
                "name": parts[1],
                "state": parts[2],
                "exit_code": parts[3],
                "reason": parts[4] if len(parts) > 4 else "",
            }
        )
    return out


def batch_script(spec: LaunchSpec, tasks: int) -> str:
    """The script sbatch runs: the job's environment, then its command (quoted, exec'd)."""
    lines = ["#!/bin/bash", "# generated by suanli (Slurm executor)"]
    for key, value in sorted(spec.env.items()):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise SuanliError(f"invalid environment variable name {key!r}", field="env")
        lines.append(f"export {key}={shlex.quote(value)}")
    cmd = shlex.join(spec.command)
    lines.append(f"exec srun {cmd}" if tasks > 1 else f"exec {cmd}")
    return "\n".join(lines) + "\n"


class SlurmExecutor:
    """Submit, follow and cancel jobs on a Slurm cluster through its command-line tools."""

    name = "slurm"
    features = ExecutorFeatures(
        preemption_with_checkpoint=True,  # checkpoint command via srun --overlap, then scancel
        fractional_devices=False,
        multi_node_gangs=True,  # --nodes N is an all-or-nothing allocation
        log_streaming=True,  # output files grow while the job runs
    )

    def __init__(
        self,
        partitions: dict[str, str] | None = None,
        gres_types: dict[str, str] | None = None,
        default_partition: str | None = None,
        slurm_conf: str | Path | None = None,
        timeout_s: float = 30.0,
        **_: Any,
    ) -> None:
        """``partitions`` / ``gres_types`` map catalogue chip ids to a partition and a GRES type
        name (the pool of that chip); a launch's ``extra`` overrides both."""
        self.partitions = dict(partitions or {})
        self.gres_types = dict(gres_types or {})
        self.default_partition = default_partition
        conf = slurm_conf or os.environ.get("SLURM_CONF")
        self._env = dict(os.environ)
        if conf:
            self._env["SLURM_CONF"] = str(conf)
        self.timeout_s = timeout_s
        self._jobs: dict[str, str] = {}  # launch id -> Slurm job id
        self._specs: dict[str, LaunchSpec] = {}

    # -- plumbing --------------------------------------------------------------------------
    def _run(
        self, argv: list[str], timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, env=self._env,
                timeout=timeout or self.timeout_s, check=False,
            )
        except FileNotFoundError:
            raise SuanliError(f"{argv[0]} not found: is Slurm installed here?",
                              field="executor") from None
        except subprocess.TimeoutExpired:
            raise SuanliError(f"{argv[0]} did not answer within {timeout or self.timeout_s:g} s",
                              field="executor") from None

    @staticmethod
    def job_name(launch_id: str) -> str:
        return f"suanli-{launch_id}"

    def _lookup(self, launch_id: str) -> str | None:
        """Slurm job id of a launch: remembered, else found by job name (after a restart)."""
        if launch_id in self._jobs:
            return self._jobs[launch_id]
        name = self.job_name(launch_id)
        q = self._run(["squeue", "--json", "--name", name])
        if q.returncode == 0:
            hits = [j for j in parse_squeue_json(q.stdout) if j["name"] == name]
            if hits:
                found = str(hits[-1]["job_id"])
                self._jobs[launch_id] = found
                return found
        a = self._run(["sacct", "-X", "-n", "-P", "--name", name, "-S", "now-7days",
                       "-o", "JobID,JobName,State,ExitCode,Reason"])
        if a.returncode == 0:
            hits = [j for j in parse_sacct(a.stdout) if j["name"] == name]
            if hits:
                found = str(hits[-1]["job_id"])
                self._jobs[launch_id] = found
                return found
        return None

    # -- the Executor protocol ---------------------------------------------------------------
    def sbatch_args(self, spec: LaunchSpec) -> tuple[list[str], int]:
        """sbatch options for a launch (without the script path) and its task count."""
        extra = spec.extra
        partition = extra.get("partition") or (
            self.partitions.get(spec.chip_id or "") or self.default_partition
        )
        gres_type = extra.get("gres_type", self.gres_types.get(spec.chip_id or ""))
        per_node = extra.get("gpus_per_node")
        if per_node is None:
            per_node = len(spec.devices[0]) if spec.devices else 0
        nodes = int(extra.get("nodes", max(1, len(spec.nodes))))
        tasks = int(extra.get("ntasks", nodes))
        if nodes < 1 or tasks < nodes or int(per_node) < 0:
            raise SuanliError(f"bad Slurm shape: nodes={nodes} ntasks={tasks} "
                              f"gpus_per_node={per_node}", where=spec.launch_id, field="extra")
        spec.log_dir.mkdir(parents=True, exist_ok=True)
        paths = self.log_paths(spec.launch_id, spec)
        args = [
            "--parsable",
            f"--job-name={self.job_name(spec.launch_id)}",
            f"--nodes={nodes}",
            f"--ntasks={tasks}",
            f"--output={paths['stdout']}",
            f"--error={paths['stderr']}",
        ]
        if partition:
            args.append(f"--partition={partition}")
        if int(per_node) > 0:
            gres = f"gpu:{gres_type}:{int(per_node)}" if gres_type else f"gpu:{int(per_node)}"
            args.append(f"--gres={gres}")
        if spec.time_limit_s:
            args.append(f"--time={max(1, math.ceil(spec.time_limit_s / 60))}")
        if spec.workdir:
            args.append(f"--chdir={spec.workdir}")
        for key, opt in (("cpus_per_task", "--cpus-per-task"), ("mem_mb", "--mem"),
                         ("account", "--account"), ("qos", "--qos")):
            if extra.get(key) is not None:
                args.append(f"{opt}={extra[key]}")
        return args, tasks

    def launch(self, spec: LaunchSpec) -> ExecStatus:
        why = unsupported(self.features, spec)
        if why:
            return ExecStatus(launch_id=spec.launch_id, state=ExecState.FAILED, message=why)
        known = self._lookup(spec.launch_id)
        if known is not None:
            self._specs.setdefault(spec.launch_id, spec)
            return self.poll(spec.launch_id)
        args, tasks = self.sbatch_args(spec)
        script = spec.log_dir / f"{spec.launch_id}.sbatch"
        script.write_text(batch_script(spec, tasks), encoding="utf-8")
        r = self._run(["sbatch", *args, str(script)])
        if r.returncode != 0:
            msg = " ".join((r.stderr or r.stdout).split())
            return ExecStatus(launch_id=spec.launch_id, state=ExecState.FAILED,
                              message=f"sbatch refused the job: {msg}")
        job_id = r.stdout.strip().split(";")[0]
        self._jobs[spec.launch_id] = job_id
        self._specs[spec.launch_id] = spec
        return ExecStatus(launch_id=spec.launch_id, state=ExecState.STARTING,
                          message="submitted", backend_id=job_id)

    def poll(self, launch_id: str) -> ExecStatus:
        job_id = self._lookup(launch_id)
        if job_id is None:
            return ExecStatus(launch_id=launch_id, state=ExecState.LOST,
                              message="Slurm has no job for this launch")
        q = self._run(["squeue", "--json", "-j", job_id])
        if q.returncode == 0:
            for job in parse_squeue_json(q.stdout):
                if job["job_id"] == job_id:
                    status = status_from(launch_id, job_id, job["state"], job["exit_code"],
                                         job["reason"])
                    if not status.state.terminal or status.exit_code is not None:
                        return status
        a = self._run(["sacct", "-X", "-n", "-P", "-j", job_id,
                       "-o", "JobID,JobName,State,ExitCode,Reason"])
        if a.returncode == 0:
            for job in parse_sacct(a.stdout):
                if job["job_id"] == job_id:
                    return status_from(launch_id, job_id, job["state"], job["exit_code"],
                                       job["reason"])
        return ExecStatus(launch_id=launch_id, state=ExecState.LOST, backend_id=job_id,
                          message="neither squeue nor sacct knows the job")

    def cancel(self, launch_id: str, grace_s: float = 10.0) -> ExecStatus:
        """``scancel``: Slurm sends SIGTERM, then SIGKILL after its KillWait; we wait for it."""
        job_id = self._lookup(launch_id)
        if job_id is None:
            return self.poll(launch_id)
        self._run(["scancel", job_id])
        deadline = time.monotonic() + grace_s + 10.0
        status = self.poll(launch_id)
        while not status.state.terminal and time.monotonic() < deadline:
            time.sleep(0.5)
            status = self.poll(launch_id)
        return status

    def checkpoint(self, launch_id: str) -> bool:
        """Run the job's checkpoint command inside its allocation (``srun --overlap``)."""
        spec = self._specs.get(launch_id)
        job_id = self._lookup(launch_id)
        if spec is None or not spec.checkpoint_command or job_id is None:
            return False
        r = self._run(["srun", f"--jobid={job_id}", "--overlap", "--nodes=1", "--ntasks=1",
                       *spec.checkpoint_command], timeout=max(self.timeout_s, 120.0))
        return r.returncode == 0

    def log_paths(self, launch_id: str, spec: LaunchSpec | None = None) -> dict[str, Path]:
        spec = spec or self._specs.get(launch_id)
        if spec is None:
            return {}
        return {
            "stdout": spec.log_dir / f"{launch_id}.out",
            "stderr": spec.log_dir / f"{launch_id}.err",
        }

    def check(self) -> tuple[bool, str]:
        try:
            r = self._run(["scontrol", "ping"], timeout=10.0)
        except SuanliError as exc:
            return False, exc.problem
        text = " ".join((r.stdout or r.stderr).split())
        if r.returncode == 0 and "UP" in text:
            version = self._run(["sinfo", "--version"], timeout=10.0).stdout.strip()
            return True, f"{text} ({version})"
        return False, text or f"scontrol ping exit code {r.returncode}"


register_executor("slurm", SlurmExecutor)
