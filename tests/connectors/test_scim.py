"""ScimConnector over real HTTP on 127.0.0.1.

The well-behaved peer is the stock scim2-server (the demo target, in a subprocess); the
misbehaving ones (wrong content, silence, 429/503/400, token endpoints) are tiny real servers
from ``conftest.py``. Tests are plain functions driving the connector with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from provisiond.connectors.base import ConnectionReport, Quirks
from provisiond.connectors.scim import ScimConnector
from provisiond.connectors.scim_auth import TOKEN_RESPONSE_MAX_BYTES
from provisiond.domain.apps import (
    BasicAuth,
    BearerAuth,
    NoAuth,
    OAuth2ClientCredentials,
    ScimConnectorSettings,
)
from provisiond.engine.planner import Change
from provisiond.errors import (
    ConnectorError,
    RateLimited,
    RemoteConflict,
    RemoteNotFound,
    TerminalError,
    TransientError,
)
from tests.connectors.conftest import LOOPBACK

T = TypeVar("T")

SCIM_JSON = "application/scim+json"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"


def run(
    settings: ScimConnectorSettings,
    scenario: Callable[[ScimConnector], Awaitable[T]],
    **options: Any,
) -> T:
    """Run ``scenario`` against a fresh connector in its own event loop, always closing it."""

    async def main() -> T:
        connector = ScimConnector(settings, **{"policy": LOOPBACK, **options})
        try:
            return await scenario(connector)
        finally:
            await connector.aclose()

    return asyncio.run(main())


def check_connection(settings: ScimConnectorSettings) -> ConnectionReport:
    return run(settings, lambda connector: connector.test_connection())


def unique(prefix: str) -> str:
    """The demo target lives for the whole module: every test uses its own userNames."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# What the tiny servers' responders return (see conftest.py): status, headers, body.
Reply = tuple[int, dict[str, str], bytes]


def reply(status: int, body: bytes, content_type: str | None, **headers: str) -> Reply:
    if content_type:
        headers["Content-Type"] = content_type
    return status, headers, body


def scim_reply(status: int, body: Any, **headers: str) -> Reply:
    return reply(status, json.dumps(body).encode(), SCIM_JSON, **headers)


def scim_error(status: int, detail: str, scim_type: str | None = None, **headers: str) -> Reply:
    body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return scim_reply(status, body, **headers)


SERVICE_PROVIDER_CONFIG = {
    "schemas": [SPC_SCHEMA],
    "patch": {"supported": True},
    "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
    "filter": {"supported": True, "maxResults": 50},
    "changePassword": {"supported": False},
    "sort": {"supported": False},
    "etag": {"supported": False},
    "authenticationSchemes": [],
}


class TinyScimApp:
    """Just enough SCIM for the authentication tests: discovery, a listing and one user."""

    user = {"schemas": [CORE_USER], "id": "u-1", "userName": "bob@example.org"}

    def answer(self, path: str) -> Reply:
        route = urlsplit(path).path.removeprefix("/scim/v2")
        if route == "/ServiceProviderConfig":
            return scim_reply(200, SERVICE_PROVIDER_CONFIG)
        if route == "/Users":
            listing = {"schemas": [LIST_SCHEMA], "totalResults": 1, "Resources": [self.user]}
            return scim_reply(200, listing)
        if route == "/Users/u-1":
            return scim_reply(200, self.user)
        return scim_error(404, f"no resource at {route}")


# -- test_connection ------------------------------------------------------------------------------


def test_connection_succeeds_and_reads_the_quirks(scim_settings: ScimConnectorSettings) -> None:
    async def scenario(connector: ScimConnector) -> tuple[ConnectionReport, Quirks]:
        report = await connector.test_connection()
        return report, await connector.quirks()

    report, quirks = run(scim_settings, scenario)

    assert report.ok, report.as_dict()
    assert report.reason is None
    assert [(step.name, step.ok) for step in report.steps] == [
        ("discovery", True),
        ("authenticated read", True),
    ]
    assert "PATCH yes" in report.steps[0].detail
    assert "filter yes" in report.steps[0].detail
    assert report.quirks is not None
    assert report.quirks.patch
    assert report.quirks.filter
    # The page size: the profile's (100), as scim2-server's filter.maxResults (1000) allows.
    assert report.quirks.max_results == 100
    assert quirks == report.quirks  # the connection test primes the connector's quirks


