"""API tokens over HTTP: list, create with an expiry, revoke; revoked and expired tokens get 401."""

from __future__ import annotations

from datetime import timedelta

import httpx

from provisiond.runtime import Runtime
from provisiond.services import tokens
from provisiond.services.context import SYSTEM
from tests.e2e.conftest import eventually


def token_client(server: str, secret: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server}/api/v1", headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )


def test_create_list_and_revoke_a_token(server: str, api: httpx.Client) -> None:
    created = api.post(
        "/tokens", json={"name": "prometheus", "role": "read_only", "expires_in_seconds": 86400}
    )
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    body = created.json()
    secret = body["token"]
    assert secret.startswith(body["prefix"]) and len(body["prefix"]) < 16
    assert body["status"] == "active" and body["expires_at"] is not None

    listed = api.get("/tokens").json()["items"]
    row = next(item for item in listed if item["id"] == body["id"])
    assert (row["name"], row["role"], row["prefix"]) == ("prometheus", "read_only", body["prefix"])
    assert "token" not in row and secret not in str(listed)  # the secret is shown once only

    with token_client(server, secret) as client:
        assert client.get("/users").status_code == 200
        assert client.get("/tokens").status_code == 403  # a read_only token manages nothing
        revoked = api.post(f"/tokens/{body['id']}/revoke")
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        refused = client.get("/users")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert "revoked" in refused.json()["detail"]

    assert api.post(f"/tokens/{body['id']}/revoke").status_code == 409
    assert body["id"] not in {item["id"] for item in api.get("/tokens").json()["items"]}
    everything = api.get("/tokens", params={"include_revoked": True}).json()["items"]
    assert body["id"] in {item["id"] for item in everything}
    events = api.get("/logs", params={"action": "system.api_token"}).json()["items"]
    revoke = next(e for e in events if e["action"] == "system.api_token.revoke")
    assert revoke["actor"] == "token:e2e" and revoke["targets"]["token_id"] == body["id"]
    assert secret not in str(events)


def test_an_expired_token_is_refused(server: str, runtime: Runtime) -> None:
    with runtime.db.session() as session:
        secret = tokens.create_token(session, SYSTEM, "short", expires_in=timedelta(seconds=1))
    with token_client(server, secret) as client:
        # It works until it expires (the machine may be slow: only the refusal is awaited).
        answer = eventually(lambda: client.get("/users").status_code == 401, timeout=30)
        assert answer
        refused = client.get("/users")
        assert refused.headers["content-type"] == "application/problem+json"
        assert "expired" in refused.json()["detail"]


def test_last_used_is_written_at_most_once_a_minute(server: str, api: httpx.Client) -> None:
    secret = api.post("/tokens", json={"name": "cron"}).json()["token"]
    token_id = api.get("/tokens").json()["items"][0]["id"]

    def last_used() -> str | None:
        value: str | None = api.get(f"/tokens/{token_id}").json()["last_used_at"]
        return value

    assert last_used() is None
    with token_client(server, secret) as client:
        client.get("/users").raise_for_status()
        first = last_used()
        assert first is not None
        client.get("/users").raise_for_status()
        assert last_used() == first  # the second request within the minute wrote nothing


def test_bad_token_input_is_refused_and_creates_nothing(api: httpx.Client) -> None:
    before = api.get("/tokens").json()["items"]
    for body in (
        {"name": "x", "expires_in_seconds": 5},
        {"name": ""},
        {"name": "x", "role": "root"},
        {"name": "x", "role": "read_only", "apps": ["nope"]},
        {"name": "x", "secret": "mine"},
    ):
        answer = api.post("/tokens", json=body)
        assert answer.status_code in (404, 422), (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert api.get("/tokens").json()["items"] == before
    assert api.get("/tokens/00000000-0000-0000-0000-000000000000").status_code == 404
