"""Device assignment in the service: the scheduler's Decision.placement is the one source of
truth (node and device indices), the allocation records it, the local executor exports it in
the vendor's visibility variable; node failure and a leader's rebuild keep it consistent."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from service_support import live_service, wait_state
from suanli.sched import Queue
from suanli.service.sched_adapter import NodeInfo, SchedAdapter

H800 = "nvidia_h800_sxm"


def adapter(nodes: int = 2, devices: int = 4, policy: str = "fifo") -> SchedAdapter:
    infos = [NodeInfo(name=f"site-a/h{i}", site="site-a", chip=H800, vendor="NVIDIA",
                      devices=devices, simulated=True) for i in range(nodes)]
    return SchedAdapter(infos, {}, [Queue("default")], policy=policy, round_s=1e9)


def spec(gang: int) -> dict[str, Any]:
    return {"resources": {"devices": gang}, "duration_s": 100.0}


def start_all(ad: SchedAdapter, now: float) -> dict[int, Any]:
    out = {}
    for db_id, d in ad.schedule(now):
        if d.action == "start":
            pl = ad.place(db_id, d)
            assert pl is not None
            out[db_id] = pl
    return out


def devices_of(placements: Any) -> list[tuple[str, int]]:
    return [(n, i) for pl in placements for n, devs in zip(pl.nodes, pl.devices, strict=True)
            for i in devs]


def test_gang_of_two_on_one_node_and_eight_on_two_whole_nodes() -> None:
    ad = adapter()
    assert [p.nodes for p in ad.cluster.pools] == [(4, 4)]
    assert ad.cluster.pools[0].node_ids == ("site-a/h0", "site-a/h1")
    ad.submit(1, spec(2), 0.0)
    pl = start_all(ad, 1.0)[1]
    assert len(pl.nodes) == 1 and len(pl.devices[0]) == 2
    assert pl.vendor == "NVIDIA"
    ad.forget(1, 2.0)
    ad.submit(2, spec(8), 2.0)
    pl = start_all(ad, 3.0)[2]
    assert sorted(pl.nodes) == ["site-a/h0", "site-a/h1"]
    assert [sorted(d) for d in pl.devices] == [[0, 1, 2, 3], [0, 1, 2, 3]]


def test_burst_never_double_books_and_node_failure_stops_exactly_its_jobs() -> None:
    ad = adapter(nodes=3)
    gangs = [1, 2, 3, 1, 4, 2, 1, 1, 2, 3, 1, 2]
    for i, g in enumerate(gangs, 1):
        ad.submit(i, spec(g), 0.0)
    placed = start_all(ad, 1.0)
    used = devices_of(placed.values())
    assert len(used) == len(set(used)) == 12  # 3 nodes x 4: full, nothing twice
    victim = "site-a/h1"
    on_victim = {j for j, pl in placed.items() if victim in pl.nodes}
    assert on_victim
    assert set(ad.node_failed(victim, 2.0)) == on_victim
    # their launches have not ended: their devices stay held, nothing new starts on them
    for j in on_victim:
        assert ad.sched.job_state(ad.key_of[j]) == "waiting"
    assert not start_all(ad, 3.0)
    for j in on_victim:
        ad.release(j)
    # the failed node takes no new work
    for pl in start_all(ad, 4.0).values():
        assert victim not in pl.nodes


def test_start_waits_until_the_stopped_launch_has_ended() -> None:
    ad = adapter(nodes=1, policy="las")
    ad.submit(1, spec(4), 0.0)
    assert start_all(ad, 0.0)
    # the scheduler frees the devices when it decides the stop; the process is still there
    d = ad.sched.stopped_externally(ad.key_of[1], 1.0)
    assert d is not None
    ad.submit(2, spec(2), 1.0)
    starts = [(j, x) for j, x in ad.schedule(2.0) if x.action == "start" and j == 2]
    assert starts
    assert ad.place(2, starts[0][1]) is None  # job 1's launch still holds those devices
    ad.release(1)
    assert ad.place(2, starts[0][1]) is not None


def test_rebuild_adopts_recorded_devices_without_double_booking() -> None:
    ad = adapter(nodes=2)
    for i, g in enumerate([2, 1, 4], 1):
        ad.submit(i, spec(g), 0.0)
    placed = start_all(ad, 1.0)
    assert set(placed) == {1, 2, 3}
    # a new leader: same nodes, allocations from the database
    ad2 = adapter(nodes=2)
    for i, g in enumerate([2, 1, 4], 1):
        ad2.submit(i, spec(g), 0.0)
        pl = placed[i]
        assert ad2.adopt(i, pl.pool, pl.nodes, pl.devices, 5.0)
        assert ad2.sched.job_state(ad2.key_of[i]) == "running"
    for i in range(4, 10):
        ad2.submit(i, spec(1), 5.0)
    more = start_all(ad2, 6.0)
    used = devices_of([*placed.values(), *more.values()])
    assert len(used) == len(set(used)) == 8
    assert len(more) == 1
    # an allocation whose devices are taken (or whose node is gone) is not counted twice
    ad3 = adapter(nodes=2)
    ad3.submit(1, spec(2), 0.0)
    ad3.submit(2, spec(2), 0.0)
    assert ad3.adopt(1, "x", ["site-a/h0"], [[0, 1]], 1.0)
    assert not ad3.adopt(2, "x", ["site-a/h0"], [[1, 2]], 1.0)
    assert not ad3.adopt(2, "x", ["site-a/gone"], [[0, 1]], 1.0)
    assert ad3.sched.job_state(ad3.key_of[2]) == "waiting"


def _allocs(live: Any) -> list[Any]:
    from suanli.service.db import AllocationRow

    with live.svc.sessions() as s:
        return list(s.scalars(select(AllocationRow).order_by(AllocationRow.id)))


def _no_overlap(allocs: list[Any]) -> None:
    """No device held by two allocations at once (created .. released)."""
    by_dev: dict[tuple[str, int], list[Any]] = {}
    for a in allocs:
        for n, devs in zip(a.nodes, a.devices, strict=True):
            for i in devs:
                by_dev.setdefault((n, i), []).append(a)
    for dev, rows in by_dev.items():
        rows.sort(key=lambda a: a.created_at)
        for x, y in itertools.pairwise(rows):
            assert x.released_at is not None and x.released_at <= y.created_at, (dev, x.id, y.id)


def test_live_gang_sees_its_devices_and_a_burst_never_double_books(tmp_path: Path) -> None:
    with live_service("sqlite", tmp_path) as live:
        c = live.admin
        out = tmp_path / "env"
        out.mkdir()
        jid = c.post("/jobs", json={
            "name": "g2", "command": ["sh", "-c", f"echo $CUDA_VISIBLE_DEVICES > {out}/g2"],
            "resources": {"devices": 2, "chips": ["H800"]}, "duration_s": 1}).json()["id"]
        assert wait_state(c, jid, {"succeeded"})["state"] == "succeeded"
        (a,) = [x for x in _allocs(live) if x.job_id == jid]
        assert len(a.nodes) == 1 and len(a.devices[0]) == 2
        assert (out / "g2").read_text().strip() == ",".join(map(str, a.devices[0]))
        # Hygon: HIP_VISIBLE_DEVICES
        jid = c.post("/jobs", json={
            "name": "k", "command": ["sh", "-c", f"echo $HIP_VISIBLE_DEVICES > {out}/k"],
            "resources": {"devices": 2, "chips": ["K100-AI"]}, "duration_s": 1}).json()["id"]
        assert wait_state(c, jid, {"succeeded"})["state"] == "succeeded"
        assert (out / "k").read_text().strip() == "0,1"
        # a gang of 8 H800 spans both 4-device nodes
        jid = c.post("/jobs", json={
            "name": "g8", "command": ["sh", "-c", "echo $SUANLI_NODE $CUDA_VISIBLE_DEVICES "
                                                  f"> {out}/g8-$SUANLI_NODE_RANK"],
            "resources": {"devices": 8, "chips": ["H800"]}, "duration_s": 1}).json()["id"]
        assert wait_state(c, jid, {"succeeded"})["state"] == "succeeded"
        (a,) = [x for x in _allocs(live) if x.job_id == jid]
        assert len(a.nodes) == 2 and [sorted(d) for d in a.devices] == [[0, 1, 2, 3]] * 2
        # one process per node, each seeing that node's devices
        assert sorted(f.name for f in out.glob("g8-*")) == ["g8-0", "g8-1"]
        for r in (0, 1):
            assert (out / f"g8-{r}").read_text().split() == [
                a.nodes[r], ",".join(map(str, a.devices[r]))]
        # a burst: more demand than devices, every allocation disjoint while it lasts
        ids = [c.post("/jobs", json={
            "name": f"b{i}", "command": ["sh", "-c", "sleep 0.3"],
            "resources": {"devices": [1, 2, 3, 1][i % 4], "chips": ["H800"]},
            "duration_s": 1}).json()["id"] for i in range(16)]
        for i in ids:
            assert wait_state(c, i, {"succeeded"}, timeout=90)["state"] == "succeeded"
        allocs = _allocs(live)
        assert len(allocs) >= 19
        _no_overlap(allocs)
        # a leader's rebuild with jobs running adopts their devices: nothing new on them
        long = [c.post("/jobs", json={
            "name": f"l{i}", "command": ["sh", "-c", "sleep 30"],
            "resources": {"devices": 3, "chips": ["H800"]}, "duration_s": 30}).json()["id"]
            for i in range(2)]
        for i in long:
            wait_state(c, i, {"running"})
        loop = live.svc.loop
        assert loop is not None
        loop.rebuild()
        ad = loop.adapter
        assert ad is not None
        for i in long:
            assert ad.sched.job_state(ad.key_of[i]) == "running"
        extra = [c.post("/jobs", json={
            "name": f"e{i}", "command": ["sh", "-c", "sleep 0.2"],
            "resources": {"devices": 1, "chips": ["H800"]}, "duration_s": 1}).json()["id"]
            for i in range(4)]
        for i in extra:
            assert wait_state(c, i, {"succeeded"}, timeout=60)["state"] == "succeeded"
        for i in long:
            c.post(f"/jobs/{i}/cancel")
            wait_state(c, i, {"cancelled"})
        time.sleep(0.2)
        _no_overlap(_allocs(live))


def test_live_node_failure_requeues_exactly_its_jobs(tmp_path: Path) -> None:
    from suanli.service.agents import AgentMonitor
    from suanli.service.db import NodeRow

    with live_service("sqlite", tmp_path) as live:
        c = live.admin
        loop = live.svc.loop
        assert loop is not None
        mon = next(h for h in loop.hooks if isinstance(h, AgentMonitor))

        def job(name: str, gang: int) -> int:
            return int(c.post("/jobs", json={
                "name": name, "command": ["sh", "-c", "trap 'exit 143' TERM; sleep 60 & wait"],
                "resources": {"devices": gang, "chips": ["H800"]}, "duration_s": 60}
            ).json()["id"])

        a, b = job("a", 4), job("b", 4)
        ja, jb = wait_state(c, a, {"running"}), wait_state(c, b, {"running"})
        lost = ja["allocation"]["nodes"][0]
        assert jb["allocation"]["nodes"] == [n for n in ("site-a/h800/000", "site-a/h800/001")
                                             if n != lost]
        waiting = job("c", 2)
        # the node is lost: the monitor releases its allocations and requeues their jobs (as
        # for a silent agent); the loop turns that into Scheduler.on_node_failed
        with live.svc.sessions() as s:
            node = s.scalar(select(NodeRow).where(NodeRow.name == lost))
            assert node is not None
            node.state = "lost"
            assert mon._requeue_jobs(s, lost, "node lost (test)") == 1
            s.commit()
        loop.wake()
        end = time.monotonic() + 20
        while True:
            ad = loop.adapter
            if ad is not None and ad.sched.nodes[lost][2] == "failed":
                break
            assert time.monotonic() < end, "the loop did not apply the node failure"
            time.sleep(0.1)
        assert ad.sched.job_state(ad.key_of[a]) == "waiting"
        assert ad.sched.job_state(ad.key_of[b]) == "running"
        assert ad.sched.job_state(ad.key_of[waiting]) == "waiting"
        time.sleep(1.0)
        assert c.get(f"/jobs/{a}").json()["state"] == "pending"
        assert c.get(f"/jobs/{waiting}").json()["state"] == "pending"  # nothing on a lost node
        live.svc.executor.cancel(ja["allocation"]["launch_id"], 1.0)  # the dead node's process
        # the node comes back (same id): on_node_added, the waiting jobs run there
        from datetime import UTC, datetime

        from suanli.service.db import as_utc

        back = datetime.now(UTC)
        with live.svc.sessions() as s:
            node = s.scalar(select(NodeRow).where(NodeRow.name == lost))
            assert node is not None
            node.state = "ready"
            s.commit()
        loop.wake()
        ja2 = wait_state(c, a, {"running"})
        assert ja2["allocation"]["nodes"] == [lost] and ja2["attempts"] == 2
        # nothing was placed on the node while it was lost
        assert all(as_utc(x.created_at) >= back for x in _allocs(live)
                   if lost in x.nodes and (x.job_id, x.attempt) != (a, 1))
        # the gang of 2 still waits (no room): cancel it first, then the running gangs
        for j in (waiting, a, b):
            c.post(f"/jobs/{j}/cancel")
            wait_state(c, j, {"cancelled"})
        _no_overlap(_allocs(live))
