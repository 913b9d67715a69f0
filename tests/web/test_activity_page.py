"""The console's activity log: a user found by login or name, an event in detail with the
reconcile's trace, failures marked (real server and scim2-server, SQLite and PostgreSQL)."""

from __future__ import annotations

import html
import re
import time

import httpx

from provisiond.runtime import Runtime
from provisiond.services import activity
from provisiond.services.context import SYSTEM
from tests.e2e.conftest import assign, eventually, person, scim_app


def _rows(page: str) -> list[tuple[str, str, str]]:
    """(event id, row class, action) of each row of the table."""
    return re.findall(
        r'<tr data-event="(\d+)" class="([^"]+)">.*?<code>([^<]+)</code>', page, re.S
    )


def test_filter_by_login_or_name_and_open_an_event_with_its_trace(
    console: httpx.Client, api: httpx.Client, target: str
) -> None:
    s = str(time.monotonic_ns())[-8:]
    app = api.post("/apps", json=scim_app(f"log-{s}", target)).json()
    settings = api.get(f"/apps/{app['id']}/provisioning").json()
    settings.pop("last_test", None)
    api.put(f"/apps/{app['id']}/provisioning", json={**settings, "enabled": True}).raise_for_status()
    ann = api.post("/users", json=person(f"ann.l{s}", displayName=f"Annie {s}")).json()
    other = api.post("/users", json=person(f"ola.l{s}")).json()
    for user in (ann, other):
        assign(api, app["id"], "user", user["id"])

    def provisioned() -> list[tuple[str, str, str]]:
        rows = _rows(console.get("/activity", params={"user": f"ann.l{s}"}).text)
        return [r for r in rows if r[2] == "app.user.provision"]

    first = eventually(provisioned, timeout=30)[0]
    # By login, by first and last name (any case), by display name, by id: only Ann's events.
    for text in (f"ann.l{s}", f"ANN L{s}", f"Annie {s}", ann["id"]):
        page = console.get("/activity", params={"user": text})
        assert page.status_code == 200
        rows = _rows(page.text)
        assert rows and first[0] in {r[0] for r in rows}, text
        assert f"ola.l{s}" not in html.unescape(page.text).split("</form>", 1)[1], text
        assert f'href="/directory/users/{ann["id"]}">ann.l{s}</a>' in page.text, text
    nobody = console.get("/activity", params={"user": f"nobody-{s}"})
    assert _rows(nobody.text) == [] and "No user has that login or name" in nobody.text

    # The event in detail: its trace, step by step, and the other events of its request.
    detail = console.get(f"/activity/{first[0]}")
    assert detail.status_code == 200
    trace = re.search(r'<ol class="trace" id="trace">(.*?)</ol>', detail.text, re.S)
    assert trace, detail.text
    steps = re.findall(r"<li><strong>([^<]+)</strong>", trace.group(1))
    assert steps == ["scope", "desired", "match", "plan", "apply"], steps
    assert f"ann.l{s}" in detail.text and app["name"] in detail.text
    assert console.get("/activity/999999999").status_code == 404


def test_failures_are_marked_in_the_log(console: httpx.Client, runtime: Runtime) -> None:
    with runtime.db.session() as session:
        events = [
            activity.record(
                session, SYSTEM, "app.user.provision", "create of x in y failed: HTTP 400",
                outcome="failure",
            ),
            activity.record(session, SYSTEM, "user.account.update_profile", "fine"),
        ]
        session.flush()
        failed, fine = (event.id for event in events)
    page = console.get("/activity").text
    rows = {event_id: cls for event_id, cls, _ in _rows(page)}
    assert rows[str(failed)] == "outcome-failure" and rows[str(fine)] == "outcome-success"
    row = re.search(rf'<tr data-event="{failed}".*?</tr>', page, re.S)
    assert row and '<span class="badge badge-failure">failure</span>' in row.group(0)
    detail = console.get(f"/activity/{failed}").text
    assert 'class="event-message failed"' in detail
