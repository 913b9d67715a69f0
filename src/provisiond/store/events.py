"""Writing one line of the activity log (store.tables.Event): by services and the engine."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from provisiond.store.tables import Event


def add_event(
    session: Session,
    *,
    actor: str,
    correlation_id: str,
    action: str,
    message: str,
    outcome: str = "success",
    app_id: str | None = None,
    user_id: str | None = None,
    targets: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> Event:
    event = Event(
        actor=actor,
        action=action,
        outcome=outcome,
        app_id=app_id,
        user_id=user_id,
        targets=targets or {},
        message=message,
        details=details or {},
        correlation_id=correlation_id,
    )
    session.add(event)
    return event