def test_connection_reads_patch_unsupported(no_patch_settings: ScimConnectorSettings) -> None:
    report = check_connection(no_patch_settings)

    assert report.ok, report.as_dict()
    assert report.quirks is not None
    assert not report.quirks.patch
    assert report.quirks.filter
    assert "PATCH no" in report.steps[0].detail


def test_connection_with_a_wrong_bearer_token_blames_the_credentials(scim_target: str) -> None:
    settings = ScimConnectorSettings(base_url=scim_target, auth=BearerAuth(token="not-the-token"))

    report = check_connection(settings)

    assert not report.ok
    assert report.reason is not None
    assert "401" in report.reason
    assert "credentials" in report.reason
    # scim2-server publishes discovery without authentication: the read step is the one failing
    assert report.steps[0].ok
    assert report.steps[1].name == "authenticated read"
    assert not report.steps[1].ok


def test_connection_with_a_wrong_base_path_says_it_is_not_a_scim_root(
    scim_settings: ScimConnectorSettings,
) -> None:
    wrong = scim_settings.base_url.removesuffix("/v2") + "/api"
    settings = scim_settings.model_copy(update={"base_url": wrong})  # right token, wrong path

    report = check_connection(settings)

    assert not report.ok
    assert report.reason is not None
    assert "404" in report.reason
    assert "not a SCIM root" in report.reason
    assert f"{wrong}/Users" in report.reason


def test_connection_to_a_closed_port_says_it_cannot_reach(unreachable_url: str) -> None:
    report = check_connection(ScimConnectorSettings(base_url=f"{unreachable_url}/scim/v2"))

    assert not report.ok
    assert report.reason is not None
    assert report.reason.startswith("discovery: ")
    assert "cannot reach" in report.reason
    assert unreachable_url in report.reason


def test_connection_to_an_html_page_says_not_scim_json(serve: Any) -> None:
    page = b"<!doctype html><html><body><h1>Welcome to the portal</h1></body></html>"
    server = serve(lambda request: reply(200, page, "text/html; charset=utf-8"))

    report = check_connection(ScimConnectorSettings(base_url=f"{server.url}/scim/v2"))

    assert not report.ok
    assert report.reason is not None
    assert "not SCIM JSON" in report.reason
    assert "text/html" in report.reason
    assert [request.path for request in server.requests] == ["/scim/v2/ServiceProviderConfig"]


def test_connection_to_malformed_json_says_so(serve: Any) -> None:
    server = serve(lambda request: reply(200, b'{"schemas": ["urn:ietf:par', SCIM_JSON))

    report = check_connection(ScimConnectorSettings(base_url=f"{server.url}/scim/v2"))

    assert not report.ok
    assert report.reason is not None
    assert "malformed JSON" in report.reason


def test_connection_to_a_silent_peer_gives_up_after_the_timeout(silent_url: str) -> None:
    settings = ScimConnectorSettings(base_url=f"{silent_url}/scim/v2", timeout_seconds=0.5)

    started = time.monotonic()
    report = check_connection(settings)
    elapsed = time.monotonic() - started

    assert not report.ok
    assert report.reason is not None
    assert "no answer within 0.5 s" in report.reason
    assert elapsed < 2


def test_connection_without_a_service_provider_config_assumes_the_rfc_defaults(
    serve: Any,
) -> None:
    def responder(request: Any) -> Any:
        if request.path.startswith("/scim/v2/Users"):
            return scim_reply(200, {"schemas": [LIST_SCHEMA], "totalResults": 0, "Resources": []})
        return scim_error(404, "not here")

    server = serve(responder)

    report = check_connection(ScimConnectorSettings(base_url=f"{server.url}/scim/v2"))

    assert report.ok, report.as_dict()
    assert report.quirks == Quirks()
    assert "no ServiceProviderConfig" in report.steps[0].detail


