"""``logs`` (the activity log, ``--follow`` to tail it) and ``tasks`` (the provisioning queue)."""

from __future__ import annotations

import enum
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.text import Text

from provisiond.cli.client import MAX_PAGE, State, path, state
from provisiond.cli.names import Names
from provisiond.cli.names import user_id as find_user
from provisiond.cli.output import Column, styled, when

PANEL = "Activity"
# Events may commit out of id order (PostgreSQL hands out ids before commit): --follow looks
# this many ids back on every poll and skips the events it has printed.
LATE_WINDOW = 200

tasks = typer.Typer(
    help="The provisioning queue: failed (dead) tasks to retry or dismiss.", no_args_is_help=True
)


class Outcome(enum.StrEnum):
    success = "success"
    failure = "failure"
    skipped = "skipped"
    retry = "retry"


class TaskStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    dead = "dead"
    dismissed = "dismissed"
    superseded = "superseded"


EVENT_COLUMNS = (
    Column("TIME", lambda e: when(e.get("time"))),
    Column("ACTOR", "actor"),
    Column("ACTION", "action"),
    Column("OUTCOME", "outcome"),
    Column("MESSAGE", "message", wrap=True),
)

_AGE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str) -> str:
    """An age (``15m``, ``2h``, ``7d``) or a time (ISO 8601; local time if it has no offset)."""
    age = _AGE.match(value.strip())
    if age:
        delta = timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
        return (datetime.now(UTC) - delta).isoformat()
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither a time (2024-05-01T12:00:00Z) nor an age (15m, 2h, 7d)",
            param_hint="--since",
        ) from None
    return (moment if moment.tzinfo else moment.astimezone()).isoformat()


def event_line(event: dict[str, Any]) -> Text:
    line = Text(when(event.get("time")), style="dim") + Text("  ")
    outcome = str(event.get("outcome", ""))
    line += styled(outcome) + Text(" " * max(1, 9 - len(outcome)))
    line += Text(str(event.get("action", "")), style="bold") + Text("  ")
    line += Text(str(event.get("message", ""))) + Text(f"  ({event.get('actor')})", style="dim")
    return line


def logs(
    ctx: typer.Context,
    app: Annotated[str | None, typer.Option(help="Only events of this app (id or name).")] = None,
    user: Annotated[
        str | None, typer.Option(metavar="USER", help="Only events of this user (login or id).")
    ] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action or its prefix, e.g. app.user.")
    ] = None,
    outcome: Annotated[Outcome | None, typer.Option(help="Only this outcome.")] = None,
    q: Annotated[str | None, typer.Option("--q", help="Text in the message or actor.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only events since this time or age (15m, 2h, 7d).")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1, show_default=False,
            help="At most this many events (default: 50; 10 with --follow).",
        ),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Print new events as they happen, until Ctrl-C.")
    ] = False,
    interval: Annotated[float, typer.Option(min=0.1, max=10, hidden=True)] = 0.5,
) -> None:
    """Show the activity log, newest first (with --follow: oldest first, then as it grows)."""
    st = state(ctx)
    filters = {
        "app": app, "user": find_user(st.api, user) if user else None, "action": action, "outcome": outcome.value if outcome else None,
        "q": q, "since": parse_since(since) if since else None,
    }
    if follow:
        follow_logs(st, filters, limit or 10, interval)
        return
    page = st.api.collect("/logs", limit or 50, **filters)
    st.out.page(page, EVENT_COLUMNS, empty="no events", limit=limit or 50)


def follow_logs(st: State, filters: dict[str, Any], backlog: int, interval: float) -> None:
    seen: set[int] = set()

    def show(event: dict[str, Any]) -> None:
        seen.add(event["id"])
        if st.json:
            st.out.print_json(event, compact=True)
        else:
            st.out.line(event_line(event))
        sys.stdout.flush()

    try:
        recent = st.api.get("/logs", **filters, limit=backlog)["items"]
        newest = st.api.get("/logs", limit=1)["items"]  # where to follow from, whatever the filters
        for event in reversed(recent):
            show(event)
        start = high = max([e["id"] for e in newest + recent], default=0)
        if not st.json:
            st.out.note("following the activity log; Ctrl-C to stop")
        while True:
            time.sleep(interval)
            floor = max(start, high - LATE_WINDOW)
            while True:
                batch = st.api.get("/logs", **filters, after=floor, limit=MAX_PAGE)["items"]
                for event in batch:
                    if event["id"] not in seen:
                        show(event)
                if len(batch) < MAX_PAGE:
                    break
                floor = batch[-1]["id"]
            high = max([high, *seen])
            seen = {i for i in seen if i > high - LATE_WINDOW}
    except KeyboardInterrupt:
        return


