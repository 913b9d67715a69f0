"""Console sessions: a signed cookie with an idle and an absolute expiry, and its CSRF token.

The cookie holds the admin's id, their session epoch (bumped on sign-out, which ends every
older cookie), a random CSRF token, when the session started and when it was last used. It is
signed (HMAC-SHA1 via itsdangerous, with a key derived from the server's secret) but not
encrypted: nothing in it is secret apart from the CSRF token, which the page carries anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "provisiond_session"
LOGIN_COOKIE = "provisiond_login"  # the CSRF token of the sign-in form, before any session
IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 12 * 60 * 60


@dataclass(frozen=True)
class ConsoleSession:
    admin_id: str
    epoch: int
    csrf: str
    started: float
    seen: float
    flash: str = ""


def new_session(admin_id: str, epoch: int, now: float | None = None) -> ConsoleSession:
    moment = time.time() if now is None else now
    return ConsoleSession(admin_id, epoch, secrets.token_urlsafe(32), moment, moment)


class SessionCodec:
    def __init__(
        self, key: bytes, *, idle: float = IDLE_SECONDS, absolute: float = ABSOLUTE_SECONDS
    ) -> None:
        derived = hmac.new(key, b"provisiond console session", hashlib.sha256).digest()
        self._serializer = URLSafeSerializer(derived, salt="provisiond.console")
        self.idle = idle
        self.absolute = absolute

    def dump(self, session: ConsoleSession) -> str:
        return str(self._serializer.dumps(asdict(session)))

    def load(self, raw: str | None, now: float | None = None) -> tuple[ConsoleSession | None, bool]:
        """(the session, or None; whether a session was there but has expired)."""
        if not raw:
            return None, False
        try:
            data: Any = self._serializer.loads(raw)
            session = ConsoleSession(**data)
        except (BadSignature, TypeError):
            return None, False
        moment = time.time() if now is None else now
        if moment - session.seen > self.idle or moment - session.started > self.absolute:
            return None, True
        return session, False

    def touch(self, session: ConsoleSession, now: float | None = None) -> ConsoleSession:
        return replace(session, seen=time.time() if now is None else now)

    def sign_token(self, token: str) -> str:
        return str(self._serializer.dumps({"login_csrf": token}))

    def login_token(self, raw: str | None) -> str | None:
        if not raw:
            return None
        try:
            data: Any = self._serializer.loads(raw)
        except BadSignature:
            return None
        token = data.get("login_csrf") if isinstance(data, dict) else None
        return token if isinstance(token, str) else None


def tokens_match(expected: str | None, given: object) -> bool:
    return bool(expected) and isinstance(given, str) and hmac.compare_digest(expected or "", given)


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        # Behind a TLS-terminating proxy, run uvicorn with --proxy-headers so the scheme is https.
        secure=request.url.scheme == "https",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https"
    )
