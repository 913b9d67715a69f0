"""The ``userName eq`` lookup's short path (api/scim/lookups.py) answers exactly what the SCIM
app answers, refuses a revoked token at once, and leaves every other request to the SCIM app.

Over real HTTP, on SQLite (the lookup on the event loop) and PostgreSQL (in a thread). The
SCIM app's own answer to the same request is had by sending it with ``Content-Length: 0``,
which the short path always leaves to the SCIM app (a GET's body is the body limit's)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisiond.api import create_app
from provisiond.api.scim import lookups
from provisiond.config import Settings
from provisiond.runtime import Runtime
from provisiond.services import scim_clients
from provisiond.services.context import SYSTEM
from provisiond.store.db import Database
from tests.conftest import _drop_pg_database, _fresh_pg_database
from tests.scim.conftest import GROUP, created, user_body
from tests.support.servers import serve_app

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PROFILE = "urn:provisiond:params:scim:schemas:extension:profile:2.0:User"
LOGINS = ["ada.lovelace", "Grace.Hopper", "ÉMILE.du-châtelet", "alan.turing", "edsger.dijkstra"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def runtime(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    path = tmp_path_factory.mktemp("lookups")
    pg: tuple[str, str] | None = None
    if request.param == "postgresql":
        admin_url = request.getfixturevalue("pg_server")
        pg = _fresh_pg_database(admin_url)
        url = pg[1]
    else:
        url = f"sqlite:///{path / 'provisiond.db'}"
    settings_ = Settings(data_dir=Path(path), database_url=url, secret_key="test-secret-key",
                         connector_allow_loopback=True)
    rt = Runtime(settings_, db=Database(settings_.effective_database_url))
    rt.migrate()
    try:
        yield rt
    finally:
        rt.stop()
        rt.db.dispose()
        if pg is not None:
            _drop_pg_database(request.getfixturevalue("pg_server"), pg[0])


@pytest.fixture(scope="module")
def server(runtime: Runtime) -> Iterator[str]:
    with serve_app(create_app(runtime=runtime, start_worker=False)) as url:
        yield url


def _token(runtime: Runtime, name: str) -> str:
    with runtime.db.session() as session:
        return scim_clients.create_client(session, SYSTEM, name)[0]


@pytest.fixture(scope="module")
def scim(server: str, runtime: Runtime) -> Iterator[httpx.Client]:
    """A SCIM client over a directory of users unlike each other: extensions, custom
    attributes, an external id, direct and nested groups."""
    token = _token(runtime, "okta-lookups")
    with httpx.Client(
        base_url=f"{server}/scim/v2/", headers={"Authorization": f"Bearer {token}"}
    ) as client:
        ids = {}
        for i, login in enumerate(LOGINS):
            extra: dict[str, Any] = {}
            if i % 2:
                extra |= {"displayName": f"Person {i}", "title": "Engineer", "externalId": f"x{i}",
                          "userType": "Employee"}
            if i % 3 == 0:
                extra["schemas"] = [user_body(login)["schemas"][0], ENTERPRISE, PROFILE]
                extra[ENTERPRISE] = {"employeeNumber": str(100 + i), "department": "R&D"}
                extra[PROFILE] = {"costCenter": f"cc{i}"}
            ids[login] = created(client, "Users", user_body(login, **extra))["id"]
        inner = created(client, "Groups", {"schemas": [GROUP], "displayName": "Compilers",
                                           "members": [{"value": ids["Grace.Hopper"]}]})
        created(client, "Groups", {"schemas": [GROUP], "displayName": "Research", "members": [
            {"value": ids["alan.turing"]}, {"value": inner["id"], "type": "Group"}]})
        yield client


class Spy:
    """Counts the lookups the short path answered itself."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answered = 0
        real = lookups.answer

        def counted(rt: Runtime, lookup: lookups.Lookup) -> bytes | None:
            body = real(rt, lookup)
            self.answered += body is not None
            return body

        monkeypatch.setattr(lookups, "answer", counted)


def _both(scim: httpx.Client, params: dict[str, Any]) -> tuple[httpx.Response, httpx.Response]:
    fast = scim.get("Users", params=params)
    slow = scim.get("Users", params=params, headers={"Content-Length": "0"})
    return fast, slow


def _same(fast: httpx.Response, slow: httpx.Response) -> None:
    assert fast.status_code == slow.status_code, (fast.text, slow.text)
    ignored = {"date", "x-request-id"}
    assert {k: v for k, v in fast.headers.items() if k not in ignored} == {
        k: v for k, v in slow.headers.items() if k not in ignored
    }
    assert fast.json() == slow.json()
    assert 8 <= len(fast.headers["x-request-id"]) <= 64


