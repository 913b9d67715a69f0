"""Every /api/v1 route refuses a request without a valid token (enumerated, not listed by hand)."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import text

from provisiond.api import create_app
from provisiond.runtime import Runtime


def api_routes(runtime: Runtime) -> list[tuple[str, str]]:
    schema = create_app(runtime=runtime, start_worker=False).openapi()
    routes = [
        (method.upper(), re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path))
        for path, operations in schema["paths"].items()
        if path.startswith("/api/v1")
        for method in operations
    ]
    assert len(routes) >= 30, routes  # the enumeration itself must see the API
    return routes


def test_every_route_needs_a_token(server: str, runtime: Runtime) -> None:
    for method, path in api_routes(runtime):
        for headers in ({}, {"Authorization": "Bearer pvd_wrong"}, {"Authorization": "Basic eDp5"}):
            response = httpx.request(method, server + path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_valid_token_is_let_in(api: httpx.Client) -> None:
    assert api.get("/users").status_code == 200


def test_health_needs_no_token(server: str) -> None:
    assert httpx.get(server + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(server + "/readyz").json()
    assert ready["database"] == "ok" and ready["worker"] is True


def test_ready_only_at_the_schema_this_code_expects(server: str, runtime: Runtime) -> None:
    assert httpx.get(server + "/readyz").status_code == 200
    with runtime.db.session() as session:  # as if another version of provisiond migrated it
        session.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    answer = httpx.get(server + "/readyz")
    assert answer.status_code == 503
    assert answer.json()["schema"].startswith("at 0001, expected ")
