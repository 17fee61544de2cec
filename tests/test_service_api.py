"""The control plane's API end to end, on SQLite and on a real PostgreSQL: submit -> schedule
-> local executor -> logs, idempotency, validation, tenant isolation, pagination, limits."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from service_support import DB_KINDS, Live, database, live_service, wait_state, write_fleet
from suanli.errors import SuanliError


@pytest.fixture(params=DB_KINDS)
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    with live_service(request.param, tmp_path) as lv:
        yield lv


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_service("sqlite", tmp_path_factory.mktemp("shared")) as lv:
        yield lv


def spec(cmd: str, **kw: object) -> dict[str, object]:
    return {"name": kw.pop("name", "t"), "command": ["sh", "-c", cmd], **kw}


def test_submit_runs_with_vendor_visibility_and_logs(live: Live) -> None:
    c = live.admin
    r = c.post("/jobs", json=spec('echo "vis=$ASCEND_RT_VISIBLE_DEVICES cuda=${CUDA_VISIBLE_'
                                  'DEVICES:-none} sim=$SUANLI_SIMULATED_DEVICES"; echo oops >&2',
                                  resources={"devices": 2, "vendors": ["Huawei"]}))
    assert r.status_code == 201, r.text
    jid = r.json()["id"]
    j = wait_state(c, jid, {"succeeded", "failed"})
    assert j["state"] == "succeeded" and j["exit_code"] == 0
    a = j["allocation"]
    assert a["chip"] == "ascend_910b" and a["nodes"] == ["site-a/ascend/000"]
    assert a["devices"] == [[0, 1]]
    out = c.get(f"/jobs/{jid}/logs").json()
    assert out["data"] == "vis=0,1 cuda=none sim=1\n" and out["eof"]
    err = c.get(f"/jobs/{jid}/logs", params={"stream": "stderr"}).json()
    assert err["data"] == "oops\n"
    # logs from an offset
    tail = c.get(f"/jobs/{jid}/logs", params={"offset": 4}).json()["data"]
    assert tail == "0,1 cuda=none sim=1\n"
    states = [e["state"] for e in c.get(f"/jobs/{jid}/events").json()]
    assert states == ["pending", "scheduled", "starting", "running", "succeeded"] or \
        states == ["pending", "scheduled", "starting", "succeeded"]


def test_exit_codes_retries_and_unrunnable(live: Live) -> None:
    c = live.admin
    bad = c.post("/jobs", json=spec("exit 7", max_retries=1)).json()["id"]
    fp8 = c.post("/jobs", json=spec("true", resources={"vendors": ["Huawei"],
                                                        "precision": "fp8"})).json()["id"]
    big = c.post("/jobs", json=spec("true", resources={"devices": 64})).json()["id"]
    j = wait_state(c, bad, {"failed"})
    assert j["exit_code"] == 7 and j["attempts"] == 2  # one retry, then failed
    u = wait_state(c, fp8, {"unrunnable"})
    assert "FP8" in u["reason"]
    assert "gang of 64" in wait_state(c, big, {"unrunnable"})["reason"]


def test_gangs_share_nodes_without_overlap(live: Live) -> None:
    c = live.admin
    ids = [c.post("/jobs", json=spec("sleep 1", resources={"devices": 3, "chips": ["H800"]})
                  ).json()["id"] for _ in range(2)]
    ids.append(c.post("/jobs", json=spec("sleep 1", resources={"devices": 2,
                                                                "chips": ["H800"]})).json()["id"])
    jobs = [wait_state(c, jid, {"succeeded"}) for jid in ids]
    held: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for j in jobs:
        a = j["allocation"]
        # every gang fits one 4-device node, so it runs on one node (the scheduler's rule):
        # the gang of 2 cannot take the 1 + 1 devices the two gangs of 3 leave, it waits
        assert len(a["nodes"]) == 1 and len(a["devices"][0]) == j["spec"]["resources"]["devices"]
        for d in a["devices"][0]:
            held.setdefault((a["nodes"][0], d), []).append((j["started_at"], j["finished_at"]))
    assert len({j["allocation"]["nodes"][0] for j in jobs[:2]}) == 2
    for spans in held.values():  # a device is never given to two jobs that overlap in time
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start


def test_idempotency_key(live: Live) -> None:
    c = live.admin
    h = {"Idempotency-Key": "abc-1"}
    r1 = c.post("/jobs", json=spec("true"), headers=h)
    r2 = c.post("/jobs", json=spec("true"), headers=h)
    assert (r1.status_code, r2.status_code) == (201, 200)
    assert r1.json()["id"] == r2.json()["id"]
    r3 = c.post("/jobs", json=spec("false"), headers=h)
    assert r3.status_code == 409 and r3.json()["field"] == "idempotency_key"
    # batch: keys dedupe against earlier jobs and inside the batch
    b = c.post("/jobs/batch", json={"jobs": [
        {"spec": spec("true"), "idempotency_key": "abc-1"},
        {"spec": spec("true"), "idempotency_key": "new"},
        {"spec": spec("true"), "idempotency_key": "new"}]})
    assert b.status_code == 201, b.text
    from suanli.service.models import Job

    parsed = [Job.model_validate(x) for x in b.json()]  # the fast reply path keeps the model
    assert parsed[1].state == "pending" and parsed[1].submitted_at.tzinfo is not None
    ids = [j["id"] for j in b.json()]
    assert ids[0] == r1.json()["id"] and ids[1] == ids[2] != ids[0]


@pytest.mark.parametrize("body, field", [
    ({"command": []}, "command"),
    ({"command": ["x"], "resources": {"devices": 0}}, "resources.devices"),
    ({"command": ["x"], "resources": {"precision": "fp7"}}, "resources.precision"),
    ({"command": ["x"], "bogus": 1}, "bogus"),
    ({"command": ["x"], "env": {"1BAD": "v"}}, "env.1BAD"),
    ({"command": ["x"], "queue": "nope"}, "queue"),
    ({"command": ["x"], "workload": {"kind": "train"}}, "workload.work"),
    ({"command": ["x"], "duration_s": 5, "workload": {"kind": "hpc", "work": 1}}, "(body)"),
])
def test_validation_errors_name_the_field(shared: Live, body: dict[str, object],
                                          field: str) -> None:
    r = shared.admin.post("/jobs", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert r.json()["detail"].startswith(field) and "\n" not in r.json()["detail"]


def test_tenant_isolation_on_every_endpoint(live: Live) -> None:
    a_tok = live.token_for("alice", ["submit"], tenant="acme")
    b_tok = live.token_for("bob", ["admin"], tenant="globex")
    a, b = live.client(a_tok), live.client(b_tok)
    jid = a.post("/jobs", json=spec("echo secret-of-acme")).json()["id"]
    wait_state(a, jid, {"succeeded"})
    # every per-job endpoint says "not found" to the other tenant
    for method, path in [("GET", f"/jobs/{jid}"), ("GET", f"/jobs/{jid}/events"),
                         ("GET", f"/jobs/{jid}/logs"), ("POST", f"/jobs/{jid}/cancel")]:
        r = b.request(method, path)
        assert r.status_code == 404, (method, path, r.text)
        assert "secret" not in r.text
    assert jid not in [j["id"] for j in b.get("/jobs").json()["items"]]
    assert b.get("/jobs", params={"total": True}).json()["total"] == 0
    assert all(q["pending"] == 0 and q["running"] == 0 for q in b.get("/queues").json())
    # tokens: a tenant admin sees and revokes only its own tenant's tokens
    b_tokens = b.get("/tokens").json()
    assert {t["tenant"] for t in b_tokens} == {"globex"}
    alice_id = next(t["id"] for t in live.admin.get("/tokens").json() if t["user"] == "admin")
    assert b.delete(f"/tokens/{alice_id}").status_code == 404
    r = b.post("/tokens", json={"user": "mallory", "scopes": ["admin"], "tenant": "acme"})
    assert r.status_code == 403
    # the owner still sees everything of its own
    assert a.get(f"/jobs/{jid}/logs").json()["data"] == "secret-of-acme\n"


def test_every_endpoint_needs_a_token_and_scopes(live: Live) -> None:
    import httpx

    doc = httpx.get(live.url + "/api/v1/openapi.json").json()
    anon = live.client(None)
    bogus = live.client("sl_" + "x" * 43)
    checked = 0
    for path, ops in doc["paths"].items():
        p = path.replace("/api/v1", "").replace("{job_id}", "1").replace("{token_id}", "1") \
            .replace("{name}", "default")
        for method in ops:
            if p == "/health":
                assert anon.request(method.upper(), p).status_code == 200
                continue
            for cl in (anon, bogus):
                r = cl.request(method.upper(), p, json={})
                assert r.status_code == 401, (method, path, r.status_code)
            checked += 1
    assert checked >= 12
    reader = live.client(live.token_for("rita", ["read"]))
    assert reader.get("/jobs").status_code == 200
    assert reader.post("/jobs", json=spec("true")).status_code == 403
    assert reader.get("/tokens").status_code == 403
    submitter = live.client(live.token_for("sam", ["submit"]))
    assert submitter.post("/jobs", json=spec("true")).status_code == 201
    assert submitter.put("/queues/x", json={"name": "x"}).status_code == 403


def test_revoked_token_stops_working(live: Live) -> None:
    tok = live.token_for("tina", ["read"])
    c = live.client(tok)
    assert c.get("/jobs").status_code == 200
    tid = next(t["id"] for t in live.admin.get("/tokens").json() if t["user"] == "tina")
    assert live.admin.delete(f"/tokens/{tid}").json()["revoked_at"] is not None
    assert c.get("/jobs").status_code == 401


def test_pagination_filter_sort(live: Live) -> None:
    c = live.admin
    c.put("/queues/batchq", json={"name": "batchq", "weight": 2})
    jobs = [{"spec": spec("true", name=f"p{i}", priority=1 + i % 3, queue="batchq",
                          resources={"devices": 64})} for i in range(25)]
    assert c.post("/jobs/batch", json={"jobs": jobs}).status_code == 201
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 10, "queue": "batchq", "sort": "id"}
        if cursor:
            params["cursor"] = cursor
        page = c.get("/jobs", params=params).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 25 and seen == sorted(seen)
    by_pri: list[tuple[float, int]] = []
    cursor = None
    while True:
        params = {"limit": 7, "queue": "batchq", "sort": "-priority"}
        if cursor:
            params["cursor"] = cursor
        page = c.get("/jobs", params=params).json()
        by_pri += [(j["priority"], j["id"]) for j in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(by_pri) == 25 and len(set(by_pri)) == 25
    assert [p for p, _ in by_pri] == sorted((p for p, _ in by_pri), reverse=True)
    assert c.get("/jobs", params={"name": "p3", "queue": "batchq"}).json()["items"][0][
        "name"] == "p3"
    assert c.get("/jobs", params={"cursor": "garbage!"}).status_code == 422
    assert c.get("/jobs", params={"limit": 5000}).status_code == 422
    q = {x["name"]: x for x in c.get("/queues").json()}
    assert q["batchq"]["weight"] == 2


def test_cancel_pending_and_running(live: Live) -> None:
    c = live.admin
    run = c.post("/jobs", json=spec("trap 'echo got-term; exit 143' TERM; "
                                    "while true; do sleep 0.05; done")).json()["id"]
    wait_state(c, run, {"running"})
    pend = c.post("/jobs", json=spec("true", resources={"devices": 64})).json()["id"]
    assert c.post(f"/jobs/{pend}/cancel").json()["state"] == "cancelled"
    c.post(f"/jobs/{run}/cancel")
    j = wait_state(c, run, {"cancelled"})
    assert j["exit_code"] == 143
    assert "got-term" in c.get(f"/jobs/{run}/logs").json()["data"]
    # cancelling twice is harmless
    assert c.post(f"/jobs/{run}/cancel").json()["state"] == "cancelled"


def test_body_size_limit(live: Live) -> None:
    big = {"command": ["echo", "x" * 9000] * 200}
    r = live.admin.post("/jobs", json=big)
    assert r.status_code == 413
    assert "bytes" in r.json()["detail"]


def test_metrics(live: Live) -> None:
    c = live.admin
    jid = c.post("/jobs", json=spec("sleep 0.5", resources={"devices": 2,
                                                             "chips": ["K100-AI"]})).json()["id"]
    wait_state(c, jid, {"running", "succeeded"})
    text = c.get("/metrics").text
    assert "suanli_scheduling_pass_seconds_count" in text
    assert 'suanli_api_request_seconds_count{method="POST",route="/api/v1/jobs"}' in text
    assert "suanli_jobs{state=" in text
    reader = live.client(live.token_for("m", ["read"]))
    assert reader.get("/metrics").status_code == 403


def test_tokens_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with live_service("sqlite", tmp_path) as live:
        tok = live.token_for("x", ["submit"])
        c = live.client(tok)
        jid = c.post("/jobs", json=spec("env")).json()["id"]
        wait_state(c, jid, {"succeeded"})
        c.get("/jobs", params={"state": "running"})
        live.client(tok + "bad").get("/jobs")
        env_out = c.get(f"/jobs/{jid}/logs").json()["data"]
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert tok not in text and live.token not in text
    assert tok not in env_out and "SUANLI_TOKEN" not in env_out  # jobs never see it
    token_file = (tmp_path / "home" / "admin.token")
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"


def test_server_refuses_old_schema(tmp_path: Path) -> None:
    from sqlalchemy import text

    from suanli.service import migrate
    from suanli.service.db import make_engine
    from suanli.service.server import build
    from suanli.service.settings import ServiceSettings

    with database("sqlite", tmp_path) as url:
        st = ServiceSettings(home=tmp_path / "h", database_url=url, fleet=write_fleet(tmp_path))
        with pytest.raises(SuanliError, match="suanli db upgrade"):
            build(st)
        engine = make_engine(url)
        migrate.upgrade(engine)
        with engine.begin() as c:
            c.execute(text("UPDATE alembic_version SET version_num = '0000'"))
        with pytest.raises(SuanliError, match=r"revision 0000.*suanli db upgrade"):
            build(st)
