"""provisiond serving /scim/v2 over real HTTP, with a SCIM client token.

SQLite only here: the SCIM layer's SQL is the filter compiler's, whose property tests run on
both backends (tests/services/test_scim_filters.py), and the e2e journey runs on both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from provisiond.api import create_app
from provisiond.config import Settings
from provisiond.runtime import Runtime
from provisiond.services import scim_clients, tokens
from provisiond.services.context import SYSTEM
from provisiond.store.db import Database
from tests.support.servers import serve_app

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """One database and one server a module: tests keep apart by the names they use."""
    path = tmp_path_factory.mktemp("scim")
    settings = Settings(
        data_dir=path,
        database_url=f"sqlite:///{path / 'provisiond.db'}",
        secret_key="test-secret-key",
        connector_allow_loopback=True,
    )
    rt = Runtime(settings, db=Database(settings.effective_database_url))
    rt.migrate()
    try:
        yield rt
    finally:
        rt.stop()
        rt.db.dispose()


@pytest.fixture(scope="module")
def server(runtime: Runtime) -> Iterator[str]:
    with serve_app(create_app(runtime=runtime, start_worker=False)) as url:
        yield url


@pytest.fixture
def scim_token(runtime: Runtime, request: pytest.FixtureRequest) -> str:
    with runtime.db.session() as session:
        return scim_clients.create_client(session, SYSTEM, f"okta-{request.node.name}")[0]


@pytest.fixture
def admin_token(runtime: Runtime) -> str:
    with runtime.db.session() as session:
        return tokens.create_token(session, SYSTEM, "admin")


@pytest.fixture
def scim(server: str, scim_token: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{server}/scim/v2/", headers={"Authorization": f"Bearer {scim_token}"}
    ) as client:
        yield client


def user_body(login: str, **extra: Any) -> dict[str, Any]:
    first, _, last = login.partition(".")
    return {
        "schemas": [USER],
        "userName": login,
        "name": {"givenName": first.title(), "familyName": (last or "user").title()},
        "emails": [{"value": f"{login}@example.com", "type": "work", "primary": True}],
        "active": True,
        **extra,
    }


def patch_body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": list(operations)}


def created(scim: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = scim.post(path, json=body)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result
