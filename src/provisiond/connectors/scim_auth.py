"""How the SCIM connector authenticates to an app: a static bearer token, HTTP basic, or OAuth
2.0 client credentials (RFC 6749 §4.4) with a token shared by the app's requests."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import quote_plus

import httpx

from provisiond.connectors.bodies import ACCEPT_ENCODING, TooLarge, read_bounded
from provisiond.connectors.destinations import DestinationPolicy, guarded_transport
from provisiond.domain.apps import (
    BasicAuth,
    BearerAuth,
    OAuth2ClientCredentials,
    ScimConnectorSettings,
)
from provisiond.errors import TerminalError, TransientError

# A token response is a few hundred bytes (RFC 6749 §5.1); a larger one is not read into memory.
TOKEN_RESPONSE_MAX_BYTES = 64 * 1024
__all__ = ["TOKEN_RESPONSE_MAX_BYTES", "scim_auth"]


def scim_auth(
    settings: ScimConnectorSettings,
    transport: httpx.AsyncBaseTransport | None,
    max_response_bytes: int,
    policy: DestinationPolicy,
) -> httpx.Auth | None:
    auth = settings.auth
    if isinstance(auth, BearerAuth):
        return _StaticBearer(auth.token.get_secret_value())
    if isinstance(auth, BasicAuth):
        return httpx.BasicAuth(auth.username, auth.password.get_secret_value())
    if isinstance(auth, OAuth2ClientCredentials):
        return _ClientCredentials(
            auth, settings.timeout_seconds, transport, max_response_bytes, policy
        )
    return None


class _StaticBearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = self._header
        yield request


class _ClientCredentials(httpx.Auth):
    """OAuth 2.0 client credentials (RFC 6749 §4.4): one token shared by the app's requests,
    fetched again shortly before it expires, or once when the app refuses it (a 401)."""

    def __init__(
        self,
        settings: OAuth2ClientCredentials,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None,
        max_response_bytes: int,
        policy: DestinationPolicy,
    ) -> None:
        self.settings = settings
        self._timeout = timeout
        self._transport = transport
        self._max_response_bytes = max_response_bytes
        self._policy = policy
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def _fresh_token(self, *, refused: str | None = None) -> str:
        """The cached token while it is valid; a new one once it expires, or if ``refused``
        (the token the app answered 401 to) is still the cached one. Concurrent requests refused
        the same token fetch one new token between them, not one each."""
        async with self._lock:
            valid = self._token is not None and time.monotonic() < self._expires_at
            if valid and self._token != refused:
                assert self._token is not None
                return self._token
            self._token, lifetime = await self._request_token()
            # Renew ahead of the expiry (a request in flight must not carry a token that lapses
            # on the way), by a tenth of the lifetime and at most 30 s.
            self._expires_at = time.monotonic() + lifetime - min(30.0, lifetime / 10)
            return self._token

    async def _request_token(self) -> tuple[str, float]:
        settings = self.settings
        url = str(settings.token_url)
        secret = settings.client_secret.get_secret_value()
        data = {"grant_type": "client_credentials"}
        if settings.scope:
            data["scope"] = settings.scope
        headers = {"Accept": "application/json"}
        if settings.token_endpoint_auth_method == "client_secret_post":  # noqa: S105 - a name
            data |= {"client_id": settings.client_id, "client_secret": secret}
        else:
            # RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined for
            # HTTP Basic (a ':' or '%' in a secret would otherwise change its meaning).
            pair = f"{quote_plus(settings.client_id)}:{quote_plus(secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        try:
            # Its own client: the app's default headers (and its auth) are not for this host,
            # and a redirect is not followed, so the secret goes to the configured URL only.
            # The token endpoint is a destination like the app: the same policy (its own
            # resolution and checked addresses, no environment proxy) and a size cap.
            transport = self._transport or guarded_transport(self._policy, httpx.Limits())
            limit = min(TOKEN_RESPONSE_MAX_BYTES, self._max_response_bytes)
            async with httpx.AsyncClient(
                timeout=self._timeout,
                transport=transport,
                trust_env=False,
                headers={"Accept-Encoding": ACCEPT_ENCODING},
            ) as client:
                streamed = await client.send(
                    client.build_request("POST", url, data=data, headers=headers), stream=True
                )
                try:  # inflated in bounded steps: a gzip bomb is refused, not unpacked
                    response = await read_bounded(streamed, limit, f"token endpoint {url}")
                except TooLarge:
                    raise TooLarge(
                        f"token endpoint {url} answered more than {limit} bytes",
                        http_status=streamed.status_code,
                    ) from None
                finally:
                    await streamed.aclose()
                raw = response.content
        except httpx.HTTPError as exc:
            raise TransientError(f"cannot reach the token endpoint {url}: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"token endpoint {url} answered {response.status_code}")
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            payload = {}
        if response.status_code != 200:
            # RFC 6749 §5.2: an error code (invalid_client, invalid_scope, …) and perhaps a
            # description; both are the server's words, shown without anything we sent.
            said = " ".join(
                _redacted(str(payload[key]), secret)[:200]
                for key in ("error", "error_description")
                if payload.get(key)
            )
            raise TerminalError(
                f"token endpoint {url} refused the client credentials of "
                f"{settings.client_id!r}: {response.status_code} {said or response.reason_phrase}",
                http_status=response.status_code,
            )
        token, token_type = payload.get("access_token"), payload.get("token_type", "bearer")
        if not isinstance(token, str) or not token:
            raise TerminalError(f"token endpoint {url} answered 200 without an access_token")
        if str(token_type).lower() != "bearer":  # RFC 6750 is the only kind we can send
            raise TerminalError(
                f"token endpoint {url} issued a {str(token_type)[:40]!r} token, not a bearer token"
            )
        # RFC 6749 §5.1: expires_in is recommended, not required; without it assume 5 minutes.
        try:
            lifetime = float(payload.get("expires_in", 300))
        except (TypeError, ValueError):
            lifetime = 300.0
        return token, max(0.0, min(lifetime, 86_400.0))

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._fresh_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            # The app refused a token we thought valid (revoked, or its clock ahead of ours):
            # one new token and one retry; a second 401 is the app's answer.
            request.headers["Authorization"] = f"Bearer {await self._fresh_token(refused=token)}"
            yield request


def _redacted(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret else text
