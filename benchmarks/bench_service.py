"""Control-plane benchmarks (figures for the README). Load stays on 127.0.0.1, bounded.

    python benchmarks/bench_service.py [--db sqlite|postgres] [--submit N] [--rows N]
                                       [--pending N] [--nodes N]

1. submissions/s over HTTP (one job per request, concurrent keep-alive clients) and through
   the batch endpoint, against a real ``suanli serve`` subprocess (scheduler off: API + DB);
2. p50/p99 latency of ``GET /jobs?state=running&limit=100`` with ``--rows`` jobs in the table
   (bulk-inserted; 1 % running);
3. scheduling pass latency of the adapter + scheduler with ``--pending`` waiting jobs on
   ``--nodes`` 8-device nodes (steady state: a few jobs finish between passes);
4. (``--db-pass``) the same pass through the service's scheduler loop on a real database
   (``SchedulerLoop.run_pass``: observe, ingest, decide, commit; an in-memory executor), split
   into ``Scheduler.schedule`` and everything else (the service side). ``--policy las
   --round-s 2`` makes rounds of a preemptive policy happen during the measured passes (in
   slices, as the service runs them; the passes that worked on a round are reported apart).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, home: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUANLI_")}
    env["SUANLI_HOME"] = str(home)
    proc = subprocess.Popen([sys.executable, "-m", "suanli.cli", "serve", "--port", str(port),
                             "--db", url, "--migrate", "--no-scheduler"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            if httpx.get(base + "/api/v1/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    token = (home / "admin.token").read_text().strip()
    return proc, base, token


SPEC = {"name": "bench", "command": ["true"], "resources": {"devices": 1}, "duration_s": 60}


def bench_submit(base: str, token: str, n: int, threads: int) -> float:
    per = n // threads
    h = {"Authorization": f"Bearer {token}"}
    errors: list[int] = []

    def worker(t: int) -> None:
        with httpx.Client(base_url=base + "/api/v1", headers=h, timeout=30) as c:
            for i in range(per):
                r = c.post("/jobs", json=SPEC, headers={"Idempotency-Key": f"b{t}-{i}"})
                if r.status_code != 201:
                    errors.append(r.status_code)

    ths = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    t0 = time.perf_counter()
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    dt = time.perf_counter() - t0
    assert not errors, errors[:5]
    return per * threads / dt


def bench_wrk(base: str, token: str, seconds: int, conns: int) -> tuple[float, int, str]:
    """Single submissions driven by ``wrk`` (a separate C load tool): jobs/s, non-201
    answers, latency line."""
    import re
    import shutil

    if shutil.which("wrk") is None:
        raise SystemExit("--load wrk needs wrk (Debian: apt-get install wrk)")
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "-s", str(ROOT / "benchmarks" /
                                                                 "wrk_submit.lua"),
         base, "--", token, f"w{os.getpid()}-{time.time_ns()}"],
        capture_output=True, text=True, timeout=seconds + 60)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out.stdout).group(1))  # type: ignore[union-attr]
    lat = next((ln.split()[1] for ln in out.stdout.splitlines()
                if ln.strip().startswith("Latency")), "?")
    return rate, out.stderr.count("status "), lat


def bench_batch(base: str, token: str, batches: int, size: int, clients: int = 1) -> float:
    """Jobs/s through ``POST /jobs/batch``: ``clients`` keep-alive clients (threads), each
    sending ``batches`` batches of ``size`` jobs one after the other."""
    h = {"Authorization": f"Bearer {token}"}
    body = {"jobs": [{"spec": SPEC} for _ in range(size)]}
    raw = json.dumps(body).encode()

    def client() -> None:
        with httpx.Client(base_url=base + "/api/v1", headers={
                **h, "content-type": "application/json"}, timeout=120) as c:
            for _ in range(batches):
                r = c.post("/jobs/batch", content=raw)
                assert r.status_code == 201, r.text[:200]

    ths = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return clients * batches * size / (time.perf_counter() - t0)


def fill_rows(url: str, rows: int) -> float:
    """Bulk-insert ``rows`` jobs (1 % running) for tenant 1; returns seconds taken."""
    from sqlalchemy import insert

    from suanli.service.db import JobRow, make_engine

    engine = make_engine(url)
    now = datetime.now(UTC)
    spec = dict(SPEC)
    t0 = time.perf_counter()
    chunk = 20_000
    states = ["succeeded"] * 80 + ["failed"] * 9 + ["pending"] * 10 + ["running"]
    rnd = random.Random(1)
    with engine.begin() as c:
        for start in range(0, rows, chunk):
            c.execute(insert(JobRow), [
                {"tenant_id": 1, "user_id": 1, "name": "fill", "queue": "default",
                 "priority": 1.0, "devices": 1, "state": rnd.choice(states), "reason": "",
                 "spec": spec, "submitted_at": now, "updated_at": now, "attempts": 0,
                 "failures": 0, "cancel_requested": False}
                for _ in range(min(chunk, rows - start))])
    engine.dispose()
    return time.perf_counter() - t0


def bench_list(base: str, token: str, n: int) -> tuple[float, float]:
    h = {"Authorization": f"Bearer {token}"}
    lat: list[float] = []
    with httpx.Client(base_url=base + "/api/v1", headers=h, timeout=30) as c:
        for _ in range(10):
            c.get("/jobs", params={"state": "running", "limit": 100})
        for _ in range(n):
            t0 = time.perf_counter()
            r = c.get("/jobs", params={"state": "running", "limit": 100})
            lat.append(time.perf_counter() - t0)
            assert r.status_code == 200 and len(r.json()["items"]) == 100
    return statistics.median(lat) * 1e3, pct(lat, 99) * 1e3


def bench_pass(pending: int, nodes: int, passes: int) -> dict[str, float]:
    from suanli.sched import Queue
    from suanli.service.sched_adapter import NodeInfo, SchedAdapter

    chips = [("nvidia_h800_sxm", "NVIDIA"), ("ascend_910b", "Huawei"),
             ("hygon_k100_ai", "Hygon"), ("nvidia_a800_sxm_80", "NVIDIA")]
    infos = [NodeInfo(name=f"n{i}", site=f"site{i % 4}", chip=chips[i % 4][0],
                      vendor=chips[i % 4][1], devices=8, simulated=True) for i in range(nodes)]
    ad = SchedAdapter(infos, {}, [Queue("default")], policy="max-min", round_s=1e9)
    rnd = random.Random(0)
    t0 = time.perf_counter()
    for j in range(pending):
        ad.submit(j + 1, {"resources": {"devices": rnd.choice([1, 1, 2, 4, 8])},
                          "duration_s": rnd.uniform(60, 36000)}, float(j))
    t_submit = time.perf_counter() - t0
    now = float(pending)
    t0 = time.perf_counter()
    first = ad.schedule(now)
    for db_id, d in first:
        ad.place(db_id, d)
    t_first = time.perf_counter() - t0
    running = [db_id for db_id, d in first if d.action == "start"]
    lat: list[float] = []
    for _ in range(passes):
        now += 1.0
        for db_id in rnd.sample(running, 5):
            running.remove(db_id)
            ad.forget(db_id, now)
        t0 = time.perf_counter()
        out = ad.schedule(now)
        for db_id, d in out:
            if d.action == "start":
                ad.place(db_id, d)
                running.append(db_id)
        lat.append(time.perf_counter() - t0)
    return {"submit_s": t_submit, "first_pass_s": t_first, "started_first": len(first),
            "p50_ms": statistics.median(lat) * 1e3, "p99_ms": pct(lat, 99) * 1e3}


class MemExecutor:
    """An executor that runs nothing: every launch is running until ``finish`` ends it. Its
    answers are prebuilt, so the pass benchmark measures the loop, not the executor."""

    name = "memory"

    def __init__(self) -> None:
        from suanli.exec.base import ExecState, ExecStatus, ExecutorFeatures

        self.features = ExecutorFeatures()
        self.status: dict[str, ExecStatus] = {}
        self._running = ExecState.RUNNING
        self._cls = ExecStatus

    def launch(self, spec: Any) -> Any:
        st = self.status.get(spec.launch_id)
        if st is None:
            st = self.status[spec.launch_id] = self._cls(launch_id=spec.launch_id,
                                                         state=self._running)
        return st

    def poll(self, launch_id: str) -> Any:
        from suanli.exec.base import ExecState

        return self.status.get(launch_id) or self._cls(launch_id=launch_id,
                                                       state=ExecState.LOST)

    def finish(self, launch_id: str) -> None:
        from suanli.exec.base import ExecState

        self.status[launch_id] = self._cls(launch_id=launch_id, state=ExecState.SUCCEEDED,
                                           exit_code=0)

    def cancel(self, launch_id: str, grace_s: float = 10.0) -> Any:
        """Stops at once (a preemption's stop: the loop calls this from its stop threads)."""
        from suanli.exec.base import ExecState

        st = self.status.get(launch_id)
        if st is not None and not st.state.terminal:
            self.status[launch_id] = self._cls(launch_id=launch_id, state=ExecState.CANCELLED)
        return self.poll(launch_id)

    def checkpoint(self, launch_id: str) -> bool:
        return False

    def log_paths(self, launch_id: str) -> dict[str, Path]:
        return {}

    def check(self) -> tuple[bool, str]:
        return True, ""


def fill_fleet(url: str, pending: int, nodes: int) -> None:
    """``nodes`` 8-device nodes in 4 sites (one chip type each) and ``pending`` waiting jobs
    (1-8 devices, 1 min - 10 h), bulk-inserted."""
    from sqlalchemy import insert, select

    from suanli.service.db import JobEventRow, JobRow, NodeGroupRow, NodeRow, SiteRow, make_engine

    chips = [("nvidia_h800_sxm", "NVIDIA"), ("ascend_910b", "Huawei"),
             ("hygon_k100_ai", "Hygon"), ("nvidia_a800_sxm_80", "NVIDIA")]
    engine = make_engine(url)
    now = datetime.now(UTC)
    rnd = random.Random(0)
    with engine.begin() as c:
        for k, (chip, vendor) in enumerate(chips):
            c.execute(insert(SiteRow).values(name=f"site{k}"))
            sid = c.scalar(select(SiteRow.id).where(SiteRow.name == f"site{k}"))
            c.execute(insert(NodeGroupRow).values(site_id=sid, name=f"g{k}", chip=chip,
                                                  vendor=vendor, chips_per_node=8))
        gids = list(c.scalars(select(NodeGroupRow.id).order_by(NodeGroupRow.id)))
        c.execute(insert(NodeRow), [{"group_id": gids[i % 4], "name": f"n{i}", "devices": 8,
                                     "simulated": True, "state": "ready"}
                                    for i in range(nodes)])
        for start in range(0, pending, 20_000):
            rows = []
            for _ in range(min(20_000, pending - start)):
                d = rnd.choice([1, 1, 2, 4, 8])
                rows.append({"tenant_id": 1, "user_id": 1, "name": "p", "queue": "default",
                             "priority": 1.0, "devices": d, "state": "pending", "reason": "",
                             "spec": {"name": "p", "command": ["true"],
                                      "resources": {"devices": d},
                                      "duration_s": rnd.uniform(60, 36000)},
                             "submitted_at": now, "updated_at": now, "attempts": 0,
                             "failures": 0, "cancel_requested": False})
            ids = c.execute(insert(JobRow).returning(JobRow.id), rows).scalars().all()
            c.execute(insert(JobEventRow), [{"job_id": i, "time": now, "state": "pending",
                                             "reason": "submitted"} for i in ids])
    engine.dispose()


def bench_db_pass(url: str, home: Path, pending: int, nodes: int, passes: int,
                  warmup: int = 5, bg_checkpoint: bool = True, policy: str = "max-min",
                  round_s: float = 1e9) -> dict[str, Any]:
    """``SchedulerLoop`` passes on a real database: the first one (rebuild + mass start), then
    ``warmup`` unmeasured and ``passes`` measured steady ones with 5 completions each; service
    side = pass - ``Scheduler.schedule``. (The pass right after the long first one polls every
    launch: each is due after ``POLL_S``; the warm-up passes absorb that.)"""
    from sqlalchemy import select

    from suanli.service.agents import AgentMonitor
    from suanli.service.db import AllocationRow, WalCheckpointer, make_engine, session_factory
    from suanli.service.loop import SchedulerLoop
    from suanli.service.sched_adapter import SchedAdapter
    from suanli.service.server import tune_gc

    # as a server runs: SQLite checkpoints in a background thread, the collector tuned
    engine = make_engine(url, background_checkpoint=bg_checkpoint)
    checkpointer = WalCheckpointer(engine)
    if bg_checkpoint:
        checkpointer.start()
    sessions = session_factory(engine)
    ex = MemExecutor()
    wl = threading.RLock() if url.startswith("sqlite") else None
    loop = SchedulerLoop(sessions, engine, ex, home, policy=policy, round_s=round_s,
                         write_lock=wl)
    # the node monitor, as a server runs it before each pass (timed apart from the pass)
    monitor = AgentMonitor(sessions, 5.0, 3, wl, busy=loop.node_busy)
    mon_s: list[float] = []
    mon_rows: list[int] = []
    sched_s: list[float] = []
    orig = SchedAdapter.schedule

    decided = [0]

    def timed(self: SchedAdapter, now: float) -> Any:
        t0 = time.perf_counter()
        out = orig(self, now)
        sched_s.append(time.perf_counter() - t0)
        decided[0] += len(out)
        return out

    SchedAdapter.schedule = timed  # type: ignore[method-assign]
    stages: dict[str, list[float]] = {"observe": [], "ingest": [], "decide": []}

    def stage(name: str) -> Any:
        fn = getattr(loop, "_" + name)

        def run(*args: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                if len(args) < 3:  # not decide's observe of its own starts (in decide's)
                    stages[name].append(time.perf_counter() - t0)

        return run

    for name in stages:
        setattr(loop, "_" + name, stage(name))
    tune_gc()
    try:
        t0 = time.perf_counter()
        loop.rebuild()
        t_rebuild = time.perf_counter() - t0
        monitor()  # the first call reads every node once
        t0 = time.perf_counter()
        loop.run_pass()
        first_passes = 1
        while loop._more_starts:  # the mass start goes out STARTS_PER_PASS per pass
            loop.run_pass()
            first_passes += 1
        t_first = time.perf_counter() - t0
        with sessions() as s:
            running = list(s.scalars(select(AllocationRow.launch_id)
                                     .where(AllocationRow.active.is_(True))))
        started = len(running)
        rnd = random.Random(1)
        total: list[float] = []
        service: list[float] = []
        in_round: list[bool] = []  # the pass did (part of) a preemptive policy's round
        assert loop.adapter is not None
        rounds0 = 0.0
        for n in range(warmup + passes):
            if n == warmup:  # the measured passes start here
                for v in stages.values():
                    v.clear()
                total.clear()
                service.clear()
                mon_s.clear()
                mon_rows.clear()
                in_round.clear()
                rounds0 = loop.adapter.sched.stats["rounds"]
                decided[0] = 0
            for lid in rnd.sample(running, 5):
                running.remove(lid)
                ex.finish(lid)
            t0 = time.perf_counter()
            loop._node_changes([monitor()])
            mon_s.append(time.perf_counter() - t0)
            mon_rows.append(monitor.reads + monitor.swept)
            sched_s.clear()
            sc = loop.adapter.sched
            due = sc.next_wakeup(time.time())
            in_round.append(sc.round_in_progress or (due is not None and time.time() >= due))
            t0 = time.perf_counter()
            loop.run_pass()
            dt = time.perf_counter() - t0
            total.append(dt)
            service.append(dt - sum(sched_s))
            with sessions() as s:
                running = list(s.scalars(select(AllocationRow.launch_id)
                                         .where(AllocationRow.active.is_(True))))
    finally:
        SchedAdapter.schedule = orig  # type: ignore[method-assign]
        checkpointer.stop()
        engine.dispose()
    rt = [x for x, r in zip(total, in_round, strict=True) if r]
    return {"rebuild_s": t_rebuild, "first_s": t_first, "started": started,
            "first_passes": first_passes,
            "rounds": loop.adapter.sched.stats["rounds"] - rounds0 if loop.adapter else 0,
            "round_passes": len(rt), "decisions": decided[0],
            "round_p99_ms": pct(rt, 99) * 1e3 if rt else 0.0,
            "round_max_ms": max(rt) * 1e3 if rt else 0.0,
            "p50_ms": statistics.median(total) * 1e3, "p99_ms": pct(total, 99) * 1e3,
            "svc_p50_ms": statistics.median(service) * 1e3,
            "svc_p99_ms": pct(service, 99) * 1e3,
            "monitor_p50_ms": statistics.median(mon_s) * 1e3,
            "monitor_p99_ms": pct(mon_s, 99) * 1e3, "monitor_rows_max": max(mon_rows),
            "stages": ", ".join(f"{k} p50 {statistics.median(v) * 1e3:.1f} ms, p99 "
                                f"{pct(v, 99) * 1e3:.1f} ms" for k, v in stages.items() if v)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--submit", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--batch-clients", type=int, default=1,
                    help="concurrent clients sending batches (each sends --batches)")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--pending", type=int, default=100_000)
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--passes", type=int, default=50)
    ap.add_argument("--load", choices=["python", "wrk"], default="python",
                    help="single submissions from threads of httpx clients in this process, "
                    "or from wrk (a separate C load tool)")
    ap.add_argument("--seconds", type=int, default=10, help="wrk: run time")
    ap.add_argument("--conns", type=int, default=16, help="wrk: connections")
    ap.add_argument("--skip", default="", help="comma list of: http, list, pass")
    ap.add_argument("--warmup", type=int, default=5,
                    help="--db-pass: unmeasured steady passes after the first one")
    ap.add_argument("--checkpoint", choices=["background", "commit"], default="background",
                    help="--db-pass on SQLite: WAL checkpoints in a background thread (as a "
                    "server runs) or by the commits (SQLite's default)")
    ap.add_argument("--policy", default="max-min",
                    help="--db-pass: the loop's policy (a preemptive one with --round-s runs "
                    "its rounds in slices, as the service does)")
    ap.add_argument("--round-s", type=float, default=1e9,
                    help="--db-pass: round length (default: no round during the run)")
    ap.add_argument("--db-pass", action="store_true",
                    help="only the scheduling pass through the service loop on --db")
    a = ap.parse_args()
    skip = set(a.skip.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        if a.db == "sqlite":
            url = f"sqlite:///{home / 'bench.db'}"
        else:
            url = os.environ["SUANLI_TEST_POSTGRES_URL"]
            from sqlalchemy import create_engine, text

            name = f"bench_{os.getpid()}"
            adm = create_engine(url, isolation_level="AUTOCOMMIT")
            with adm.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}"'))
            url = url.rsplit("/", 1)[0] + "/" + name
        print(f"database: {a.db}; {os.cpu_count()} cores")
        if a.db_pass:
            from suanli.service import migrate as mig
            from suanli.service.auth import bootstrap
            from suanli.service.db import make_engine, session_factory

            eng = make_engine(url)
            mig.upgrade(eng)
            with session_factory(eng)() as s:
                bootstrap(s)
            eng.dispose()
            t0 = time.perf_counter()
            fill_fleet(url, a.pending, a.nodes)
            print(f"filled {a.pending:,} pending jobs and {a.nodes:,} nodes in "
                  f"{time.perf_counter() - t0:.1f} s")
            r = bench_db_pass(url, home, a.pending, a.nodes, a.passes, a.warmup,
                              a.checkpoint == "background", a.policy, a.round_s)
            print(f"service scheduling pass on {a.db}, {a.pending:,} pending jobs on "
                  f"{a.nodes:,} nodes: rebuild {r['rebuild_s']:.1f} s, first passes "
                  f"{r['first_s']:.1f} s ({r['started']:,} starts in {r['first_passes']} "
                  f"passes); steady ({a.passes} passes "
                  f"after {a.warmup} unmeasured, "
                  f"5 completions each): whole pass p50 {r['p50_ms']:.1f} ms, p99 "
                  f"{r['p99_ms']:.1f} ms; service side (without Scheduler.schedule) p50 "
                  f"{r['svc_p50_ms']:.1f} ms, p99 {r['svc_p99_ms']:.1f} ms ({r['stages']}; "
                  "decide includes Scheduler.schedule and the launches)")
            if r["round_passes"]:
                print(f"{a.policy}, rounds every {a.round_s:g} s, in slices: "
                      f"{r['round_passes']} of the measured passes worked on a round "
                      f"({r['rounds']:.0f} rounds begun, {r['decisions']:,} decisions in the "
                      f"measured passes): their p99 {r['round_p99_ms']:.1f} "
                      f"ms, max {r['round_max_ms']:.1f} ms")
            print(f"node monitor before each pass ({a.nodes:,} nodes): p50 "
                  f"{r['monitor_p50_ms']:.2f} ms, p99 {r['monitor_p99_ms']:.2f} ms, at most "
                  f"{r['monitor_rows_max']} node rows read")
            return
        if not {"http", "list"} <= skip:
            proc, base, token = start_server(url, home)
            try:
                if "http" not in skip and a.load == "wrk":
                    rate, bad, lat = bench_wrk(base, token, a.seconds, a.conns)
                    print(f"single submissions over HTTP (wrk): {rate:,.0f} jobs/s ({a.conns} "
                          f"connections, {a.seconds} s, mean latency {lat}, {bad} non-201)")
                elif "http" not in skip:
                    rate = bench_submit(base, token, a.submit, a.threads)
                    print(f"single submissions over HTTP: {rate:,.0f} jobs/s "
                          f"({a.submit} jobs, {a.threads} keep-alive clients)")
                if "http" not in skip:
                    brate = bench_batch(base, token, a.batches, a.batch, a.batch_clients)
                    who = f"{a.batch_clients} clients x " if a.batch_clients > 1 else ""
                    print(f"batch endpoint: {brate:,.0f} jobs/s ({who}{a.batches} x {a.batch} "
                          "jobs)")
                if "list" not in skip:
                    dt = fill_rows(url, a.rows)
                    print(f"bulk-inserted {a.rows:,} jobs in {dt:.1f} s")
                    p50, p99 = bench_list(base, token, 300)
                    print(f"GET /jobs?state=running&limit=100 with {a.rows:,} jobs: "
                          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (300 requests)")
            finally:
                proc.terminate()
                proc.wait(15)
        if "pass" not in skip:
            r = bench_pass(a.pending, a.nodes, a.passes)
            print(f"scheduling pass, {a.pending:,} pending jobs on {a.nodes:,} nodes "
                  f"({a.nodes * 8:,} devices, max-min): submit {r['submit_s']:.1f} s, first "
                  f"pass {r['first_pass_s']:.2f} s ({r['started_first']:,} starts), steady "
                  f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms ({a.passes} passes, 5 "
                  f"completions each)")


if __name__ == "__main__":
    main()
