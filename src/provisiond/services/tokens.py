"""Admin API tokens: random, shown once, stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.errors import Invalid, Unauthorized
from provisiond.services import activity
from provisiond.services.apps import get_app
from provisiond.services.context import ROLES, Actor
from provisiond.store.tables import ApiToken, utcnow

PREFIX = "pvd_"
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _hash(token: str) -> str:
    # A 256-bit random token needs no slow hash: SHA-256 cannot be brute-forced from it.
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session,
    actor: Actor,
    name: str,
    role: str = "super_admin",
    apps: Sequence[str] = (),
) -> str:
    """A new token; ``apps`` (ids or names) are the apps an app_admin token may manage."""
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}", field="role")
    if apps and role != "app_admin":
        raise Invalid("only an app_admin token is granted apps", field="apps")
    app_ids = sorted({get_app(session, app).id for app in apps})
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, prefix=token[:10], token_hash=_hash(token), role=role, apps=app_ids)
    session.add(row)
    session.flush()
    activity.record(
        session,
        actor,
        "system.api_token.create",
        f"created API token {name!r} ({role})",
        targets={"token": name, "token_id": row.id},
        details={"role": role, "apps": app_ids},
    )
    return token


def authenticate(session: Session, token: str) -> ApiToken:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(token)))
    if row is None or row.revoked_at is not None:
        raise Unauthorized("the API token is not valid")
    now = utcnow()
    # At most one write a minute per token: otherwise every API read would be a write
    # transaction (on SQLite one that queues behind the worker for the write lock).
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
    return row
