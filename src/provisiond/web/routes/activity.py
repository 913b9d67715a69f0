"""Activity log: filters (a user by id, login or name), pages, one event in detail with its
trace, and a live tail (new rows fetched every two seconds)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.responses import Response

from provisiond.authz import Action, app_scope
from provisiond.errors import NotFound
from provisiond.services import activity, directory
from provisiond.services.apps import get_app
from provisiond.services.monitoring import app_names
from provisiond.store.tables import Event, User
from provisiond.web.context import Console, ConsoleDep, render

router = APIRouter()
OUTCOMES = ("success", "failure", "skipped", "retry")
MATCHED_USERS = 50  # users a login or name filter may match; more: be more precise
RELATED = 50


def _query(
    console: Console, action: str, app: str, user: str, q: str, outcome: str
) -> tuple[activity.LogQuery, list[User]]:
    """The log query, and the users the ``user`` filter (an id, a login or a name) found."""
    app_id = None
    found: list[User] = []
    user_ids: tuple[str, ...] | None = None
    with console.rt.db.session() as session:
        if app:
            try:
                app_id = get_app(session, app).id
            except NotFound:
                app_id = app  # matches nothing: an empty page rather than an error
        if user.strip():
            found = list(directory.find_users(session, user[:256], limit=MATCHED_USERS))
            # The text itself too: a deleted user's events stay searchable by their id.
            user_ids = (user.strip()[:64], *(u.id for u in found))
    return (
        activity.LogQuery(
            action=action[:64] or None,
            app_id=app_id,
            user_ids=user_ids,
            text=q[:256] or None,
            outcome=outcome if outcome in OUTCOMES else None,
            limit=100,
            app_ids=app_scope(console.actor),
        ),
        found,
    )


def _visible(console: Console, rows: list[Event]) -> list[Event]:
    """The events the admin may see: an app_admin, its own apps' only (authz.app_scope)."""
    scope = app_scope(console.actor)
    return rows if scope is None else [r for r in rows if r.app_id is not None and r.app_id in scope]


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
    query, matched = _query(console, action, app, user, q, outcome)
    query = replace(query, cursor=cursor[:64] or None)
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
        matched=matched,
        matched_max=MATCHED_USERS,
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
    query = replace(_query(console, action, app, user, q, outcome)[0], after=max(after, 0))
    with console.rt.db.session() as session:
        events, _ = activity.search(session, query)
        names = _names(console, session)
    rows = list(reversed(events))
    newest = max([after, *(e.id for e in events)])
    response = render(console.request, "_event_rows.html", events=rows, apps=names)
    response.headers["X-Newest-Event"] = str(newest)
    return response


@router.get("/activity/{event_id}")
def event(event_id: str, console: ConsoleDep) -> Response:
    """One event: every field, the reconcile's trace step by step, the events of its request."""
    console.authorize(Action.LOG_READ)
    with console.rt.db.session() as session:
        # Any other text is a 404 like an unknown number, not a form error.
        row = session.get(Event, int(event_id)) if event_id.isdigit() and len(event_id) < 19 else None
        if row is None or not _visible(console, [row]):
            raise NotFound(f"no event {event_id}")
        related, _ = activity.search(
            session, activity.LogQuery(correlation_id=row.correlation_id, limit=RELATED)
        )
        user = directory.find_users_by_ids(session, [row.user_id]).get(row.user_id) if row.user_id else None
        names = app_names(session)
    details = dict(row.details or {})
    trace = details.pop("trace", None)
    return render(
        console.request,
        "activity_event.html",
        event=row,
        user=user,
        details=details,
        trace=_steps(trace),
        related=[e for e in _visible(console, list(related)) if e.id != row.id],
        apps=names,
    )


def _steps(trace: object) -> list[tuple[str, str, dict[str, Any]]]:
    """The trace's steps as (name, detail, the rest), as the executor recorded them."""
    if not isinstance(trace, list):
        return []
    steps = []
    for step in trace:
        if isinstance(step, dict):
            rest = {k: v for k, v in step.items() if k not in ("step", "detail")}
            steps.append((str(step.get("step", "")), str(step.get("detail") or ""), rest))
    return steps
