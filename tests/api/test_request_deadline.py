"""An app's connector carries its total request deadline: validated, stored, shown."""

from __future__ import annotations

import httpx

from provisiond.api import create_app
from provisiond.runtime import Runtime
from tests.e2e.conftest import scim_app

BASE_URL = "https://crm.example.org/scim/v2"


def _with_deadline(name: str, seconds: object) -> dict[str, object]:
    body = scim_app(name, BASE_URL)
    body["connector"]["request_deadline_seconds"] = seconds
    return body


def test_the_deadline_defaults_to_30_s_and_is_shown(api: httpx.Client) -> None:
    created = api.post("/apps", json=scim_app("crm", BASE_URL))
    assert created.status_code == 201, created.text
    assert created.json()["connector"]["request_deadline_seconds"] == 30.0
    app = api.get(f"/apps/{created.json()['id']}").json()
    assert app["connector"]["request_deadline_seconds"] == 30.0
    assert app["connector"]["timeout_seconds"] == 10.0


def test_the_deadline_is_set_on_create_and_changed_by_patch(api: httpx.Client) -> None:
    created = api.post("/apps", json=_with_deadline("wiki", 45))
    assert created.status_code == 201, created.text
    assert created.json()["connector"]["request_deadline_seconds"] == 45.0
    patched = api.patch(
        f"/apps/{created.json()['id']}", json={"connector": {"request_deadline_seconds": 120}}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["connector"]["request_deadline_seconds"] == 120.0
    assert patched.json()["connector"]["auth"]["secret_set"] is True  # the token was kept


def test_a_deadline_out_of_bounds_is_422_naming_the_field(api: httpx.Client) -> None:
    for seconds in (0, 0.5, 301, "soon"):
        refused = api.post("/apps", json=_with_deadline("crm", seconds))
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "connector.request_deadline_seconds"
    assert api.get("/apps").json()["items"] == []

    app = api.post("/apps", json=scim_app("crm", BASE_URL)).json()
    for name in ("request_deadline_seconds", "timeout_seconds"):
        refused = api.patch(f"/apps/{app['id']}", json={"connector": {name: 0}})
        assert refused.status_code == 422, refused.text  # checked after the merge, not a 500
        assert refused.json()["field"] == f"connector.{name}"
        assert refused.headers["content-type"] == "application/problem+json"
    assert api.get(f"/apps/{app['id']}").json()["connector"]["request_deadline_seconds"] == 30.0


def test_the_openapi_document_shows_the_deadline_and_its_bounds(runtime: Runtime) -> None:
    schemas = create_app(runtime=runtime, start_worker=False).openapi()["components"]["schemas"]
    field = schemas["ScimConnectorSettings"]["properties"]["request_deadline_seconds"]
    assert (field["default"], field["minimum"], field["maximum"]) == (30.0, 1, 300)
