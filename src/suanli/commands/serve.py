"""`suanli serve`, `suanli up` (the platform in one command) and `suanli db upgrade`."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from suanli.commands.common import (
    console,
    err_console,
    in_file_option,
    num_option,
    out_dir_option,
)
from suanli.errors import SuanliError

DbOpt = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL (also "
                                           "$SUANLI_DATABASE_URL; default SQLite in "
                                           "$SUANLI_HOME).")]
HomeOpt = Annotated[Path | None, out_dir_option("--home", help="Data directory (also "
                                                "$SUANLI_HOME).")]


def register(app: typer.Typer) -> None:
    app.command(name="serve")(serve)
    app.command(name="up")(up)
    db = typer.Typer(help="The control plane's database.", no_args_is_help=True)
    db.command(name="upgrade")(db_upgrade)
    db.command(name="current")(db_current)
    app.add_typer(db, name="db")


def _settings(**kw: Any) -> Any:
    from pydantic import ValidationError

    from suanli.service.settings import ServiceSettings

    try:
        return ServiceSettings(**{k: v for k, v in kw.items() if v is not None})
    except ValidationError as exc:
        from suanli.catalog.loader import format_validation_error

        field, problem = format_validation_error(exc)
        raise SuanliError(problem, field=f"--{field.replace('_', '-')}") from None


def _wait_for_signal(stop: threading.Event) -> None:
    def handler(_sig: int, _frm: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def serve(
    host: Annotated[str | None, typer.Option("--host")] = None,
    port: Annotated[int | None, num_option("--port", help="0 = any free port.", ge=0,
                                           le=65535)] = None,
    db: DbOpt = None, home: HomeOpt = None,
    fleet: Annotated[Path | None, in_file_option("--fleet", help="Import this fleet YAML's "
                                                 "sites and nodes at start.")] = None,
    simulated: Annotated[bool, typer.Option("--simulated", help="The imported nodes have "
                                            "simulated devices (real processes).")] = False,
    policy: Annotated[str | None, typer.Option("--policy", help="Scheduling policy "
                                               "(default max-min).")] = None,
    executor: Annotated[str | None, typer.Option("--executor")] = None,
    no_scheduler: Annotated[bool, typer.Option("--no-scheduler", help="API only; another "
                                               "replica schedules.")] = False,
    migrate: Annotated[bool, typer.Option("--migrate", help="Upgrade the schema first.")]
    = False,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """Run the control plane: HTTP API + scheduler loop + executor (until SIGINT/SIGTERM).

    Several replicas may share one PostgreSQL database: one holds the scheduler role (an
    advisory lock) and another takes over when it dies. Running jobs survive a restart."""
    import logging

    from suanli.service.server import Running, build, tune_gc

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    st = _settings(host=host, port=port, database_url=db, home=home, fleet=fleet,
                   policy=policy, executor=executor,
                   scheduler=False if no_scheduler else None)
    svc = build(st, simulated=simulated, migrate=migrate)
    run = Running(svc, log_level=log_level)
    tune_gc()
    stop = threading.Event()
    _wait_for_signal(stop)
    url = run.start()
    err_console.print(f"suanli serving on {url}/api/v1 (database {svc.engine.dialect.name}, "
                      f"data {st.home})", highlight=False)
    err_console.print(f"dashboard: {url}/ui/ (log in with an API token)", highlight=False)
    if svc.new_admin_token:
        err_console.print(f"bootstrap admin token written to {st.home / 'admin.token'}",
                          highlight=False)
    stop.wait()
    run.stop()


def db_upgrade(db: DbOpt = None, home: HomeOpt = None) -> None:
    """Create or upgrade the schema to this version's head."""
    from suanli.service import migrate
    from suanli.service.db import make_engine

    st = _settings(database_url=db, home=home)
    st.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(st.db_url())
    try:
        before, after = migrate.upgrade(engine)
    except SuanliError:
        raise
    except Exception as exc:  # permissions, a foreign schema, ...
        raise SuanliError(f"cannot upgrade: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                          field="--db") from None
    url = engine.url.render_as_string(hide_password=True)
    console.print(f"{url}: schema {before or '(empty)'} -> {after}", highlight=False)


def db_current(db: DbOpt = None, home: HomeOpt = None) -> None:
    """Show the schema revision and whether it is current."""
    from suanli.service import migrate
    from suanli.service.db import make_engine

    st = _settings(database_url=db, home=home)
    engine = make_engine(st.db_url())
    cur, head = migrate.current_revision(engine), migrate.head_revision(engine)
    state = "up to date" if cur == head else "run `suanli db upgrade`"
    console.print(f"schema {cur or '(none)'}, head {head}: {state}", highlight=False)


def sample_jobs() -> list[dict[str, Any]]:
    """Short real commands with realistic requests on NVIDIA and domestic chips."""
    show = ('echo "job $SUANLI_JOB_ID on $SUANLI_CHIP: $SUANLI_VISIBILITY_VAR='
            '$(printenv $SUANLI_VISIBILITY_VAR) nodes=$SUANLI_NODES simulated='
            '${SUANLI_SIMULATED_DEVICES:-0}"')

    def steps(n: int, what: str) -> str:
        return f'{show}; for i in $(seq 1 {n}); do echo "{what} $i/{n}"; sleep 0.5; done'

    return [
        {"name": "llama3-8b-pretrain-h800", "command": ["sh", "-c", steps(4, "step")],
         "resources": {"devices": 8, "chips": ["H800"], "precision": "bf16"},
         "workload": {"kind": "train", "model": "llama3-8b", "work": 2.0e9}},
        {"name": "qwen-sft-910b", "command": ["sh", "-c", steps(4, "step")],
         "resources": {"devices": 8, "vendors": ["Huawei"]}, "duration_s": 600},
        {"name": "llama2-70b-serve-k100", "command": ["sh", "-c", steps(3, "batch")],
         "resources": {"devices": 4, "vendors": ["Hygon"], "min_memory_gb": 48},
         "duration_s": 300},
        {"name": "resnet-mlu370", "command": ["sh", "-c", steps(2, "epoch")],
         "resources": {"devices": 2, "vendors": ["Cambricon"]}, "duration_s": 120},
        {"name": "eval-kunlun-r300", "command": ["sh", "-c", steps(2, "shard")],
         "resources": {"devices": 1, "vendors": ["Kunlunxin"]}, "duration_s": 60},
        {"name": "bert-musa-s4000", "command": ["sh", "-c", steps(2, "epoch")],
         "resources": {"devices": 2, "vendors": ["Moore Threads"]}, "duration_s": 120},
        {"name": "cuda-only-a800", "command": ["sh", "-c", steps(2, "kernel")],
         "resources": {"devices": 1, "cuda_only": True, "chips": ["A800"]}, "duration_s": 60},
        {"name": "hpl-fp64", "command": ["sh", "-c", steps(2, "panel")],
         "resources": {"devices": 8, "fp64": True},
         "workload": {"kind": "hpc", "hpc_kernel": "hpl", "precision": "fp64", "work": 1e17}},
        {"name": "flaky-retry", "command": ["sh", "-c",
                                            f'{show}; test -f ../../tried && exit 0; '
                                            'touch ../../tried 2>/dev/null; '
                                            'echo "failing once" >&2; exit 3'],
         "resources": {"devices": 1, "vendors": ["MetaX"]}, "max_retries": 1,
         "duration_s": 30},
        {"name": "needs-fp8-on-910b", "command": ["true"],
         "resources": {"devices": 1, "vendors": ["Huawei"], "precision": "fp8"}},
    ]


def up(
    port: Annotated[int, num_option("--port", help="0 = any free port.", ge=0,
                                    le=65535)] = 8477,
    home: HomeOpt = None,
    policy: Annotated[str, typer.Option("--policy")] = "max-min",
    samples: Annotated[bool, typer.Option("--samples/--no-samples", help="Submit the sample "
                                          "jobs.")] = True,
    exit_when_idle: Annotated[bool, typer.Option("--exit-when-idle", help="Stop once every "
                                                 "job has ended (tests, smoke checks).")]
    = False,
    duration: Annotated[float | None, num_option("--duration", help="Stop after this many "
                                                 "seconds.", gt=0)] = None,
) -> None:
    """The platform in one command: server + scheduler + local executor on SQLite with the
    bundled demo fleet as simulated devices, plus sample jobs. Ctrl-C stops everything."""
    import logging

    from suanli.commands.client import Client
    from suanli.fleet import demo_fleet_path
    from suanli.service.loop import shutdown_jobs
    from suanli.service.server import Running, build, tune_gc

    logging.basicConfig(level="WARNING", format="%(asctime)s %(name)s %(message)s")
    st = _settings(port=port, home=home, policy=policy, fleet=demo_fleet_path(),
                   database_url=None, round_s=30.0, grace_s=3.0)
    if st.database_url:
        st.database_url = None  # `up` is the embedded SQLite platform
    svc = build(st, simulated=True, migrate=True)
    run = Running(svc)
    tune_gc()
    stop = threading.Event()
    _wait_for_signal(stop)
    url = run.start()
    token = (st.home / "admin.token").read_text(encoding="utf-8").strip()
    out = console
    out.print(f"suanli is up: {url}/api/v1  (API docs {url}/api/v1/docs)", highlight=False)
    out.print(f"  dashboard: {url}/ui/  (log in with the admin token below)", highlight=False)
    out.print(f"  data: {st.home}  database: SQLite  fleet: bundled demo fleet, simulated "
              "devices", highlight=False)
    out.print(f"  admin token: {st.home / 'admin.token'}  (the CLI finds it: try `suanli jobs`)",
              highlight=False)
    out.print("  the offline report: `suanli demo --out out` (make report)",
              highlight=False)
    ids: list[int] = []
    if samples:
        c = Client(url, token)
        for spec in sample_jobs():
            j = c.request("POST", "/jobs", json=spec,
                          headers={"Idempotency-Key": f"sample-{spec['name']}"})
            ids.append(j["id"])
        out.print(f"submitted {len(ids)} sample jobs: {ids[0]}..{ids[-1]}", highlight=False)
    t0 = time.monotonic()
    seen: dict[int, str] = {}
    try:
        while not stop.is_set():
            if duration is not None and time.monotonic() - t0 >= duration:
                break
            if ids:
                c = Client(url, token)
                page = c.get("/jobs", limit=1000, sort="id")
                for j in page["items"]:
                    if seen.get(j["id"]) != j["state"]:
                        seen[j["id"]] = j["state"]
                        where = (j.get("reason") or "")[:90]
                        out.print(f"  job {j['id']:>3} {j['name']:<26} {j['state']:<10} {where}",
                                  highlight=False, markup=False)
                if exit_when_idle and all(
                        s in ("succeeded", "failed", "cancelled", "unrunnable")
                        for s in seen.values()) and len(seen) >= len(ids):
                    break
            elif exit_when_idle:
                break
            stop.wait(0.5)
    finally:
        run.stop()  # the scheduler first, so nothing new starts while jobs are stopped
        n = shutdown_jobs(svc.sessions, svc.executor, 3.0)
        summary: dict[str, int] = {}
        for s in seen.values():
            summary[s] = summary.get(s, 0) + 1
        out.print("stopped" + (f" ({n} running jobs cancelled)" if n else "") + "; jobs: "
                  + ", ".join(f"{v} {k}" for k, v in sorted(summary.items())), highlight=False)
    sys.stdout.flush()
