"""A rebuild requested from another thread (tests, benchmarks, an operator hook) while the
scheduler loop runs a pass is serialised with the pass: without that, the pass went on
deciding with the old scheduler state and committed starts the new one did not know, so the
same devices were booked twice (the cause of the rare failure of
test_service_devices::test_live_gang_sees_its_devices_and_a_burst_never_double_books under
load, which calls ``loop.rebuild()`` while jobs are being placed)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from service_support import live_service, wait_state
from test_service_devices import _allocs, _no_overlap


def test_rebuilds_from_another_thread_during_a_burst_never_double_book(tmp_path: Path) -> None:
    with live_service("sqlite", tmp_path) as live:
        c = live.admin
        loop = live.svc.loop
        assert loop is not None
        stop = threading.Event()
        rebuilds = [0]

        def hammer() -> None:
            while not stop.is_set():
                loop.rebuild()
                rebuilds[0] += 1
                time.sleep(0.005)

        t = threading.Thread(target=hammer)
        t.start()
        try:
            ids = [c.post("/jobs", json={
                "name": f"b{i}", "command": ["sh", "-c", "sleep 0.2"],
                "resources": {"devices": [1, 2, 3, 1][i % 4], "chips": ["H800"]},
                "duration_s": 1}).json()["id"] for i in range(24)]
            for i in ids:
                assert wait_state(c, i, {"succeeded"}, timeout=90)["state"] == "succeeded"
        finally:
            stop.set()
            t.join(30)
        assert rebuilds[0] > 10
        allocs = _allocs(live)
        assert len(allocs) >= 24
        _no_overlap(allocs)
