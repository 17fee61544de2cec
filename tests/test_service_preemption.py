"""Preemption through the whole service: a preemptive policy (least attained service, 1 s
rounds) stops a running gang for a newcomer; the checkpoint command runs first, the job goes
back to pending and resumes later as a new attempt."""

from __future__ import annotations

import time
from pathlib import Path

from service_support import live_service, wait_state


def test_preempt_checkpoint_and_resume(tmp_path: Path) -> None:
    with live_service("sqlite", tmp_path, policy="las", round_s=1.0) as live:
        c = live.admin
        marks = tmp_path / "marks.txt"
        long_job = c.post("/jobs", json={
            "name": "long", "command": ["sh", "-c", f"echo start-$SUANLI_LAUNCH_ID >> {marks}; "
                                        "trap 'exit 143' TERM; while :; do sleep 0.05; done"],
            "resources": {"devices": 2, "chips": ["K100-AI"]}, "duration_s": 3600,
            "checkpoint_command": ["sh", "-c", f"echo ckpt-$SUANLI_LAUNCH_ID >> {marks}"]}
        ).json()["id"]
        wait_state(c, long_job, {"running"})
        time.sleep(1.5)
        short = c.post("/jobs", json={
            "name": "short", "command": ["sh", "-c", f"echo short >> {marks}; sleep 0.5"],
            "resources": {"devices": 2, "chips": ["K100-AI"]}, "duration_s": 1}).json()["id"]
        assert wait_state(c, short, {"succeeded"}, timeout=60)["state"] == "succeeded"
        # the long job was checkpointed, preempted, and runs again as attempt 2
        end = time.monotonic() + 60
        while f"start-job{long_job}-a2" not in marks.read_text():
            assert time.monotonic() < end, marks.read_text()
            time.sleep(0.1)
        lines = marks.read_text().split()
        a1 = f"job{long_job}-a1"
        assert lines[:4] == [f"start-{a1}", f"ckpt-{a1}", "short", f"start-job{long_job}-a2"]
        states = [e["state"] for e in c.get(f"/jobs/{long_job}/events").json()]
        assert states[:5] == ["pending", "scheduled", "starting", "running", "pending"]
        reasons = [e["reason"] for e in c.get(f"/jobs/{long_job}/events").json()]
        assert "preempted (checkpointed)" in reasons
        c.post(f"/jobs/{long_job}/cancel")
        wait_state(c, long_job, {"cancelled"})


def test_a_launch_that_cannot_start_fails_the_job(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with live_service("sqlite", tmp_path) as live:
        c = live.admin
        jid = c.post("/jobs", json={"command": ["true"], "workdir": str(blocker / "sub")}
                     ).json()["id"]
        j = wait_state(c, jid, {"failed"})
        assert "launch failed" in j["reason"]
        ok = c.post("/jobs", json={"command": ["true"]}).json()["id"]
        assert wait_state(c, ok, {"succeeded"})["state"] == "succeeded"  # the loop lives on


def test_a_round_in_slices_runs_its_passes_back_to_back(tmp_path: Path) -> None:
    """With the smallest work per pass a round takes dozens of passes; the loop runs them
    one after the other instead of once per ``interval_s`` (5 s here: dozens of those would
    take minutes), and the preemption is the same as with whole rounds."""
    with live_service("sqlite", tmp_path, policy="las", round_s=1.0, interval_s=5.0,
                      round_slice_us=1.0) as live:
        c = live.admin
        long_job = c.post("/jobs", json={
            "name": "long", "command": ["sh", "-c", "trap 'exit 143' TERM; "
                                        "while :; do sleep 0.05; done"],
            "resources": {"devices": 2, "chips": ["K100-AI"]}, "duration_s": 3600}
        ).json()["id"]
        wait_state(c, long_job, {"running"}, timeout=30)
        time.sleep(1.5)
        loop = live.svc.loop
        assert loop is not None and loop.adapter is not None
        assert loop.adapter.sched.round_slice == 1.0
        rounds = loop.adapter.sched.stats["rounds"]
        t0 = time.monotonic()
        short = c.post("/jobs", json={
            "name": "short", "command": ["sleep", "0.2"],
            "resources": {"devices": 2, "chips": ["K100-AI"]}, "duration_s": 1}).json()["id"]
        assert wait_state(c, short, {"succeeded"}, timeout=60)["state"] == "succeeded"
        assert time.monotonic() - t0 < 30
        assert loop.adapter.sched.stats["rounds"] > rounds
        states = [e["state"] for e in c.get(f"/jobs/{long_job}/events").json()]
        assert states[:5] == ["pending", "scheduled", "starting", "running", "pending"]
        c.post(f"/jobs/{long_job}/cancel")
        wait_state(c, long_job, {"cancelled"})
