from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from provisiond.api import create_app
from provisiond.runtime import Runtime
from provisiond.services import tokens
from provisiond.services.context import SYSTEM
from tests.support.faulty import FaultyTarget
from tests.support.patience import PATIENCE
from tests.support.servers import scim_target, serve_app

TARGET_TOKEN = "target-token"


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    with scim_target(TARGET_TOKEN) as base:
        yield base


@pytest.fixture(scope="module")
def target_put_only() -> Iterator[str]:
    with scim_target(TARGET_TOKEN, patch=False) as base:
        yield base


@pytest.fixture
def faulty() -> Iterator[tuple[FaultyTarget, str]]:
    """A real SCIM target (scim2-server) that misbehaves when a test injects a fault."""
    target = FaultyTarget(TARGET_TOKEN)
    with serve_app(target) as url:
        yield target, url + "/v2"


@pytest.fixture
def server(runtime: Runtime) -> Iterator[str]:
    with serve_app(create_app(runtime=runtime, start_worker=True)) as url:
        yield url


@pytest.fixture
def admin_token(runtime: Runtime) -> str:
    with runtime.db.session() as session:
        return tokens.create_token(session, SYSTEM, "e2e")


@pytest.fixture
def api(server: str, admin_token: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{server}/api/v1", headers={"Authorization": f"Bearer {admin_token}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def scim(target: str) -> Iterator[httpx.Client]:
    """A plain client of the target app: how a test looks at what the app holds."""
    with httpx.Client(
        base_url=target + "/", headers={"Authorization": f"Bearer {TARGET_TOKEN}"}
    ) as client:
        yield client


def eventually(check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns a truthy value; the last failure is raised on timeout."""
    timeout *= PATIENCE
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {value!r})")
        time.sleep(interval)


def remote_user(scim: httpx.Client, user_name: str) -> dict[str, Any] | None:
    response = scim.get("Users", params={"filter": f'userName eq "{user_name}"'})
    response.raise_for_status()
    resources = response.json().get("Resources", [])
    return resources[0] if resources else None


def person(login: str, **extra: Any) -> dict[str, Any]:
    first, _, last = login.partition(".")
    return {
        "profile": {
            "login": login,
            "email": f"{login}@example.com",
            "firstName": first.title(),
            "lastName": (last or "user").title(),
            **extra,
        }
    }


def scim_app(name: str, base_url: str, **provisioning: Any) -> dict[str, Any]:
    return {
        "name": name,
        "label": name.title(),
        "connector": {
            "type": "scim2",
            "base_url": base_url,
            "auth": {"type": "bearer", "token": TARGET_TOKEN},
        },
        "provisioning": provisioning,
    }


def assign(api: httpx.Client, app_id: str, kind: str, pid: str, **body: Any) -> dict[str, Any]:
    """Assign a user or a group to the app (with ``role``, ``priority``...); the assignment."""
    answer = api.post(
        f"/apps/{app_id}/assignments", json={"principal_type": kind, "principal_id": pid, **body}
    )
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result
