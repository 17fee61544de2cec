"""An agent of a lost node that re-registers while an operator's drain of that node is being
committed (by another replica) leaves the node draining, not ready: registration sets the
node state in one statement the database evaluates on the row as it is then, not from the
state it read before. On
PostgreSQL the drain holds the row (updated, not committed) while the registration's read
has already happened; the drain commits once the registration waits for the row lock
(seen in ``pg_stat_activity``). On SQLite (WAL) the registration's read runs beside the held
write and its own write waits for the database lock: the same window. Both fail with the old
code, which wrote ``ready`` computed from the state it had read."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from service_support import DB_KINDS, live_service


def _device(i: int) -> dict[str, Any]:
    return {"vendor": "NVIDIA", "index": i, "name": "H800", "chip_id": "nvidia_h800_sxm",
            "memory_mib": 81920, "driver_version": "simulated"}


@pytest.mark.parametrize("kind", DB_KINDS)
def test_a_drain_committed_during_a_registration_is_kept(kind: str, tmp_path: Path) -> None:
    from sqlalchemy import select, text, update

    from suanli.service.db import NodeRow

    with live_service(kind, tmp_path) as live:
        tok = live.token_for("agent", ["node"])
        h = {"Authorization": f"Bearer {tok}"}
        body = {"hostname": "n1", "devices": [_device(i) for i in range(4)],
                "executor": "local", "features": {}, "agent_version": "0", "site": "lab"}
        r = httpx.post(live.url + "/api/v1/agent/register", headers=h, json=body, timeout=30)
        assert r.status_code == 200, r.text
        node_id = int(r.json()["node_id"])

        engine = live.svc.engine
        with engine.begin() as c:  # the node was lost (missed heartbeats)
            c.execute(update(NodeRow).where(NodeRow.id == node_id).values(state="lost"))
        drain = engine.connect()
        tx = drain.begin()
        # another replica's drain of a lost node (suanli.service.control.set_drain: the wish
        # is recorded, the state stays lost): written (row locked), not committed yet
        drain.execute(update(NodeRow).where(NodeRow.id == node_id).values(drain=True))
        result: dict[str, Any] = {}

        def register_again() -> None:
            result["r"] = httpx.post(live.url + "/api/v1/agent/register", headers=h,
                                     json=body, timeout=60)

        t = threading.Thread(target=register_again)
        t.start()
        seen = False
        end = time.monotonic() + 15
        while kind == "postgres" and not seen and time.monotonic() < end:
            with engine.connect() as c:
                seen = bool(c.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query LIKE 'UPDATE nodes%'")).scalar())
            time.sleep(0.02)
        if kind != "postgres":
            time.sleep(0.5)  # SQLite: let the registration read, then wait on the lock
        tx.commit()
        drain.close()
        t.join(60)
        assert not t.is_alive()
        assert result["r"].status_code == 200, result["r"].text
        if kind == "postgres":
            assert seen, "the registration never waited for the drain's row lock"
        with live.svc.sessions() as s:
            node = s.scalar(select(NodeRow).where(NodeRow.id == node_id))
            assert node is not None
            # back from lost into the drain (the monitor may have finished it: nothing runs)
            assert node.drain and node.state in ("draining", "drained"), node.state
