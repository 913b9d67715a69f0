"""A real OAuth 2.0 token endpoint and a SCIM app that accepts only the tokens it issued.

One ASGI application, served by uvicorn on 127.0.0.1 like the other test servers:

- ``POST /oauth/token``: the client credentials grant (RFC 6749 §4.4), the client authenticated
  by HTTP Basic or by the form body (§2.3.1, never both), answering ``access_token``,
  ``token_type`` and ``expires_in`` (§5.1) or an error (§5.2);
- ``/v2/...``: the stock scim2-server, refusing (401) any bearer token that the endpoint did not
  issue, that has expired or that was revoked.

The issuer's record (grants, refusals) is what the app saw, not the connector's account of it.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from scim2_models import UnauthorizedException
from scim2_server.requests import ScimRequest

from provisiond.demo.target import BearerTokenASGIApplication
from tests.support.servers import serve_app

Scope = dict[str, Any]  # scim2-server types ASGI scopes as dict


@dataclass(frozen=True)
class Grant:
    token: str
    method: str  # how the client authenticated: client_secret_basic or client_secret_post
    scope: str | None
    expires_at: float  # time.monotonic()


@dataclass
class TokenIssuer:
    client_id: str
    client_secret: str
    expires_in: float = 3600.0
    grants: list[Grant] = field(default_factory=list)
    refused_tokens: list[str] = field(default_factory=list)  # bearer tokens the SCIM side refused
    refused_clients: int = 0  # token requests refused for bad client credentials
    _revoked: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self, method: str, scope: str | None, expires_in: float | None = None) -> Grant:
        """A new token; a test may issue one to itself to look at the app (method "test")."""
        with self._lock:
            grant = Grant(
                token=f"issued-{len(self.grants) + 1}",
                method=method,
                scope=scope,
                expires_at=time.monotonic() + (expires_in or self.expires_in),
            )
            self.grants.append(grant)
            return grant

    def accepts(self, token: str) -> bool:
        with self._lock:
            return any(
                grant.token == token
                and token not in self._revoked
                and time.monotonic() < grant.expires_at
                for grant in self.grants
            )

    def client_grants(self) -> list[Grant]:
        """The tokens issued to the client (those a test issued itself left out)."""
        with self._lock:
            return [grant for grant in self.grants if grant.method != "test"]

    def revoke_all(self) -> None:
        with self._lock:
            self._revoked |= {grant.token for grant in self.grants}

    def refuse(self, token: str) -> None:
        with self._lock:
            self.refused_tokens.append(token)


class _IssuedTokensScim(BearerTokenASGIApplication):
    """scim2-server, checking each request's bearer token against the issuer's."""

    def __init__(self, issuer: TokenIssuer) -> None:
        super().__init__(["(announces bearer authentication; checked by the issuer)"])
        self.issuer = issuer

    def check_auth(self, request: ScimRequest) -> None:
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not self.issuer.accepts(token):
            self.issuer.refuse(token)
            raise UnauthorizedException


class OAuthTarget:
    """ASGI: the token endpoint at /oauth/token, the SCIM app at /v2, /healthz for start-up."""

    def __init__(self, issuer: TokenIssuer) -> None:
        self.issuer = issuer
        self.scim = _IssuedTokensScim(issuer)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.scim(scope, receive, send)
        elif scope["path"] == "/healthz":
            await _answer(send, 200, {"ok": True})
        elif scope["path"] == "/oauth/token":
            await self._token(scope, receive, send)
        else:
            await self.scim(scope, receive, send)

    async def _token(self, scope: Scope, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] != "POST":
            await _answer(send, 405, {"error": "invalid_request"})
            return
        form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
        headers = {key.decode().lower(): value.decode() for key, value in scope["headers"]}
        basic = _basic_credentials(headers.get("authorization", ""))
        posted = (form.get("client_id"), form.get("client_secret"))
        if basic is not None and posted[1] is not None:
            # RFC 6749 §2.3: the client MUST NOT use more than one authentication method.
            await _answer(send, 400, {"error": "invalid_request"})
            return
        method = "client_secret_basic" if basic is not None else "client_secret_post"
        if (basic or posted) != (self.issuer.client_id, self.issuer.client_secret):
            with self.issuer._lock:
                self.issuer.refused_clients += 1
            challenge = {"www-authenticate": 'Basic realm="token"'} if basic else {}
            # RFC 6749 §5.2: 401 when the client tried HTTP Basic, else 400 or 401.
            await _answer(
                send,
                401,
                {"error": "invalid_client", "error_description": "client authentication failed"},
                challenge,
            )
            return
        if form.get("grant_type") != "client_credentials":
            await _answer(send, 400, {"error": "unsupported_grant_type"})
            return
        grant = self.issuer.issue(method, form.get("scope"))
        await _answer(
            send,
            200,
            {
                "access_token": grant.token,
                "token_type": "Bearer",
                "expires_in": self.issuer.expires_in,
            },
            {"cache-control": "no-store"},  # RFC 6749 §5.1
        )


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    user, _, password = base64.b64decode(encoded).decode().partition(":")
    # RFC 6749 §2.3.1: both were form-urlencoded before they were joined.
    return unquote_plus(user), unquote_plus(password)


async def _answer(send: Any, status: int, body: dict[str, Any], headers: Any = None) -> None:
    raw = json.dumps(body).encode()
    extra = [(key.encode(), value.encode()) for key, value in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *extra],
        }
    )
    await send({"type": "http.response.body", "body": raw})


@contextmanager
def oauth_target(issuer: TokenIssuer) -> Iterator[str]:
    """Serve the token endpoint and the SCIM app; yields the server's root URL
    (the SCIM base is ``{root}/v2``, the token endpoint ``{root}/oauth/token``)."""
    with serve_app(OAuthTarget(issuer)) as url:
        yield url
