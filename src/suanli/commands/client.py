"""CLI client of the control plane: submit, jobs, job, logs, cancel, nodes, queues, tokens.

Server URL and token: ``--url`` / ``--token``, else ``$SUANLI_URL`` / ``$SUANLI_TOKEN``, else
the config file (``$SUANLI_CONFIG``, default ``~/.config/suanli/client.json``), else a local
server's ``$SUANLI_HOME/server.json`` and bootstrap ``admin.token``. httpx, imported lazily.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from suanli.commands.common import JsonOpt, console, print_json
from suanli.errors import SuanliError

UrlOpt = Annotated[str | None, typer.Option("--url", help="Server URL (also $SUANLI_URL).")]
TokenOpt = Annotated[str | None, typer.Option("--token", help="API token (also $SUANLI_TOKEN).",
                                              show_default=False)]
TERMINAL = {"succeeded", "failed", "cancelled"}


class Client:
    """A thin httpx client; every HTTP or network problem becomes one SuanliError."""

    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        import httpx

        from suanli.service.settings import ClientSettings

        kw: dict[str, Any] = {}
        if url:
            kw["url"] = url
        if token:
            kw["token"] = token
        cfg = ClientSettings(**kw)
        self.url, tok = cfg.resolved()
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=cfg.timeout_s)

    def request(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        try:
            r = self.http.request(method, "/api/v1" + path, **kw)
        except httpx.HTTPError as exc:
            raise SuanliError(f"cannot reach {self.url}: {type(exc).__name__}: {exc}",
                              field="--url") from None
        if r.status_code >= 400:
            try:
                body = r.json()
                detail = body.get("detail") if isinstance(body, dict) else None
            except ValueError:
                detail = None
            raise SuanliError(f"{r.status_code} {detail or r.reason_phrase}",
                              where=f"{method} {path}")
        return r.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items()
                                                 if v is not None})


def load_spec(path: Path) -> dict[str, Any]:
    """A job spec from YAML or JSON, validated locally so errors name file and field."""
    from pydantic import ValidationError

    from suanli.catalog.loader import format_validation_error, read_yaml
    from suanli.service.models import JobSpec

    data = read_yaml(path)  # YAML is a superset of JSON
    if not isinstance(data, dict):
        raise SuanliError("expected a mapping (a job spec)", file=path)
    if "code" in data:
        code = data.pop("code")
        if "stacks" in data:
            raise SuanliError("give either code (analysed by port-check) or stacks, not both",
                              file=path, field="code")
        if not isinstance(code, str) or not code.strip():
            raise SuanliError("expected a path to the job's code", file=path, field="code")
        base = Path(code).expanduser()
        data["stacks"], data["stacks_source"] = code_stacks(
            base if base.is_absolute() else path.parent / base, spec_file=path)
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as exc:
        field, problem = format_validation_error(exc)
        raise SuanliError(problem, file=path, field=field) from None
    return spec.model_dump(mode="json", exclude_none=True)


def code_stacks(code: Path, spec_file: Path | None = None) -> tuple[list[str], str]:
    """Run port-check on the job's code here, on the client: (allowed stacks, source)."""
    from suanli.port import analyze

    if not code.exists():
        raise SuanliError(f"no such file or directory: {code}", file=spec_file, field="code")
    report = analyze(code)
    stacks = report.allowed_stacks()
    blocked = [f"{v.stack}: {v.verdict}" for v in report.verdicts
               if v.stack not in stacks]
    source = (f"suanli port-check {code} ({report.files_scanned} files; "
              f"{len(report.findings)} findings; not allowed: {', '.join(blocked) or 'none'})")
    return stacks, source[:500]


def _when(ts: str | None) -> str:
    return ts[11:19] if ts else ""


