"""Directory: users (search, add, lifecycle actions) and groups (add, members)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import ValidationError
from sqlalchemy import select
from starlette.responses import Response

from provisiond.authz import Action
from provisiond.domain.directory import TRANSITIONS, Lifecycle, Profile, UserStatus
from provisiond.errors import Conflict, Invalid, NotFound
from provisiond.services import activity, directory
from provisiond.services.monitoring import app_names
from provisiond.store.tables import Account, Group, GroupMember, User
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
        events, _ = activity.search(session, activity.LogQuery(user_id=user_id, limit=25))
        names = app_names(session)
    current = UserStatus(row.status)
    actions = [action for action, (sources, _) in TRANSITIONS.items() if current in sources]
    return render(
        console.request,
        "directory/user.html",
        user=row,
        accounts=held,
        groups=groups,
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


# -- groups --------------------------------------------------------------------------------------


def _groups_page(
    console: Console,
    status_code: int = 200,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
) -> Response:
    with console.rt.db.session() as session:
        rows = directory.list_groups(session, None)
        counts = {g.id: directory.member_count(session, g.id) for g in rows}
    return render(
        console.request,
        "directory/groups.html",
        status_code=status_code,
        groups=rows,
        counts=counts,
        values=values or {},
        errors=errors or {},
        can_write=console.may(Action.DIRECTORY_WRITE),
    )


@router.get("/directory/groups")
def groups(console: ConsoleDep) -> Response:
    console.authorize(Action.DIRECTORY_READ)
    return _groups_page(console)


@router.post("/directory/groups")
def create_group(console: PostDep) -> Response:
    console.authorize(Action.DIRECTORY_WRITE)
    values = {"name": console.field("name"), "description": console.field("description")}
    errors: FieldErrors = {}
    if not values["name"] or len(values["name"]) > 256:
        errors["name"] = "a name of 1 to 256 characters"
    if len(values["description"]) > 2048:
        errors["description"] = "at most 2048 characters"
    if not errors:
        try:
            with console.rt.db.session() as session:
                group = directory.create_group(
                    session, console.actor, values["name"], values["description"] or None
                )
                group_id = group.id
        except Conflict as exc:
            errors = service_errors(exc, "name")
    if errors:
        return _groups_page(console, 422, values, errors)
    console.flash(f"Created group {values['name']}.")
    return redirect(console.request, f"/directory/groups/{group_id}")


def _group_page(
    console: Console,
    group_id: str,
    status_code: int = 200,
    errors: FieldErrors | None = None,
    login: str = "",
) -> Response:
    with console.rt.db.session() as session:
        group = directory.get_group(session, group_id)
        members = directory.members(session, group_id)
    return render(
        console.request,
        "directory/group.html",
        status_code=status_code,
        group=group,
        members=members,
        errors=errors or {},
        login=login,
        can_write=console.may(Action.DIRECTORY_WRITE),
    )


@router.get("/directory/groups/{group_id}")
def group(group_id: str, console: ConsoleDep) -> Response:
    console.authorize(Action.DIRECTORY_READ)
    return _group_page(console, group_id)


@router.post("/directory/groups/{group_id}/members")
def add_member(group_id: str, console: PostDep) -> Response:
    console.authorize(Action.DIRECTORY_WRITE)
    login = console.field("login")
    with console.rt.db.session() as session:
        found = session.scalar(select(User).where(User.login_key == login.casefold()))
        if found is not None:
            directory.add_member(session, console.actor, group_id, found.id)
    if found is None:
        error = "enter the login of a user" if not login else f"no user with login {login!r}"
        return _group_page(console, group_id, 422, {"login": error}, login)
    console.flash(f"Added {login}.")
    return redirect(console.request, f"/directory/groups/{group_id}")


@router.post("/directory/groups/{group_id}/members/{user_id}/remove")
def remove_member(group_id: str, user_id: str, console: PostDep) -> Response:
    console.authorize(Action.DIRECTORY_WRITE)
    try:
        with console.rt.db.session() as session:
            directory.remove_member(session, console.actor, group_id, user_id)
    except NotFound as exc:
        console.flash(exc.detail)
    return redirect(console.request, f"/directory/groups/{group_id}")
