"""Directory: users (search, add, lifecycle actions); groups are in web/routes/groups.py."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import ValidationError
from sqlalchemy import select
from starlette.responses import Response

from provisiond.authz import Action, app_scope
from provisiond.domain.directory import TRANSITIONS, Lifecycle, Profile, UserStatus
from provisiond.errors import Conflict, Invalid
from provisiond.services import activity, directory, reach
from provisiond.services.monitoring import app_names
from provisiond.store.tables import Account, Group, GroupMember
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
        held = session.scalars(select(Account).where(Account.user_id == user_id)).all()
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
        # An app_admin sees what happened to the user in its apps only (authz.app_scope).
        events, _ = activity.search(
            session,
            activity.LogQuery(user_id=user_id, limit=25, app_ids=app_scope(console.actor)),
        )
        names = app_names(session)
    current = UserStatus(row.status)
    actions = [action for action, (sources, _) in TRANSITIONS.items() if current in sources]
    return render(
        console.request,
        "directory/user.html",
        user=row,
        accounts=held,
        groups=groups,
        nested=nested,
        events=events,
        apps=names,
        actions=actions,
        can_lifecycle=console.may(Action.USER_LIFECYCLE),
    )


@router.post("/directory/users/{user_id}/lifecycle/{action}")
def lifecycle(user_id: str, action: Lifecycle, console: PostDep) -> Response:
    console.authorize(Action.USER_LIFECYCLE)
    try:
        with console.rt.db.session() as session:
            row = directory.change_lifecycle(session, console.actor, user_id, action)
            console.flash(f"{row.login} is now {row.status}.")
    except Conflict as exc:
        console.flash(f"Not done: {exc.detail}")
    return redirect(console.request, f"/directory/users/{user_id}")