# -- tasks ------------------------------------------------------------------------------------

TaskId = Annotated[str, typer.Argument(metavar="TASK_ID", help="See `tasks list`.")]


def subject(names: Names, task: dict[str, Any]) -> str | None:
    """A user task's login, or a pushed group's ``group:<name>``."""
    if task.get("user_id"):
        return names.user(task["user_id"])
    if task.get("group_id"):
        return "group:" + names.group(task["group_id"])
    return None


@tasks.command("list")
def list_tasks(
    ctx: typer.Context,
    status: Annotated[
        TaskStatus | None, typer.Option(help="Only tasks in this status, e.g. dead.")
    ] = None,
    app: Annotated[str | None, typer.Option(help="Only tasks of this app (id or name).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many tasks.")] = 100,
) -> None:
    """List provisioning tasks, with their last error."""
    st = state(ctx)
    page = st.api.get("/tasks", status=status.value if status else None, app=app, limit=limit)
    names = Names(st.api)
    columns = (
        Column("ID", "id"),
        Column("APP", lambda t: names.app(t["app_id"])),
        Column("FOR", lambda t: subject(names, t)),
        Column("OPERATION", lambda t: t.get("operation") or t.get("reason")),
        Column("STATUS", "status"),
        Column("ATTEMPTS", "attempts"),
        Column("UPDATED", lambda t: when(t.get("updated_at"))),
        Column("LAST ERROR", "last_error", wrap=True),
    )
    st.out.page(page, columns, empty="no tasks")


@tasks.command("retry")
def retry_task(
    ctx: typer.Context,
    task_id: Annotated[
        str | None, typer.Argument(metavar="[TASK_ID]", help="See `tasks list`.", show_default=False)
    ] = None,
    app: Annotated[
        str | None, typer.Option(help="With --all: the app (name or id).", show_default=False)
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Retry every dead task of --app (after an outage).")
    ] = False,
) -> None:
    """Retry a dead task now, or with --app APP --all every dead task of the app."""
    if (task_id is None) == (not every) or (app is None) == every:
        raise typer.BadParameter("give a TASK_ID, or --app APP --all (not both)")
    st = state(ctx)
    if task_id is not None:
        task = st.api.post(path("tasks", task_id, "retry"))
        st.out.done(task, f"task {task['id']} is now {task['status']}")
        return
    queued = st.api.post("/tasks/retry", {"app": app})
    count = len(queued["items"])
    st.out.done(queued, f"{count} task(s) of {app} queued again" if count else f"{app} has no dead tasks")


@tasks.command("dismiss")
def dismiss_task(ctx: typer.Context, task_id: TaskId) -> None:
    """Dismiss a dead task: accept that the account is not as the directory wants it."""
    st = state(ctx)
    task = st.api.post(path("tasks", task_id, "dismiss"))
    st.out.done(task, f"task {task['id']} is now {task['status']}")


# -- workers ----------------------------------------------------------------------------------


def workers(ctx: typer.Context) -> None:
    """List the worker processes sharing the server's database, and how each is doing.

    A lost worker stopped beating (killed, or cut off from the database): the tasks it held
    went back to the queue for the others.
    """
    st = state(ctx)
    page = st.api.get("/workers")
    columns = (
        Column("ID", "id"),
        Column("STATE", "state"),
        Column("IN FLIGHT", "in_flight"),
        Column("STARTED", lambda w: when(w.get("started_at"))),
        Column("LAST BEAT", lambda w: when(w.get("beat_at"))),
    )
    st.out.page(page, columns, empty="no workers: start one with `provisiond worker` (or `serve`)")