# -- users against the real scim2-server ----------------------------------------------------------


def alice(user_name: str) -> dict[str, Any]:
    return {
        "userName": user_name,
        "externalId": f"ext-{user_name}",
        "displayName": "Alice Liddell",
        "title": "Engineer",
        "active": True,
        "emails": [{"value": f"{user_name}@example.org", "primary": True, "type": "work"}],
    }


def test_create_then_get_and_find(scim_settings: ScimConnectorSettings) -> None:
    user_name = unique("alice")

    async def scenario(connector: ScimConnector) -> Any:
        created = await connector.create_user(alice(user_name))
        return (
            created,
            await connector.get_user(created.remote_id),
            await connector.find_user("userName", user_name),
            await connector.find_user("externalId", f"ext-{user_name}"),
            await connector.find_user("userName", unique("nobody")),
        )

    created, fetched, by_user_name, by_external_id, nobody = run(scim_settings, scenario)

    assert created.remote_id
    assert created.attributes["userName"] == user_name
    assert created.attributes["displayName"] == "Alice Liddell"
    assert created.active
    assert fetched is not None
    assert fetched.remote_id == created.remote_id
    assert fetched.attributes["title"] == "Engineer"
    assert fetched.attributes["emails"][0]["value"] == f"{user_name}@example.org"
    assert by_user_name is not None
    assert by_user_name.remote_id == created.remote_id
    assert by_external_id is not None
    assert by_external_id.remote_id == created.remote_id
    assert nobody is None


def test_create_with_a_taken_user_name_raises_remote_conflict(
    scim_settings: ScimConnectorSettings,
) -> None:
    user_name = unique("dup")

    async def scenario(connector: ScimConnector) -> None:
        await connector.create_user({"userName": user_name})
        await connector.create_user({"userName": user_name, "displayName": "Someone else"})

    with pytest.raises(RemoteConflict) as caught:
        run(scim_settings, scenario)

    assert caught.value.http_status == 409
    assert not caught.value.retryable
    assert "POST /Users answered 409" in caught.value.detail
    assert "uniqueness" in caught.value.detail  # the SCIM error's scimType


def test_update_patches_replace_and_remove(scim_settings: ScimConnectorSettings) -> None:
    user_name = unique("patched")

    async def scenario(connector: ScimConnector) -> Any:
        created = await connector.create_user(alice(user_name))
        changes = [
            Change("displayName", "Alice Liddell", "Alice Pleasance Liddell"),
            Change("title", "Engineer", None),
        ]
        managed = {"userName": user_name, "displayName": "Alice Pleasance Liddell"}
        await connector.update_user(created.remote_id, changes, managed)
        return await connector.get_user(created.remote_id)

    after = run(scim_settings, scenario)

    assert after is not None
    assert after.attributes["displayName"] == "Alice Pleasance Liddell"  # replaced
    assert "title" not in after.attributes  # removed
    # PATCH touches only the changed attributes: the rest of the account is as created
    assert after.attributes["emails"][0]["value"] == f"{user_name}@example.org"
    assert after.attributes["externalId"] == f"ext-{user_name}"
    assert after.active


