"""Admin API tokens: random, shown once, stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.errors import Invalid, Unauthorized
from provisiond.services import activity
from provisiond.services.context import Actor
from provisiond.store.tables import ApiToken, utcnow

PREFIX = "pvd_"
ROLES = ("super_admin", "app_admin", "help_desk", "read_only")


def _hash(token: str) -> str:
    # A 256-bit random token needs no slow hash: SHA-256 cannot be brute-forced from it.
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, actor: Actor, name: str, role: str = "super_admin") -> str:
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}", field="role")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, prefix=token[:10], token_hash=_hash(token), role=role)
    session.add(row)
    session.flush()
    activity.record(
        session,
        actor,
        "system.api_token.create",
        f"created API token {name!r} ({role})",
        targets={"token": name, "token_id": row.id},
    )
    return token


def authenticate(session: Session, token: str) -> ApiToken:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(token)))
    if row is None or row.revoked_at is not None:
        raise Unauthorized("the API token is not valid")
    row.last_used_at = utcnow()
    return row
