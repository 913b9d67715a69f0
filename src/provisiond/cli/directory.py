"""``users`` and ``groups``: the directory, over the REST API."""

from __future__ import annotations

import enum
import json
from typing import Annotated, Any

import typer

from provisiond.cli.client import path, state
from provisiond.cli.names import group_id as find_group
from provisiond.cli.names import user_id as find_user
from provisiond.cli.output import Column, when

users = typer.Typer(help="Directory users and their lifecycle.", no_args_is_help=True)
groups = typer.Typer(help="Directory groups and their members.", no_args_is_help=True)


class Status(enum.StrEnum):
    staged = "staged"
    active = "active"
    suspended = "suspended"
    deprovisioned = "deprovisioned"


def full_name(user: dict[str, Any]) -> str:
    profile = user.get("profile", {})
    name = f"{profile.get('firstName', '')} {profile.get('lastName', '')}".strip()
    return str(profile.get("displayName") or name)


USER_COLUMNS = (
    Column("ID", "id"),
    Column("LOGIN", "profile.login"),
    Column("EMAIL", "profile.email"),
    Column("NAME", full_name),
    Column("STATUS", "status"),
)
GROUP_COLUMNS = (
    Column("ID", "id"),
    Column("NAME", "name"),
    Column("MEMBERS", "member_count"),
    Column("RULE", lambda group: group.get("rule") or "", wrap=True),
    Column("DESCRIPTION", "description", wrap=True),
)

UserId = Annotated[str, typer.Argument(metavar="USER", help="The user's login or id.")]
GroupId = Annotated[str, typer.Argument(metavar="GROUP", help="The group's name or id.")]
Attrs = Annotated[
    list[str] | None,
    typer.Option(
        "--attr",
        metavar="KEY=VALUE",
        help="A profile attribute (repeatable); KEY:=JSON for a typed value: contractor:=true.",
    ),
]
Opt = Annotated[str | None, typer.Option(show_default=False)]

# Option name -> the profile attribute it sets.
STANDARD = {
    "login": "login",
    "email": "email",
    "first_name": "firstName",
    "last_name": "lastName",
    "display_name": "displayName",
    "department": "department",
    "title": "title",
    "manager": "manager",
    "employee_number": "employeeNumber",
    "employee_type": "employeeType",
}


def parse_attrs(values: list[str] | None) -> dict[str, Any]:
    """``key=value`` (a string) or ``key:=json`` (a number, boolean, list or null)."""
    attrs: dict[str, Any] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        typed = key.endswith(":")
        key = key.removesuffix(":").strip()
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--attr")
        if typed:
            try:
                attrs[key] = json.loads(raw)
            except ValueError:
                raise typer.BadParameter(
                    f"{key}:= needs a JSON value, got {raw!r}", param_hint="--attr"
                ) from None
        else:
            attrs[key] = raw
    return attrs


def profile_of(standard: dict[str, Any], attrs: list[str] | None) -> dict[str, Any]:
    """The profile from the standard options given (a command's ``locals()``) and ``--attr``."""
    profile = {STANDARD[name]: value for name, value in standard.items() if value is not None}
    return {**profile, **parse_attrs(attrs)}