def test_a_lookup_answers_as_the_scim_app_does(
    scim: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(monkeypatch)
    scim.get("Users", params={"filter": 'userName eq "nobody"'})  # the token's use recorded
    spy.answered = 0
    for params in (
        {"filter": 'userName eq "ada.lovelace"'},
        {"filter": 'userName eq "grace.hopper"'},  # in a group, and one above it
        {"filter": 'username eq "ÉMILE.DU-CHÂTELET"', "excludedAttributes": "groups,emails"},
        {"filter": 'userName eq "alan.turing"', "attributes": "userName,name.givenName"},
        {"filter": 'userName eq "edsger.dijkstra"', "startIndex": "1", "count": "1"},
        {"filter": 'userName eq "nobody"', "startIndex": "-3", "count": "100"},
    ):
        fast, slow = _both(scim, params)
        _same(fast, slow)
    assert spy.answered == 6
    headers = fast.headers
    assert headers["content-type"] == "application/scim+json"
    assert fast.json()["totalResults"] == 0


def test_a_request_id_is_echoed_on_the_short_path(scim: httpx.Client) -> None:
    answer = scim.get("Users", params={"filter": 'userName eq "ada.lovelace"'},
                      headers={"X-Request-ID": "lookup-request-0001"})
    assert answer.headers["x-request-id"] == "lookup-request-0001"


def test_other_requests_go_to_the_scim_app(
    scim: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    scim.get("Users", params={"filter": 'userName eq "nobody"'})
    spy = Spy(monkeypatch)
    for params, status in (
        ({"filter": 'userName eq "ada.lovelace"', "count": "0"}, 200),
        ({"filter": 'userName eq "ada.lovelace"', "startIndex": "2"}, 200),
        ({"filter": 'userName eq "ada.lovelace"', "sortBy": "nosuch"}, 400),
        ({"filter": 'userName eq "ada.lovelace"', "count": "x"}, 400),
        ({"filter": 'userName eq "ada.lovelace"', "sortOrder": "up"}, 400),
        ({"filter": 'userName eq "ada.lovelace" or userName eq "x"'}, 200),
        ({"filter": 'displayName eq "Person 1"'}, 200),
        ({"filter": 'userName EQ "ada.lovelace"'}, 200),
        ({"filter": 'userName eq "unterminated'}, 400),
        ({"filter": 'userName eq ada'}, 400),
    ):
        answer = scim.get("Users", params=params)
        assert answer.status_code == status, (params, answer.text)
        assert answer.headers["content-type"] == "application/scim+json"
    assert spy.answered == 0


def test_a_revoked_token_is_refused_at_once(
    server: str, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _token(runtime, "entra-revoked")
    spy = Spy(monkeypatch)
    with httpx.Client(base_url=f"{server}/scim/v2/",
                      headers={"Authorization": f"Bearer {token}"}) as client:
        lookup = {"filter": 'userName eq "ada.lovelace"'}
        assert client.get("Users", params=lookup).status_code == 200  # last use recorded
        assert client.get("Users", params=lookup).status_code == 200
        assert spy.answered == 1
        with runtime.db.session() as session:
            client_id = scim_clients.authenticate(session, token).id
            scim_clients.revoke_client(session, SYSTEM, client_id)
        refused = client.get("Users", params=lookup)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="scim"'
    assert refused.headers["content-type"] == "application/scim+json"
    assert refused.json()["detail"] == "the SCIM token is not valid: it was revoked"
    assert spy.answered == 1


def test_unknown_and_admin_tokens_get_the_scim_apps_401(server: str) -> None:
    for authorization in ("Bearer pvdscim_unknown", "Bearer pvd_admin_token", "Basic eDp5"):
        answer = httpx.get(f"{server}/scim/v2/Users", params={"filter": 'userName eq "x"'},
                           headers={"Authorization": authorization})
        assert answer.status_code == 401, answer.text
        assert answer.headers["www-authenticate"] == 'Bearer realm="scim"'
        assert answer.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


def test_a_first_use_is_recorded_by_the_scim_app(server: str, runtime: Runtime) -> None:
    token = _token(runtime, "hr-first-use")
    answer = httpx.get(f"{server}/scim/v2/Users", params={"filter": 'userName eq "x"'},
                       headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    with runtime.db.session() as session:
        assert scim_clients.authenticate(session, token).last_used_at is not None


_ATTRIBUTES = ["userName", "name", "name.givenName", "emails", "emails.value", "groups",
               "groups.display", "active", "displayName", "title", "externalId", "meta",
               f"{ENTERPRISE}:department", ENTERPRISE, f"{PROFILE}:costCenter", "id"]


@st.composite
def lookups_asked(draw: st.DrawFn) -> dict[str, Any]:
    login = draw(st.sampled_from([*LOGINS, "nobody", "ada"]))
    login = draw(st.sampled_from([login, login.upper(), login.lower(), login.swapcase()]))
    attr = draw(st.sampled_from(["userName", "username", "USERNAME"]))
    params: dict[str, Any] = {"filter": f"{attr} eq {json.dumps(login)}"}
    for name in ("attributes", "excludedAttributes"):
        if draw(st.booleans()):
            params[name] = ",".join(draw(st.lists(st.sampled_from(_ATTRIBUTES), max_size=3)))
    if draw(st.booleans()):
        params["startIndex"] = str(draw(st.integers(-2, 2)))
    if draw(st.booleans()):
        params["count"] = str(draw(st.integers(-1, 3)))
    return params


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=lookups_asked())
def test_any_lookup_answers_as_the_scim_app_does(
    scim: httpx.Client, params: dict[str, Any]
) -> None:
    scim.get("Users", params={"filter": 'userName eq "nobody"'})
    _same(*_both(scim, params))


@pytest.mark.parametrize("fault", [sqlite3.OperationalError("database is locked"),
                                   psycopg.OperationalError("the server closed the connection")])
def test_a_database_fault_on_the_short_path_leaves_the_answer_to_the_scim_app(
    scim: httpx.Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch, fault: Exception
) -> None:
    """Injected: a read that SQLite refuses as busy, or a PostgreSQL connection lost mid-read,
    which a real peer does not do on demand."""
    expected = scim.get("Users", params={"filter": 'userName eq "ada.lovelace"'},
                        headers={"Content-Length": "0"})

    @contextmanager
    def failing() -> Iterator[Any]:
        raise fault
        yield

    monkeypatch.setattr(runtime.db, "reads", failing)
    spy = Spy(monkeypatch)
    answer = scim.get("Users", params={"filter": 'userName eq "ada.lovelace"'})
    assert spy.answered == 0
    _same(answer, expected)
