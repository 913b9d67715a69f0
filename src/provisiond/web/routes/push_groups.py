"""An app's Groups tab: the directory groups pushed to it, push one, sync one, unpush one.

Pushing, syncing and unpushing only queue work (as the API's 202 does); the worker creates,
corrects or removes the app's group, and the table shows how that went on the next visit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from starlette.responses import Response

from provisiond.authz import Action
from provisiond.errors import Conflict, Invalid, NotFound
from provisiond.services import apps, pushes
from provisiond.services.pushes import UnpushAction
from provisiond.store.tables import App, Group
from provisiond.web.confirm import Confirmation, ask, confirmed
from provisiond.web.context import Console, ConsoleDep, PostDep, redirect
from provisiond.web.forms import service_errors
from provisiond.web.routes.app_tabs import render_tab
from provisiond.web.routes.apps import load

router = APIRouter()
TAB = "push-groups"
UNPUSH_ACTIONS: dict[str, UnpushAction] = {"leave": "leave", "delete": "delete"}
PUSH_FIELDS = {"group": "group_id", "unpush_action": "unpush_action"}


@dataclass(frozen=True)
class PushedRow:
    """One line of the tab's table."""

    group_id: str
    name: str
    status: str
    members: int
    linked: bool
    remote_id: str | None
    remote_name: str | None
    unpush_action: str
    last_synced_at: datetime | None
    last_error: str | None


def _page(console: Console, app: App, status_code: int = 200, **context: Any) -> Response:
    with console.rt.db.session() as session:
        found = pushes.list_pushed(session, app.id)
        counts = pushes.member_counts(session, [row.id for row in found])
        rows = [
            PushedRow(
                row.group_id, row.group_name, pushes.status_of(row), counts.get(row.id, 0),
                row.linked, row.remote_id, row.remote_name, row.unpush_action,
                row.last_synced_at, row.last_error,
            )
            for row in found
        ]
        pushed = {row.group_id for row in rows if row.status != pushes.UNPUSHING}
        # An unpushing group may be pushed again at once; a pushed one may not be twice.
        choices = [
            group
            for group in session.scalars(select(Group).order_by(Group.name_key))
            if group.id not in pushed
        ]
    settings = apps.provisioning_of(app)
    context.setdefault("errors", {})
    context.setdefault("values", {"unpush_action": "leave"})
    return render_tab(
        console, app, TAB, status_code, pushed=rows, choices=choices,
        feature_on=settings.features.push_groups, enabled=settings.enabled, **context,
    )


@router.get("/apps/{app_id}/push-groups")
def list_pushed(app_id: str, console: ConsoleDep) -> Response:
    return _page(console, load(console, app_id))


@router.post("/apps/{app_id}/push-groups")
def push_group(app_id: str, console: PostDep) -> Response:
    app = load(console, app_id, Action.APP_MANAGE)
    values = {key: console.field(key) for key in ("group_id", "unpush_action")}
    try:
        if not values["group_id"]:
            raise Invalid("choose a group", field="group_id")
        action = UNPUSH_ACTIONS.get(values["unpush_action"] or "leave")
        if action is None:
            raise Invalid("leave or delete", field="unpush_action")
        with console.rt.db.session() as session:
            name = pushes.push(
                session, console.actor, app.id, values["group_id"], unpush_action=action
            ).group_name
    except (Invalid, Conflict, NotFound) as exc:
        # A refusal (the push_groups feature off, pushed already) is said above the form too.
        refusal = exc.detail if isinstance(exc, Conflict) else None
        errors = service_errors(exc, "group_id", PUSH_FIELDS)
        status = 409 if refusal else 422
        return _page(console, app, status, errors=errors, values=values, refusal=refusal)
    console.flash(f"Pushing {name} to {app.label}: its group there is created, or linked.")
    return redirect(console.request, f"/apps/{app.id}/{TAB}")


@router.post("/apps/{app_id}/push-groups/{group_id}/sync")
def sync_group(app_id: str, group_id: str, console: PostDep) -> Response:
    app = load(console, app_id, Action.APP_MANAGE)
    try:
        with console.rt.db.session() as session:
            name = pushes.sync(session, console.actor, app.id, group_id).group_name
    except Conflict as exc:  # being unpushed
        return _page(console, app, 409, refusal=exc.detail)
    console.flash(f"Checking {name} in {app.label}: changes made there are undone.")
    return redirect(console.request, f"/apps/{app.id}/{TAB}")


@router.post("/apps/{app_id}/push-groups/{group_id}/unpush")
def unpush_group(app_id: str, group_id: str, console: PostDep) -> Response:
    """``action`` leave or delete; none: the action chosen when the group was pushed."""
    app = load(console, app_id, Action.APP_MANAGE)
    chosen = console.field("action")
    if chosen and chosen not in UNPUSH_ACTIONS:
        return _page(console, app, 422, refusal="unpush with leave or delete")
    with console.rt.db.session() as session:
        current = pushes.get_pushed(session, app.id, group_id)
        action = UNPUSH_ACTIONS.get(chosen or current.unpush_action, "leave")
        if action == "delete" and not confirmed(console):
            members = pushes.member_counts(session, [current.id]).get(current.id, 0)
            return _confirm_delete(console, app, current.group_name, group_id, members)
        name = pushes.unpush(session, console.actor, app.id, group_id, action=action).group_name
    fate = "deleted" if action == "delete" else "left as it is"
    console.flash(f"Unpushing {name} from {app.label}: its group there will be {fate}.")
    return redirect(console.request, f"/apps/{app.id}/{TAB}")


def _confirm_delete(
    console: Console, app: App, name: str, group_id: str, members: int
) -> Response:
    return ask(
        console,
        Confirmation(
            title=f"Unpush {name} and delete its group in {app.label}?",
            summary=f"The group {name} is deleted in {app.label}: its {members} "
            f"member{'' if members == 1 else 's'} there lose that membership (and whatever "
            f"{app.label} grants through it). Their accounts are kept.",
            action=f"/apps/{app.id}/{TAB}/{group_id}/unpush",
            button=f"Unpush {name}, delete its group",
            back=f"/apps/{app.id}/{TAB}",
            hidden={"action": "delete"},
        ),
    )
