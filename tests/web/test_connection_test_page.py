"""The console's connection test result: the details for super admins only."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.e2e.conftest import scim_app
from tests.web.conftest import MakeAdmin, post_form, sign_in

JSON_SECRET = "json-error-detail-5d0e"


class _JsonError(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f'{{"detail": "{JSON_SECRET}"}}'.encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def json_peer() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JsonError)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_test_result_quotes_the_answer_to_super_admins_only(
    server: str, api: httpx.Client, make_admin: MakeAdmin, json_peer: str
) -> None:
    app = api.post("/apps", json=scim_app("peer", json_peer)).json()
    page = f"/apps/{app['id']}/provisioning"
    make_admin("root")
    make_admin("manager", role="app_admin", apps=["peer"])
    make_admin("reader", role="read_only")
    with sign_in(server, "manager") as manager:
        ran = post_form(manager, page, f"/apps/{app['id']}/test", {})
        assert ran.status_code == 303
        shown = manager.get(page).text
        assert "Failed" in shown and "no SCIM answer" in shown
        assert JSON_SECRET not in shown
    with sign_in(server, "reader") as reader:
        shown = reader.get(page).text
        assert "no SCIM answer" in shown and JSON_SECRET not in shown
    with sign_in(server, "root") as root:
        assert JSON_SECRET in root.get(page).text
