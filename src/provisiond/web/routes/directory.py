"""Directory: users (search, add, lifecycle actions); groups are in web/routes/groups.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError
from sqlalchemy import select
from starlette.responses import Response

from provisiond.authz import Action, app_scope
from provisiond.domain.directory import TRANSITIONS, Lifecycle, Profile, UserStatus
from provisiond.errors import Conflict, Invalid
from provisiond.services import activity, directory, impact, reach
from provisiond.services.inbound import ownership
from provisiond.services.monitoring import app_names
from provisiond.store.tables import Account, Group, GroupMember, User
from provisiond.web.confirm import Confirmation, ask, confirmed, deprovisions
from provisiond.web.context import Console, ConsoleDep, PostDep, redirect, render
from provisiond.web.forms import FieldErrors, checked, service_errors, validation_errors

router = APIRouter()
PROFILE_FIELDS = ("login", "email", "firstName", "lastName", "department", "title")
PAGE = 50


@router.get("/directory")
def home(console: ConsoleDep) -> Response:
    return redirect(console.request, "/directory/users")


@router.get("/directory/users")
def users(console: ConsoleDep, q: str = "", status: str = "", after: str = "") -> Response:
    console.authorize(Action.DIRECTORY_READ)
    status = status if status in {s.value for s in UserStatus} else ""
    with console.rt.db.session() as session:
        rows, next_after = directory.list_users(
            session, status=status or None, q=q[:256] or None, limit=PAGE, after=after or None
        )
    return render(
        console.request,
        "directory/users.html",
        users=rows,
        q=q,
        status=status,
        statuses=[s.value for s in UserStatus],
        next_after=next_after,
    )


def _new_user_page(
    console: Console,
    status_code: int = 200,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
) -> Response:
    return render(
        console.request,
        "directory/new_user.html",
        status_code=status_code,
        values=values or {"activate": "on"},
        errors=errors or {},
        fields=PROFILE_FIELDS,
    )


@router.get("/directory/users/new")
def new_user(console: ConsoleDep) -> Response:
    console.authorize(Action.DIRECTORY_WRITE)
    return _new_user_page(console)


@router.post("/directory/users/new")
def create_user(console: PostDep) -> Response:
    console.authorize(Action.DIRECTORY_WRITE)
    values = {name: console.field(name) for name in (*PROFILE_FIELDS, "activate")}
    try:
        profile = Profile.model_validate({k: v for k, v in values.items() if v and k != "activate"})
        with console.rt.db.session() as session:
            user = directory.create_user(
                session, console.actor, profile, activate=checked(values["activate"])
            )
            user_id = user.id
    except ValidationError as exc:
        return _new_user_page(console, 422, values, validation_errors(exc))
    except (Invalid, Conflict) as exc:
        return _new_user_page(
            console, 422, values, service_errors(exc, "login", {"profile.login": "login"})
        )
    console.flash(f"Created {profile.login}.")
    return redirect(console.request, f"/directory/users/{user_id}")


@router.get("/directory/users/{user_id}")
def user(user_id: str, console: ConsoleDep) -> Response:
    console.authorize(Action.DIRECTORY_READ)
    with console.rt.db.session() as session:
        row = directory.get_user(session, user_id)
        scope = app_scope(console.actor)  # an app_admin: its apps' accounts and events only
        held = [
            account
            for account in session.scalars(select(Account).where(Account.user_id == user_id))
            if scope is None or account.app_id in scope
        ]
        groups = session.scalars(
            select(Group)
            .join(GroupMember, GroupMember.group_id == Group.id)
            .where(GroupMember.user_id == user_id)
            .order_by(Group.name_key)
        ).all()
        # Groups reached through nesting: what assignments and pushed groups see too.
        direct = {g.id for g in groups}
        through = sorted(reach.effective_groups_of(session, user_id) - direct)
        nested = (
            session.scalars(
                select(Group).where(Group.id.in_(through)).order_by(Group.name_key)
            ).all()
            if through
            else []
        )
        events, _ = activity.search(
            session, activity.LogQuery(user_id=user_id, limit=25, app_ids=scope)
        )
        names = app_names(session)
        source = ownership.source_name(session, row)
    current = UserStatus(row.status)
    actions = [action for action, (sources, _) in TRANSITIONS.items() if current in sources]
    return render(
        console.request,
        "directory/user.html",
        user=row,
        source=source,
        accounts=held,
        groups=groups,
        nested=nested,
        events=events,
        apps=names,
        actions=actions,
        can_lifecycle=console.may(Action.USER_LIFECYCLE),
        can_write=console.may(Action.DIRECTORY_WRITE),
    )


@router.post("/directory/users/{user_id}/lifecycle/{action}")
def lifecycle(user_id: str, action: Lifecycle, console: PostDep) -> Response:
    console.authorize(Action.USER_LIFECYCLE)
    if action is Lifecycle.DEACTIVATE and not confirmed(console):
        with console.rt.db.session() as session:
            login = directory.get_user(session, user_id).login
            found = impact.of_deactivate(session, user_id)
        return ask(
            console,
            Confirmation(
                title=f"Deactivate {login}?",
                summary=f"Deactivating {login} {deprovisions(found)}, as each app's "
                "deprovisioning setting says (activating the user again provisions them again).",
                action=f"/directory/users/{user_id}/lifecycle/deactivate",
                button=f"Deactivate {login}",
                back=f"/directory/users/{user_id}",
                impact=found,
            ),
        )
    try:
        with console.rt.db.session() as session:
            row = directory.change_lifecycle(session, console.actor, user_id, action)
            console.flash(f"{row.login} is now {row.status}.")
    except Conflict as exc:
        console.flash(f"Not done: {exc.detail}")
    return redirect(console.request, f"/directory/users/{user_id}")


@router.post("/directory/users/{user_id}/delete")
def delete(user_id: str, console: PostDep) -> Response:
    """Delete a deprovisioned user, once confirmed (its accounts left are deprovisioned)."""
    console.authorize(Action.DIRECTORY_WRITE)
    with console.rt.db.session() as session:
        login = directory.get_user(session, user_id).login
        found = impact.of_delete(session, user_id) if not confirmed(console) else None
    if found is not None:
        return ask(
            console,
            Confirmation(
                title=f"Delete {login}?",
                summary=f"Deleting {login} {deprovisions(found)}; the user and its profile are "
                "removed from the directory for good (the activity log keeps its history).",
                action=f"/directory/users/{user_id}/delete",
                button=f"Delete {login}",
                back=f"/directory/users/{user_id}",
                impact=found,
            ),
        )
    try:
        with console.rt.db.session() as session:
            directory.delete_user(session, console.actor, user_id)
    except Conflict as exc:
        console.flash(f"Not done: {exc.detail}")
        return redirect(console.request, f"/directory/users/{user_id}")
    console.flash(f"Deleted {login}.")
    return redirect(console.request, "/directory/users")


# -- profile -------------------------------------------------------------------------------------

EDIT_FIELDS = (
    "login", "email", "firstName", "lastName", "displayName", "department", "title", "manager",
    "employeeNumber", "employeeType",
)
REQUIRED = frozenset({"login", "email", "firstName", "lastName"})


def _edit_page(
    console: Console,
    user: User,
    status_code: int = 200,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
) -> Response:
    standard = set(EDIT_FIELDS)
    return render(
        console.request,
        "directory/edit_user.html",
        status_code=status_code,
        user=user,
        values=values or {k: str(user.profile.get(k, "")) for k in EDIT_FIELDS},
        errors=errors or {},
        fields=EDIT_FIELDS,
        required=REQUIRED,
        custom={k: v for k, v in user.profile.items() if k not in standard},
    )


@router.get("/directory/users/{user_id}/edit")
def edit_user(user_id: str, console: ConsoleDep) -> Response:
    console.authorize(Action.DIRECTORY_WRITE)
    with console.rt.db.session() as session:
        row = directory.get_user(session, user_id)
    return _edit_page(console, row)


@router.post("/directory/users/{user_id}/edit")
def update_user(user_id: str, console: PostDep) -> Response:
    """Save the standard attributes as the API's PATCH does: an empty optional one is removed,
    custom attributes are kept as they are."""
    console.authorize(Action.DIRECTORY_WRITE)
    values = {name: console.field(name) for name in EDIT_FIELDS}
    changes: dict[str, Any] = {name: value or None for name, value in values.items()}
    with console.rt.db.session() as session:
        row = directory.get_user(session, user_id)
    merged = {k: v for k, v in {**row.profile, **changes}.items() if v is not None}
    warning = None
    try:
        Profile.model_validate(merged)  # every message at once; the service stops at the first
        with console.rt.db.session() as session:
            warning = ownership.check_admin_edit(
                session, row, changes, console.rt.settings.scim_source_edits
            )
            row = directory.update_user(session, console.actor, user_id, changes)
    except ValidationError as exc:
        return _edit_page(console, row, 422, values, validation_errors(exc))
    except (Invalid, Conflict) as exc:
        fields = {f"profile.{name}": name for name in EDIT_FIELDS}
        return _edit_page(console, row, 422, values, service_errors(exc, "login", fields))
    console.flash(f"Saved the profile of {row.login}." + (f" Note: {warning}." if warning else ""))
    return redirect(console.request, f"/directory/users/{user_id}")
