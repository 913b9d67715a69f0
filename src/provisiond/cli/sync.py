"""Who gets an app (``assign``, ``unassign``, ``assignments``), ``sync`` and ``accounts``."""

from __future__ import annotations

from typing import Annotated

import typer

from provisiond.cli.apps import AppArg
from provisiond.cli.client import path, state
from provisiond.cli.names import Names, group_id, user_id
from provisiond.cli.output import Column, when
from provisiond.cli.runs import follow_run, summary

PANEL = "Applications"

ACCOUNT_COLUMNS = (
    Column("LOGIN", "login"),
    Column("USER ID", "user_id"),
    Column("REMOTE ID", "remote_id"),
    Column("STATUS", "status"),
    Column("LAST SYNCED", lambda a: when(a.get("last_synced_at"))),
    Column("LAST ERROR", "last_error", wrap=True),
)


def assign(
    ctx: typer.Context,
    app: AppArg,
    user: Annotated[
        str | None, typer.Option(metavar="USER", help="Assign a user (login or id).")
    ] = None,
    group: Annotated[
        str | None, typer.Option(metavar="GROUP", help="Assign a group (name or id).")
    ] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(help="A role it grants in the app (name or id); repeat for several."),
    ] = None,
    priority: Annotated[
        int | None,
        typer.Option(min=0, max=10_000, help="Group assignments: lower wins; unique per app."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the run of a large group until it is done.")
    ] = False,
) -> None:
    """Give a user, or every member of a group, an account in the app."""
    if (user is None) == (group is None):
        raise typer.BadParameter("give exactly one of --user USER or --group GROUP")
    st = state(ctx)
    if user is not None:
        kind, shown, principal = "user", user, user_id(st.api, user)
    else:
        assert group is not None
        kind, shown, principal = "group", group, group_id(st.api, group)
    body = {
        "principal_type": kind, "principal_id": principal, "roles": role or [],
        "priority": priority,
    }
    created = st.api.post(path("apps", app, "assignments"), body)
    run_id = created.get("run_id")
    message = f"assigned {kind} {shown} to {app}: assignment {created['id']}"
    if run_id:
        message += f"; run {run_id} reconciles its users (`provisiond runs list {app}`)"
    st.out.done(created, message)
    if run_id and wait:
        follow_run(st, st.api.get(path("runs", run_id)), app)


def unassign(
    ctx: typer.Context,
    app: AppArg,
    assignment_id: Annotated[
        str, typer.Argument(metavar="ASSIGNMENT_ID", help="See `assignments APP`.")
    ],
) -> None:
    """Remove an assignment; users left without one are deprovisioned per the app's settings."""
    st = state(ctx)
    st.api.delete(path("apps", app, "assignments", assignment_id))
    st.out.done(None, f"removed assignment {assignment_id} from {app}")


def assignments(ctx: typer.Context, app: AppArg) -> None:
    """List the users and groups assigned to an app."""
    st = state(ctx)
    page = st.api.get(path("apps", app, "assignments"))
    names = Names(st.api)
    columns = (
        Column("ID", "id"),
        Column("TYPE", "principal_type"),
        Column("PRINCIPAL", lambda a: names.principal(a["principal_type"], a["principal_id"])),
        Column("ROLES", lambda a: ", ".join(a.get("roles") or []) or None),
        Column("PRIORITY", "priority"),
        Column("CREATED", lambda a: when(a.get("created_at"))),
    )
    st.out.page(page, columns, empty="no assignments")


def accounts(
    ctx: typer.Context,
    app: AppArg,
    status: Annotated[str | None, typer.Option(help="active, deactivated or deleted.")] = None,
) -> None:
    """List the accounts provisiond manages in an app."""
    st = state(ctx)
    page = st.api.get(path("apps", app, "accounts"), status=status)
    st.out.page(page, ACCOUNT_COLUMNS, empty="no accounts")


def sync(
    ctx: typer.Context,
    app: AppArg,
    wait: Annotated[bool, typer.Option(help="Wait for the run to finish, with progress.")] = True,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Stop waiting after this many seconds (exit 1).")
    ] = None,
) -> None:
    """Run a full sync: every assigned user checked against the app (exit 1 if the run fails)."""
    st = state(ctx)
    run = st.api.post(path("apps", app, "sync"))
    if not wait:
        st.out.done(run, summary(run))
        return
    follow_run(st, run, app, timeout=timeout)
