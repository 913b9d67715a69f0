"""A PostgreSQL server as an app, over real HTTP: its roles are the accounts (issue 16).

The admin's journey (create, test, enable, assign with roles, update, deactivate, reactivate)
on a PostgreSQL store, and a user name PostgreSQL cannot take recorded as the
account's error. The target is the test PostgreSQL server, in a scratch database, every role
named with the test's own prefix (roles are cluster-wide).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import assign, eventually, person
from tests.support.pg_roles import Scratch, scratch_for_provisiond


@pytest.fixture
def db(pg_server: str) -> Iterator[Scratch]:
    with scratch_for_provisiond(pg_server) as made:
        yield made


def postgresql_app(name: str, db: Scratch) -> dict[str, Any]:
    return {
        "name": name,
        "label": "Warehouse",
        "connector": {
            "kind": "postgresql",
            "host": "127.0.0.1",
            "database": db.database,
            "username": f"{db.prefix}provisiond",
            "password": "not-checked-under-trust-auth",
        },
    }


# The PostgreSQL-store case of the journeys (the LDAP one runs on SQLite).
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_admin_journey(api: httpx.Client, db: Scratch) -> None:
    p = db.prefix
    app = api.post("/apps", json=postgresql_app(p.replace("_", "-") + "wh", db))
    assert app.status_code == 201, app.text
    app_id, shown = app.json()["id"], app.json()["connector"]
    assert shown["kind"] == "postgresql" and shown["secret_set"] is True
    assert "password" not in shown and "not-checked" not in app.text
    test = api.post(f"/apps/{app_id}/provisioning/test").json()
    assert test["ok"], test
    for role in ("reader", "writer"):
        api.post(f"/apps/{app_id}/roles", json={"name": f"{p}{role}"}).raise_for_status()
    ada = api.post("/users", json=person(f"{p}ada.l")).json()
    assignment = assign(api, app_id, "user", ada["id"], role=f"{p}reader")
    settings = api.get(f"/apps/{app_id}/provisioning").json()
    settings.pop("last_test", None)
    enabled = api.put(f"/apps/{app_id}/provisioning", json={**settings, "enabled": True})
    assert enabled.status_code == 200, enabled.text
    login = f"{p}ada.l"
    eventually(lambda: db.role(login) == {"login": True, "granted": [f"{p}reader"]})

    # Another role: the grants follow, exactly.
    api.patch(
        f"/apps/{app_id}/assignments/{assignment['id']}", json={"roles": [f"{p}writer"]}
    ).raise_for_status()
    eventually(lambda: db.role(login) == {"login": True, "granted": [f"{p}writer"]})

    # Suspending ends her sessions and her login; unsuspending gives the login back.
    with db.connect(user=login):
        api.post(f"/users/{ada['id']}/lifecycle/suspend").raise_for_status()
        eventually(lambda: db.role(login) == {"login": False, "granted": [f"{p}writer"]})
        eventually(lambda: db.sessions(login) == 0)
    api.post(f"/users/{ada['id']}/lifecycle/unsuspend").raise_for_status()
    eventually(lambda: db.role(login) == {"login": True, "granted": [f"{p}writer"]})

    # A name PostgreSQL must not be given: the task ends at once (terminal) saying why, and
    # the activity log keeps it; no role is created.
    bad = api.post("/users", json=person(f"{p}o'hara")).json()
    assign(api, app_id, "user", bad["id"], role=f"{p}reader")
    dead = eventually(lambda: api.get("/tasks", params={"status": "dead", "app": app_id}).json()["items"])
    assert dead[0]["attempts"] == 1
    assert f"role name \"{p}o'hara\" must not contain quotes" in dead[0]["last_error"]
    logged = api.get("/logs", params={"action": "task.dead", "app": app_id}).json()["items"]
    assert logged and "must not contain quotes" in str(logged[0])
    assert db.role(f"{p}o'hara") is None
