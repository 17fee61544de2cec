"""The web dashboard (/ui) over real HTTP on 127.0.0.1: login, every page, the tenant
boundary, scopes and CSRF on every state-changing POST. The browser tests are in
test_dashboard_browser.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service_support import Live, live_service, wait_state
from suanli.service.dashboard import svg
from suanli.service.dashboard.routes import COOKIE, csrf_token

PAGES = ["/ui/", "/ui/jobs", "/ui/nodes", "/ui/plots", "/ui/whatif", "/ui/submit"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_service("sqlite", tmp_path_factory.mktemp("dash")) as lv:
        yield lv


def browser(live: Live, token: str | None = None) -> httpx.Client:
    c = httpx.Client(base_url=live.url, follow_redirects=False, timeout=30)
    if token is not None:
        r = c.post("/ui/login", data={"token": token, "next": "/ui/jobs"})
        assert r.status_code == 303 and r.headers["location"] == "/ui/jobs", r.text
    return c


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def submit_api(live: Live, token: str, **spec: Any) -> int:
    c = live.client(token)
    body = {"name": "t", "command": ["sh", "-c", "echo out-$SUANLI_JOB_ID; sleep 30"], **spec}
    r = c.post("/jobs", json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_pages_need_login(live: Live) -> None:
    c = browser(live)
    assert c.get("/").headers["location"] == "/ui/"
    for path in [*PAGES, "/ui/jobs/1"]:
        r = c.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/ui/login?next="), path
    assert c.get("/ui/jobs/1/logs.json").status_code == 401
    # a POST without a session goes to the login page and changes nothing
    assert c.post("/ui/submit", data={"command": "true"}).status_code == 303
    r = c.get("/ui/login")
    assert r.status_code == 200 and 'name="token"' in r.text


def test_login_rejects_bad_tokens_and_sets_a_strict_cookie(live: Live) -> None:
    c = browser(live)
    for bad in ["", "sl_nope", "x" * 300, live.token + "x"]:
        r = c.post("/ui/login", data={"token": bad})
        assert r.status_code == 401, bad
        assert "invalid or revoked token" in r.text
        assert COOKIE not in r.headers.get("set-cookie", "")
    r = c.post("/ui/login", data={"token": live.token, "next": "https://evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/ui/"  # no open redirect
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    # a login form posted from another origin is refused
    r = browser(live).post("/ui/login", data={"token": live.token},
                           headers={"Origin": "http://evil.example"})
    assert r.status_code == 403


def test_every_page_renders_with_security_headers(live: Live) -> None:
    c = browser(live, live.token)
    for path in PAGES:
        r = c.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"
        assert "default/admin" in r.text  # who is logged in
        assert "http://" not in re.sub(r'href="http://127\.0\.0\.1[^"]*"', "", r.text) or \
            "xmlns" in r.text  # no external assets (only the SVG namespace)
        for src in re.findall(r'(?:src|href)="([^"]+)"', r.text):
            assert src.startswith(("/", "#")), (path, src)
    assert c.get("/ui/static/app.js").status_code == 200
    assert c.get("/ui/static/style.css").status_code == 200


def test_fleet_page_meters_the_registered_nodes(live: Live, tmp_path: Path) -> None:
    from suanli.catalog.loader import load_catalog
    from suanli.fleet import load_fleet
    from suanli.fleet.metering import meter
    from suanli.service.dashboard.routes import _num

    c = browser(live, live.token)
    html = c.get("/ui/").text
    # the test fleet: site-a (2 x 4 H800, 1 x 8 910B), site-b (1 x 2 K100)
    for text in ["site-a", "site-b", "test region", "nvidia_h800_sxm", "ascend_910b",
                 "hygon_k100_ai"]:
        assert text in html
    from service_support import write_fleet
    want = meter(load_fleet(write_fleet(tmp_path), load_catalog())).total
    for cls in ("intelligent", "general", "supercomputing"):
        got = re.search(rf'id="m-{cls}">([^<]*)<', html)
        assert got and got.group(1) == _num(want.class_pflops[cls].value), cls
    share = re.search(r'id="m-share">([^<]*)<', html)
    assert share and share.group(1) == f"{100 * want.intelligent_share:.1f} %"
    assert re.search(r'id="m-power">([^<]*)<', html).group(1) == (  # type: ignore[union-attr]
        f"{_num(want.it_power_kw.value)} kW")
    assert "35.0 %" in html  # the national target


def test_tenant_boundary(live: Live) -> None:
    a_tok = live.token_for("alice", ["submit"], tenant="tenant-a")
    b_tok = live.token_for("bob", ["submit"], tenant="tenant-b")
    job = submit_api(live, a_tok, name="secret-of-a")
    a, b = browser(live, a_tok), browser(live, b_tok)
    assert "secret-of-a" in a.get("/ui/jobs").text
    assert a.get(f"/ui/jobs/{job}").status_code == 200
    jobs_b = b.get("/ui/jobs").text
    assert "secret-of-a" not in jobs_b and f'data-id="{job}"' not in jobs_b
    r = b.get(f"/ui/jobs/{job}")
    assert r.status_code == 404 and "secret-of-a" not in r.text
    assert b.get(f"/ui/jobs/{job}?fragment=1").status_code == 404
    assert b.get(f"/ui/jobs/{job}/logs.json").status_code == 404
    csrf_b = csrf_of(b.get("/ui/submit").text)
    r = b.post(f"/ui/jobs/{job}/cancel", data={"csrf": csrf_b})
    assert r.status_code == 404
    assert live.client(a_tok).get(f"/jobs/{job}").json()["state"] != "cancelled"
    # nodes: B sees the busy devices but not A's job ids
    wait_state(live.client(a_tok), job, {"running"})
    nodes_b = b.get("/ui/nodes").text
    assert f"/ui/jobs/{job}\"" not in nodes_b and "of other tenants" in nodes_b
    assert f"/ui/jobs/{job}\"" in a.get("/ui/nodes").text
    # what-if and plots only replay / count the caller's own jobs
    r = b.post("/ui/whatif", data={"csrf": csrf_b, "policy": "fifo", "source": "queue"})
    assert "no jobs to replay" in r.text
    live.client(a_tok).post(f"/jobs/{job}/cancel")


def test_cancel_needs_submit_scope_and_csrf(live: Live) -> None:
    reader = live.token_for("reader", ["read"])
    job = submit_api(live, live.token, name="to-cancel")
    r_c = browser(live, reader)
    page = r_c.get(f"/ui/jobs/{job}").text
    assert 'id="cancel"' not in page  # no button without the scope
    r = r_c.post(f"/ui/jobs/{job}/cancel", data={"csrf": csrf_of(page)})
    assert r.status_code == 403 and "submit" in r.text
    admin = browser(live, live.token)
    page = admin.get(f"/ui/jobs/{job}").text
    assert 'id="cancel"' in page
    # no / wrong CSRF field, or another origin: refused
    assert admin.post(f"/ui/jobs/{job}/cancel", data={}).status_code == 403
    assert admin.post(f"/ui/jobs/{job}/cancel", data={"csrf": "0" * 40}).status_code == 403
    assert admin.post(f"/ui/jobs/{job}/cancel", data={"csrf": csrf_of(page)},
                      headers={"Origin": "http://evil.example"}).status_code == 403
    assert live.admin.get(f"/jobs/{job}").json()["state"] != "cancelled"
    r = admin.post(f"/ui/jobs/{job}/cancel", data={"csrf": csrf_of(page)},
                   headers={"Origin": live.url})
    assert r.status_code == 303
    wait_state(live.admin, job, {"cancelled"})


def test_csrf_token_is_bound_to_the_session() -> None:
    assert csrf_token("sl_a") != csrf_token("sl_b")
    assert csrf_token("sl_a") == csrf_token("sl_a")
    assert "sl_a" not in csrf_token("sl_a")


def test_submit_form_validates_and_runs(live: Live) -> None:
    c = browser(live, live.token)
    page = c.get("/ui/submit").text
    assert 'value="nvidia_h800_sxm"' in page and ">default</option>" in page
    csrf = csrf_of(page)
    assert c.post("/ui/submit", data={"command": "true"}).status_code == 403  # no CSRF
    r = c.post("/ui/submit", data={"csrf": csrf, "name": "bad", "command": "true",
                                   "devices": "0", "queue": "default"})
    assert r.status_code == 422 and "resources.devices" in r.text
    r = c.post("/ui/submit", data={"csrf": csrf, "command": "true", "queue": "nope"})
    assert r.status_code == 422 and "unknown queue" in r.text
    r = c.post("/ui/submit", data={"csrf": csrf, "command": "true", "devices": "x"})
    assert r.status_code == 422 and "not a number" in r.text
    r = c.post("/ui/submit", data={"csrf": csrf, "name": "from-ui", "devices": "2",
                                   "command": "sh -c 'echo hello from the UI'",
                                   "queue": "default", "chips": ["ascend_910b"]})
    assert r.status_code == 303
    job = int(r.headers["location"].rsplit("/", 1)[1])
    j = wait_state(live.admin, job, {"succeeded", "failed"})
    assert j["state"] == "succeeded"
    assert j["spec"]["resources"] == {**j["spec"]["resources"], "devices": 2,
                                      "chips": ["ascend_910b"]}
    assert j["allocation"]["chip"] == "ascend_910b"
    logs = c.get(f"/ui/jobs/{job}/logs.json").json()
    assert logs["data"] == "hello from the UI\n" and logs["eof"] is True
    assert c.get(f"/ui/jobs/{job}/logs.json?offset={logs['offset']}").json()["data"] == ""
    assert c.get(f"/ui/jobs/{job}/logs.json?stream=bogus").status_code == 422
    detail = c.get(f"/ui/jobs/{job}").text
    for st in ("pending", "scheduled", "succeeded"):  # a fast job may skip "running"
        assert f'<span class="state {st}">{st}</span>' in detail
    assert 'id="cancel"' not in detail  # finished: nothing to cancel
    # filters
    assert "from-ui" in c.get("/ui/jobs?state=succeeded&chip=ascend_910b").text
    assert "from-ui" not in c.get("/ui/jobs?state=pending").text
    assert "from-ui" not in c.get("/ui/jobs?chip=hygon_k100_ai").text
    assert "from-ui" in c.get("/ui/jobs?state=succeeded&fragment=1").text
    # plots now have data
    plots = c.get("/ui/plots").text
    assert plots.count("<svg") == 3


def test_job_with_workload_shows_model_estimates_and_measured_rate(live: Live) -> None:
    job = submit_api(live, live.token, name="wl", command=["sh", "-c", "sleep 0.5"],
                     workload={"kind": "train", "model": "llama3-8b", "work": 1e6},
                     resources={"devices": 2, "chips": ["nvidia_h800_sxm"]})
    wait_state(live.admin, job, {"succeeded"})
    html = browser(live, live.token).get(f"/ui/jobs/{job}").text
    assert 'id="estimates"' in html
    rows = re.findall(r"<tr[^>]*><td>(nvidia_h800_sxm|ascend_910b|hygon_k100_ai)</td>"
                      r"<td>([^<]*)</td>", html)
    assert {c for c, _ in rows} == {"nvidia_h800_sxm", "ascend_910b", "hygon_k100_ai"}
    from suanli.catalog.loader import load_catalog
    from suanli.perf import job_rate
    from suanli.perf.workload import Workload
    from suanli.service.dashboard.routes import _num

    want = job_rate(Workload(kind="train", model="llama3-8b"),
                    load_catalog().get("nvidia_h800_sxm"), 2)
    assert dict(rows)["nvidia_h800_sxm"] == _num(want)
    assert 'id="measured">Measured on nvidia_h800_sxm' in html


def test_whatif_compares_policies(live: Live) -> None:
    c = browser(live, live.token)
    page = c.get("/ui/whatif").text
    csrf = csrf_of(page)
    assert c.post("/ui/whatif", data={"policy": "fifo"}).status_code == 403
    assert c.post("/ui/whatif", data={"csrf": csrf, "policy": "nope"}).status_code == 422
    r = c.post("/ui/whatif", data={"csrf": csrf, "policy": "fifo", "source": "history"})
    assert r.status_code == 200
    table = re.search(r'id="whatif-table">(.*?)</table>', r.text, re.S)
    assert table, r.text[-2000:]
    assert "<td>max-min</td>" in table.group(1) and "<td>fifo</td>" in table.group(1)
    assert r.text.count("<svg") >= 4


def test_logout_clears_the_cookie(live: Live) -> None:
    c = browser(live, live.token)
    r = c.post("/ui/logout", data={"csrf": "wrong"})
    assert r.status_code == 403
    r = c.post("/ui/logout", data={"csrf": csrf_token(live.token)})
    assert r.status_code == 303 and COOKIE in r.headers["set-cookie"]
    assert c.get("/ui/jobs").status_code == 303


def test_revoked_token_loses_the_session(live: Live) -> None:
    tok = live.token_for("temp", ["read"])
    c = browser(live, tok)
    assert c.get("/ui/jobs").status_code == 200
    tid = next(t["id"] for t in live.admin.get("/tokens").json() if t["user"] == "temp")
    assert live.admin.delete(f"/tokens/{tid}").status_code == 200
    assert c.get("/ui/jobs").status_code == 303


def test_svg_charts_escape_and_handle_empty_input() -> None:
    assert svg.step_chart([], "t", "y") == ""
    assert svg.histogram([], "t", "s") == ""
    assert svg.bars(["a"], [None], "t", "u") == ""
    out = svg.bars(["<script>"], [1.0], "<b>", "u")
    assert "<script>" not in out and "&lt;script&gt;" in out
    h = svg.histogram([1.0, 1.0, 2.0, float("nan")], "t", " s", bins=2)
    assert h.count("<rect") == 1 + 2  # frame + two bars
    s = svg.step_chart([(0.0, 0.0), (10.0, 0.5), (20.0, 0.25)], "u", "%", ymax=1.0)
    assert s.startswith("<svg") and 'class="line"' in s


def test_lost_node_counts_as_lost(live: Live) -> None:
    from sqlalchemy import update

    from suanli.service.db import NodeRow

    name = "site-b/k100/000"
    with live.svc.sessions() as s:
        assert s.execute(update(NodeRow).where(NodeRow.name == name)
                         .values(state="lost")).rowcount == 1  # type: ignore[attr-defined]
        s.commit()
    try:
        c = browser(live, live.token)
        html = c.get("/ui/").text
        row = re.search(r"hygon_k100_ai</a></td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>"
                        r"<td>(\d+)</td>", html)
        assert row and row.groups() == ("2", "0", "0", "2")  # devices, busy, idle, lost
        assert '<span class="health lost">lost</span>' in c.get("/ui/nodes").text
    finally:
        with live.svc.sessions() as s:
            s.execute(update(NodeRow).where(NodeRow.name == name).values(state="ready"))
            s.commit()
