"""Admin API tokens: random, shown once, stored as SHA-256 hashes; listed, revoked, expiring.

The prefix (the first characters of the token) is kept in clear so an admin can tell which
token a list row is; it is far too short to guess the rest from.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.errors import Conflict, Invalid, NotFound, Unauthorized
from provisiond.services import activity
from provisiond.services.apps import get_app
from provisiond.services.context import ROLES, Actor
from provisiond.store.tables import ApiToken, utcnow

PREFIX = "pvd_"
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_LIFETIME = timedelta(days=3650)


def token_hash(token: str) -> str:
    """What is stored of a token (here and for SCIM clients): its SHA-256."""
    # A 256-bit random token needs no slow hash: SHA-256 cannot be brute-forced from it.
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session,
    actor: Actor,
    name: str,
    role: str = "super_admin",
    apps: Sequence[str] = (),
    expires_in: timedelta | None = None,
) -> str:
    """A new token's secret; ``apps`` (ids or names) are the apps an app_admin token may manage.

    ``expires_in``: the token stops working that long from now (never, if None).
    """
    return issue_token(session, actor, name, role, apps, expires_in)[0]


def issue_token(
    session: Session,
    actor: Actor,
    name: str,
    role: str = "super_admin",
    apps: Sequence[str] = (),
    expires_in: timedelta | None = None,
) -> tuple[str, ApiToken]:
    """A new token: its secret (shown once) and its row."""
    if not name.strip() or len(name) > 128:
        raise Invalid("a token's name: 1-128 characters", field="name")
    if expires_in is not None and not timedelta(0) < expires_in <= MAX_LIFETIME:
        raise Invalid("a token expires between a second and ten years from now", field="expires_in")
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}", field="role")
    if apps and role != "app_admin":
        raise Invalid("only an app_admin token is granted apps", field="apps")
    app_ids = sorted({get_app(session, app).id for app in apps})
    token = PREFIX + secrets.token_urlsafe(32)
    expires_at = utcnow() + expires_in if expires_in is not None else None
    row = ApiToken(
        name=name,
        prefix=token[:10],
        token_hash=token_hash(token),
        role=role,
        apps=app_ids,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    activity.record(
        session,
        actor,
        "system.api_token.create",
        f"created API token {name!r} ({role})",
        targets={"token": name, "token_id": row.id},
        details={"role": role, "apps": app_ids, "expires_at": _iso(expires_at)},
    )
    return token, row


def list_tokens(session: Session, *, include_revoked: bool = False) -> list[ApiToken]:
    """Every token, newest first (revoked ones only if asked)."""
    query = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return list(session.scalars(query))


def get_token(session: Session, token_id: str) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no API token with id {token_id!r}")
    return row


def revoke_token(session: Session, actor: Actor, token_id: str) -> ApiToken:
    """Revoke a token: it answers 401 from the next request on. Revoking twice is a conflict."""
    row = get_token(session, token_id)
    if row.revoked_at is not None:
        raise Conflict(f"the API token {row.name!r} is revoked already")
    row.revoked_at = utcnow()
    activity.record(
        session,
        actor,
        "system.api_token.revoke",
        f"revoked API token {row.name!r} ({row.prefix}…)",
        targets={"token": row.name, "token_id": row.id},
        details={"role": row.role, "prefix": row.prefix},
    )
    return row


def status_of(row: ApiToken, now: datetime | None = None) -> str:
    """``active``, ``expired`` or ``revoked``."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def authenticate(session: Session, token: str) -> ApiToken:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    now = utcnow()
    if row is None:
        raise Unauthorized("the API token is not valid")
    status = status_of(row, now)
    if status != "active":
        # Only the token's holder gets this far: telling it why saves a support round.
        raise Unauthorized(f"the API token is not valid: it {'was' if status == 'revoked' else 'has'} {status}")
    # At most one write a minute per token: otherwise every API read would be a write
    # transaction (on SQLite one that queues behind the worker for the write lock).
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
    return row
