"""The activity log: one event for every admin change and every provisioning attempt."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from provisiond.errors import Invalid
from provisiond.services.context import Actor
from provisiond.store import rollups
from provisiond.store.events import add_event
from provisiond.store.tables import Event


def record(
    session: Session,
    actor: Actor,
    action: str,
    message: str,
    *,
    outcome: str = "success",
    app_id: str | None = None,
    user_id: str | None = None,
    targets: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    correlation_id: str | None = None,
) -> Event:
    return add_event(
        session,
        actor=actor.name,
        correlation_id=correlation_id or actor.correlation_id,
        action=action,
        message=message,
        outcome=outcome,
        app_id=app_id,
        user_id=user_id,
        targets=targets,
        details=details,
    )


@dataclass(frozen=True)
class LogQuery:
    since: datetime | None = None
    until: datetime | None = None
    action: str | None = None
    app_id: str | None = None
    user_id: str | None = None
    user_ids: tuple[str, ...] | None = None  # any of these (a login or name found several)
    text: str | None = None
    outcome: str | None = None
    correlation_id: str | None = None
    limit: int = 100
    cursor: str | None = None
    after: int | None = None  # for --follow: events newer than this id, oldest first
    # Only events of these apps (an app_admin's view); None: every event, with or without app.
    app_ids: frozenset[str] | None = None


def encode_cursor(event_id: int) -> str:
    return base64.urlsafe_b64encode(str(event_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("cursor is not one this server issued", field="cursor") from exc


def search(session: Session, query: LogQuery) -> tuple[Sequence[Event], str | None]:
    """Events newest first (or, with ``after``, oldest first), and the cursor of the next page."""
    statement = select(Event)
    if query.since:
        statement = statement.where(Event.time >= query.since)
    if query.until:
        statement = statement.where(Event.time < query.until)
    if query.action:
        # "app.user" matches app.user.provision, app.user.update, ... as Okta's eventType sw;
        # as the exact actions the log holds (store.rollups), which its indexes serve in order.
        statement = statement.where(Event.action.in_(rollups.actions(session, query.action)))
    if query.app_id:
        statement = statement.where(Event.app_id == query.app_id)
    if query.app_ids is not None:
        # In the query, not after it: a page is full and its cursor right whatever it hides.
        statement = statement.where(Event.app_id.in_(sorted(query.app_ids)))
    if query.user_id:
        statement = statement.where(Event.user_id == query.user_id)
    if query.user_ids is not None:
        statement = statement.where(Event.user_id.in_(query.user_ids))
    if query.outcome:
        statement = statement.where(Event.outcome == query.outcome)
    if query.correlation_id:
        statement = statement.where(Event.correlation_id == query.correlation_id)
    if query.text:
        pattern = (
            "%" + query.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        statement = statement.where(
            or_(Event.message.ilike(pattern, escape="\\"), Event.actor.ilike(pattern, escape="\\"))
        )
    if query.after is not None:
        rows = session.scalars(
            statement.where(Event.id > query.after).order_by(Event.id).limit(query.limit)
        ).all()
        return rows, None
    if query.cursor:
        statement = statement.where(Event.id < decode_cursor(query.cursor))
    rows = session.scalars(statement.order_by(Event.id.desc()).limit(query.limit + 1)).all()
    next_cursor = encode_cursor(rows[query.limit - 1].id) if len(rows) > query.limit else None
    return rows[: query.limit], next_cursor
