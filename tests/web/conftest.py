"""Console fixtures: a real server (tests/e2e), admin accounts, signed-in clients."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import httpx
import pytest

from provisiond.runtime import Runtime
from provisiond.services import admins
from provisiond.services.context import SYSTEM
from tests.e2e.conftest import admin_token, api, scim, server, target  # noqa: F401

PASSWORD = "correct horse battery staple"
MakeAdmin = Callable[..., str]


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


@contextmanager
def sign_in(base: str, username: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=30) as client:
        page = client.get("/login")
        response = client.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
        )
        assert response.status_code == 303, response.text
        yield client


def post_form(client: httpx.Client, page: str, action: str, data: dict[str, str]) -> httpx.Response:
    """Post a form the way a browser does: with the CSRF token of the page it is on."""
    token = csrf_of(client.get(page).text)
    return client.post(action, data={**data, "csrf_token": token})


@pytest.fixture
def make_admin(runtime: Runtime) -> MakeAdmin:
    def make(username: str, role: str = "super_admin", apps: Sequence[str] = ()) -> str:
        with runtime.db.session() as session:
            admins.create_admin(
                session, SYSTEM, username=username, password=PASSWORD, role=role, apps=apps
            )
        return username

    return make


@pytest.fixture
def console(request: pytest.FixtureRequest, make_admin: MakeAdmin) -> Iterator[httpx.Client]:
    """A super_admin signed in to the console (of the e2e ``server`` fixture)."""
    make_admin("root")
    with sign_in(request.getfixturevalue("server"), "root") as client:
        yield client
