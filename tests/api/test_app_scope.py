"""An app_admin sees its own apps' events, accounts and series only: the log (API and console),
a user's page, the dashboard, /metrics."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from provisiond.runtime import Runtime
from provisiond.services import activity, tokens
from provisiond.services.context import SYSTEM
from provisiond.store.tables import Account
from tests.e2e.conftest import person, scim_app
from tests.web.conftest import MakeAdmin, sign_in


def _two_apps(api: httpx.Client, runtime: Runtime, target: str) -> tuple[dict, dict, dict]:
    """Apps ``mine`` and ``theirs``, a user, and events of both apps about that user."""
    mine = api.post("/apps", json=scim_app("mine", target)).json()
    theirs = api.post("/apps", json=scim_app("theirs", target)).json()
    user = api.post("/users", json=person("scoped.user")).json()
    with runtime.db.session() as session:
        for app in (mine, theirs):
            for n in range(3):
                activity.record(
                    session,
                    SYSTEM,
                    "app.user.provision",
                    f"provisioned scoped.user in {app['name']} ({n})",
                    app_id=app["id"],
                    user_id=user["id"],
                )
        for _ in range(10):  # more of theirs than a page holds
            activity.record(
                session, SYSTEM, "app.user.update", "updated in theirs", app_id=theirs["id"]
            )
    return mine, theirs, user


def _app_admin_token(runtime: Runtime, app_name: str) -> str:
    with runtime.db.session() as session:
        return tokens.create_token(session, SYSTEM, "scoped", "app_admin", [app_name])


def test_the_log_api_shows_an_app_admin_its_apps_events_only(
    api: httpx.Client, server: str, runtime: Runtime, target: str
) -> None:
    mine, theirs, user = _two_apps(api, runtime, target)
    token = _app_admin_token(runtime, "mine")
    with httpx.Client(
        base_url=f"{server}/api/v1", headers={"Authorization": f"Bearer {token}"}
    ) as scoped:
        events = scoped.get("/logs", params={"limit": 1000}).json()["items"]
        assert events and {e["app_id"] for e in events} == {mine["id"]}
        assert "theirs" not in str(events)
        # Directory events name no app but may name anyone: not an app_admin's to read here.
        assert not [e for e in events if e["action"].startswith("user.")]
        about_user = scoped.get("/logs", params={"user": user["id"]}).json()["items"]
        assert len(about_user) == 3 and {e["app_id"] for e in about_user} == {mine["id"]}
        assert scoped.get("/logs", params={"app": "theirs"}).json()["items"] == []
        # Pages are full and cursors right: the scope is in the query, not applied after it.
        pages, cursor = [], None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = scoped.get("/logs", params=params).json()
            pages.append(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert [len(p) for p in pages[:-1]] == [2] * (len(pages) - 1)
        assert [e["id"] for p in pages for e in p] == [e["id"] for e in events]
        follow = scoped.get("/logs", params={"after": 0}).json()["items"]
        assert {e["app_id"] for e in follow} == {mine["id"]}
    # The other roles still read everything.
    everything = api.get("/logs", params={"limit": 1000}).json()["items"]
    assert {theirs["id"], mine["id"], None} <= {e["app_id"] for e in everything}


def test_metrics_show_an_app_admin_its_apps_series_only(
    api: httpx.Client, server: str, runtime: Runtime, target: str
) -> None:
    _two_apps(api, runtime, target)

    def scrape(token: str) -> set[str]:
        answer = httpx.get(f"{server}/metrics", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        return {
            sample.labels["app"]
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples
            if "app" in sample.labels
        }

    assert scrape(_app_admin_token(runtime, "mine")) == {"mine"}
    with runtime.db.session() as session:
        reader = tokens.create_token(session, SYSTEM, "prometheus", "read_only")
    assert scrape(reader) == {"mine", "theirs"}


def test_the_console_log_shows_an_app_admin_its_apps_events_only(
    api: httpx.Client, server: str, runtime: Runtime, target: str, make_admin: MakeAdmin
) -> None:
    mine, theirs, user = _two_apps(api, runtime, target)
    with runtime.db.session() as session:  # an account in each app
        for app in (mine, theirs):
            session.add(Account(app_id=app["id"], user_id=user["id"], status="active",
                                remote_id=f"remote-in-{app['name']}", applied={}))
    make_admin("keeper", "app_admin", ["mine"])
    with sign_in(server, "keeper") as console:
        log = console.get("/activity")
        assert log.status_code == 200
        assert "provisioned scoped.user in mine" in log.text
        assert "theirs" not in log.text and "user.lifecycle.create" not in log.text
        tail = console.get("/activity/tail", params={"after": 0})
        assert "in mine" in tail.text and "theirs" not in tail.text
        profile = console.get(f"/directory/users/{user['id']}")
        assert profile.status_code == 200
        assert "provisioned scoped.user in mine" in profile.text
        assert "theirs" not in profile.text
        assert f'href="/apps/{mine["id"]}/accounts"' in profile.text  # its account in mine
        assert theirs["id"] not in profile.text
        dashboard = console.get("/")
        assert dashboard.status_code == 200 and "theirs" not in dashboard.text
