"""The local executor: each launch is a process group on this machine.

Layout: ``<root>/<launch_id>/`` holds the launch's state, written so that a control plane
that crashed and restarted can still observe (and never re-start) what it launched:

* ``spec.json``     the :class:`LaunchSpec` (written before the process starts);
* ``pid``           ``"<pid> <start time>"`` of the runner, written by the runner itself;
* ``exit``          the command's exit code (negative: killed by that signal), written by the
  runner (or by :meth:`LocalExecutor.cancel` when it had to SIGKILL the group);
* ``cancelled`` / ``preempted`` / ``timeout``  why it was stopped;
* ``stdout.log`` / ``stderr.log`` in ``spec.log_dir`` (default: the launch directory);
* ``work/``         the working directory when the spec gives none.

A tiny runner (``python -I -c RUNNER``, standard library only) is the session leader: it
starts the command in its own process group, records its own pid, waits, enforces the time
limit and writes the exit code atomically. Because ``launch`` creates the launch directory
with ``mkdir`` (atomic) before anything else, a second ``launch`` of the same ``launch_id``
never starts a second process.

Simulated devices: the process is real, the accelerators are not; the visibility variable is
set all the same (``SUANLI_SIMULATED_DEVICES=1`` tells the job).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
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
from suanli.exec.visibility import visibility_env, visibility_for

# Seconds a launch directory may exist without the runner's pid file before the launch is
# considered lost (the control plane died between mkdir and the process start).
START_TIMEOUT_S = 15.0

RUNNER = r"""
import os, signal, subprocess, sys
state, limit, grace = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
cmd = sys.argv[4:]
def put(name, text):
    tmp = os.path.join(state, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(state, name))
