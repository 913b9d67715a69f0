"""A hostile app through the whole system: failures are recorded and visible, never a 500, and
the connection test tells no reader but a super admin what some host's port answered."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from provisiond.runtime import Runtime
from provisiond.services import tokens
from provisiond.services.context import SYSTEM
from tests.e2e.conftest import eventually, person, scim_app
from tests.e2e.test_failures import enabled_app
from tests.support.faulty import Fault, FaultyTarget
from tests.support.servers import free_port

TARGET_TOKEN = "target-token"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
HTML_SECRET = "intranet-only-banner-7f3a"
JSON_SECRET = "json-error-detail-91c2"



def assign_new_user(api: httpx.Client, app_id: str, login: str) -> None:
    user = api.post("/users", json=person(login)).json()
    answer = api.post(
        f"/apps/{app_id}/assignments", json={"principal_type": "user", "principal_id": user["id"]}
    )
    assert answer.status_code == 201, answer.text


def dead_task(api: httpx.Client, app_id: str) -> dict[str, Any]:
    found: dict[str, Any] = eventually(
        lambda: api.get("/tasks", params={"status": "dead", "app": app_id}).json()["items"],
        timeout=30,
    )[0]
    return found


def test_a_traversal_id_from_the_app_fails_the_task_and_is_never_used(
    api: httpx.Client, faulty: tuple[FaultyTarget, str]
) -> None:
    target, base = faulty
    app = enabled_app(api, "traversal", base)
    created = {"schemas": [CORE_USER], "id": "../../../../trav-escape/pwned?x=1", "userName": "x"}
    target.inject(Fault("POST", 201, times=100, body=created))
    assign_new_user(api, app["id"], "trav.ann")
    task = dead_task(api, app["id"])
    assert "answered the id '../../../../trav-escape/pwned?x=1', refused" in task["last_error"]
    assert not any("trav-escape" in path for _, path in target.requests)
    assert api.get(f"/apps/{app['id']}/accounts").json()["items"] == []  # never stored
    logged = api.get("/logs", params={"action": "task.dead"}).json()["items"]
    assert logged and "refused" in logged[0]["message"]


def test_an_answer_over_the_cap_fails_the_task_with_the_reason(
    api: httpx.Client, faulty: tuple[FaultyTarget, str]
) -> None:
    target, base = faulty
    app = enabled_app(api, "bloated", base)
    huge = {"schemas": [CORE_USER], "id": "1", "userName": "x", "title": "a" * 5_000_000}
    target.inject(Fault("POST", 201, times=100, body=huge))
    assign_new_user(api, app["id"], "big.bob")
    task = dead_task(api, app["id"])
    assert "POST /Users: the answer was refused" in task["last_error"]
    assert "PROVISIOND_CONNECTOR_MAX_RESPONSE_BYTES" in task["last_error"]


# -- the connection test is no port scanner ----------------------------------------------------


class _Answer(BaseHTTPRequestHandler):
    content_type = "text/html"
    body = b""
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def peers() -> Iterator[dict[str, str]]:
    """Base URLs of what an admin might point the test at: a closed port, a port that speaks
    something else, an intranet web page, a JSON service that is not SCIM."""

    class Html(_Answer):
        body = f"<html><title>{HTML_SECRET}</title></html>".encode()

    class Json(_Answer):
        content_type, status = "application/json", 400
        body = f'{{"detail": "{JSON_SECRET}"}}'.encode()

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for handler in (Html, Json)]
    for server in servers:
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    banner = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def speak() -> None:
        banner.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = banner.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.6 secret-host\r\n")

    speaker = threading.Thread(target=speak, daemon=True)
    speaker.start()
    try:
        yield {
            "closed": f"http://127.0.0.1:{free_port()}",
            "banner": f"http://127.0.0.1:{banner.getsockname()[1]}",
            "html": f"http://127.0.0.1:{servers[0].server_address[1]}",
            "json": f"http://127.0.0.1:{servers[1].server_address[1]}",
        }
    finally:
        stop.set()
        speaker.join()
        banner.close()
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def client_as(
    server: str, runtime: Runtime
) -> Iterator[Callable[..., httpx.Client]]:
    """``client_as(role, apps=[...])``: an API client with a new token of that role."""
    clients: list[httpx.Client] = []

    def make(role: str, apps: list[str] | None = None) -> httpx.Client:
        with runtime.db.session() as session:
            secret = tokens.create_token(
                session, SYSTEM, f"t-{role}-{len(clients)}", role, apps=apps or ()
            )
        clients.append(
            httpx.Client(
                base_url=f"{server}/api/v1",
                headers={"Authorization": f"Bearer {secret}"},
                timeout=60,
            )
        )
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def test_the_connection_test_shows_what_answered_only_to_super_admins(
    api: httpx.Client, peers: dict[str, str], client_as: Callable[..., httpx.Client]
) -> None:
    made = {kind: api.post("/apps", json=scim_app(f"probe-{kind}", url)).json()
            for kind, url in peers.items()}
    reader, manager = client_as("read_only"), client_as("app_admin", apps=[app["name"] for app in made.values()])
    seen_by_reader: dict[str, list[dict[str, Any]]] = {}
    for kind, app in made.items():
        report = api.post(f"/apps/{app['id']}/provisioning/test").json()
        assert report["ok"] is False
        detail = " ".join(step["detail"] for step in report["steps"])
        # Even a super admin never reads an HTML page or a banner through it.
        assert HTML_SECRET not in detail and "secret-host" not in detail
        if kind == "json":
            assert JSON_SECRET in detail  # a JSON error body is quoted, to a super admin
        for shown in (
            reader.get(f"/apps/{app['id']}").json()["last_test"],
            reader.get(f"/apps/{app['id']}/provisioning").json()["last_test"],
            manager.post(f"/apps/{app['id']}/provisioning/test").json(),
        ):
            assert JSON_SECRET not in str(shown) and HTML_SECRET not in str(shown)
            assert "secret-host" not in str(shown)
            seen_by_reader[kind] = [
                {k: step[k] for k in ("name", "ok", "detail")} for step in shown["steps"]
            ]
    # Closed, open but not HTTP, a web page, a JSON service: all the same to a non-super admin.
    views = list(seen_by_reader.values())
    assert all(view == views[0] for view in views), seen_by_reader
    assert "no SCIM answer" in views[0][0]["detail"]


def test_enabling_against_a_non_scim_port_says_why_without_the_answer(
    peers: dict[str, str], client_as: Callable[..., httpx.Client], api: httpx.Client
) -> None:
    app = api.post("/apps", json=scim_app("probe-json", peers["json"])).json()
    manager = client_as("app_admin", apps=["probe-json"])
    settings = manager.get(f"/apps/{app['id']}/provisioning").json()
    refused = manager.put(f"/apps/{app['id']}/provisioning", json={**settings, "enabled": True})
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert JSON_SECRET not in refused.text
    assert "no SCIM answer" in refused.json()["detail"]


def test_the_activity_log_tells_no_reader_what_answered(
    api: httpx.Client, peers: dict[str, str], client_as: Callable[..., httpx.Client]
) -> None:
    """The log keeps each test as an event readable by every role: it must not be the way
    around the summaries (it held the whole report, the JSON body's excerpt included)."""
    made = {kind: api.post("/apps", json=scim_app(f"logged-{kind}", url)).json()
            for kind, url in peers.items()}
    manager = client_as("app_admin", apps=[app["name"] for app in made.values()])
    for app in made.values():
        assert api.post(f"/apps/{app['id']}/provisioning/test").json()["ok"] is False
        assert manager.post(f"/apps/{app['id']}/provisioning/test").json()["ok"] is False
    reader = client_as("read_only")
    for who in (reader, manager, api):
        events = who.get("/logs", params={"action": "app.provisioning.test"}).json()["items"]
        assert len(events) == 2 * len(peers)
        assert JSON_SECRET not in str(events) and HTML_SECRET not in str(events)
        assert who.get("/logs", params={"q": JSON_SECRET}).json()["items"] == []
        steps = {
            event["targets"]["app"]: [
                {k: step[k] for k in ("name", "ok", "detail")} for step in event["details"]["steps"]
            ]
            for event in events
        }
        views = list(steps.values())
        assert all(view == views[0] for view in views), steps
        assert all("no SCIM answer" in event["message"] for event in events)
