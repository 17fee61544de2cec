"""The submission fast path: group commit (one transaction for many requests, a bad request
fails alone), bulk inserts (one autocommit statement on PostgreSQL, with the general path
when a key exists) and the token cache (hash keys, revocation)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi import HTTPException
from sqlalchemy import func, select, update

from service_support import DB_KINDS, Live, live_service
from suanli.service import models as m
from suanli.service.db import ApiToken, JobEventRow, JobRow, utcnow


@pytest.fixture(params=DB_KINDS)
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    with live_service(request.param, tmp_path, scheduler=False) as lv:
        yield lv


def spec(name: str, cmd: str = "true") -> dict[str, object]:
    return {"name": name, "command": ["sh", "-c", cmd], "duration_s": 60}


def test_big_batch_is_inserted_once_with_events_and_specs(live: Live) -> None:
    n = 193
    body = {"jobs": [{"spec": spec(f"b{i}", f"echo {i}"), "idempotency_key": f"k{i}"}
                     for i in range(n)]}
    r1 = live.admin.post("/jobs/batch", json=body)
    assert r1.status_code == 201, r1.text
    ids = [j["id"] for j in r1.json()]
    assert len(set(ids)) == n and ids == sorted(ids)
    assert [j["name"] for j in r1.json()] == [f"b{i}" for i in range(n)]
    q = live.svc.app.state.svc.submitq
    pg = live.svc.engine.dialect.name == "postgresql"
    assert (q.fast, q.transactions) == ((1, 1) if pg else (0, 1))  # one statement on PG
    r2 = live.admin.post("/jobs/batch", json=body)  # a retry: the same jobs, nothing new
    assert [j["id"] for j in r2.json()] == ids
    # on PG the one statement failed on the keys (nothing written): the general path answered
    assert (q.fast, q.transactions) == ((1, 2) if pg else (0, 2))
    j = live.admin.get(f"/jobs/{ids[7]}").json()
    assert j["spec"]["command"] == ["sh", "-c", "echo 7"] and j["idempotency_key"] == "k7"
    assert [e["reason"] for e in live.admin.get(f"/jobs/{ids[-1]}/events").json()] == [
        "submitted"]
    with live.svc.sessions() as s:
        assert s.scalar(select(func.count()).select_from(JobRow)) == n
        assert s.scalar(select(func.count()).select_from(JobEventRow)) == n
    # a later single submission continues the id sequence
    one = live.admin.post("/jobs", json=spec("after"))
    assert one.status_code == 201 and one.json()["id"] > ids[-1]


def test_concurrent_single_submissions_each_exactly_once(live: Live) -> None:
    def post(i: int) -> tuple[int, int]:
        with live.client(live.token) as c:
            r = c.post("/jobs", json=spec(f"c{i % 30}"),
                       headers={"Idempotency-Key": f"c{i % 30}"})
            return r.status_code, r.json()["id"]

    with ThreadPoolExecutor(12) as pool:
        got = list(pool.map(post, range(60)))
    assert sorted(code for code, _ in got) == [200] * 30 + [201] * 30
    by_key: dict[int, set[int]] = {}
    for i, (_, jid) in zip(range(60), got, strict=True):
        by_key.setdefault(i % 30, set()).add(jid)
    assert all(len(v) == 1 for v in by_key.values())  # one job per key, whoever won
    with live.svc.sessions() as s:
        assert s.scalar(select(func.count()).select_from(JobRow)) == 30


def test_one_bad_request_in_a_group_fails_alone(live: Live) -> None:
    from suanli.service.submitq import SubmitQueue, _Request, spec_entry

    live.admin.post("/jobs", json=spec("first"), headers={"Idempotency-Key": "dup"})
    state = live.svc.app.state.svc
    p = next(iter(state._auth.values()))[1]
    q = SubmitQueue(live.svc.sessions)
    loop = asyncio.new_event_loop()
    try:
        def req(name: str, key: str | None) -> _Request:
            s = m.JobSpec.model_validate(spec(name))
            return _Request(p, [spec_entry(s, key)], loop, loop.create_future())

        group = [req("a", "ka"), req("other-spec", "dup"), req("b", None), req("a", "ka")]
        q._serve(group)
    finally:
        loop.close()
        q.close()
    assert isinstance(group[1].error, HTTPException) and group[1].error.status_code == 409
    ok = [g.result for g in group if g.error is None]
    assert len(ok) == 3 and all(r is not None for r in ok)
    (a_row, a_new), = group[0].result or []
    (a2_row, a2_new), = group[3].result or []
    assert a_new and not a2_new and a_row.id == a2_row.id  # same key in one group: one job
    assert q.transactions == 1
    with live.svc.sessions() as s:
        names = sorted(s.scalars(select(JobRow.name)))
    assert names == ["a", "b", "first"]


def test_token_cache_holds_hashes_and_honours_revocation(live: Live) -> None:
    tok = live.token_for("rita", ["read"])
    state = live.svc.app.state.svc
    state.auth_ttl_s = 0.5
    c = live.client(tok)
    assert c.get("/jobs").status_code == 200
    assert tok not in state._auth and all(len(k) == 64 for k in state._auth)
    assert not any(tok in repr(v) for v in state._auth.values())
    # revoked by another replica (straight in the database): refused once the TTL has passed
    with live.svc.sessions() as s:
        s.execute(update(ApiToken).where(ApiToken.prefix == tok[:10])
                  .values(revoked_at=utcnow()))
        s.commit()
    time.sleep(0.6)
    assert c.get("/jobs").status_code == 401
    # revoked through this server: refused at once, whatever the TTL
    tok2 = live.token_for("rita2", ["read"])
    state.auth_ttl_s = 3600
    c2 = live.client(tok2)
    assert c2.get("/jobs").status_code == 200
    tid = next(t["id"] for t in live.admin.get("/tokens").json() if t["user"] == "rita2")
    live.admin.delete(f"/tokens/{tid}")
    assert c2.get("/jobs").status_code == 401