try:  # the fence: whoever creates "claim" first decides whether this launch ever runs
    os.close(os.open(os.path.join(state, "claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
except FileExistsError:
    sys.exit(0)  # the control plane gave up on this launch before it started: never run it
with open("/proc/self/stat") as f:
    start = f.read().rsplit(")", 1)[1].split()[19]
put("pid", "%d %s" % (os.getpid(), start))
signal.signal(signal.SIGTERM, lambda s, f: None)
signal.signal(signal.SIGINT, lambda s, f: None)
import json, time
# one process per node of the placement (its visibility variable set to that node's devices),
# all in this launch's process group; one node: the environment as given
per_node = json.loads(os.environ.pop("SUANLI_RUNNER_NODES", "") or "[{}]")
ps = []
try:
    for extra in per_node:
        ps.append(subprocess.Popen(cmd, cwd=os.environ.get("SUANLI_WORKDIR") or None,
                                   env={**os.environ, **extra}))
except OSError as e:
    sys.stderr.write("suanli: cannot start %r: %s\n" % (cmd[0], e.strerror))
    sys.stderr.flush()
    if ps:
        os.killpg(0, signal.SIGKILL)
    put("exit", "127")
    sys.exit(0)
end = time.monotonic() + limit if limit > 0 else None
try:
    rcs = [p.wait(timeout=None if end is None else max(0.0, end - time.monotonic()))
           for p in ps]
    rc = next((r for r in rcs if r != 0), 0)
except subprocess.TimeoutExpired:
    put("timeout", "1")
    sys.stderr.write("suanli: time limit of %gs reached, stopping\n" % limit)
    sys.stderr.flush()
    os.killpg(0, signal.SIGTERM)
    try:
        rcs = [p.wait(timeout=grace) for p in ps]
        rc = next((r for r in rcs if r != 0), 0)
    except subprocess.TimeoutExpired:
        put("exit", "-9")
        os.killpg(0, signal.SIGKILL)
put("exit", str(rc))
"""


def _proc_start(pid: int) -> str | None:
    """Start time (clock ticks since boot) of a live, non-zombie process, else None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if rest[0] in ("Z", "X"):
        return None
    return rest[19]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _put(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class LocalExecutor:
    """Runs launches as process groups under ``root`` (see the module docstring)."""

    name = "local"
    features = ExecutorFeatures(
        preemption_with_checkpoint=True,
        fractional_devices=False,
        multi_node_gangs=False,
        log_streaming=True,
    )

    def __init__(self, root: str | Path, grace_s: float = 10.0, python: str | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.grace_s = float(grace_s)
        self.python = python or sys.executable
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # ------------------------------------------------------------------ helpers
    def _dir(self, launch_id: str) -> Path:
        if not launch_id or "/" in launch_id or launch_id in (".", "..") or "\0" in launch_id:
            raise SuanliError(f"invalid launch id {launch_id!r}", field="launch_id")
        return self.root / launch_id

    def _pid(self, d: Path) -> tuple[int, str] | None:
        raw = _read(d / "pid")
        if not raw:
            return None
        pid_s, _, start = raw.partition(" ")
        return int(pid_s), start

    def _alive(self, d: Path) -> int | None:
        """The runner's pid when it is still this launch's live process."""
        rec = self._pid(d)
        if rec is None:
            return None
        pid, start = rec
        return pid if _proc_start(pid) == start else None

    def _reap(self, launch_id: str) -> None:
        p = self._children.get(launch_id)
        if p is not None and p.poll() is not None:
            del self._children[launch_id]

    def spec_of(self, launch_id: str) -> LaunchSpec | None:
        raw = _read(self._dir(launch_id) / "spec.json")
        return LaunchSpec.model_validate_json(raw) if raw else None

    # ------------------------------------------------------------------ Executor
    def launch(self, spec: LaunchSpec) -> ExecStatus:
        d = self._dir(spec.launch_id)
        try:
            d.mkdir(parents=True)
        except FileExistsError:
            return self.poll(spec.launch_id)  # launched before: never twice
        _put(d / "spec.json", spec.model_dump_json())
        log_dir = Path(spec.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        if log_dir.resolve() != d.resolve():
            _put(d / "log_dir", str(log_dir))
        workdir = Path(spec.workdir) if spec.workdir else d / "work"
        workdir.mkdir(parents=True, exist_ok=True)
        env = self._env(spec, workdir)
        argv = [self.python, "-I", "-c", RUNNER, str(d), str(spec.time_limit_s or 0),
                str(self.grace_s), *spec.command]
        with open(log_dir / "stdout.log", "ab") as out, open(log_dir / "stderr.log", "ab") as err:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                cwd=str(workdir), start_new_session=True, close_fds=True,
            )
        self._children[spec.launch_id] = proc
        return ExecStatus(launch_id=spec.launch_id, state=ExecState.STARTING,
                          backend_id=str(proc.pid))

    def _env(self, spec: LaunchSpec, workdir: Path) -> dict[str, str]:
        # the control plane's own settings (database URL, tokens) never reach a job
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUANLI_")}
        env.update(spec.env)
        devices = spec.devices[0] if spec.devices else []
        env.update(visibility_env(spec.vendor, devices))
        if len(spec.devices) > 1:
            # a gang over several nodes: one process per node, each seeing that node's devices
            env["SUANLI_RUNNER_NODES"] = json.dumps([
                {**visibility_env(spec.vendor, ds),
                 "SUANLI_NODE": spec.nodes[i] if i < len(spec.nodes) else str(i),
                 "SUANLI_NODE_RANK": str(i)} for i, ds in enumerate(spec.devices)])
        vis = visibility_for(spec.vendor)
        env.update({
            "SUANLI_JOB_ID": spec.job_id,
            "SUANLI_LAUNCH_ID": spec.launch_id,
            "SUANLI_WORKDIR": str(workdir),
            "SUANLI_NODES": ",".join(spec.nodes),
            "SUANLI_DEVICES": ";".join(",".join(map(str, ds)) for ds in spec.devices),
            "SUANLI_CHIP": spec.chip_id or "",
            "SUANLI_VISIBILITY_VAR": vis.variable if vis else "",
        })
        if spec.extra.get("simulated"):
            env["SUANLI_SIMULATED_DEVICES"] = "1"
        return env

    def poll(self, launch_id: str) -> ExecStatus:
        d = self._dir(launch_id)
        self._reap(launch_id)
        if not d.is_dir():
            return ExecStatus(launch_id=launch_id, state=ExecState.LOST,
                              message="no such launch on this machine")
        rec = self._pid(d)
        backend = str(rec[0]) if rec else None
        code = _read(d / "exit")
        if code is not None:
            rc = int(code)
            if (d / "cancelled").exists():
                state, msg = ExecState.CANCELLED, "cancelled"
            elif (d / "preempted").exists():
                state, msg = ExecState.PREEMPTED, "preempted"
            elif (d / "timeout").exists():
                state, msg = ExecState.FAILED, "time limit reached"
            elif rc == 0:
                state, msg = ExecState.SUCCEEDED, ""
            else:
                state = ExecState.FAILED
                msg = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
            return ExecStatus(launch_id=launch_id, state=state, exit_code=rc, message=msg,
                              backend_id=backend)
        if rec is None:
            if (d / "lost").exists():
                return ExecStatus(launch_id=launch_id, state=ExecState.LOST,
                                  message="the process never started")
            child = self._children.get(launch_id)
            if child is not None and child.poll() is None:
                return ExecStatus(launch_id=launch_id, state=ExecState.STARTING)
            age = time.time() - d.stat().st_mtime
            if age < START_TIMEOUT_S or (d / "claim").exists():
                return ExecStatus(launch_id=launch_id, state=ExecState.STARTING)
            try:  # fence it off: a runner that starts after this will not run the command
                os.close(os.open(d / "claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return ExecStatus(launch_id=launch_id, state=ExecState.STARTING)
            _put(d / "lost", "never started")
            return ExecStatus(launch_id=launch_id, state=ExecState.LOST,
                              message="the process never started")
        if self._alive(d) is not None:
            return ExecStatus(launch_id=launch_id, state=ExecState.RUNNING, backend_id=backend)
        # the runner died without writing an exit code (SIGKILL of the group, reboot)
        code = _read(d / "exit")  # it may have just finished
        if code is not None:
            return self.poll(launch_id)
        if (d / "cancelled").exists():
            return ExecStatus(launch_id=launch_id, state=ExecState.CANCELLED, message="cancelled",
                              backend_id=backend)
        return ExecStatus(launch_id=launch_id, state=ExecState.LOST, backend_id=backend,
                          message="the process group vanished without an exit code")

    def _stop(self, launch_id: str, marker: str, grace_s: float) -> ExecStatus:
        d = self._dir(launch_id)
        if not d.is_dir():
            return self.poll(launch_id)
        if _read(d / "exit") is not None:
            return self.poll(launch_id)
        _put(d / marker, str(time.time()))
        deadline = time.monotonic() + START_TIMEOUT_S
        while self._pid(d) is None and time.monotonic() < deadline:
            time.sleep(0.02)  # launched an instant ago: wait for the runner's pid
        pid = self._alive(d)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            end = time.monotonic() + max(grace_s, 0.0)
            while time.monotonic() < end:
                self._reap(launch_id)
                if _read(d / "exit") is not None or self._alive(d) is None:
                    break
                time.sleep(0.02)
            if _read(d / "exit") is None and self._alive(d) is not None:
                _put(d / "exit", str(-int(signal.SIGKILL)))
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        if _read(d / "exit") is None:
            _put(d / "exit", str(-int(signal.SIGTERM)))
        self._reap(launch_id)
        return self.poll(launch_id)

    def cancel(self, launch_id: str, grace_s: float = 10.0) -> ExecStatus:
        return self._stop(launch_id, "cancelled", grace_s)

    def preempt(self, launch_id: str, grace_s: float = 10.0) -> ExecStatus:
        """Stop for a preemption (checkpoint first with :meth:`checkpoint`)."""
        return self._stop(launch_id, "preempted", grace_s)

    def checkpoint(self, launch_id: str) -> bool:
        spec = self.spec_of(launch_id)
        if spec is None or not spec.checkpoint_command:
            return False
        d = self._dir(launch_id)
        workdir = Path(spec.workdir) if spec.workdir else d / "work"
        logs = self.log_paths(launch_id)
        with open(logs["stdout"], "ab") as out, open(logs["stderr"], "ab") as err:
            out.write(b"--- suanli: running the checkpoint command ---\n")
            out.flush()
            try:
                rc = subprocess.run(
                    spec.checkpoint_command, cwd=str(workdir), env=self._env(spec, workdir),
                    stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=300,
                    check=False,
                ).returncode
            except (OSError, subprocess.TimeoutExpired) as exc:
                err.write(f"suanli: checkpoint command failed: {exc}\n".encode())
                return False
        return rc == 0

    def log_paths(self, launch_id: str) -> dict[str, Path]:
        d = self._dir(launch_id)
        other = _read(d / "log_dir")
        base = Path(other) if other else d
        return {"stdout": base / "stdout.log", "stderr": base / "stderr.log"}

    def check(self) -> tuple[bool, str]:
        ok = os.access(self.root, os.W_OK)
        where = f"{socket.gethostname()}:{self.root}"
        return ok, (f"local processes on {where}" if ok else f"{self.root} is not writable")

    def known(self) -> list[str]:
        """Every launch id this executor has a record of."""
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())


def _factory(**options: Any) -> LocalExecutor:
    return LocalExecutor(**options)


register_executor("local", _factory)