def _jobs_table(items: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    t = Table(show_edge=False)
    for col in ("id", "name", "queue", "state", "dev", "pool / reason", "submitted", "exit"):
        t.add_column(col)
    for j in items:
        t.add_row(str(j["id"]), j["name"], j["queue"], j["state"], str(j["devices"]),
                  (j.get("allocation") or {}).get("pool") or j.get("reason") or "",
                  _when(j["submitted_at"]), "" if j["exit_code"] is None else str(j["exit_code"]))
    return t


def register(app: typer.Typer) -> None:
    app.command(name="submit")(submit)
    app.command(name="jobs")(jobs)
    app.command(name="job")(job)
    app.command(name="logs")(logs)
    app.command(name="cancel")(cancel)
    nodes_app = typer.Typer(help="Nodes: list them (default), drain, undrain (admin).",
                            invoke_without_command=True)
    nodes_app.callback()(nodes)
    nodes_app.command(name="list")(nodes_list)
    nodes_app.command(name="drain")(nodes_drain)
    nodes_app.command(name="undrain")(nodes_undrain)
    app.add_typer(nodes_app, name="nodes")
    app.command(name="queues")(queues)
    tokens = typer.Typer(help="API tokens (admin).", no_args_is_help=True)
    tokens.command(name="create")(tokens_create)
    tokens.command(name="revoke")(tokens_revoke)
    tokens.command(name="list")(tokens_list)
    app.add_typer(tokens, name="tokens")


def submit(
    files: Annotated[list[Path] | None, typer.Argument(help="Job spec files (YAML or JSON).")]
    = None,
    cmd: Annotated[str | None, typer.Option("--cmd", help="Submit this command line instead "
                                            "of a file.")] = None,
    devices: Annotated[int, typer.Option("--devices", help="With --cmd: gang size.")] = 1,
    vendor: Annotated[list[str] | None, typer.Option("--vendor", help="With --cmd: allowed "
                                                     "vendor (repeatable).")] = None,
    chip: Annotated[list[str] | None, typer.Option("--chip", help="With --cmd: allowed chip "
                                                   "(repeatable).")] = None,
    name: Annotated[str, typer.Option("--name", help="With --cmd: job name.")] = "job",
    code: Annotated[Path | None, typer.Option(
        "--code", help="Run port-check on this code and allow only the stacks it runs on "
        "(unchanged or with a shim); applies to every job submitted.")] = None,
    queue: Annotated[str | None, typer.Option("--queue", help="Override the queue.")] = None,
    key: Annotated[str | None, typer.Option("--idempotency-key", help="Retry-safe key "
                                            "(default: a fresh one per job).")] = None,
    url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False,
) -> None:
    """Submit jobs from spec files (or --cmd); prints the job ids."""
    specs: list[tuple[str, dict[str, Any]]] = []
    for f in files or []:
        specs.append((str(f), load_spec(f)))
    if cmd:
        from pydantic import ValidationError

        from suanli.catalog.loader import format_validation_error
        from suanli.service.models import JobSpec

        res: dict[str, Any] = {"devices": devices}
        if vendor:
            res["vendors"] = vendor
        if chip:
            res["chips"] = chip
        try:
            parsed = JobSpec.model_validate({"name": name, "command": cmd, "resources": res})
        except ValidationError as exc:
            field, problem = format_validation_error(exc)
            raise SuanliError(problem, field=field) from None
        specs.append(("--cmd", parsed.model_dump(mode="json", exclude_none=True)))
    if not specs:
        raise SuanliError("give job spec files or --cmd", field="FILES")
    if code is not None:
        allowed, source = code_stacks(code)
        for _src, spec in specs:
            spec["stacks"], spec["stacks_source"] = allowed, source
    c = Client(url, token)
    out = []
    for i, (_src, spec) in enumerate(specs):
        if queue:
            spec["queue"] = queue
        k = f"{key}-{i}" if key and len(specs) > 1 else key or uuid.uuid4().hex
        # the same key on every retry of this request: the server creates the job once
        for attempt in range(3):
            try:
                out.append(c.request("POST", "/jobs", json=spec,
                                     headers={"Idempotency-Key": k}))
                break
            except SuanliError as exc:
                if "cannot reach" not in exc.problem or attempt == 2:
                    raise
                time.sleep(0.5 * (attempt + 1))
    if json_out:
        print_json(out)
        return
    for j in out:
        console.print(f"submitted job {j['id']} ({j['name']}) -> {j['state']}", highlight=False)


def jobs(
    state: Annotated[str | None, typer.Option("--state", help="pending, running, ...")] = None,
    queue: Annotated[str | None, typer.Option("--queue")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    sort: Annotated[str, typer.Option("--sort", help="id, -id, submitted_at, priority ...")]
    = "-id",
    watch: Annotated[bool, typer.Option("--watch", help="Refresh every 2 s until Ctrl-C.")]
    = False,
    url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False,
) -> None:
    """List your tenant's jobs."""
    c = Client(url, token)

    def fetch() -> dict[str, Any]:
        return c.get("/jobs", state=state, queue=queue, limit=limit, sort=sort, total=True)

    if json_out:
        print_json(fetch())
        return
    if not watch:
        page = fetch()
        console.print(_jobs_table(page["items"]))
        console.print(f"{len(page['items'])} of {page['total']} jobs", highlight=False)
        return
    from rich.live import Live

    try:
        with Live(_jobs_table(fetch()["items"]), console=console, refresh_per_second=2) as live:
            while True:
                time.sleep(2)
                live.update(_jobs_table(fetch()["items"]))
    except KeyboardInterrupt:
        pass


def job(job_id: Annotated[int, typer.Argument()], url: UrlOpt = None, token: TokenOpt = None,
        json_out: JsonOpt = False) -> None:
    """One job with its allocation and events."""
    c = Client(url, token)
    j = c.get(f"/jobs/{job_id}")
    ev = c.get(f"/jobs/{job_id}/events")
    if json_out:
        print_json({**j, "events": ev})
        return
    a = j.get("allocation") or {}
    console.print(f"job {j['id']} {j['name']}  [{j['state']}]  queue {j['queue']}  "
                  f"{j['devices']} device(s)  attempts {j['attempts']}", highlight=False)
    console.print(f"  command: {' '.join(j['spec']['command'] + j['spec'].get('args', []))}",
                  highlight=False, markup=False)
    if a:
        devs = ";".join(",".join(map(str, d)) for d in a["devices"])
        console.print(f"  placed: {a['pool']} on {', '.join(a['nodes'])} devices {devs} "
                      f"(launch {a['launch_id']})", highlight=False, markup=False)
    if j["exit_code"] is not None:
        console.print(f"  exit code: {j['exit_code']}", highlight=False)
    for e in ev:
        console.print(f"  {e['time'][:19]}  {e['state']:<10} {e['reason']}", highlight=False,
                      markup=False)


def logs(job_id: Annotated[int, typer.Argument()],
         follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream until the job "
                                              "ends.")] = False,
         stderr: Annotated[bool, typer.Option("--stderr", help="The stderr log.")] = False,
         attempt: Annotated[int | None, typer.Option("--attempt")] = None,
         url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Print a job's log (stdout, or --stderr); -f follows it."""
    import sys

    c = Client(url, token)
    offset = 0
    stream = "stderr" if stderr else "stdout"
    while True:
        chunk = c.get(f"/jobs/{job_id}/logs", stream=stream, offset=offset, attempt=attempt)
        if chunk["data"]:
            sys.stdout.write(chunk["data"])
            sys.stdout.flush()
        offset = chunk["offset"]
        if not follow or chunk["eof"]:
            if not follow or not chunk["data"]:
                return
            continue
        if not chunk["data"]:
            try:
                time.sleep(0.5)
            except KeyboardInterrupt:
                return


def cancel(job_ids: Annotated[list[int], typer.Argument()], url: UrlOpt = None,
           token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Cancel jobs (running ones get SIGTERM, then SIGKILL after the grace period)."""
    c = Client(url, token)
    out = [c.request("POST", f"/jobs/{i}/cancel") for i in job_ids]
    if json_out:
        print_json(out)
        return
    for j in out:
        console.print(f"job {j['id']}: {j['state']}"
                      + (" (stopping)" if j['state'] not in TERMINAL else ""), highlight=False)


def nodes(ctx: typer.Context, site: Annotated[str | None, typer.Option("--site")] = None,
          url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Nodes, their state and busy devices (``suanli nodes`` = ``suanli nodes list``)."""
    if ctx.invoked_subcommand is None:
        nodes_list(site, url, token, json_out)


def _drain(names: list[str], drain: bool, url: str | None, token: str | None,
           json_out: bool) -> None:
    from urllib.parse import quote

    c = Client(url, token)
    verb = "drain" if drain else "undrain"
    out = [c.request("POST", f"/nodes/{quote(n, safe='/')}/{verb}") for n in names]
    if json_out:
        print_json(out)
        return
    for n in out:
        note = {"draining": f" ({n['devices_busy']} devices busy: running jobs finish, no "
                "new ones)", "drained": " (nothing runs there)",
                "lost": " (lost: missed heartbeats)"}.get(n["state"], "")
        console.print(f"{n['name']}: {n['state']}{note}", highlight=False)


def nodes_drain(names: Annotated[list[str], typer.Argument(help="Node names (see `suanli "
                                                          "nodes`) or ids.")],
                url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Drain nodes (admin): no new job goes there, running jobs finish; then drained."""
    _drain(names, True, url, token, json_out)


def nodes_undrain(names: Annotated[list[str], typer.Argument(help="Node names or ids.")],
                  url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False
                  ) -> None:
    """Undrain nodes (admin): they take new jobs again."""
    _drain(names, False, url, token, json_out)


def nodes_list(site: Annotated[str | None, typer.Option("--site")] = None,
               url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Nodes, their state and busy devices."""
    from rich.table import Table

    page = Client(url, token).get("/nodes", site=site, limit=10000)
    if json_out:
        print_json(page)
        return
    t = Table(show_edge=False)
    for col in ("node", "chip", "vendor", "devices", "busy", "simulated", "state"):
        t.add_column(col)
    for n in page["items"]:
        t.add_row(n["name"], n["chip"], n["vendor"] or "?", str(n["devices"]),
                  str(n["devices_busy"]), "yes" if n["simulated"] else "no", n["state"])
    console.print(t)
    console.print(f"{page['total']} nodes", highlight=False)


def queues(url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Queues with weights, quotas and your pending / running jobs."""
    from rich.table import Table

    qs = Client(url, token).get("/queues")
    if json_out:
        print_json(qs)
        return
    t = Table(show_edge=False)
    for col in ("queue", "weight", "quota (devices)", "pending", "running"):
        t.add_column(col)
    for q in qs:
        t.add_row(q["name"], f"{q['weight']:g}",
                  "-" if q["quota_devices"] is None else f"{q['quota_devices']:g}",
                  str(q["pending"]), str(q["running"]))
    console.print(t)


def tokens_create(
    user: Annotated[str, typer.Option("--user", help="User name (created if new).")],
    scopes: Annotated[str, typer.Option(
        "--scopes", help="Comma list of admin, submit, read, node (agents).")]
    = "submit",
    tenant: Annotated[str | None, typer.Option("--tenant", help="Another tenant (root "
                                               "tenant admins only; created if new).")] = None,
    name: Annotated[str, typer.Option("--name", help="A label for the token.")] = "",
    url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False,
) -> None:
    """Create an API token; it is printed once and only its hash is stored."""
    body: dict[str, Any] = {"user": user, "scopes": [s.strip() for s in scopes.split(",")
                                                     if s.strip()], "name": name}
    if tenant:
        body["tenant"] = tenant
    t = Client(url, token).request("POST", "/tokens", json=body)
    if json_out:
        print_json(t)
        return
    console.print(f"token {t['id']} for {t['tenant']}/{t['user']} ({','.join(t['scopes'])}):",
                  highlight=False)
    print(t["token"])


def tokens_revoke(token_id: Annotated[int, typer.Argument()], url: UrlOpt = None,
                  token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Revoke a token of your tenant."""
    t = Client(url, token).request("DELETE", f"/tokens/{token_id}")
    if json_out:
        print_json(t)
        return
    console.print(f"token {t['id']} ({t['prefix']}...) revoked", highlight=False)


def tokens_list(url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Tokens of your tenant (prefixes only)."""
    ts = Client(url, token).get("/tokens")
    if json_out:
        print_json(ts)
        return
    for t in ts:
        state = "revoked" if t["revoked_at"] else "active"
        console.print(f"{t['id']:>4}  {t['prefix']}...  {t['user']:<12} "
                      f"{','.join(t['scopes']):<20} {state}", highlight=False)


def dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)
