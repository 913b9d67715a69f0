"""GET /logs: filters, newest first, cursor pagination, follow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.e2e.conftest import person


def test_filters_order_and_pages(api: httpx.Client) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    users = [api.post("/users", json=person(f"log.user{i}")).json() for i in range(7)]
    api.post(f"/users/{users[0]['id']}/lifecycle/suspend").raise_for_status()

    everything = api.get("/logs", params={"limit": 1000}).json()["items"]
    ids = [event["id"] for event in everything]
    assert ids == sorted(ids, reverse=True)  # newest first

    created = api.get("/logs", params={"action": "user.lifecycle.create"}).json()["items"]
    assert len(created) == 7
    prefix = api.get("/logs", params={"action": "user.lifecycle"}).json()["items"]
    assert len(prefix) == 8  # an action prefix matches its family

    mine = api.get("/logs", params={"user": users[0]["id"]}).json()["items"]
    assert [e["action"] for e in mine] == ["user.lifecycle.suspend", "user.lifecycle.create"]
    assert all(e["actor"] == "token:e2e" for e in mine)

    text = api.get("/logs", params={"q": "log.user3"}).json()["items"]
    assert [e["user_id"] for e in text] == [users[3]["id"]]
    assert api.get("/logs", params={"q": "100%_"}).json()["items"] == []  # wildcards are literal

    window = api.get("/logs", params={"since": start.isoformat(), "until": (start + timedelta(hours=1)).isoformat()})
    assert len(window.json()["items"]) == len(everything)
    assert api.get("/logs", params={"until": start.isoformat()}).json()["items"] == []

    pages, cursor = [], None
    while True:
        params = {"limit": 3, "action": "user.lifecycle"} | ({"cursor": cursor} if cursor else {})
        page = api.get("/logs", params=params).json()
        pages.append([e["id"] for e in page["items"]])
        cursor = page["next_cursor"]
        if not cursor:
            break
    flat = [event_id for page in pages for event_id in page]
    assert flat == [e["id"] for e in prefix]
    assert [len(p) for p in pages] == [3, 3, 2]

    newest = everything[0]["id"]
    api.post(f"/users/{users[1]['id']}/lifecycle/suspend").raise_for_status()
    follow = api.get("/logs", params={"after": newest}).json()["items"]
    assert [e["action"] for e in follow] == ["user.lifecycle.suspend"]


def test_every_event_carries_the_request_correlation_id(api: httpx.Client) -> None:
    response = api.post("/users", json=person("corr.elated"), headers={"X-Request-ID": "req-12345678"})
    assert response.headers["X-Request-ID"] == "req-12345678"
    events = api.get("/logs", params={"correlation_id": "req-12345678"}).json()["items"]
    assert [e["action"] for e in events] == ["user.lifecycle.create"]


def test_bad_log_queries(api: httpx.Client) -> None:
    assert api.get("/logs", params={"cursor": "%%%"}).status_code == 422
    assert api.get("/logs", params={"since": "yesterday"}).status_code == 422
    assert api.get("/logs", params={"limit": 0}).status_code == 422
    assert api.get("/logs", params={"app": "no-such-app"}).status_code == 404