class RecordingTransport(httpx.AsyncBaseTransport):
    """Real HTTP (httpx's own transport), noting each request's method and path on the way."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.sent: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def test_update_without_patch_support_replaces_the_account_with_put(
    no_patch_settings: ScimConnectorSettings,
) -> None:
    user_name = unique("replaced")

    async def scenario(connector: ScimConnector) -> Any:
        created = await connector.create_user(alice(user_name))
        managed = {"userName": user_name, "displayName": "Alice P. Liddell", "active": True}
        await connector.update_user(
            created.remote_id,
            [Change("displayName", "Alice Liddell", "Alice P. Liddell")],
            managed,
        )
        return created, await connector.get_user(created.remote_id)

    async def recorded() -> Any:
        transport = RecordingTransport()
        connector = ScimConnector(no_patch_settings, transport=transport)
        try:
            return await scenario(connector), transport.sent
        finally:
            await connector.aclose()

    (created, after), sent = asyncio.run(recorded())

    assert created.attributes["title"] == "Engineer"
    assert created.attributes["emails"]
    assert after is not None
    assert after.remote_id == created.remote_id
    assert after.attributes["userName"] == user_name
    assert after.attributes["displayName"] == "Alice P. Liddell"
    assert after.active
    # RFC 7644 §3.5.1 replacement: what the PUT did not carry is gone, which PATCH would have kept
    assert "title" not in after.attributes
    assert "emails" not in after.attributes
    assert "externalId" not in after.attributes
    methods = [method for method, _ in sent]
    assert ("PUT", f"/v2/Users/{created.remote_id}") in sent
    assert "PATCH" not in methods


def test_get_of_an_unknown_id_returns_none(scim_settings: ScimConnectorSettings) -> None:
    assert run(scim_settings, lambda connector: connector.get_user(uuid.uuid4().hex)) is None


def test_delete_removes_the_account_and_is_idempotent(
    scim_settings: ScimConnectorSettings,
) -> None:
    user_name = unique("leaver")

    async def scenario(connector: ScimConnector) -> Any:
        created = await connector.create_user({"userName": user_name})
        await connector.delete_user(created.remote_id)
        gone = await connector.get_user(created.remote_id)
        found = await connector.find_user("userName", user_name)
        await connector.delete_user(created.remote_id)  # already gone: no error
        await connector.delete_user(uuid.uuid4().hex)  # never existed: no error
        return gone, found

    gone, found = run(scim_settings, scenario)

    assert gone is None
    assert found is None


def test_update_of_an_unknown_id_raises_remote_not_found(
    scim_settings: ScimConnectorSettings, no_patch_settings: ScimConnectorSettings
) -> None:
    missing = uuid.uuid4().hex
    change = [Change("displayName", "Old", "New")]

    for settings, verb in ((scim_settings, "PATCH"), (no_patch_settings, "PUT")):
        with pytest.raises(RemoteNotFound) as caught:
            run(
                settings,
                lambda connector: connector.update_user(
                    missing, change, {"userName": "ghost", "displayName": "New"}
                ),
            )
        assert caught.value.http_status == 404
        assert not caught.value.retryable
        assert verb in caught.value.detail
        assert missing in caught.value.detail


# -- error statuses from a misbehaving real server ------------------------------------------------


def test_429_raises_rate_limited_with_the_retry_after_seconds(serve: Any) -> None:
    server = serve(lambda request: scim_error(429, "slow down", **{"Retry-After": "7"}))
    settings = ScimConnectorSettings(base_url=f"{server.url}/scim/v2")

    with pytest.raises(RateLimited) as caught:
        run(settings, lambda connector: connector.get_user("u-1"))

    assert caught.value.retry_after == 7
    assert caught.value.http_status == 429
    assert caught.value.retryable
    assert isinstance(caught.value, TransientError)
    assert "slow down" in caught.value.detail


def test_429_with_an_http_date_retry_after(serve: Any) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    server = serve(lambda request: reply(429, b"", None, **{"Retry-After": when}))
    settings = ScimConnectorSettings(base_url=f"{server.url}/scim/v2")

    with pytest.raises(RateLimited) as caught:
        run(settings, lambda connector: connector.get_user("u-1"))

    assert caught.value.retry_after is not None
    assert 25 <= caught.value.retry_after <= 31


def test_503_raises_a_retryable_transient_error(serve: Any) -> None:
    server = serve(lambda request: scim_error(503, "maintenance window"))
    settings = ScimConnectorSettings(base_url=f"{server.url}/scim/v2")

    with pytest.raises(TransientError) as caught:
        run(settings, lambda connector: connector.get_user("u-1"))

    assert type(caught.value) is TransientError
    assert caught.value.retryable
    assert caught.value.http_status == 503
    assert "503" in caught.value.detail
    assert "maintenance window" in caught.value.detail


def test_400_with_a_scim_error_raises_a_terminal_error_carrying_the_detail(serve: Any) -> None:
    detail = "Attribute 'emails[0].value' is not a valid email address"
    server = serve(lambda request: scim_error(400, detail, "invalidValue"))
    settings = ScimConnectorSettings(base_url=f"{server.url}/scim/v2")

    with pytest.raises(TerminalError) as caught:
        run(settings, lambda connector: connector.create_user({"userName": "carol"}))

    assert type(caught.value) is TerminalError
    assert not caught.value.retryable
    assert caught.value.http_status == 400
    assert detail in caught.value.detail
    assert "invalidValue" in caught.value.detail
    assert "POST /Users answered 400" in caught.value.detail
    [request] = server.requests
    assert request.method == "POST"
    assert json.loads(request.body)["userName"] == "carol"
    assert request.headers["content-type"] == SCIM_JSON


# -- authentication -------------------------------------------------------------------------------


def basic_credentials(user: str, password: str) -> str:
    """An HTTP Basic ``Authorization`` value (RFC 7617), as the servers expect it."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class BasicAuthApp(TinyScimApp):
    def __init__(self, username: str, password: str) -> None:
        self.expected = basic_credentials(username, password)

    def __call__(self, request: Any) -> Reply:
        if request.headers.get("authorization") != self.expected:
            return scim_error(401, "bad username or password")
        return self.answer(request.path)


