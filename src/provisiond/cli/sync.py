"""Who gets an app (``assign``, ``unassign``, ``assignments``), ``sync`` and ``accounts``."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from provisiond.cli.apps import AppArg
from provisiond.cli.client import CliError, State, path, state
from provisiond.cli.output import Column, print_error, when

PANEL = "Applications"
POLL_SECONDS = 0.25
PROGRESS_COLUMNS = (
    TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
    TimeElapsedColumn(),
)

ASSIGNMENT_COLUMNS = (
    Column("ID", "id"),
    Column("TYPE", "principal_type"),
    Column("PRINCIPAL", "principal_id"),
    Column("ROLES", lambda a: ", ".join(a.get("roles") or []) or None),
    Column("PRIORITY", "priority"),
    Column("CREATED", lambda a: when(a.get("created_at"))),
)
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
    user: Annotated[str | None, typer.Option(metavar="USER_ID", help="Assign a user.")] = None,
    group: Annotated[str | None, typer.Option(metavar="GROUP_ID", help="Assign a group.")] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(help="A role it grants in the app (name or id); repeat for several."),
    ] = None,
    priority: Annotated[
        int | None,
        typer.Option(min=0, max=10_000, help="Group assignments: lower wins; unique per app."),
    ] = None,
) -> None:
    """Give a user, or every member of a group, an account in the app."""
    if (user is None) == (group is None):
        raise typer.BadParameter("give exactly one of --user USER_ID or --group GROUP_ID")
    st = state(ctx)
    kind, principal = ("user", user) if user is not None else ("group", group)
    body = {
        "principal_type": kind, "principal_id": principal, "roles": role or [],
        "priority": priority,
    }
    created = st.api.post(path("apps", app, "assignments"), body)
    st.out.done(created, f"assigned {kind} {principal} to {app}: assignment {created['id']}")


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
    st.out.page(page, ASSIGNMENT_COLUMNS, empty="no assignments")


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


def summary(run: dict[str, Any]) -> str:
    if run["status"] == "held":
        held = run.get("held") or {}
        counts = held.get("counts", {})
        losing = counts.get("deactivate", 0) + counts.get("delete", 0)
        return (
            f"full sync {run['id']} is held: it would deprovision {losing} of "
            f"{held.get('accounts', '?')} accounts, over the app's policy limit"
        )
    counts = ", ".join(f"{n} {outcome}" for outcome, n in run.get("counts", {}).items() if n)
    if run["status"] == "running":
        return f"full sync {run['id']} started for {run['total']} user(s)"
    return f"full sync {run['id']} {run['status']}: {counts or 'nothing to do'}"


def follow_run(st: State, run: dict[str, Any], app: str, *, timeout: float | None = None) -> None:
    """Poll the run until it finishes, with a progress bar on stderr; exit 1 if it failed."""
    deadline = None if timeout is None else time.monotonic() + timeout

    def poll(current: dict[str, Any]) -> dict[str, Any]:
        if deadline is not None and time.monotonic() > deadline:
            raise CliError(f"full sync {current['id']} is still running after {timeout:g} s", 1)
        time.sleep(POLL_SECONDS)
        latest: dict[str, Any] = st.api.get(path("runs", current["id"]))
        return latest

    try:
        if st.json:
            while run["status"] == "running":
                run = poll(run)
        else:
            with Progress(*PROGRESS_COLUMNS, console=st.out.err) as bar:
                task = bar.add_task(f"sync {app}", total=run["total"], completed=run["done"])
                while run["status"] == "running":
                    run = poll(run)
                    bar.update(task, total=run["total"], completed=run["done"])
    except KeyboardInterrupt:
        st.out.note(f"stopped waiting; full sync {run['id']} goes on on the server")
        raise typer.Exit(130) from None
    if st.json:
        st.out.print_json(run)
    else:
        st.out.line(summary(run))
    if run["status"] == "held":
        if not st.json:
            print_error(
                f"the full sync waits for approval: POST /api/v1/runs/{run['id']}/approve "
                "(or /cancel)"
            )
        raise typer.Exit(1)
    if run["status"] != "succeeded":
        if not st.json:
            print_error(
                f"the full sync {run['status']}: see `provisiond tasks list --status dead` "
                f"and `provisiond logs --app {app} --outcome failure`"
            )
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(assign)
    app.command(rich_help_panel=PANEL)(unassign)
    app.command(rich_help_panel=PANEL)(assignments)
    app.command(rich_help_panel=PANEL)(sync)
    app.command(rich_help_panel=PANEL)(accounts)
