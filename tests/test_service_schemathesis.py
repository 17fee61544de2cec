"""Property-based API testing with schemathesis against the OpenAPI schema: no input may give a
5xx, and every response must match the documented status codes and schemas. Bounded examples;
the scheduler is off so no generated command is ever executed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from service_support import write_fleet
from suanli.service.auth import authenticate, create_token, ensure_tenant, ensure_user
from suanli.service.server import build
from suanli.service.settings import ServiceSettings


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    st = ServiceSettings(home=tmp / "home", database_url=f"sqlite:///{tmp / 'db.sqlite'}",
                         fleet=write_fleet(tmp), scheduler=False, max_batch=50)
    service = build(st, simulated=True, migrate=True)
    yield service
    service.engine.dispose()


# Schema-valid input may still break a rule the schema cannot express (the queue must exist,
# workload and duration_s exclude each other, the program name is not empty): 422 is right.
EXCLUDED = [schemathesis.checks.positive_data_acceptance]


def test_api_conforms_to_its_schema(svc: Any) -> None:
    token = [svc.new_admin_token or (Path(svc.settings.home) / "admin.token").read_text().strip()]

    def headers() -> dict[str, str]:
        # the fuzzer may revoke the token it is using (DELETE /tokens/1): mint a new one then
        with svc.sessions() as s:
            if authenticate(s, token[0]) is None:
                tenant = ensure_tenant(s, "default", root=True)
                _, token[0] = create_token(s, tenant, ensure_user(s, tenant, "fuzz"), ["admin"])
                s.commit()
        return {"Authorization": f"Bearer {token[0]}"}

    api = schemathesis.openapi.from_asgi("/api/v1/openapi.json", svc.app)
    ops = [r.ok() for r in api.get_all_operations()]
    assert len(ops) >= 14
    for op in ops:

        @given(case=op.as_strategy())
        @settings(max_examples=30, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers(), excluded_checks=EXCLUDED)

        check()
