"""The CLI client against a live server, and `suanli up` (the main job) run to completion."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import cli_support
from service_support import Live, live_service, wait_state


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    with live_service("sqlite", tmp_path) as lv:
        monkeypatch.setenv("SUANLI_URL", lv.url)
        monkeypatch.setenv("SUANLI_TOKEN", lv.token)
        monkeypatch.setenv("SUANLI_CONFIG", str(tmp_path / "none.json"))
        yield lv


def test_submit_file_jobs_job_logs(live: Live, tmp_path: Path) -> None:
    f = tmp_path / "job.yaml"
    f.write_text("name: hello\ncommand: sh -c 'echo hello from $SUANLI_CHIP'\n"
                 "resources: {devices: 1, vendors: [Hygon]}\nduration_s: 5\n")
    out = cli_support.run_json("submit", str(f))
    jid = out[0]["id"]
    wait_state(live.admin, jid, {"succeeded"})
    assert cli_support.run("logs", str(jid), "-f") == "hello from hygon_k100_ai\n"
    listing = cli_support.run_json("jobs", "--state", "succeeded")
    assert [j["id"] for j in listing["items"]] == [jid]
    text = cli_support.run("job", str(jid))
    assert "hygon_k100_ai" in text and "succeeded" in text and "exit code: 0" in text
    assert "hello" in cli_support.run("jobs")


def test_cmd_cancel_nodes_queues_tokens(live: Live) -> None:
    out = cli_support.run("submit", "--cmd", "sleep 30", "--name", "long")
    jid = int(out.split()[2])
    wait_state(live.admin, jid, {"running"})
    assert f"job {jid}: running (stopping)" in cli_support.run("cancel", str(jid))
    assert wait_state(live.admin, jid, {"cancelled"})["state"] == "cancelled"
    nodes = cli_support.run_json("nodes")
    assert nodes["total"] == 4 and {n["chip"] for n in nodes["items"]} == {
        "nvidia_h800_sxm", "ascend_910b", "hygon_k100_ai"}
    assert cli_support.run_json("queues")[0]["name"] == "default"
    tok = cli_support.run_json("tokens", "create", "--user", "ci", "--scopes", "read",
                               "--tenant", "other")
    assert tok["token"].startswith("sl_") and tok["tenant"] == "other"
    listed = cli_support.run_json("tokens", "list")
    assert all("token" not in t for t in listed)  # never shown again
    assert cli_support.run_json("tokens", "revoke", str(tok["id"]))["revoked_at"]


def test_errors_are_one_line(live: Live, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("command: [x]\nresources: {devices: -1}\n")
    line = cli_support.run_error(capsys, "submit", str(bad))
    assert str(bad) in line and "resources.devices" in line
    line = cli_support.run_error(capsys, "job", "424242")
    assert "404" in line and "not found" in line
    monkeypatch.setenv("SUANLI_TOKEN", "sl_wrong")
    assert "401" in cli_support.run_error(capsys, "jobs")
    monkeypatch.setenv("SUANLI_URL", "http://127.0.0.1:9")
    assert "cannot reach" in cli_support.run_error(capsys, "jobs")


def test_unreachable_database_is_one_line(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/x"
    for args in (["serve", "--db", url, "--home", str(tmp_path)], ["db", "upgrade", "--db", url]):
        line = cli_support.run_error(capsys, *args)
        assert "cannot use database" in line and "127.0.0.1:1" in line


def test_db_upgrade_and_current(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert "(empty) -> 0005" in cli_support.run("db", "upgrade", "--db", url)
    assert "up to date" in cli_support.run("db", "current", "--db", url)


def test_up_runs_the_sample_jobs_to_completion(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUANLI_")}
    env["SUANLI_HOME"] = str(tmp_path / "home")
    r = subprocess.run([sys.executable, "-m", "suanli.cli", "up", "--port", "0",
                        "--exit-when-idle"], env=env, capture_output=True, text=True,
                       timeout=180, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "suanli is up: http://127.0.0.1:" in out
    assert "submitted 10 sample jobs" in out
    assert "stopped; jobs: 9 succeeded, 1 unrunnable" in out
    # the jobs really ran on their vendors' devices (simulated)
    runs = tmp_path / "home" / "runs"
    logs = {p.parent.name: p.read_text() for p in runs.glob("*/stdout.log")}
    text = "\n".join(logs.values())
    for var in ("CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7", "ASCEND_RT_VISIBLE_DEVICES=",
                "HIP_VISIBLE_DEVICES=0,1,2,3", "MLU_VISIBLE_DEVICES=0,1",
                "XPU_VISIBLE_DEVICES=0", "MUSA_VISIBLE_DEVICES=0,1", "MACA_VISIBLE_DEVICES=0"):
        assert var in text, var
    assert "simulated=1" in text
    assert not (tmp_path / "home" / "server.json").exists()  # cleaned up on exit
