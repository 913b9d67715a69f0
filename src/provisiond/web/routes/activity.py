"""Activity log: filters, pages, and a live tail (new rows fetched every two seconds)."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.responses import Response

from provisiond.authz import Action, app_scope
from provisiond.errors import NotFound
from provisiond.services import activity
from provisiond.services.apps import get_app
from provisiond.services.monitoring import app_names
from provisiond.web.context import Console, ConsoleDep, render

router = APIRouter()
OUTCOMES = ("success", "failure", "skipped", "retry")


def _query(
    console: Console, action: str, app: str, user: str, q: str, outcome: str
) -> activity.LogQuery:
    app_id = None
    if app:
        with console.rt.db.session() as session:
            try:
                app_id = get_app(session, app).id
            except NotFound:
                app_id = app  # matches nothing: an empty page rather than an error
    return activity.LogQuery(
        action=action[:64] or None,
        app_id=app_id,
        user_id=user[:64] or None,
        text=q[:256] or None,
        outcome=outcome if outcome in OUTCOMES else None,
        limit=100,
        app_ids=app_scope(console.actor),
    )


def _names(console: Console, session: Session) -> dict[str, str]:
    """The names of the apps whose events the admin sees (its own, for an app_admin)."""
    scope = app_scope(console.actor)
    return {k: v for k, v in app_names(session).items() if scope is None or k in scope}


@router.get("/activity")
def log(
    console: ConsoleDep,
    action: str = "",
    app: str = "",
    user: str = "",
    q: str = "",
    outcome: str = "",
    cursor: str = "",
) -> Response:
    console.authorize(Action.LOG_READ)
    query = replace(_query(console, action, app, user, q, outcome), cursor=cursor[:64] or None)
    with console.rt.db.session() as session:
        events, next_cursor = activity.search(session, query)
        names = _names(console, session)
    filters = {"action": action, "app": app, "user": user, "q": q, "outcome": outcome}
    return render(
        console.request,
        "activity.html",
        events=events,
        apps=names,
        filters=filters,
        outcomes=OUTCOMES,
        older_url="/activity?" + urlencode({**filters, "cursor": next_cursor})
        if next_cursor
        else "",
        newest=max((e.id for e in events), default=0),
    )


@router.get("/activity/tail")
def tail(
    console: ConsoleDep,
    after: int = 0,
    action: str = "",
    app: str = "",
    user: str = "",
    q: str = "",
    outcome: str = "",
) -> Response:
    """The rows newer than ``after``, newest first, as table rows for the live tail."""
    console.authorize(Action.LOG_READ)
    query = replace(_query(console, action, app, user, q, outcome), after=max(after, 0))
    with console.rt.db.session() as session:
        events, _ = activity.search(session, query)
        names = _names(console, session)
    rows = list(reversed(events))
    newest = max([after, *(e.id for e in events)])
    response = render(console.request, "_event_rows.html", events=rows, apps=names)
    response.headers["X-Newest-Event"] = str(newest)
    return response
