from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BeforeValidator

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.problems import declare
from provisiond.api.schemas import EventOut, Page
from provisiond.authz import Action, app_scope
from provisiond.services import activity, apps

router = APIRouter(prefix="/logs", tags=["logs"])

# RFC 3339 §5.6 date-time, as the OpenAPI document's `format: date-time` says: pydantic alone
# would also take a bare date, a number of seconds or a time without an offset, and guess.
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: Any) -> Any:
    if not (isinstance(value, str) and _DATE_TIME.match(value)):
        raise ValueError("expected a date-time with an offset, e.g. 2024-05-01T12:00:00Z")
    return value


Moment = Annotated[datetime, BeforeValidator(_rfc3339)]
# The largest event id a database holds (a signed 64-bit integer on both backends).
MAX_ID = 2**63 - 1


@router.get("", dependencies=[requires(Action.LOG_READ)], responses=declare(404))
def list_events(
    rt: RuntimeDep,
    actor: AdminDep,
    since: Moment | None = Query(default=None, description="Events at or after this time"),
    until: Moment | None = Query(default=None, description="Events before this time"),
    action: str | None = Query(default=None, max_length=64, description="An action or its prefix"),
    app: str | None = Query(default=None, description="App id or name"),
    user: str | None = Query(default=None, description="User id"),
    q: str | None = Query(default=None, max_length=256, description="Text in the message"),
    outcome: str | None = Query(default=None, pattern="^(success|failure|skipped|retry)$"),
    correlation_id: str | None = Query(default=None, max_length=64),
    limit: int = Query(default=100, ge=1, le=1000),
    cursor: str | None = Query(default=None, max_length=64),
    after: int | None = Query(
        default=None, ge=0, le=MAX_ID, description="Only events after this id, oldest first"
    ),
) -> Page[EventOut]:
    """Newest first, with cursor pagination; ``after`` serves ``logs --follow``."""
    with rt.db.session() as session:
        app_id = apps.get_app(session, app).id if app else None
        user_id = user  # a deleted user's events stay searchable by id
        rows, next_cursor = activity.search(
            session,
            activity.LogQuery(
                since=since,
                until=until,
                action=action,
                app_id=app_id,
                user_id=user_id,
                text=q,
                outcome=outcome,
                correlation_id=correlation_id,
                limit=limit,
                cursor=cursor,
                after=after,
                app_ids=app_scope(actor),
            ),
        )
        return Page[EventOut](items=[EventOut.of(row) for row in rows], next_cursor=next_cursor)