def render_user(user: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [("id", user["id"]), ("status", user["status"])]
    rows += list(user.get("profile", {}).items())
    rows += [
        ("created", when(user.get("created_at"))),
        ("updated", when(user.get("updated_at"))),
        ("status changed", when(user.get("status_changed_at"))),
    ]
    return [(name, json.dumps(v) if isinstance(v, list) else v) for name, v in rows]


def login_of(user: dict[str, Any]) -> str:
    return str(user.get("profile", {}).get("login") or user.get("id"))


# -- users ------------------------------------------------------------------------------------


@users.command("list")
def list_users(
    ctx: typer.Context,
    status: Annotated[Status | None, typer.Option(help="Only users in this status.")] = None,
    q: Annotated[str | None, typer.Option("--q", help="Login contains this text.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many users.")] = 100,
) -> None:
    """List users, by login."""
    st = state(ctx)
    page = st.api.collect("/users", limit, status=status.value if status else None, q=q)
    st.out.page(page, USER_COLUMNS, empty="no users", limit=limit)


@users.command("get")
def get_user(ctx: typer.Context, user_id: UserId) -> None:
    """Show a user's status and profile."""
    st = state(ctx)
    user = st.api.get(path("users", find_user(st.api, user_id)))
    st.out.show(user, render_user(user))


@users.command("create")
def create_user(
    ctx: typer.Context,
    login: Annotated[str, typer.Option(help="Unique login, e.g. ada.lovelace.")],
    email: Annotated[str, typer.Option(help="Email address.")],
    first_name: Annotated[str, typer.Option(help="Given name.")],
    last_name: Annotated[str, typer.Option(help="Family name.")],
    display_name: Opt = None,
    department: Opt = None,
    title: Opt = None,
    manager: Opt = None,
    employee_number: Opt = None,
    employee_type: Opt = None,
    attr: Attrs = None,
    staged: Annotated[
        bool, typer.Option("--staged", help="Create staged (not provisioned until activated).")
    ] = False,
) -> None:
    """Create a user (active unless --staged)."""
    standard = {name: value for name, value in locals().items() if name in STANDARD}
    st = state(ctx)
    body = {"profile": profile_of(standard, attr), "activate": not staged}
    user = st.api.post("/users", body)
    st.out.done(user, f"created user {login_of(user)} ({user['status']}): {user['id']}")


@users.command("update")
def update_user(
    ctx: typer.Context,
    user_id: UserId,
    login: Opt = None,
    email: Opt = None,
    first_name: Opt = None,
    last_name: Opt = None,
    display_name: Opt = None,
    department: Opt = None,
    title: Opt = None,
    manager: Opt = None,
    employee_number: Opt = None,
    employee_type: Opt = None,
    attr: Attrs = None,
    unset: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY", help="Remove a profile attribute (repeatable)."),
    ] = None,
) -> None:
    """Change profile attributes; the change is pushed to every app the user is in."""
    standard = {name: value for name, value in locals().items() if name in STANDARD}
    st = state(ctx)
    changes = {**profile_of(standard, attr), **dict.fromkeys(unset or [])}
    if not changes:
        raise typer.BadParameter("nothing to change: give --attr KEY=VALUE, --unset KEY, ...")
    user = st.api.patch(path("users", find_user(st.api, user_id)), {"profile": changes})
    st.out.done(user, f"updated user {login_of(user)}: {', '.join(sorted(changes))}")


def _lifecycle(action: str, doc: str) -> None:
    def command(ctx: typer.Context, user_id: UserId) -> None:
        st = state(ctx)
        user = st.api.post(path("users", find_user(st.api, user_id), "lifecycle", action))
        st.out.done(user, f"user {login_of(user)} is now {user['status']}")

    command.__doc__ = doc
    users.command(action)(command)


_lifecycle("activate", "Activate a staged or deprovisioned user: provision them.")
_lifecycle("suspend", "Suspend an active user: their accounts are deactivated, kept.")
_lifecycle("unsuspend", "Unsuspend a suspended user: their accounts come back.")
_lifecycle("deactivate", "Deactivate (deprovision) a user: their accounts are deprovisioned.")


@users.command("delete")
def delete_user(ctx: typer.Context, user_id: UserId) -> None:
    """Delete a user (deprovisioned from every app first)."""
    st = state(ctx)
    st.api.delete(path("users", find_user(st.api, user_id)))
    st.out.done(None, f"deleted user {user_id}")


# -- groups -----------------------------------------------------------------------------------


@groups.command("list")
def list_groups(
    ctx: typer.Context,
    q: Annotated[str | None, typer.Option("--q", help="Name contains this text.")] = None,
) -> None:
    """List groups, by name."""
    st = state(ctx)
    st.out.page(st.api.get("/groups", q=q), GROUP_COLUMNS, empty="no groups")


RuleOpt = Annotated[
    str | None,
    typer.Option(
        "--rule",
        metavar="EXPR",
        show_default=False,
        help="A CEL rule over user, e.g. 'user.department == \"Sales\"': members follow it.",
    ),
]


def render_group(group: dict[str, Any]) -> list[tuple[str, Any]]:
    children = ", ".join(f"{c['name']} ({c['id']})" for c in group.get("children", []))
    return [
        ("id", group["id"]),
        ("name", group["name"]),
        ("description", group.get("description") or ""),
        ("rule", group.get("rule") or "(none: members are added by hand)"),
        ("members", group.get("member_count")),
        ("nested groups", children or "(none)"),
        ("created", when(group.get("created_at"))),
    ]


