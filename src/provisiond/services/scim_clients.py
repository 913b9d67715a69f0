"""SCIM clients: the IdPs and HR systems that provision *into* the directory over /scim/v2.

Each has its own bearer token, random, shown once and stored as a SHA-256 hash like an admin
token (services/tokens.py), but in a table of its own: a SCIM token is accepted on /scim/v2
only, and an admin token is refused there, so a leaked Okta token cannot administer provisiond
and an admin token cannot be pasted into Okta by mistake and work.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from provisiond.errors import Conflict, Invalid, NotFound, Unauthorized
from provisiond.services import activity
from provisiond.services.context import Actor
from provisiond.services.tokens import LAST_USED_RESOLUTION, token_hash
from provisiond.store.reads import Reads
from provisiond.store.tables import ScimClient, utcnow

PREFIX = "pvdscim_"


def actor_name(client: ScimClient) -> str:
    """How a SCIM client appears as the actor of the changes it makes."""
    return f"scim:{client.name}"


def create_client(session: Session, actor: Actor, name: str) -> tuple[str, ScimClient]:
    """A new SCIM client: its token (shown once) and its row. Names are unique among the
    clients not revoked, so ``scim:okta`` in the activity log names one client."""
    name = name.strip()
    if not name or len(name) > 128:
        raise Invalid("a SCIM client's name: 1-128 characters", field="name")
    if any(client.name == name for client in list_clients(session)):
        raise Conflict(f"a SCIM client named {name!r} exists already", field="name")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ScimClient(name=name, prefix=token[: len(PREFIX) + 4], token_hash=token_hash(token))
    session.add(row)
    session.flush()
    activity.record(
        session,
        actor,
        "system.scim_client.create",
        f"created SCIM client {name!r}",
        targets={"scim_client": name, "scim_client_id": row.id},
    )
    return token, row


def list_clients(session: Session, *, include_revoked: bool = False) -> list[ScimClient]:
    query = select(ScimClient).order_by(ScimClient.created_at.desc(), ScimClient.id)
    if not include_revoked:
        query = query.where(ScimClient.revoked_at.is_(None))
    return list(session.scalars(query))


def get_client(session: Session, client_id: str) -> ScimClient:
    row = session.get(ScimClient, client_id)
    if row is None:
        raise NotFound(f"no SCIM client with id {client_id!r}")
    return row


def revoke_client(session: Session, actor: Actor, client_id: str) -> ScimClient:
    """The client's token is refused from its next request on; what it created stays."""
    row = get_client(session, client_id)
    if row.revoked_at is not None:
        raise Conflict(f"the SCIM client {row.name!r} is revoked already")
    row.revoked_at = utcnow()
    activity.record(
        session,
        actor,
        "system.scim_client.revoke",
        f"revoked SCIM client {row.name!r} ({row.prefix}…)",
        targets={"scim_client": row.name, "scim_client_id": row.id},
    )
    return row


def status_of(row: ScimClient) -> str:
    return "revoked" if row.revoked_at is not None else "active"


def authenticate(session: Session, token: str) -> ScimClient:
    """The client this token belongs to; ``Unauthorized`` if it is unknown or revoked."""
    row = session.scalar(select(ScimClient).where(ScimClient.token_hash == token_hash(token)))
    if row is None:
        raise Unauthorized("the SCIM token is not valid")
    if row.revoked_at is not None:
        raise Unauthorized("the SCIM token is not valid: it was revoked")
    now = utcnow()
    # As for admin tokens: at most one write a minute, so reads stay reads.
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
    return row


_STANDING = (
    select(ScimClient.__table__.c.id, ScimClient.__table__.c.last_used_at)
    .where(ScimClient.__table__.c.token_hash == bindparam("token_hash"))
    .where(ScimClient.__table__.c.revoked_at.is_(None))
)


def client_in_good_standing(reads: Reads, token: str, now: datetime) -> str | None:
    """The id of the client behind ``token`` when a read needs nothing more of it: the token
    is known, not revoked, and its last use was recorded within LAST_USED_RESOLUTION.

    None otherwise: the caller goes to ``authenticate`` in a session, which refuses the token
    or records its use. Read on every request (a Core statement compiled once), never cached,
    so a revocation is honoured from the next request on."""
    rows = reads.all(_STANDING, token_hash=token_hash(token))
    row = rows[0] if rows else None
    if row is None or row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        return None
    client_id: str = row.id
    return client_id
