"""The OpenAPI document and what surrounds it: every operation described and its errors declared
(enumerated, so routes added later are held to it too), /docs served from the package, and the
API's own 404 and 405 problems where no route takes a request."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from provisiond.api import create_app
from provisiond.runtime import Runtime

PROBLEM = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture
def document(runtime: Runtime) -> dict[str, Any]:
    schema: dict[str, Any] = create_app(runtime=runtime, start_worker=False).openapi()
    return schema


def operations(document: dict[str, Any], prefix: str = "/") -> list[tuple[str, str, Any]]:
    found = [
        (method, path, operation)
        for path, item in document["paths"].items()
        if path.startswith(prefix)
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]
    assert len(found) >= 40, found  # the enumeration itself must see the API
    return found


def test_every_operation_has_a_description(document: dict[str, Any]) -> None:
    missing = [f"{m} {p}" for m, p, op in operations(document) if not op.get("description")]
    assert missing == []


def test_the_bearer_scheme_is_declared_and_every_api_operation_needs_it(
    document: dict[str, Any],
) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["token"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["token"]["description"],
    }
    unsecured = [
        f"{m} {p}"
        for m, p, op in operations(document, "/api/v1")
        if {"token": []} not in op.get("security", [])
    ]
    assert unsecured == []
    assert "security" not in document["paths"]["/healthz"]["get"]


def test_every_error_an_operation_declares_is_a_problem(document: dict[str, Any]) -> None:
    assert set(document["components"]["schemas"]["Problem"]["required"]) == {
        "type",
        "title",
        "status",
        "detail",
    }
    wrong = []
    for method, path, operation in operations(document, "/api/v1"):
        responses = operation["responses"]
        # Every /api/v1 route authenticates, authorizes and validates.
        expected = {"401", "403", "422"}
        if "{" in path:  # it loads what its path names
            expected.add("404")
        if missing := expected - set(responses):
            wrong.append(f"{method} {path}: {sorted(missing)} not declared")
        for status, response in responses.items():
            if status.startswith(("4", "5")) and response.get("content") != {
                PROBLEM: {"schema": PROBLEM_REF}
            }:
                wrong.append(f"{method} {path}: {status} is not a problem document")
    assert wrong == []


def test_request_bodies_have_examples(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    missing = []
    for method, path, operation in operations(document, "/api/v1"):
        body = operation.get("requestBody")
        if body is None:
            continue
        if "text/csv" in body["content"]:  # a file, streamed: its example is the content's
            if not body["content"]["text/csv"].get("example"):
                missing.append(f"{method} {path} (text/csv)")
            continue
        ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        if not schemas[ref].get("examples"):
            missing.append(f"{method} {path} ({ref})")
    assert missing == []


def test_docs_load_only_local_assets(server: str) -> None:
    page = httpx.get(f"{server}/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) == 3, assets  # the script, the stylesheet and the icon
    assert all(asset.startswith("/docs/assets/") for asset in assets), assets
    assert "url: '/openapi.json'" in page.text
    kinds = {"js": "javascript", "css": "text/css", "png": "image/png"}
    for asset in assets:
        served = httpx.get(server + asset)
        assert served.status_code == 200, asset
        assert kinds[asset.rsplit(".", 1)[-1]] in served.headers["content-type"], asset
        assert len(served.content) > 100
    assert httpx.get(f"{server}/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/nope"),
        ("POST", "/api/v1/nope"),
        ("GET", "/api/v1/users/someone/friends"),
        ("GET", "/api/v2/users"),
        ("GET", "/api"),
    ],
)
def test_an_unknown_api_path_is_a_404_problem(server: str, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer pvd_wrong"}):
        answer = httpx.request(method, server + path, headers=headers)
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"] == PROBLEM
        body = answer.json()
        assert body["type"] == "https://provisiond.dev/problems/not-found"
        assert path in body["detail"]


def test_the_console_still_answers_its_own_unknown_pages(server: str) -> None:
    answer = httpx.get(f"{server}/no-such-page")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")


def test_every_documented_path_answers_an_unsupported_method_with_405_and_allow(
    server: str, document: dict[str, Any], admin_token: str
) -> None:
    checked = 0
    for path, item in document["paths"].items():
        documented = {method.upper() for method in item if method in HTTP_METHODS}
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        for method in ("TRACE", *({"PUT", "PATCH", "DELETE"} - documented)):
            answer = httpx.request(
                method, server + concrete, headers={"Authorization": f"Bearer {admin_token}"}
            )
            assert answer.status_code == 405, (method, path, answer.text)
            assert answer.headers["content-type"] == PROBLEM
            allowed = set(answer.headers["allow"].split(", "))
            assert allowed - {"HEAD"} == documented, (path, allowed)
            checked += 1
    assert checked >= 40


def test_a_body_that_is_not_utf8_is_malformed_json(api: httpx.Client) -> None:
    answer = api.post("/users", content=b"\x1b\xff\x1a\xfe", headers={"Content-Type": "application/json"})
    assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM
    assert answer.json()["type"] == "https://provisiond.dev/problems/invalid-json"
    assert api.get("/users").json()["items"] == []


def test_a_query_parameter_given_twice_is_refused(api: httpx.Client) -> None:
    answer = api.get("/users", params=[("limit", "5"), ("limit", "500")])
    assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM
    assert answer.json()["field"] == "query.limit"
    assert api.get("/users", params={"limit": "5"}).status_code == 200


@pytest.mark.parametrize(
    "moment",
    ["2024-05-01", "1714564800", "2024-05-01T12:00:00", "2024-05-01 12:00:00Z", "12:00:00Z"],
)
def test_log_times_are_rfc3339_date_times_with_an_offset(api: httpx.Client, moment: str) -> None:
    for name in ("since", "until"):
        answer = api.get("/logs", params={name: moment})
        assert answer.status_code == 422, (name, moment, answer.text)
        assert answer.json()["field"] == f"query.{name}"


def test_log_times_with_an_offset_are_taken(api: httpx.Client) -> None:
    for moment in ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.5+02:00"):
        assert api.get("/logs", params={"since": moment, "until": moment}).status_code == 200


def test_an_event_id_past_64_bits_is_invalid_not_a_server_error(api: httpx.Client) -> None:
    answer = api.get("/logs", params={"after": str(2**63)})
    assert answer.status_code == 422, answer.text
    assert api.get("/logs", params={"after": str(2**63 - 1)}).status_code == 200
