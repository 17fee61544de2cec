"""`suanli check` and `suanli agent --probe-only` through the real CLI, with stand-in vendor
tools on PATH that print recorded samples (tests/data/probes)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cli_support import run, run_error, run_json

DATA = Path(__file__).parent / "data" / "probes"


def fake_tool(bindir: Path, name: str, fixture: str, code: int = 0) -> None:
    """An executable ``name`` that prints a recorded sample (whatever its arguments)."""
    path = bindir / name
    path.write_text(f"#!/bin/sh\ncat '{DATA / fixture}'\nexit {code}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def only_fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    return bindir


def test_probe_only_json_reads_real_tool_processes(only_fake_tools: Path) -> None:
    fake_tool(only_fake_tools, "nvidia-smi", "nvidia-smi_h800.csv")
    fake_tool(only_fake_tools, "npu-smi", "npu-smi_910b.txt")
    fake_tool(only_fake_tools, "mx-smi", "mx-smi_c500.txt", code=1)  # a failing tool
    out = run_json("agent", "--probe-only")
    chips = [d["chip_id"] for d in out["devices"]]
    assert chips == ["nvidia_h800_sxm"] * 2 + ["ascend_910b3"] * 2
    status = {p["probe"]: p["status"] for p in out["probes"]}
    assert status["nvidia"] == "ok" and status["ascend"] == "ok"
    assert status["metax"] == "error" and status["cambricon"] == "not_present"


def test_probe_only_table_and_empty_machine(only_fake_tools: Path) -> None:
    assert "no accelerators found" in run("agent", "--probe-only")
    fake_tool(only_fake_tools, "mthreads-gmi", "mthreads-gmi_s4000.txt")
    text = run("agent", "--probe-only")
    assert "MTT S4000" in text and "mthreads_s4000" in text


def test_agent_without_server_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    line = run_error(capsys, "agent")
    assert "--server" in line


def test_check_json_lists_executors_and_probes(only_fake_tools: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUANLI_RAY_ADDRESS", "http://127.0.0.1:9")
    fake_tool(only_fake_tools, "hy-smi", "hy-smi_k100ai.json")
    out = run_json("check")
    names = {e["name"]: e for e in out["executors"]}
    assert {"slurm", "ray"} <= set(names)
    assert names["ray"]["ok"] is False
    import importlib.util

    if importlib.util.find_spec("ray") is None:  # a clone without the `ray` extra
        assert "pip install 'suanli[ray]'" in names["ray"]["detail"]
    else:  # Ray installed: the unreachable address is named
        assert "127.0.0.1:9" in names["ray"]["detail"]
    assert names["slurm"]["features"]["multi_node_gangs"] is True
    assert names["ray"]["features"]["fractional_devices"] is True
    hy = next(p for p in out["probes"] if p["probe"] == "hygon")
    assert hy["status"] == "ok" and len(hy["devices"]) == 2


def test_check_table_mentions_every_probe() -> None:
    text = run("check", "--ray-address", "http://127.0.0.1:9")
    for probe in ("nvidia", "ascend", "cambricon", "kunlunxin", "metax", "enflame"):
        assert probe in text
    assert "executors enabled" in text


def test_check_sees_real_slurm_and_ray_when_ci_provides_them() -> None:
    from needs import need

    need(os.environ.get("SUANLI_TEST_SLURM") == "1" and os.environ.get("SUANLI_TEST_RAY") == "1",
         "running Slurm and Ray (.ci/setup.d/20-slurm.sh, 30-ray.sh)")
    names = {e["name"]: e for e in run_json("check")["executors"]}
    assert names["slurm"]["ok"] and names["ray"]["ok"], names


def test_check_lists_the_local_executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUANLI_HOME", str(tmp_path / "home"))
    names = {e["name"]: e for e in run_json("check")["executors"]}
    assert names["local"]["ok"] is True, names["local"]
    assert str(tmp_path / "home" / "runs") in names["local"]["detail"]
    assert names["local"]["features"]["preemption_with_checkpoint"] is True
    bad = tmp_path / "ro"
    bad.mkdir()
    (bad / "runs").mkdir()
    (bad / "runs").chmod(0o500)
    monkeypatch.setenv("SUANLI_HOME", str(bad))
    try:
        names = {e["name"]: e for e in run_json("check")["executors"]}
    finally:
        (bad / "runs").chmod(0o700)
    if os.geteuid() != 0:  # root writes anywhere
        assert names["local"]["ok"] is False and "not writable" in names["local"]["detail"]
