"""Bad input gets a precise problem+json answer and changes nothing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import person, scim_app

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["status"] == status and body["detail"] and str(body["type"]).startswith("https://")
    return body


def test_unknown_ids_are_404(api: httpx.Client) -> None:
    for method, path in [
        ("GET", "/users/nope"),
        ("PATCH", "/users/nope"),
        ("DELETE", "/users/nope"),
        ("POST", "/users/nope/lifecycle/suspend"),
        ("GET", "/groups/nope"),
        ("DELETE", "/groups/nope"),
        ("GET", "/apps/nope"),
        ("GET", "/apps/nope/provisioning"),
        ("POST", "/apps/nope/sync"),
        ("GET", "/runs/nope"),
        ("GET", "/tasks/nope"),
        ("POST", "/tasks/nope/retry"),
    ]:
        json = {"profile": {}} if method == "PATCH" else None
        body = assert_problem(api.request(method, path, json=json), 404)
        assert "nope" in str(body["detail"])


def test_invalid_json_is_422_and_says_so(api: httpx.Client) -> None:
    response = api.post(
        "/users", content=b'{"profile": {"login": ', headers={"Content-Type": "application/json"}
    )
    body = assert_problem(response, 422)
    assert body["type"] == "https://provisiond.dev/problems/invalid-json"


def test_schema_violations_name_the_field(api: httpx.Client) -> None:
    body = assert_problem(
        api.post(
            "/users",
            json={
                "profile": {
                    "login": "x",
                    "firstName": "X",
                    "lastName": "Y",
                    "email": "not-an-email",
                }
            },
        ),
        422,
    )
    assert body["field"] == "profile.email"
    body = assert_problem(
        api.post(
            "/users",
            json={
                "profile": {
                    "login": "has space",
                    "email": "a@b.org",
                    "firstName": "A",
                    "lastName": "B",
                }
            },
        ),
        422,
    )
    assert body["field"] == "profile.login"
    body = assert_problem(api.post("/users", json={"profile": {"email": "a@b.org"}}), 422)
    assert body["field"] == "profile.login"
    assert api.get("/users").json()["items"] == []  # nothing half-created


def test_duplicate_login_is_409_case_insensitively(api: httpx.Client) -> None:
    assert api.post("/users", json=person("grace.hopper")).status_code == 201
    body = assert_problem(api.post("/users", json=person("Grace.Hopper")), 409)
    assert "already taken" in str(body["detail"])
    assert len(api.get("/users").json()["items"]) == 1


def test_invalid_lifecycle_transition_is_409_with_the_status(api: httpx.Client) -> None:
    user = api.post("/users", json=person("alan.turing")).json()
    body = assert_problem(api.post(f"/users/{user['id']}/lifecycle/unsuspend"), 409)
    assert body["current_status"] == "active"
    assert api.get(f"/users/{user['id']}").json()["status"] == "active"
    assert_problem(api.post(f"/users/{user['id']}/lifecycle/explode"), 422)


def test_deleting_an_active_user_is_refused(api: httpx.Client) -> None:
    user = api.post("/users", json=person("ken.thompson")).json()
    assert_problem(api.delete(f"/users/{user['id']}"), 409)
    api.post(f"/users/{user['id']}/lifecycle/deactivate").raise_for_status()
    assert api.delete(f"/users/{user['id']}").status_code == 204


def test_oversized_bodies_are_413(api: httpx.Client) -> None:
    huge = {"profile": {"login": "x", "blob": "a" * 2_000_000}}
    assert_problem(api.post("/users", json=huge), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as it streams
        yield b'{"profile": {"login": "x", "blob": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}}'

    assert_problem(
        api.post("/users", content=chunks(), headers={"Content-Type": "application/json"}), 413
    )


@pytest.mark.parametrize(
    "base_url",
    ["ftp://example.org/scim", "javascript:alert(1)", "http://", "not a url", "http://h/scim?x=1"],
)
def test_a_base_url_that_is_not_http_is_refused(api: httpx.Client, base_url: str) -> None:
    body = assert_problem(api.post("/apps", json=scim_app("bad-url", base_url)), 422)
    assert "base_url" in str(body["field"])
    assert api.get("/apps").json()["items"] == []


def test_bad_app_names_and_duplicates(api: httpx.Client, target: str) -> None:
    assert_problem(api.post("/apps", json=scim_app("Has Spaces", target)), 422)
    assert api.post("/apps", json=scim_app("wiki", target)).status_code == 201
    assert_problem(api.post("/apps", json=scim_app("wiki", target)), 409)


def test_enabling_with_wrong_credentials_is_refused_with_the_reason(
    api: httpx.Client, target: str
) -> None:
    spec = scim_app("wrong-token", target)
    spec["connector"]["auth"]["token"] = "wrong"
    app = api.post("/apps", json=spec).json()
    settings = api.get(f"/apps/{app['id']}/provisioning").json()
    body = assert_problem(
        api.put(f"/apps/{app['id']}/provisioning", json={**settings, "enabled": True}), 409
    )
    assert "401" in str(body["detail"]) and "credentials" in str(body["detail"])
    assert api.get(f"/apps/{app['id']}/provisioning").json()["enabled"] is False
    events = api.get("/logs", params={"action": "app.provisioning.test"}).json()["items"]
    assert events and events[0]["outcome"] == "failure"


@pytest.fixture
def html_server() -> Iterator[str]:
    """A real server that answers every request with an HTML page (a login portal, say)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                page = b"<html><body>Sign in</body></html>"
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
                    b"Content-Length: " + str(len(page)).encode() + b"\r\n\r\n" + page
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/scim/v2"
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def test_a_target_answering_html_is_explained(api: httpx.Client, html_server: str) -> None:
    app = api.post("/apps", json=scim_app("portal", html_server)).json()
    report = api.post(f"/apps/{app['id']}/provisioning/test").json()
    assert report["ok"] is False
    assert "text/html" in report["reason"] and "not SCIM JSON" in report["reason"]


def test_credentials_are_write_only(api: httpx.Client, target: str) -> None:
    spec = scim_app("secretive", target)
    spec["connector"]["auth"]["token"] = "s3cr3t-token-value"
    created = api.post("/apps", json=spec)
    app = created.json()
    assert "s3cr3t-token-value" not in created.text
    assert "s3cr3t-token-value" not in api.get(f"/apps/{app['id']}").text
    assert "s3cr3t-token-value" not in api.get("/logs").text
    # Moving the base URL keeps the stored token.
    moved = api.patch(f"/apps/{app['id']}", json={"connector": {"base_url": target + "/"}})
    assert moved.status_code == 200, moved.text
    assert moved.json()["connector"]["auth"]["secret_set"] is True


def test_moving_an_app_to_another_host_needs_the_secret_again(api: httpx.Client, target: str) -> None:
    app = api.post("/apps", json=scim_app("moving", target)).json()
    elsewhere = target.replace("127.0.0.1", "localhost")
    refused = api.patch(f"/apps/{app['id']}", json={"connector": {"base_url": elsewhere}})
    body = assert_problem(refused, 422)
    assert body["field"] == "connector.auth"
    assert api.get(f"/apps/{app['id']}").json()["connector"]["base_url"] == target
    moved = api.patch(f"/apps/{app['id']}", json={"connector": {
        "base_url": elsewhere, "auth": {"type": "bearer", "token": "target-token"}}})
    assert moved.status_code == 200, moved.text