@groups.command("get")
def get_group(ctx: typer.Context, group_id: GroupId) -> None:
    """Show a group: its rule, member count and nested groups."""
    st = state(ctx)
    group = st.api.get(path("groups", find_group(st.api, group_id)))
    st.out.show(group, render_group(group))


@groups.command("create")
def create_group(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The group's name.")],
    description: Opt = None,
    rule: RuleOpt = None,
) -> None:
    """Create a group; with --rule, its members are the users the rule holds for."""
    st = state(ctx)
    body = {"name": name, "description": description, "rule": rule}
    group = st.api.post("/groups", body)
    st.out.done(group, f"created group {group['name']}: {group['id']}")


@groups.command("update")
def update_group(
    ctx: typer.Context,
    group_id: GroupId,
    name: Opt = None,
    description: Opt = None,
    rule: RuleOpt = None,
    no_rule: Annotated[
        bool, typer.Option("--no-rule", help="Remove the rule: keep the members, by hand.")
    ] = False,
) -> None:
    """Rename a group, change its description, or set or remove its rule."""
    if rule is not None and no_rule:
        raise typer.BadParameter("give --rule or --no-rule, not both")
    body: dict[str, Any] = {
        key: value
        for key, value in (("name", name), ("description", description), ("rule", rule))
        if value is not None
    }
    if no_rule:
        body["rule"] = None
    if not body:
        raise typer.BadParameter(
            "nothing to change: give --name, --description, --rule or --no-rule"
        )
    st = state(ctx)
    group = st.api.patch(path("groups", find_group(st.api, group_id)), body)
    st.out.done(group, f"updated group {group['name']}: {group['member_count']} members")


@groups.command("nest")
def nest_group(
    ctx: typer.Context,
    parent: Annotated[str, typer.Argument(metavar="PARENT", help="The containing group.")],
    child: Annotated[str, typer.Argument(metavar="CHILD", help="The group to nest in it.")],
) -> None:
    """Nest CHILD in PARENT (names or ids): CHILD's members become members of PARENT too."""
    st = state(ctx)
    st.api.put(path("groups", find_group(st.api, parent), "groups", find_group(st.api, child)))
    st.out.done(None, f"nested group {child} in {parent}")


@groups.command("unnest")
def unnest_group(
    ctx: typer.Context,
    parent: Annotated[str, typer.Argument(metavar="PARENT", help="The containing group.")],
    child: Annotated[str, typer.Argument(metavar="CHILD", help="The nested group.")],
) -> None:
    """Take CHILD out of PARENT (names or ids)."""
    st = state(ctx)
    parent_id, child_id = find_group(st.api, parent), find_group(st.api, child)
    st.api.delete(path("groups", parent_id, "groups", child_id))
    st.out.done(None, f"removed group {child} from {parent}")


@groups.command("delete")
def delete_group(ctx: typer.Context, group_id: GroupId) -> None:
    """Delete a group (its members lose what it assigned them)."""
    st = state(ctx)
    st.api.delete(path("groups", find_group(st.api, group_id)))
    st.out.done(None, f"deleted group {group_id}")


@groups.command("members")
def list_members(
    ctx: typer.Context,
    group_id: GroupId,
    effective: Annotated[
        bool, typer.Option("--effective", help="Also the members of nested groups.")
    ] = False,
) -> None:
    """List a group's members."""
    st = state(ctx)
    url = path("groups", find_group(st.api, group_id), "users")
    page = st.api.get(url, effective="true" if effective else None)
    st.out.page(page, USER_COLUMNS, empty="no members")


@groups.command("add")
def add_members(
    ctx: typer.Context,
    group_id: GroupId,
    user_ids: Annotated[
        list[str], typer.Argument(metavar="USER...", help="Users to add (logins or ids).")
    ],
) -> None:
    """Add users to a group."""
    st = state(ctx)
    group = find_group(st.api, group_id)
    for user in user_ids:
        st.api.put(path("groups", group, "users", find_user(st.api, user)))
        st.out.done(None, f"added {user} to group {group_id}")


@groups.command("remove")
def remove_members(
    ctx: typer.Context,
    group_id: GroupId,
    user_ids: Annotated[
        list[str], typer.Argument(metavar="USER...", help="Users to remove (logins or ids).")
    ],
) -> None:
    """Remove users from a group."""
    st = state(ctx)
    group = find_group(st.api, group_id)
    for user in user_ids:
        st.api.delete(path("groups", group, "users", find_user(st.api, user)))
        st.out.done(None, f"removed {user} from group {group_id}")
