"""Directory groups: the list, a group's members, its rule and the groups nested in it."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select
from starlette.responses import Response

from provisiond.authz import Action
from provisiond.errors import Conflict, Invalid, NotFound
from provisiond.services import directory, nesting
from provisiond.services.inbound import ownership
from provisiond.store.tables import Group, User
from provisiond.web.context import Console, ConsoleDep, PostDep, redirect, render
from provisiond.web.forms import FieldErrors, service_errors

router = APIRouter()
MAX_RULE = 4096


def _groups_page(
    console: Console,
    status_code: int = 200,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
) -> Response:
    with console.rt.db.session() as session:
        rows = directory.list_groups(session, None)
        counts = directory.member_counts(session, [g.id for g in rows])
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
    values = {name: console.field(name) for name in ("name", "description", "rule")}
    errors: FieldErrors = {}
    if not values["name"] or len(values["name"]) > 256:
        errors["name"] = "a name of 1 to 256 characters"
    if len(values["description"]) > 2048:
        errors["description"] = "at most 2048 characters"
    if len(values["rule"]) > MAX_RULE:
        errors["rule"] = f"at most {MAX_RULE} characters"
    if not errors:
        try:
            with console.rt.db.session() as session:
                group = directory.create_group(
                    session,
                    console.actor,
                    values["name"],
                    values["description"] or None,
                    values["rule"] or None,
                )
                group_id = group.id
        except (Conflict, Invalid) as exc:
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
    values: dict[str, str] | None = None,
) -> Response:
    with console.rt.db.session() as session:
        group = directory.get_group(session, group_id)
        members = directory.members(session, group_id)
        effective = directory.member_count(session, group_id)
        children = nesting.children_of(session, group_id)
        parents = nesting.parents_of(session, group_id)
        source = ownership.source_name(session, group)
    return render(
        console.request,
        "directory/group.html",
        status_code=status_code,
        group=group,
        source=source,
        members=members,
        effective=effective,
        children=children,
        parents=parents,
        errors=errors or {},
        values={"rule": group.rule or "", **(values or {})},
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
    error = ""
    with console.rt.db.session() as session:
        found = session.scalar(select(User).where(User.login_key == login.casefold()))
        if found is None:
            error = "enter the login of a user" if not login else f"no user with login {login!r}"
        else:
            try:
                directory.add_member(session, console.actor, group_id, found.id)
            except Conflict as exc:
                error = exc.detail
    if error:
        return _group_page(console, group_id, 422, {"login": error}, {"login": login})
    console.flash(f"Added {login}.")
    return redirect(console.request, f"/directory/groups/{group_id}")


@router.post("/directory/groups/{group_id}/members/{user_id}/remove")
def remove_member(group_id: str, user_id: str, console: PostDep) -> Response:
    console.authorize(Action.DIRECTORY_WRITE)
    try:
        with console.rt.db.session() as session:
            directory.remove_member(session, console.actor, group_id, user_id)
    except (NotFound, Conflict) as exc:
        console.flash(exc.detail)
    return redirect(console.request, f"/directory/groups/{group_id}")


@router.post("/directory/groups/{group_id}/rule")
def set_rule(group_id: str, console: PostDep) -> Response:
    """Set, change or (an empty rule) remove the group's rule."""
    console.authorize(Action.DIRECTORY_WRITE)
    rule = console.field("rule")
    if len(rule) > MAX_RULE:
        errors = {"rule": f"at most {MAX_RULE} characters"}
        return _group_page(console, group_id, 422, errors, {"rule": rule})
    try:
        with console.rt.db.session() as session:
            row = directory.update_group(session, console.actor, group_id, None, None, rule or None)
            message = f"{row.name} now has {directory.member_count(session, row.id)} members."
    except Invalid as exc:
        return _group_page(console, group_id, 422, service_errors(exc, "rule"), {"rule": rule})
    console.flash(("Rule saved: " if rule else "Rule removed: ") + message)
    return redirect(console.request, f"/directory/groups/{group_id}")


@router.post("/directory/groups/{group_id}/children")
def add_child(group_id: str, console: PostDep) -> Response:
    console.authorize(Action.DIRECTORY_WRITE)
    name = console.field("child")
    error = ""
    with console.rt.db.session() as session:
        directory.get_group(session, group_id)
        child = session.scalar(select(Group).where(Group.name_key == name.casefold()))
        if child is None:
            error = "enter the name of a group" if not name else f"no group named {name!r}"
        else:
            try:
                nesting.add_child(session, console.actor, group_id, child.id)
            except Conflict as exc:
                error = exc.detail
    if error:
        return _group_page(console, group_id, 422, {"child": error}, {"child": name})
    console.flash(f"Nested {name}.")
    return redirect(console.request, f"/directory/groups/{group_id}")


@router.post("/directory/groups/{group_id}/children/{child_id}/remove")
def remove_child(group_id: str, child_id: str, console: PostDep) -> Response:
    console.authorize(Action.DIRECTORY_WRITE)
    try:
        with console.rt.db.session() as session:
            nesting.remove_child(session, console.actor, group_id, child_id)
    except NotFound as exc:
        console.flash(exc.detail)
    return redirect(console.request, f"/directory/groups/{group_id}")
