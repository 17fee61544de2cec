"""Slurm executor: state mapping and parsing on recorded 22.05 output, and end to end against
the real Slurm that .ci/setup.d/20-slurm.sh starts (SUANLI_TEST_SLURM=1)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from needs import need
from suanli.exec import ExecState, LaunchSpec, get_executor
from suanli.exec.slurm import (
    SlurmExecutor,
    batch_script,
    map_state,
    parse_sacct,
    parse_squeue_json,
    status_from,
)

DATA = Path(__file__).parent / "data" / "slurm"


@pytest.mark.parametrize(
    ("slurm", "ours"),
    [
        ("PENDING", ExecState.STARTING),
        ("CONFIGURING", ExecState.STARTING),
        ("RUNNING", ExecState.RUNNING),
        ("COMPLETING", ExecState.RUNNING),
        ("COMPLETED", ExecState.SUCCEEDED),
        ("FAILED", ExecState.FAILED),
        ("TIMEOUT", ExecState.FAILED),
        ("OUT_OF_MEMORY", ExecState.FAILED),
        ("CANCELLED by 0", ExecState.CANCELLED),
        ("PREEMPTED", ExecState.PREEMPTED),
        ("NODE_FAIL", ExecState.LOST),
        ("REQUEUED", ExecState.STARTING),
        ("SOMETHING_NEW", ExecState.LOST),
        ("", ExecState.LOST),
    ],
)
def test_state_map(slurm: str, ours: ExecState) -> None:
    assert map_state(slurm) is ours


def test_status_messages_name_the_slurm_state() -> None:
    t = status_from("L", "7", "TIMEOUT", "0:15")
    assert t.state is ExecState.FAILED and "TIMEOUT" in t.message and "time limit" in t.message
    assert t.exit_code == 0 and "signal 15" in t.message
    oom = status_from("L", "7", "OUT_OF_MEMORY", "0:125")
    assert oom.state is ExecState.FAILED and "memory" in oom.message
    nf = status_from("L", "7", "NODE_FAIL", "0:0")
    assert nf.state is ExecState.LOST and "node" in nf.message
    run = status_from("L", "7", "RUNNING", 0)
    assert run.exit_code is None and run.backend_id == "7"


def test_parse_recorded_squeue_json_22_05() -> None:
    jobs = {j["job_id"]: j for j in parse_squeue_json((DATA / "squeue-22.05.json").read_text())}
    assert jobs["2"]["state"] == "FAILED" and jobs["2"]["exit_code"] == 768  # wait status
    s = status_from("L", "2", jobs["2"]["state"], jobs["2"]["exit_code"], jobs["2"]["reason"])
    assert s.exit_code == 3 and "NonZeroExitCode" in s.message
    k = status_from("L", "3", jobs["3"]["state"], jobs["3"]["exit_code"])
    assert k.state is ExecState.FAILED and "signal 9" in k.message


def test_parse_squeue_json_list_states_of_newer_slurm() -> None:
    text = '{"jobs": [{"job_id": 5, "name": "x", "job_state": ["PREEMPTED"], ' \
           '"exit_code": {"status": ["SIGNALED"], "return_code": 0, "signal": {"id": 15}}}]}'
    job = parse_squeue_json(text)[0]
    s = status_from("L", job["job_id"], job["state"], job["exit_code"])
    assert s.state is ExecState.PREEMPTED and "signal 15" in s.message


def test_parse_recorded_sacct() -> None:
    rows = parse_sacct((DATA / "sacct-22.05.txt").read_text())
    assert [(r["job_id"], r["state"], r["exit_code"]) for r in rows] == [
        ("1", "COMPLETED", "0:0"), ("2", "FAILED", "3:0"), ("3", "FAILED", "0:9")]
    assert status_from("L", "2", "FAILED", "3:0").exit_code == 3


def _spec(tmp: Path, command: list[str], **kw: object) -> LaunchSpec:
    lid = kw.pop("launch_id", None) or f"t{uuid.uuid4().hex[:10]}"
    return LaunchSpec(launch_id=str(lid), job_id="job", command=command, log_dir=tmp, **kw)


def test_sbatch_args_choose_partition_and_gres_from_the_chip(tmp_path: Path) -> None:
    ex = SlurmExecutor(partitions={"nvidia_h800_sxm": "h800"},
                       gres_types={"nvidia_h800_sxm": "h800"})
    spec = _spec(tmp_path, ["python", "train.py"], chip_id="nvidia_h800_sxm",
                 nodes=["a", "b"], devices=[[0, 1], [0, 1]], time_limit_s=3601,
                 extra={"cpus_per_task": 4})
    args, tasks = ex.sbatch_args(spec)
    assert "--partition=h800" in args and "--gres=gpu:h800:2" in args
    assert "--nodes=2" in args and "--ntasks=2" in args and tasks == 2
    assert "--time=61" in args and "--cpus-per-task=4" in args
    assert f"--job-name=suanli-{spec.launch_id}" in args and "--parsable" in args
    assert any(a.startswith("--output=") and a.endswith(".out") for a in args)
    override = _spec(tmp_path, ["x"], chip_id="nvidia_h800_sxm",
                     extra={"partition": "low", "gres_type": "910b", "gpus_per_node": 1})
    args2, _ = ex.sbatch_args(override)
    assert "--partition=low" in args2 and "--gres=gpu:910b:1" in args2


def test_batch_script_quotes_command_and_env(tmp_path: Path) -> None:
    spec = _spec(tmp_path, ["echo", "a b", "$HOME;rm -rf /"], env={"X": "it's, ok"})
    text = batch_script(spec, 1)
    assert "export X='it'\"'\"'s, ok'" in text
    assert "exec echo 'a b' '$HOME;rm -rf /'" in text
    assert "exec srun echo" in batch_script(spec, 2)
    from suanli.errors import SuanliError

    bad = _spec(tmp_path, ["x"], env={"A=B": "1"})
    with pytest.raises(SuanliError, match="environment variable"):
        batch_script(bad, 1)


def test_check_without_slurm_is_a_clean_no(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    ok, why = SlurmExecutor().check()
    assert not ok and "not found" in why


# --------------------------------------------------------------------------- real Slurm
def _slurm() -> SlurmExecutor:
    need(os.environ.get("SUANLI_TEST_SLURM") == "1",
         "a running Slurm (.ci/setup.d/20-slurm.sh sets SUANLI_TEST_SLURM=1)")
    ex = get_executor("slurm", partitions={"nvidia_h800_sxm": "h800",
                                           "ascend_910b3": "ascend"},
                      gres_types={"nvidia_h800_sxm": "h800", "ascend_910b3": "910b"})
    assert isinstance(ex, SlurmExecutor)
    return ex


def _wait(ex: SlurmExecutor, lid: str, states: set[ExecState], limit: float = 60.0):
    deadline = time.monotonic() + limit
    st = ex.poll(lid)
    while st.state not in states and time.monotonic() < deadline:
        time.sleep(0.5)
        st = ex.poll(lid)
    return st


def test_real_slurm_check() -> None:
    ok, why = _slurm().check()
    assert ok and "UP" in why


def test_real_slurm_runs_job_on_gres_and_reports_exit(tmp_path: Path) -> None:
    ex = _slurm()
    spec = _spec(tmp_path, ["bash", "-c", 'echo "gpus=$CUDA_VISIBLE_DEVICES x=$X"; exit 3'],
                 chip_id="nvidia_h800_sxm", devices=[[0, 1]], env={"X": "a b"},
                 time_limit_s=120)
    first = ex.launch(spec)
    assert first.state is ExecState.STARTING and first.backend_id
    again = ex.launch(spec)  # idempotent per launch id
    assert again.backend_id == first.backend_id
    st = _wait(ex, spec.launch_id, {ExecState.FAILED, ExecState.SUCCEEDED})
    assert st.state is ExecState.FAILED and st.exit_code == 3, st
    out = ex.log_paths(spec.launch_id)["stdout"].read_text()
    assert "gpus=0,1" in out and "x=a b" in out
    # a fresh executor (restarted service) finds the job by its name, through sacct too
    fresh = _slurm()
    assert fresh.poll(spec.launch_id).backend_id == first.backend_id
    assert fresh.poll(spec.launch_id).exit_code == 3


def test_real_slurm_success_cancel_and_unknown(tmp_path: Path) -> None:
    ex = _slurm()
    ok = _spec(tmp_path, ["true"], chip_id="ascend_910b3", devices=[[0]])
    ex.launch(ok)
    assert _wait(ex, ok.launch_id, {ExecState.SUCCEEDED, ExecState.FAILED}).state is (
        ExecState.SUCCEEDED)
    long = _spec(tmp_path, ["sleep", "300"], chip_id="ascend_910b3", devices=[[0]])
    ex.launch(long)
    assert _wait(ex, long.launch_id, {ExecState.RUNNING}).state is ExecState.RUNNING
    st = ex.cancel(long.launch_id, grace_s=5)
    assert st.state is ExecState.CANCELLED, st
    assert ex.poll(f"never-{uuid.uuid4().hex[:6]}").state is ExecState.LOST


def test_real_slurm_checkpoint_and_preemption(tmp_path: Path) -> None:
    ex = _slurm()
    marker = tmp_path / "ckpt"
    low = _spec(tmp_path, ["sleep", "300"], devices=[[0, 1]],
                extra={"partition": "low", "gres_type": "h800"},
                checkpoint_command=["bash", "-c", f"echo saved > {marker}"])
    ex.launch(low)
    assert _wait(ex, low.launch_id, {ExecState.RUNNING}).state is ExecState.RUNNING
    assert ex.checkpoint(low.launch_id) and marker.read_text().strip() == "saved"
    # a job in a higher-tier partition needs both h800 devices: Slurm preempts the low job
    high = _spec(tmp_path, ["sleep", "1"], chip_id="nvidia_h800_sxm", devices=[[0, 1]])
    ex.launch(high)
    st = _wait(ex, low.launch_id, {ExecState.PREEMPTED, ExecState.CANCELLED, ExecState.FAILED})
    assert st.state is ExecState.PREEMPTED, st
    assert _wait(ex, high.launch_id, {ExecState.SUCCEEDED}).state is ExecState.SUCCEEDED


def test_real_slurm_refusal_is_a_failed_launch(tmp_path: Path) -> None:
    ex = _slurm()
    spec = _spec(tmp_path, ["true"], devices=[[0, 1, 2, 3, 4, 5, 6, 7, 8]],
                 extra={"partition": "h800", "gres_type": "h800"})
    st = ex.launch(spec)
    assert st.state is ExecState.FAILED and "sbatch refused" in st.message


def test_executors_refuse_shapes_they_do_not_support(tmp_path: Path) -> None:
    from suanli.exec.compat import unsupported
    from suanli.exec.ray import RayExecutor

    gang = _spec(tmp_path, ["x"], nodes=["a", "b"], devices=[[0], [0]])
    half = _spec(tmp_path, ["x"], chip_id="c", extra={"chip_units": 0.5})
    slurm, ray = SlurmExecutor().features, RayExecutor.features
    assert unsupported(slurm, gang) is None
    assert "gang" in (unsupported(ray, gang) or "")
    assert "whole devices" in (unsupported(slurm, half) or "")
    assert unsupported(ray, half) is None
    assert "checkpoint" in (unsupported(slurm, gang, preempt_with_checkpoint=True) or "")
    # the executors apply it themselves, before touching the backend
    st = RayExecutor(address="http://127.0.0.1:9").launch(gang)
    assert st.state is ExecState.FAILED and "gang" in st.message
    st2 = SlurmExecutor().launch(half)
    assert st2.state is ExecState.FAILED and "whole devices" in st2.message
