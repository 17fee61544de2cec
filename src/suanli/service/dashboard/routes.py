"""The web dashboard (``/ui``): server-rendered Jinja2 pages over the control plane's database.

Login takes an API token and keeps it in an HttpOnly, SameSite=Strict cookie; every page
resolves it to a :class:`~suanli.service.auth.Principal` exactly like the API does, and every
job query is filtered by its tenant (another tenant's job is "not found"). State-changing
POSTs need the form's CSRF field (derived from the token, so no server-side session) and, when
the browser sends one, a same-origin ``Origin`` header.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from suanli import __version__
from suanli.service import models as m
from suanli.service.auth import Principal, authenticate
from suanli.service.dashboard import data
from suanli.service.dashboard import svg as charts
from suanli.service.db import JobEventRow, JobRow, NodeGroupRow, QueueRow, utcnow

log = logging.getLogger("suanli.dashboard")
HERE = Path(__file__).resolve().parent
COOKIE = "suanli_token"
PREFIX = "/ui"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; frame-ancestors 'none'; form-action 'self'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATES = [s.value for s in m.JobState]


def csrf_token(token: str) -> str:
    """The CSRF field for a session: derived from the (secret, HttpOnly) cookie token, so a
    page of another origin can neither read nor compute it."""
    return hashlib.sha256(b"suanli-csrf:" + token.encode()).hexdigest()[:40]


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["num"] = _num
    env.filters["when"] = _when
    env.filters["dur"] = _dur
    env.filters["pct"] = lambda v: "–" if v is None else f"{100 * v:.1f} %"
    return env


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, int):
        return f"{v:,}"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 1:
        return f"{v:.{digits}g}"
    return f"{v:.{digits}g}" if a else "0"


def _when(v: datetime | None) -> str:
    return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if v else "–"


def _dur(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    if v < 120:
        return f"{v:.1f} s"
    if v < 7200:
        return f"{v / 60:.1f} min"
    if v < 172800:
        return f"{v / 3600:.1f} h"
    return f"{v / 86400:.1f} d"


def mount(app: FastAPI, state: Any) -> None:
    """Add the dashboard to the API app: pages under ``/ui``, ``/`` redirects there."""
    app.mount(PREFIX + "/static", StaticFiles(directory=str(HERE / "static")),
              name="dashboard-static")
    app.include_router(_router(state))


class _Login(Exception):
    pass


def _router(state: Any) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    env = _env()

    def page(request: Request, name: str, p: Principal | None, token: str | None = None,
             status: int = 200, **ctx: Any) -> HTMLResponse:
        html = env.get_template(name).render(
            p=p, csrf=csrf_token(token) if token else "", version=__version__,
            path=request.url.path, prefix=PREFIX, **ctx)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def who(request: Request, s: Session) -> tuple[Principal | None, str | None]:
        token = request.cookies.get(COOKIE)
        if not token:
            return None, None
        hit = state.cached_principal(token)  # the cache is keyed by the token's hash
        if hit is not None:
            return hit, token
        p = authenticate(s, token)
        state.remember(token, p)
        return p, token if p else None

    def to_login(request: Request) -> RedirectResponse:
        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        resp = RedirectResponse(f"{PREFIX}/login?{urlencode({'next': nxt})}", status_code=303)
        return resp

    async def form(request: Request) -> dict[str, list[str]]:
        body = (await request.body()).decode("utf-8", errors="replace")
        return parse_qs(body, keep_blank_values=True, max_num_fields=200)

    def same_origin(request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            return origin is None
        host = request.headers.get("host", "")
        return origin.split("://", 1)[-1] == host

    def check_post(request: Request, f: dict[str, list[str]], token: str) -> bool:
        sent = (f.get("csrf") or [""])[0]
        return same_origin(request) and hmac.compare_digest(sent, csrf_token(token))

    def one(f: dict[str, list[str]], k: str, default: str = "") -> str:
        return (f.get(k) or [default])[0].strip()

    def forbidden(request: Request, p: Principal, token: str, msg: str,
                  status: int = 403) -> HTMLResponse:
        return page(request, "error.html", p, token, status=status, message=msg)

    # ------------------------------------------------------------------ login / logout
    @r.get("/")
    def root() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)

    @r.get(PREFIX)
    def ui_root() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)

    def safe_next(nxt: str) -> str:
        return nxt if nxt.startswith(PREFIX + "/") and not nxt.startswith("//") else PREFIX + "/"

    @r.get(PREFIX + "/login")
    def login_page(request: Request, next: str = PREFIX + "/") -> HTMLResponse:
        return page(request, "login.html", None, nxt=safe_next(next), error=None)

    @r.post(PREFIX + "/login")
    async def login(request: Request) -> Response:
        f = await form(request)
        token = one(f, "token")
        nxt = safe_next(one(f, "next", PREFIX + "/"))
        if not same_origin(request):
            return page(request, "login.html", None, status=403, nxt=nxt,
                        error="cross-origin login refused")
        with state.sessions() as s:
            p = authenticate(s, token) if token else None
        if p is None:
            return page(request, "login.html", None, status=401, nxt=nxt,
                        error="invalid or revoked token")
        resp = RedirectResponse(nxt, status_code=303)
        resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https", max_age=7 * 86400)
        return resp

    @r.post(PREFIX + "/logout")
    async def logout(request: Request) -> Response:
        f = await form(request)
        token = request.cookies.get(COOKIE)
        if token and not check_post(request, f, token):
            return HTMLResponse("bad CSRF token", status_code=403, headers=SECURITY_HEADERS)
        resp = RedirectResponse(PREFIX + "/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return resp

    # ------------------------------------------------------------------ fleet
    @r.get(PREFIX + "/")
    def fleet(request: Request) -> Response:
        with state.sessions() as s:
            p, token = who(request, s)
            if p is None:
                return to_login(request)
            sites = data.fleet_view(s)
            try:
                meter, skipped = data.metering(s)
            except Exception as exc:  # never let metering break the page
                log.warning("metering failed: %s", exc)
                meter, skipped = None, [f"metering failed: {type(exc).__name__}: {exc}"]
            counts = data.state_counts(s, p)
        chips: dict[str, dict[str, int]] = {}
        for site in sites:
            for pool in site.pools:
                c = chips.setdefault(pool.chip, {"devices": 0, "busy": 0, "lost": 0,
                                                 "idle": 0})
                c["devices"] += pool.devices
                c["busy"] += pool.busy
                c["lost"] += pool.lost
                c["idle"] += pool.idle
        from suanli.fleet.metering import POLICY
        return page(request, "fleet.html", p, token, sites=sites, meter=meter,
                    skipped=skipped, chips=chips, counts=counts, policy=POLICY,
                    total=sum(x.devices for x in sites), busy=sum(x.busy for x in sites),
                    lost=sum(x.lost for x in sites))

    # ------------------------------------------------------------------ jobs
    @r.get(PREFIX + "/jobs")
    def jobs(request: Request, queue: str = "", chip: str = "",
             fragment: int = 0) -> Response:
        st = request.query_params.get("state", "")
        with state.sessions() as s:
            p, token = who(request, s)
            if p is None:
                return to_login(request) if not fragment else Response(status_code=401)
            st = st if st in STATES else ""
            rows = data.jobs_view(s, p, st or None, queue[:100] or None, chip[:100] or None)
            queues = data.queues_view(s, p)
            chip_ids = sorted(set(s.scalars(select(NodeGroupRow.chip).distinct())))
        qs = urlencode({"state": st, "queue": queue, "chip": chip, "fragment": 1})
        tpl = "_jobs_table.html" if fragment else "jobs.html"
        return page(request, tpl, p, token, rows=rows, queues=queues, states=STATES,
                    chips=chip_ids, f_state=st, f_queue=queue, f_chip=chip,
                    refresh_url=f"{PREFIX}/jobs?{qs}")

    @r.get(PREFIX + "/jobs/{job_id}")
    def job(request: Request, job_id: int, fragment: int = 0) -> Response:
        with state.sessions() as s:
            p, token = who(request, s)
            if p is None:
                return to_login(request) if not fragment else Response(status_code=401)
            j = data.get_job(s, p, job_id) if 0 < job_id < 2**62 else None
            if j is None:
                return forbidden(request, p, token or "", f"job {job_id} not found", 404)
            d = data.job_detail(s, j) if not fragment else {
                "events": data.job_detail(s, j)["events"], "allocations": [],
                "estimates": None}
        terminal = m.JobState(j.state).terminal
        tpl = "_job_state.html" if fragment else "job.html"
        return page(request, tpl, p, token, j=j, d=d, terminal=terminal,
                    spec=json.dumps(j.spec, indent=2, ensure_ascii=False),
                    can_cancel=p.can("submit") and not terminal)

    @r.get(PREFIX + "/jobs/{job_id}/logs.json")
    def job_logs(request: Request, job_id: int, stream: str = "stdout", offset: int = 0
                 ) -> Response:
        if stream not in ("stdout", "stderr") or not (0 <= offset < 2**62):
            return JSONResponse({"detail": "bad stream or offset"}, status_code=422)
        with state.sessions() as s:
            p, _ = who(request, s)
            if p is None:
                return JSONResponse({"detail": "not logged in"}, status_code=401)
            j = data.get_job(s, p, job_id) if 0 < job_id < 2**62 else None
            if j is None:
                return JSONResponse({"detail": f"job {job_id} not found"}, status_code=404)
            from suanli.service.db import AllocationRow

            a = s.scalar(select(AllocationRow).where(AllocationRow.job_id == job_id)
                         .order_by(AllocationRow.id.desc()).limit(1))
        terminal = m.JobState(j.state).terminal or j.state == "unrunnable"
        chunk = b""
        if a is not None:
            try:
                path = state.executor.log_paths(a.launch_id)[stream]
            except Exception:
                path = None
            if path is not None and path.is_file():
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read(65_536)
        eof = (terminal or (a is not None and not a.active)) and len(chunk) < 65_536
        return JSONResponse({"data": chunk.decode("utf-8", errors="replace"),
                             "offset": offset + len(chunk), "eof": eof, "state": j.state,
                             "attempt": a.attempt if a else None},
                            headers={"Cache-Control": "no-store"})

    def submit_guard(request: Request, f: Any, s: Session
                     ) -> tuple[Principal, str, None] | tuple[None, None, Response]:
        """A POST that changes jobs: logged in, CSRF-checked, with the 'submit' scope."""
        p, token = who(request, s)
        if p is None or token is None:
            return None, None, to_login(request)
        if not check_post(request, f, token):
            return None, None, forbidden(request, p, token, "bad or missing CSRF token")
        if not p.can("submit"):
            return None, None, forbidden(request, p, token,
                                         "this token lacks the 'submit' scope")
        return p, token, None

    @r.post(PREFIX + "/jobs/{job_id}/cancel")
    async def cancel(request: Request, job_id: int) -> Response:
        f = await form(request)
        with state.sessions() as s:
            p, token, refused = submit_guard(request, f, s)
            if refused is not None or p is None or token is None:
                return refused  # type: ignore[return-value]
            j = data.get_job(s, p, job_id) if 0 < job_id < 2**62 else None
            if j is None:
                return forbidden(request, p, token, f"job {job_id} not found", 404)
            _cancel(s, p, j)
        if state.loop is not None:
            state.loop.note_cancel(job_id)
        return RedirectResponse(f"{PREFIX}/jobs/{job_id}", status_code=303)

    def _cancel(s: Session, p: Principal, j: JobRow) -> None:
        from suanli.service.control import request_cancel

        with state.write_lock:
            request_cancel(s, j.id, p.user)

    # ------------------------------------------------------------------ submit
    def submit_ctx(s: Session) -> dict[str, Any]:
        return {"queue_names": list(s.scalars(select(QueueRow.name).order_by(QueueRow.name))),
                "chips": sorted(set(s.scalars(select(NodeGroupRow.chip).distinct())))}

    @r.get(PREFIX + "/submit")
    def submit_page(request: Request) -> Response:
        with state.sessions() as s:
            p, token = who(request, s)
            if p is None:
                return to_login(request)
            ctx = submit_ctx(s)
        return page(request, "submit.html", p, token, error=None, values={}, **ctx)

    @r.post(PREFIX + "/submit")
    async def submit(request: Request) -> Response:
        f = await form(request)
        with state.sessions() as s:
            p, token, refused = submit_guard(request, f, s)
            if refused is not None or p is None or token is None:
                return refused  # type: ignore[return-value]
            ctx = submit_ctx(s)
            values: dict[str, Any] = {k: one(f, k) for k in ("name", "command", "devices", "queue",
                                             "priority", "duration_s", "time_limit_s")}
            values["chips"] = [c for c in f.get("chips", []) if c]

            def fail(msg: str) -> HTMLResponse:
                return page(request, "submit.html", p, token, status=422, error=msg,
                            values=values, **ctx)

            spec: dict[str, Any] = {"name": values["name"] or "job",
                                    "command": values["command"],
                                    "queue": values["queue"] or "default",
                                    "resources": {}}
            try:
                spec["resources"]["devices"] = int(values["devices"] or "1")
                if values["priority"]:
                    spec["priority"] = float(values["priority"])
                if values["duration_s"]:
                    spec["duration_s"] = float(values["duration_s"])
                if values["time_limit_s"]:
                    spec["time_limit_s"] = float(values["time_limit_s"])
            except ValueError as exc:
                return fail(f"not a number: {exc}")
            if values["chips"]:
                spec["resources"]["chips"] = values["chips"]
            try:
                js = m.JobSpec.model_validate(spec)
            except ValidationError as exc:
                e = exc.errors()[0]
                where = ".".join(str(x) for x in e["loc"]) or "spec"
                return fail(f"{where}: {str(e['msg']).removeprefix('Value error, ')}")
            if js.queue not in ctx["queue_names"]:
                return fail(f"queue: unknown queue '{js.queue}'")
            now = utcnow()
            row = JobRow(tenant_id=p.tenant_id, user_id=p.user_id, name=js.name,
                         queue=js.queue, priority=js.priority, devices=js.resources.devices,
                         state="pending", reason="",
                         spec=js.model_dump(mode="json", exclude_none=True),
                         submitted_at=now, updated_at=now, attempts=0, failures=0,
                         cancel_requested=False)
            with state.write_lock:
                s.add(row)
                s.flush()
                s.add(JobEventRow(job_id=row.id, time=now, state="pending",
                                  reason="submitted (dashboard)"))
                s.commit()
            job_id = row.id
        if state.loop is not None:
            state.loop.wake()
        return RedirectResponse(f"{PREFIX}/jobs/{job_id}", status_code=303)

    # ------------------------------------------------------------------ nodes
    @r.get(PREFIX + "/nodes")
    def nodes(request: Request, site: str = "", chip: str = "") -> Response:
        with state.sessions() as s:
            p, token = who(request, s)
            if p is None:
                return to_login(request)
            rows, total = data.nodes_view(s, p, site[:200] or None, chip[:100] or None)
            sites = [x.name for x in data.fleet_view(s)]
            chip_ids = sorted(set(s.scalars(select(NodeGroupRow.chip).distinct())))
        return page(request, "nodes.html", p, token, rows=rows, total=total,
                    heartbeat=data.has_heartbeat_column(), sites=sites, chips=chip_ids,
                    f_site=site, f_chip=chip)

    # ------------------------------------------------------------------ plots
    @r.get(PREFIX + "/plots")
    def plots(request: Request) -> Response:
        with state.sessions() as s:
            p, token = who(request, s)
            if p is None:
                return to_login(request)
            ser = data.series(s, p)
        figs = {
            "util": charts.step_chart(ser["util"], "fleet utilisation over time",
                                      "busy %", ymax=1.0, percent=True),
            "queue": charts.step_chart(ser["queue"], "your jobs waiting over time",
                                       "jobs"),
            "jct": charts.histogram(ser["jct"], "completion time of your succeeded jobs",
                                    " s"),
        }
        return page(request, "plots.html", p, token, figs=figs, ser=ser)

    # ------------------------------------------------------------------ what-if
    def policies() -> list[str]:
        from suanli.sched.policies import POLICIES
        return [n for n in POLICIES if n != "base"]

    def current_policy() -> str:
        return str(getattr(state.loop, "policy", None) or "max-min")

    @r.get(PREFIX + "/whatif")
    def whatif_page(request: Request) -> Response:
        with state.sessions() as s:
            p, token = who(request, s)
        if p is None:
            return to_login(request)
        return page(request, "whatif.html", p, token, policies=policies(),
                    current=current_policy(), result=None, chosen=None, source="queue",
                    figs={}, max_jobs=data.WHATIF_MAX_JOBS)

    @r.post(PREFIX + "/whatif")
    async def whatif(request: Request) -> Response:
        f = await form(request)
        with state.sessions() as s:
            p, token = who(request, s)
            if p is None or token is None:
                return to_login(request)
            if not check_post(request, f, token):
                return forbidden(request, p, token, "bad or missing CSRF token")
            chosen = one(f, "policy", "fifo")
            source = one(f, "source", "queue")
            if chosen not in policies() or source not in ("queue", "history"):
                return forbidden(request, p, token, "unknown policy or source", 422)
            pols = [current_policy()] + ([chosen] if chosen != current_policy() else [])
            t0 = time.perf_counter()
            result = data.whatif(s, p, pols, source=source)
            result["wall_s"] = time.perf_counter() - t0
        figs: dict[str, str] = {}
        ok = [x for x in result["results"] if "metrics" in x]
        if ok:
            labels = [x["policy"] for x in ok]
            figs["jct"] = charts.bars(labels, [x["metrics"]["jct_s"]["mean"] for x in ok],
                                      "mean JCT", "s")
            figs["util"] = charts.bars(labels, [100 * x["metrics"]["utilisation"] for x in ok],
                                       "utilisation", "%")
            figs["energy"] = charts.bars(labels, [x["metrics"]["energy_kwh"] for x in ok],
                                         "energy", "kWh")
            figs["cost"] = charts.bars(labels, [x["metrics"]["cost_cny"] for x in ok],
                                       "electricity cost", "CNY")
        return page(request, "whatif.html", p, token, policies=policies(),
                    current=current_policy(), result=result, chosen=chosen, source=source,
                    figs=figs, max_jobs=data.WHATIF_MAX_JOBS)

    return r