def test_basic_auth_sends_the_credentials(serve: Any) -> None:
    server = serve(BasicAuthApp("svc-provisiond", "pa55:word"))
    settings = ScimConnectorSettings(
        base_url=f"{server.url}/scim/v2",
        auth=BasicAuth(username="svc-provisiond", password="pa55:word"),
    )

    async def scenario(connector: ScimConnector) -> Any:
        return await connector.test_connection(), await connector.get_user("u-1")

    report, user = run(settings, scenario)

    assert report.ok, report.as_dict()
    assert report.quirks is not None
    assert report.quirks.max_results == 50
    assert user is not None
    assert user.attributes["userName"] == "bob@example.org"
    assert len(server.requests) == 3


def test_basic_auth_with_a_wrong_password_blames_the_credentials(serve: Any) -> None:
    server = serve(BasicAuthApp("svc-provisiond", "pa55:word"))
    settings = ScimConnectorSettings(
        base_url=f"{server.url}/scim/v2",
        auth=BasicAuth(username="svc-provisiond", password="guess"),
    )

    report = check_connection(settings)

    assert not report.ok
    assert report.reason is not None
    assert "401" in report.reason
    assert "credentials" in report.reason
    assert "bad username or password" in report.reason


class OAuthApp(TinyScimApp):
    """A token endpoint (RFC 6749 §4.4, client authenticated with HTTP Basic) and a SCIM API
    accepting only the bearer tokens it issued and has not revoked."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.expected = basic_credentials(client_id, client_secret)
        self.lock = threading.Lock()
        self.grants: list[dict[str, list[str]]] = []
        self.valid: set[str] = set()

    def revoke_all(self) -> None:
        with self.lock:
            self.valid.clear()

    def __call__(self, request: Any) -> Reply:
        if request.path == "/oauth/token":
            if request.method != "POST" or request.headers.get("authorization") != self.expected:
                body = {"error": "invalid_client"}
                return reply(401, json.dumps(body).encode(), "application/json")
            with self.lock:
                self.grants.append(parse_qs(request.body.decode()))
                token = f"token-{len(self.grants)}"
                self.valid.add(token)
            body = {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
            return reply(200, json.dumps(body).encode(), "application/json")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self.lock:
            valid = scheme == "Bearer" and token in self.valid
        if not valid:
            return scim_error(401, "invalid or expired token")
        return self.answer(request.path)


def oauth_settings(server: Any, secret: str) -> ScimConnectorSettings:
    return ScimConnectorSettings(
        base_url=f"{server.url}/scim/v2",
        auth=OAuth2ClientCredentials(
            token_url=f"{server.url}/oauth/token",
            client_id="provisiond",
            client_secret=secret,
            scope="scim.write",
        ),
    )


def test_oauth2_fetches_one_token_and_reuses_it(serve: Any) -> None:
    app = OAuthApp("provisiond", "client-secret")
    server = serve(app)

    async def scenario(connector: ScimConnector) -> Any:
        report = await connector.test_connection()
        users = await asyncio.gather(*(connector.get_user("u-1") for _ in range(8)))
        return report, users

    report, users = run(oauth_settings(server, "client-secret"), scenario)

    assert report.ok, report.as_dict()
    assert all(user is not None and user.remote_id == "u-1" for user in users)
    assert app.grants == [{"grant_type": ["client_credentials"], "scope": ["scim.write"]}]
    scim_requests = [r for r in server.requests if r.path.startswith("/scim/v2/")]
    assert len(scim_requests) == 10
    assert {r.headers["authorization"] for r in scim_requests} == {"Bearer token-1"}


def test_oauth2_fetches_a_new_token_when_the_api_rejects_the_old_one(serve: Any) -> None:
    app = OAuthApp("provisiond", "client-secret")
    server = serve(app)

    async def scenario(connector: ScimConnector) -> Any:
        first = await connector.get_user("u-1")
        app.revoke_all()
        second = await connector.get_user("u-1")
        return first, second

    first, second = run(oauth_settings(server, "client-secret"), scenario)

    assert first is not None
    assert second is not None
    assert len(app.grants) == 2
    scim_auth = [r.headers["authorization"] for r in server.requests if r.path.startswith("/scim")]
    assert scim_auth == ["Bearer token-1", "Bearer token-1", "Bearer token-2"]


def test_oauth2_requests_refused_together_share_one_new_token(serve: Any) -> None:
    app = OAuthApp("provisiond", "client-secret")
    server = serve(app)

    async def scenario(connector: ScimConnector) -> Any:
        await connector.get_user("u-1")
        app.revoke_all()
        return await asyncio.gather(*(connector.get_user("u-1") for _ in range(8)))

    users = run(oauth_settings(server, "client-secret"), scenario)

    assert all(user is not None for user in users)
    assert len(app.grants) == 2  # not one new token for each refused request


def test_oauth2_with_a_wrong_client_secret_is_terminal_and_names_the_token_endpoint(
    serve: Any,
) -> None:
    app = OAuthApp("provisiond", "client-secret")
    server = serve(app)
    settings = oauth_settings(server, "wrong-secret")

    with pytest.raises(TerminalError) as caught:
        run(settings, lambda connector: connector.get_user("u-1"))
    report = check_connection(settings)

    assert not caught.value.retryable
    assert caught.value.http_status == 401
    assert f"token endpoint {server.url}/oauth/token" in caught.value.detail
    assert "invalid_client" in caught.value.detail
    assert not report.ok
    assert report.reason is not None
    assert "token endpoint" in report.reason
    assert not app.grants
    assert all(request.path == "/oauth/token" for request in server.requests)


def test_oauth2_token_answers_are_read_only_up_to_a_cap(serve: Any) -> None:
    huge = json.dumps({"access_token": "t" * 2_000_000, "token_type": "Bearer"}).encode()
    server = serve(lambda request: reply(200, huge, "application/json"))

    with pytest.raises(TerminalError) as caught:
        run(oauth_settings(server, "client-secret"), lambda connector: connector.get_user("u-1"))

    assert f"answered more than {TOKEN_RESPONSE_MAX_BYTES} bytes" in caught.value.detail
    assert all(request.path == "/oauth/token" for request in server.requests)


def test_oauth2_error_descriptions_never_echo_the_secret(serve: Any) -> None:
    said = {"error": "invalid_client", "error_description": "bad secret client-secret"}
    server = serve(lambda request: reply(401, json.dumps(said).encode(), "application/json"))

    with pytest.raises(TerminalError) as caught:
        run(oauth_settings(server, "client-secret"), lambda connector: connector.get_user("u-1"))

    assert "401 invalid_client bad secret [redacted]" in caught.value.detail
    assert "client-secret" not in caught.value.detail


def test_no_auth_sends_no_authorization_header(serve: Any) -> None:
    server = serve(lambda request: TinyScimApp().answer(request.path))
    settings = ScimConnectorSettings(base_url=f"{server.url}/scim/v2", auth=NoAuth())

    user = run(settings, lambda connector: connector.get_user("u-1"))

    assert user is not None
    [request] = server.requests
    assert "authorization" not in request.headers
    assert request.headers["accept"] == SCIM_JSON


# -- rate limit -----------------------------------------------------------------------------------


def test_rate_limit_spreads_thirty_requests_over_about_a_second(
    scim_settings: ScimConnectorSettings,
) -> None:
    async def scenario(connector: ScimConnector) -> float:
        started = time.monotonic()
        await asyncio.gather(*(connector.get_user(uuid.uuid4().hex) for _ in range(30)))
        return time.monotonic() - started

    elapsed = run(scim_settings, scenario, concurrency=8, rate_limit_per_second=20)

    # 20 a second: whatever the burst allowance, 30 requests cannot all go within 0.9 s
    assert elapsed >= 0.9


def test_errors_are_connector_errors(unreachable_url: str) -> None:
    """Whatever goes wrong reaches the executor as a ConnectorError, never a raw httpx error."""
    settings = ScimConnectorSettings(base_url=f"{unreachable_url}/scim/v2")

    with pytest.raises(ConnectorError) as caught:
        run(settings, lambda connector: connector.get_user("u-1"))

    assert isinstance(caught.value, TransientError)
    assert "cannot reach" in caught.value.detail


def test_a_409_on_update_or_delete_is_a_failure_not_a_success() -> None:
    import httpx as _httpx

    from provisiond.connectors.scim import ScimConnector
    from provisiond.domain.apps import ScimConnectorSettings
    from provisiond.engine.planner import Change
    from provisiond.errors import RemoteConflict, TerminalError

    def answer(request: _httpx.Request) -> _httpx.Response:
        if request.url.path.endswith("ServiceProviderConfig"):
            return _httpx.Response(404)
        return _httpx.Response(409, json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                                          "status": "409", "detail": "user still owns resources"})

    async def run() -> list[Exception]:
        # A fault no real server here produces on demand: a mock transport, as the standards allow.
        connector = ScimConnector(ScimConnectorSettings(base_url="http://app.test/v2"),
                                  transport=_httpx.MockTransport(answer))
        errors: list[Exception] = []
        for call in (lambda: connector.update_user("r1", [Change("active", True, False)], {"active": False}),
                     lambda: connector.delete_user("r1")):
            try:
                await call()
            except TerminalError as exc:
                errors.append(exc)
        await connector.aclose()
        return errors

    errors = asyncio.run(run())
    assert len(errors) == 2
    assert all("user still owns resources" in str(e) for e in errors)
    assert not any(isinstance(e, RemoteConflict) for e in errors)  # 409 adoption is for creates only


def test_extension_attributes_are_patched_one_path_each() -> None:
    from provisiond.connectors.scim import _patch_paths
    from provisiond.engine.planner import Change

    urn = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    paths = _patch_paths([Change(urn, {"department": "Sales", "costCenter": "1"}, {"department": "Eng", "costCenter": "1"})])
    assert paths == [(f"{urn}:department", "Eng")]


def test_an_empty_listing_that_passed_passes_again_and_a_wrong_one_is_still_refused() -> None:
    """``parse_list`` remembers empty answers it validated (the lookup before each create):
    the same body passes without scim2-models, and any other is checked in full."""
    from provisiond.connectors.scim_answers import _EMPTY_LISTINGS
    from provisiond.connectors.scim_answers import parse_list as _parse_list

    good = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": 0, "Resources": []}
    assert _parse_list(good) == [] and _parse_list(dict(good)) == []
    assert any('"totalResults": 0' in body for body in _EMPTY_LISTINGS)
    for wrong in (
        {**good, "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]},
        {**good, "totalResults": "none"},
    ):
        with pytest.raises(TerminalError, match="not a SCIM ListResponse"):
            _parse_list(wrong)
        with pytest.raises(TerminalError, match="not a SCIM ListResponse"):
            _parse_list(wrong)  # not remembered either
