"""An app's roles from the command line: ``roles list|create|update|delete APP ...``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from provisiond.cli.apps import AppArg
from provisiond.cli.client import path, state
from provisiond.cli.output import Column

roles = typer.Typer(
    help="Define an app's roles and how the app expresses them.", no_args_is_help=True
)

KINDS = ("scim_role", "entitlement", "group")
ROLE_COLUMNS = (
    Column("ID", "id"),
    Column("NAME", "name"),
    Column("KIND", lambda r: r["expression"]["kind"]),
    Column("VALUE", lambda r: r["expression"]["value"]),
    Column("DESCRIPTION", "description", wrap=True),
)
RoleArg = Annotated[str, typer.Argument(metavar="ROLE", help="The role's name or id.")]
KindOption = Annotated[
    str | None,
    typer.Option(
        "--kind",
        help="How the app expresses it: scim_role (a SCIM roles value, the default), "
        "entitlement, or group (membership of a pushed group).",
    ),
]
ValueOption = Annotated[
    str | None, typer.Option("--value", help="The value in the app (default: the role's name).")
]


def _expression(kind: str | None, value: str | None, name: str | None) -> dict[str, Any] | None:
    if kind is None and value is None:
        return None
    if kind is not None and kind not in KINDS:
        raise typer.BadParameter(f"--kind is one of {', '.join(KINDS)}")
    if value is None and name is None:
        raise typer.BadParameter("give --value with --kind")
    return {"kind": kind or "scim_role", "value": value or name}


@roles.command("list")
def list_roles(ctx: typer.Context, app: AppArg) -> None:
    """List the roles an app defines."""
    st = state(ctx)
    st.out.page(st.api.get(path("apps", app, "roles")), ROLE_COLUMNS, empty="no roles")


@roles.command("create")
def create(
    ctx: typer.Context,
    app: AppArg,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Unique in the app, any case.")],
    description: Annotated[str | None, typer.Option(help="What the role allows.")] = None,
    kind: KindOption = None,
    value: ValueOption = None,
) -> None:
    """Define a role."""
    st = state(ctx)
    body: dict[str, Any] = {"name": name, "description": description}
    expression = _expression(kind, value, name)
    if expression is not None:
        body["expression"] = expression
    created = st.api.post(path("apps", app, "roles"), body)
    st.out.done(created, f"defined role {created['name']} in {app}: {created['id']}")


@roles.command("update")
def update(
    ctx: typer.Context,
    app: AppArg,
    role: RoleArg,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    description: Annotated[str | None, typer.Option(help="A new description.")] = None,
    kind: KindOption = None,
    value: ValueOption = None,
) -> None:
    """Rename, describe or re-express a role; its holders are reconciled."""
    st = state(ctx)
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if description is not None:
        body["description"] = description
    if kind is not None and value is None:
        current = st.api.get(path("apps", app, "roles", role))
        value = current["expression"]["value"]
    expression = _expression(kind, value, None)
    if expression is not None:
        body["expression"] = expression
    if not body:
        raise typer.BadParameter("nothing to change: give --name, --description, --kind or --value")
    updated = st.api.patch(path("apps", app, "roles", role), body)
    st.out.done(updated, f"updated role {updated['name']} of {app}")


@roles.command("delete")
def delete(ctx: typer.Context, app: AppArg, role: RoleArg) -> None:
    """Delete a role no assignment grants."""
    st = state(ctx)
    st.api.delete(path("apps", app, "roles", role))
    st.out.done(None, f"deleted role {role} of {app}")
