"""Stored LDAP sources (issue 16): one runs on its schedule and a user added in LDAP lands;
runs between full ones read only what changed; removal from the filter is caught by the full
run, not by an incremental one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from provisiond.config import Settings
from tests.e2e.conftest import eventually
from tests.e2e.test_ldap_import import person_entry
from tests.support.slapd import ADMIN_DN, ADMIN_PASSWORD, Slapd, add_ous, admin_connection


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"scheduler_tick_seconds": 0.2})


def _add(conn: Any, ou: str, login: str) -> None:
    entry = person_entry(login, mail=f"{login}@example.com")
    assert conn.add(f"uid={login},{ou}", ["inetOrgPerson"], entry), conn.result


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%SZ")  # slapd's clock is this machine's


def _next_second(after: str) -> None:
    eventually(lambda: _stamp() > after, timeout=60)


def _users(api: httpx.Client, token: str) -> dict[str, dict[str, Any]]:
    return {u["profile"]["login"]: u for u in api.get("/users", params={"q": token}).json()["items"]}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_stored_sources_run_on_schedule_and_incrementally(
    api: httpx.Client, ldap_server: Slapd
) -> None:
    token = uuid.uuid4().hex[:8]
    ous = add_ous(ldap_server, f"s{token}", "scheduled", "people")
    conn = admin_connection(ldap_server)

    def source(name: str, ou: str) -> dict[str, Any]:
        return {"name": f"{name}-{token}", "url": ldap_server.url, "bind_dn": ADMIN_DN,
                "bind_password": ADMIN_PASSWORD, "base_dn": ou}

    try:
        # On its schedule (1.8 s): the scheduler applies it, and a user added in LDAP lands.
        ada = f"ada.{token}"
        _add(conn, ous["scheduled"], ada)
        made = api.post("/ldap-sources", json={"source": source("sched", ous["scheduled"]),
                                               "every_hours": 0.0005})
        assert made.status_code == 201, made.text
        assert ADMIN_PASSWORD not in made.text and "bind_password" not in made.json()["source"]
        assert api.post("/ldap-sources", json={"source": source("sched", ous["scheduled"])}).status_code == 409
        eventually(lambda: ada in _users(api, token), timeout=60)
        logged = api.get("/logs", params={"action": "directory.import.ldap"}).json()["items"]
        assert any(item["actor"] == f"ldap:sched-{token}" for item in logged)
        assert api.delete(f"/ldap-sources/{made.json()['id']}").status_code == 204

        # On demand: the first run reads everything.
        cy, eve, dan, bob = (f"{n}.{token}" for n in ("cy", "eve", "dan", "bob"))
        for login in (cy, eve):
            _add(conn, ous["people"], login)
        _next_second(_stamp())
        _add(conn, ous["people"], dan)
        sid = api.post("/ldap-sources", json={"source": source("corp", ous["people"]),
                                              "full_every": 2}).json()["id"]
        first = api.post(f"/ldap-sources/{sid}/run", json={"apply": True}).json()
        assert first["full"] and first["read"] == 3 and first["counts"]["create"] == 3
        mark = api.get(f"/ldap-sources/{sid}").json()["high_water"]
        assert mark
        # modifyTimestamp has whole seconds, so the next read asks >= the mark (Dan, the last
        # added a second after the others, has it); Bob is added once the second has moved on.
        _next_second(mark)
        _add(conn, ous["people"], bob)
        assert conn.delete(f"uid={cy},{ous['people']}")

        # An incremental run reads only Dan and Bob, and cannot see that Cy left.
        preview = api.post(f"/ldap-sources/{sid}/run", json={}).json()
        assert not preview["applied"] and not preview["full"] and preview["read"] == 2
        second = api.post(f"/ldap-sources/{sid}/run", json={"apply": True}).json()
        assert not second["full"] and second["read"] == 2 and second["create"] == [bob]
        assert second["counts"]["deactivate"] == 0
        assert _users(api, token)[cy]["status"] == "active"

        # The third run is a full one (full_every 2: one in two): it reads everyone and deactivates Cy.
        third = api.post(f"/ldap-sources/{sid}/run", json={"apply": True}).json()
        assert third["full"] and third["read"] == 3 and third["deactivate"] == [cy]
        assert _users(api, token)[cy]["status"] == "deprovisioned"
        listed = api.get("/ldap-sources").json()["items"]
        assert [s["name"] for s in listed if s["name"].endswith(token)] == [f"corp-{token}"]
        assert api.post("/ldap-sources/nope/run", json={}).status_code == 404
    finally:
        conn.unbind()
