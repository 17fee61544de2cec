"""Ray executor: submission arguments and state mapping offline, and end to end against the
real single-node Ray head that .ci/setup.d/30-ray.sh starts (SUANLI_TEST_RAY=1)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from needs import need
from suanli.errors import SuanliError
from suanli.exec import ExecState, LaunchSpec, get_executor
from suanli.exec.ray import RayExecutor, map_state, submit_kwargs


def _spec(tmp: Path, command: list[str], **kw: object) -> LaunchSpec:
    return LaunchSpec(launch_id=f"r{uuid.uuid4().hex[:10]}", job_id="job", command=command,
                      log_dir=tmp, **kw)


@pytest.mark.parametrize(
    ("ray", "ours"),
    [("PENDING", ExecState.STARTING), ("RUNNING", ExecState.RUNNING),
     ("SUCCEEDED", ExecState.SUCCEEDED), ("FAILED", ExecState.FAILED),
     ("STOPPED", ExecState.CANCELLED), ("JobStatus.RUNNING", ExecState.RUNNING),
     ("WHATEVER", ExecState.LOST)],
)
def test_state_map(ray: str, ours: ExecState) -> None:
    assert map_state(ray) is ours


def test_submit_kwargs_map_chip_to_custom_resource(tmp_path: Path) -> None:
    spec = _spec(tmp_path, ["python", "-c", "print('a b')"], chip_id="ascend_910b3",
                 devices=[[0, 1]], env={"A": "1"}, workdir=tmp_path)
    kw = submit_kwargs(spec)
    assert kw["entrypoint_resources"] == {"chip:ascend_910b3": 2.0}
    assert kw["submission_id"] == spec.launch_id
    assert kw["runtime_env"] == {"env_vars": {"A": "1"}}
    assert kw["entrypoint"].startswith(f"cd {tmp_path} && python -c ")
    frac = _spec(tmp_path, ["x"], chip_id="nvidia_h800_sxm", extra={"chip_units": 0.5})
    assert submit_kwargs(frac)["entrypoint_resources"] == {"chip:nvidia_h800_sxm": 0.5}
    with pytest.raises(SuanliError, match="chip_units"):
        submit_kwargs(_spec(tmp_path, ["x"], chip_id="c", extra={"chip_units": 0}))
    assert submit_kwargs(_spec(tmp_path, ["x"]))["entrypoint_resources"] is None


def test_check_against_nothing_is_a_clean_no() -> None:
    pytest.importorskip("ray")  # the optional extra; without it check() says so (next test)
    ok, why = RayExecutor(address="http://127.0.0.1:9").check()
    assert not ok and "127.0.0.1:9" in why


def test_missing_ray_package_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray.job_submission", None)
    ok, why = RayExecutor(address="http://127.0.0.1:9").check()
    assert not ok and "pip install 'suanli[ray]'" in why


# --------------------------------------------------------------------------- real Ray
def _ray() -> RayExecutor:
    need(os.environ.get("SUANLI_TEST_RAY") == "1",
         "a running Ray head (.ci/setup.d/30-ray.sh sets SUANLI_TEST_RAY=1)")
    ex = get_executor("ray")
    assert isinstance(ex, RayExecutor)
    return ex


def _wait(ex: RayExecutor, lid: str, states: set[ExecState], limit: float = 90.0):
    deadline = time.monotonic() + limit
    st = ex.poll(lid)
    while st.state not in states and time.monotonic() < deadline:
        time.sleep(0.3)
        st = ex.poll(lid)
    return st


def test_real_ray_check() -> None:
    ok, why = _ray().check()
    assert ok and "version" in why


def test_real_ray_job_env_exit_code_logs_and_idempotence(tmp_path: Path) -> None:
    ex = _ray()
    spec = _spec(tmp_path, ["bash", "-c", 'echo "x=$X in $(pwd)"; exit 5'],
                 chip_id="nvidia_h800_sxm", devices=[[0]], env={"X": "a b"}, workdir=tmp_path)
    first = ex.launch(spec)
    assert first.state is ExecState.STARTING and first.backend_id == spec.launch_id
    assert ex.launch(spec).backend_id == spec.launch_id  # no second job
    st = _wait(ex, spec.launch_id, {ExecState.FAILED, ExecState.SUCCEEDED})
    assert st.state is ExecState.FAILED and st.exit_code == 5, st
    log = ex.log_paths(spec.launch_id)["stdout"].read_text()
    assert f"x=a b in {tmp_path}" in log
    ok = _spec(tmp_path, ["true"], chip_id="ascend_910b3", devices=[[0, 1]])
    ex.launch(ok)
    done = _wait(ex, ok.launch_id, {ExecState.SUCCEEDED, ExecState.FAILED})
    assert done.state is ExecState.SUCCEEDED and done.exit_code == 0


def test_real_ray_custom_resource_gates_the_job(tmp_path: Path) -> None:
    """Three h800 units on a head with two: the second job waits for the first."""
    ex = _ray()
    a = _spec(tmp_path, ["sleep", "300"], chip_id="nvidia_h800_sxm", devices=[[0, 1]],
              checkpoint_command=["bash", "-c", f"echo ck > {tmp_path / 'ck'}"])
    b = _spec(tmp_path, ["true"], chip_id="nvidia_h800_sxm", devices=[[0]])
    ex.launch(a)
    assert _wait(ex, a.launch_id, {ExecState.RUNNING}).state is ExecState.RUNNING
    ex.launch(b)
    time.sleep(3)
    assert ex.poll(b.launch_id).state is ExecState.STARTING  # no free h800 unit
    assert ex.checkpoint(a.launch_id) and (tmp_path / "ck").read_text().strip() == "ck"
    st = ex.cancel(a.launch_id, grace_s=5)
    assert st.state is ExecState.CANCELLED, st
    assert _wait(ex, b.launch_id, {ExecState.SUCCEEDED}).state is ExecState.SUCCEEDED
    assert ex.poll(f"never-{uuid.uuid4().hex[:6]}").state is ExecState.LOST
