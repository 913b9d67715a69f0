from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.schemas import EventOut, Page
from provisiond.authz import Action, app_scope
from provisiond.services import activity, apps

router = APIRouter(prefix="/logs", tags=["logs"])


@router.get("", dependencies=[requires(Action.LOG_READ)])
def list_events(
    rt: RuntimeDep,
    actor: AdminDep,
    since: datetime | None = None,
    until: datetime | None = None,
    action: str | None = Query(default=None, max_length=64, description="An action or its prefix"),
    app: str | None = Query(default=None, description="App id or name"),
    user: str | None = Query(default=None, description="User id"),
    q: str | None = Query(default=None, max_length=256, description="Text in the message"),
    outcome: str | None = Query(default=None, pattern="^(success|failure|skipped|retry)$"),
    correlation_id: str | None = Query(default=None, max_length=64),
    limit: int = Query(default=100, ge=1, le=1000),
    cursor: str | None = Query(default=None, max_length=64),
    after: int | None = Query(
        default=None, ge=0, description="Only events after this id, oldest first"
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
