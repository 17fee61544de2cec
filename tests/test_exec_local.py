"""The local executor: process groups, idempotent launches, exit codes, SIGTERM -> grace ->
SIGKILL, time limits, checkpoint before preemption, vendor visibility variables, restart."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from suanli.exec.base import ExecState, LaunchSpec, get_executor
from suanli.exec.local import LocalExecutor
from suanli.exec.visibility import VISIBILITY, visibility_env, visibility_for


def spec(tmp: Path, lid: str, cmd: str, **kw: object) -> LaunchSpec:
    return LaunchSpec(launch_id=lid, job_id=lid, command=["sh", "-c", cmd],
                      log_dir=tmp / "runs" / lid, **kw)  # type: ignore[arg-type]


def wait(ex: LocalExecutor, lid: str, timeout: float = 10) -> ExecState:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = ex.poll(lid).state
        if st.terminal:
            return st
        time.sleep(0.02)
    raise AssertionError(f"{lid} still running")


@pytest.fixture
def ex(tmp_path: Path) -> LocalExecutor:
    return LocalExecutor(tmp_path / "runs", grace_s=1.0)


def test_registered_and_checks(tmp_path: Path) -> None:
    e = get_executor("local", root=tmp_path / "r")
    assert isinstance(e, LocalExecutor)
    ok, msg = e.check()
    assert ok and "local processes" in msg


def test_launch_is_idempotent_and_records_exit_code(ex: LocalExecutor, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    s = spec(tmp_path, "a1", f"echo x >> {counter}; echo out; echo err >&2; exit 3")
    ex.launch(s)
    ex.launch(s)  # a second launch of the same id must not start a second process
    assert wait(ex, "a1") == ExecState.FAILED
    st = ex.poll("a1")
    assert st.exit_code == 3 and st.message == "exit code 3"
    assert counter.read_text() == "x\n"
    logs = ex.log_paths("a1")
    assert logs["stdout"].read_text() == "out\n" and logs["stderr"].read_text() == "err\n"
    # a new executor instance (a restarted control plane) sees the same record
    again = LocalExecutor(tmp_path / "runs")
    assert again.poll("a1").exit_code == 3
    again.launch(s)
    time.sleep(0.3)
    assert counter.read_text() == "x\n"
    assert ex.poll("nope").state == ExecState.LOST


def test_own_workdir_process_group_and_clean_env(ex: LocalExecutor, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUANLI_TOKEN", "sl_secret")
    monkeypatch.setenv("SUANLI_DATABASE_URL", "postgresql://u:pw@h/db")
    s = spec(tmp_path, "w1", 'pwd; ps -o pgid= -p $$; echo "tok=${SUANLI_TOKEN:-} '
             'db=${SUANLI_DATABASE_URL:-} job=$SUANLI_JOB_ID"', env={"A": "1"})
    ex.launch(s)
    assert wait(ex, "w1") == ExecState.SUCCEEDED
    out = ex.log_paths("w1")["stdout"].read_text().split("\n")
    assert out[0] == str(tmp_path / "runs" / "w1" / "work")
    assert int(out[1].strip()) != os.getpgid(0)  # its own process group
    assert out[2] == "tok= db= job=w1"


def test_cancel_sigterm_then_grace_then_sigkill(ex: LocalExecutor, tmp_path: Path) -> None:
    ex.launch(spec(tmp_path, "t1", "trap 'echo term; exit 9' TERM; while :; do sleep 0.05; done"))
    ex.launch(spec(tmp_path, "t2", "trap '' TERM; while :; do sleep 0.05; done"))
    time.sleep(0.4)
    st = ex.cancel("t1", grace_s=2)
    assert st.state == ExecState.CANCELLED and st.exit_code == 9
    assert "term" in ex.log_paths("t1")["stdout"].read_text()
    t0 = time.monotonic()
    st = ex.cancel("t2", grace_s=0.5)
    took = time.monotonic() - t0
    assert st.state == ExecState.CANCELLED and st.exit_code == -9  # SIGKILL after the grace
    assert 0.4 < took < 5


def test_time_limit(ex: LocalExecutor, tmp_path: Path) -> None:
    ex.launch(spec(tmp_path, "l1", "sleep 20", time_limit_s=0.3))
    assert wait(ex, "l1") == ExecState.FAILED
    assert ex.poll("l1").message == "time limit reached"


def test_checkpoint_then_preempt(ex: LocalExecutor, tmp_path: Path) -> None:
    s = spec(tmp_path, "p1", "echo started; while :; do sleep 0.05; done",
             checkpoint_command=["sh", "-c", "echo saved > ckpt.txt"])
    ex.launch(s)
    time.sleep(0.3)
    assert ex.checkpoint("p1") is True
    assert (tmp_path / "runs" / "p1" / "work" / "ckpt.txt").read_text() == "saved\n"
    assert ex.preempt("p1", grace_s=1).state == ExecState.PREEMPTED
    assert ex.checkpoint("nope-but-valid") is False


def test_missing_program(ex: LocalExecutor, tmp_path: Path) -> None:
    ex.launch(LaunchSpec(launch_id="m1", job_id="m1", command=["/no/such/program"],
                         log_dir=tmp_path / "runs" / "m1"))
    assert wait(ex, "m1") == ExecState.FAILED
    assert ex.poll("m1").exit_code == 127
    assert "cannot start" in ex.log_paths("m1")["stderr"].read_text()


def test_launch_that_never_started_is_fenced(tmp_path: Path) -> None:
    """A control plane that died between mkdir and starting the runner: the launch is
    declared lost once, and a runner that shows up later refuses to run it."""
    import suanli.exec.local as local

    ex = LocalExecutor(tmp_path / "runs")
    d = tmp_path / "runs" / "f1"
    d.mkdir(parents=True)
    old = time.time() - local.START_TIMEOUT_S - 5
    os.utime(d, (old, old))
    assert ex.poll("f1").state == ExecState.LOST
    assert ex.poll("f1").state == ExecState.LOST
    marker = tmp_path / "ran"
    import subprocess
    import sys

    subprocess.run([sys.executable, "-I", "-c", local.RUNNER, str(d), "0", "1", "sh", "-c",
                    f"touch {marker}"], check=True, timeout=30)
    assert not marker.exists()


@pytest.mark.parametrize("vendor, var", [
    ("NVIDIA", "CUDA_VISIBLE_DEVICES"), ("Hygon", "HIP_VISIBLE_DEVICES"),
    ("AMD", "HIP_VISIBLE_DEVICES"), ("Moore Threads", "MUSA_VISIBLE_DEVICES"),
    ("Huawei", "ASCEND_RT_VISIBLE_DEVICES"), ("Cambricon", "MLU_VISIBLE_DEVICES"),
    ("Kunlunxin", "XPU_VISIBLE_DEVICES"), ("Iluvatar CoreX", "CUDA_VISIBLE_DEVICES"),
    ("MetaX", "MACA_VISIBLE_DEVICES"), ("Enflame", "TOPS_VISIBLE_DEVICES"),
    ("Biren", "SUPA_VISIBLE_DEVICES"),
])
def test_visibility_variable_per_vendor(vendor: str, var: str, ex: LocalExecutor,
                                        tmp_path: Path) -> None:
    vis = visibility_for(vendor)
    assert vis is not None and vis.variable == var and vis.source and vis.confidence
    lid = "v" + vendor.replace(" ", "")
    ex.launch(spec(tmp_path, lid, f'echo "${var}"', vendor=vendor, nodes=["n"],
                   devices=[[2, 5]]))
    assert wait(ex, lid) == ExecState.SUCCEEDED
    assert ex.log_paths(lid)["stdout"].read_text() == "2,5\n"


def test_every_catalogue_vendor_has_a_visibility_variable() -> None:
    from suanli.catalog.loader import load_catalog

    vendors = {c.vendor for c in load_catalog()}
    missing = [v for v in vendors if visibility_for(v) is None]
    assert not missing, missing
    assert visibility_env("unknown vendor", [0]) == {}
    assert visibility_env("metax", [1]) == {"MACA_VISIBLE_DEVICES": "1",
                                            "CUDA_VISIBLE_DEVICES": "1"}
    assert len(VISIBILITY) >= 11
