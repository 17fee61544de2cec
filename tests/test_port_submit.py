"""Issue 13 through the control plane: a job spec's ``code: PATH`` is analysed by port-check
on the client, its allowed stacks travel with the job, and the scheduler keeps a job with
custom CUDA kernels off chips whose stack cannot run it (the Ascend pool), end to end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import cli_support
from service_support import Live, live_service, wait_state

PORT = Path(__file__).parent / "data" / "port"
BOTH = "[nvidia_h800_sxm, ascend_910b]"


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    with live_service("sqlite", tmp_path) as lv:
        monkeypatch.setenv("SUANLI_URL", lv.url)
        monkeypatch.setenv("SUANLI_TOKEN", lv.token)
        monkeypatch.setenv("SUANLI_CONFIG", str(tmp_path / "none.json"))
        yield lv


def spec(tmp: Path, name: str, body: str) -> str:
    f = tmp / f"{name}.yaml"
    f.write_text(f"name: {name}\n{body}")
    return str(f)


def test_cuda_kernel_job_never_lands_on_ascend(live: Live, tmp_path: Path) -> None:
    # the H800 pool (2 nodes x 4) is full: a job allowed on both chips would take the 910B
    blockers = [cli_support.run_json("submit", spec(tmp_path, f"b{i}", "command: sleep 60\n"
                                                    "resources: {devices: 4, chips: "
                                                    "[nvidia_h800_sxm]}\n"))[0]["id"]
                for i in range(2)]
    for b in blockers:
        wait_state(live.admin, b, {"running"})
    # custom CUDA kernels (torch cpp_extension + .cu): port-check allows only CUDA
    (tmp_path / "proj").symlink_to(PORT / "cpp_ext")
    kern = cli_support.run_json("submit", spec(
        tmp_path, "kernels", f"command: sh -c 'echo ran on $SUANLI_CHIP'\ncode: proj\n"
        f"resources: {{devices: 1, chips: {BOTH}}}\n"))[0]["id"]
    plain = cli_support.run_json("submit", spec(
        tmp_path, "plain",
        f"command: sh -c 'echo ran on $SUANLI_CHIP'\ncode: {PORT / 'clean'}\n"
        f"resources: {{devices: 1, chips: {BOTH}}}\n"))[0]["id"]
    j = live.admin.get(f"/jobs/{kern}").json()
    assert j["spec"]["stacks"] == ["cuda"], j["spec"]
    assert "port-check" in j["spec"]["stacks_source"] and "cann: port" in \
        j["spec"]["stacks_source"]
    assert "cann" in live.admin.get(f"/jobs/{plain}").json()["spec"]["stacks"]
    p = wait_state(live.admin, plain, {"succeeded"})
    assert p["allocation"]["chip"] == "ascend_910b"  # the clean job takes the free Ascend
    time.sleep(1.5)  # many scheduler passes (0.1 s) with the 910B free
    j = live.admin.get(f"/jobs/{kern}").json()
    assert j["state"] == "pending" and j["allocation"] is None, j
    # an H800 frees up: the kernel job runs there
    live.admin.post(f"/jobs/{blockers[0]}/cancel")
    j = wait_state(live.admin, kern, {"succeeded"})
    assert j["allocation"]["chip"] == "nvidia_h800_sxm"
    assert "ran on nvidia_h800_sxm" in live.admin.get(f"/jobs/{kern}/logs").json()["data"]
    live.admin.post(f"/jobs/{blockers[1]}/cancel")


def test_stacks_only_ascend_is_unrunnable_and_explicit_stacks(live: Live) -> None:
    r = live.admin.post("/jobs", json={"command": ["true"], "stacks": ["cuda"],
                                       "resources": {"chips": ["ascend_910b"]}})
    assert r.status_code == 201
    j = wait_state(live.admin, r.json()["id"], {"unrunnable"})
    assert "stack" in j["reason"].lower(), j["reason"]
    r = live.admin.post("/jobs", json={"command": ["true"], "stacks": ["CANN"]})
    assert r.status_code == 201
    j = wait_state(live.admin, r.json()["id"], {"succeeded"})
    assert j["spec"]["stacks"] == ["cann"] and j["allocation"]["chip"] == "ascend_910b"
    r = live.admin.post("/jobs", json={"command": ["true"], "stacks": ["cuda", "nope"]})
    assert r.status_code == 422 and r.json()["field"] == "stacks", r.json()
    assert "unknown software stack 'nope'" in r.json()["detail"]


def test_code_and_stacks_errors_are_one_line(live: Live, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    both = spec(tmp_path, "both", "command: 'true'\ncode: .\nstacks: [cuda]\n")
    err = cli_support.run_error(capsys, "submit", both)
    assert "both.yaml" in err and "code" in err and "not both" in err
    missing = spec(tmp_path, "missing", "command: 'true'\ncode: nowhere\n")
    err = cli_support.run_error(capsys, "submit", missing)
    assert "missing.yaml" in err and "nowhere" in err
    out = cli_support.run_json("submit", "--cmd", "true", "--code", str(PORT / "cpp_ext"))
    assert live.admin.get(f"/jobs/{out[0]['id']}").json()["spec"]["stacks"] == ["cuda"]
