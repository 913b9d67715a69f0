"""Directory groups pushed to an app: ``push-groups list|add|get|sync|remove APP ...``.

Pushing is asynchronous (the API answers 202): ``add``, ``sync`` and ``remove`` return at once,
or with ``--wait`` poll until the worker has created (or linked) or corrected the app's group,
or let it go.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from provisiond.cli.apps import AppArg
from provisiond.cli.client import ApiError, CliError, State, path, state
from provisiond.cli.output import Column, when

push_groups = typer.Typer(
    help="Push directory groups to an app, where they are kept equal to the directory.",
    no_args_is_help=True,
)

Settled = Callable[[dict[str, Any]], bool]
POLL_SECONDS = 0.25
PUSH_COLUMNS = (
    Column("GROUP ID", "group_id"),
    Column("NAME", "name"),
    Column("STATUS", "status"),
    Column("MEMBERS", "members"),
    Column("LINKED", "linked"),
    Column("ON UNPUSH", "unpush_action"),
    Column("LAST SYNCED", lambda p: when(p.get("last_synced_at"))),
    Column("LAST ERROR", "last_error", wrap=True),
)
MEMBER_COLUMNS = (
    Column("LOGIN", "login"),
    Column("USER ID", "user_id"),
    Column("REMOTE ID", "remote_id"),
)
GroupArg = Annotated[
    str, typer.Argument(metavar="GROUP", help="The directory group's id or name.")
]
WaitOption = Annotated[
    bool, typer.Option("--wait", help="Wait until the worker has done it in the app.")
]
TimeoutOption = Annotated[
    float, typer.Option(min=0, help="With --wait: stop waiting after this many seconds (exit 1).")
]


class UnpushAction(enum.StrEnum):
    leave = "leave"
    delete = "delete"


def render_pushed(pushed: dict[str, Any]) -> list[tuple[str, Any]]:
    remote = pushed.get("remote_id")
    in_app = f"{pushed.get('remote_name') or pushed['name']} ({remote})" if remote else None
    return [
        ("group id", pushed["group_id"]),
        ("name", pushed["name"]),
        ("status", pushed["status"]),
        ("group in the app", in_app),
        ("linked", pushed["linked"]),
        ("on unpush", pushed["unpush_action"]),
        ("members", pushed["members"]),
        ("last synced", when(pushed.get("last_synced_at"))),
        ("last error", pushed.get("last_error")),
        ("pushed", when(pushed.get("created_at"))),
    ]


def _wait(
    st: State, app: str, pushed: dict[str, Any], done: Settled, timeout: float
) -> dict[str, Any] | None:
    """Poll the pushed group until ``done`` says the worker has settled it; None once the
    worker has unpushed it (the API answers 404)."""
    try:
        return _poll(st, app, pushed, done, time.monotonic() + timeout, timeout)
    except KeyboardInterrupt:
        st.out.note(f"stopped waiting; the worker goes on with group {pushed['name']}")
        raise typer.Exit(130) from None


def _poll(
    st: State, app: str, pushed: dict[str, Any], done: Settled, deadline: float, timeout: float
) -> dict[str, Any] | None:
    url = path("apps", app, "push-groups", pushed["group_id"])
    while True:
        try:
            current: dict[str, Any] = st.api.get(url)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        if done(current):
            return current
        if time.monotonic() > deadline:
            hint = f"see `provisiond logs --app {app} --action app.group`"
            why = current.get("last_error") or hint
            raise CliError(
                f"group {current['name']} in {app} is still {current['status']} after "
                f"{timeout:g} s ({why})"
            )
        time.sleep(POLL_SECONDS)


def _applied_since(before: dict[str, Any]) -> Settled:
    """Settled: the worker has applied the group, or failed, since ``before`` was read."""
    mark = (before.get("last_synced_at"), before.get("last_error"))

    def done(current: dict[str, Any]) -> bool:
        now = (current.get("last_synced_at"), current.get("last_error"))
        return current["status"] in ("active", "failed") and now != mark

    return done


def _outcome(st: State, app: str, pushed: dict[str, Any], what: str) -> None:
    """Print a settled push or sync; a failure is an error (exit 1)."""
    if pushed["status"] == "failed":
        if st.json:
            st.out.print_json(pushed)
        raise CliError(f"{what} group {pushed['name']} in {app} failed: {pushed['last_error']}")
    message = f"group {pushed['name']} is in {app} with {pushed['members']} member(s)"
    if pushed["linked"]:
        message += " (linked to the group of that name already there)"
    st.out.done(pushed, message)


@push_groups.command("list")
def list_pushed(ctx: typer.Context, app: AppArg) -> None:
    """List the groups pushed to an app, with their state in the app."""
    st = state(ctx)
    page = st.api.get(path("apps", app, "push-groups"))
    st.out.page(page, PUSH_COLUMNS, empty="no pushed groups")


@push_groups.command("get")
def get_pushed(ctx: typer.Context, app: AppArg, group: GroupArg) -> None:
    """Show a pushed group and the members provisiond last applied to the app's group."""
    st = state(ctx)
    pushed = st.api.get(path("apps", app, "push-groups", group))
    st.out.show(pushed, render_pushed(pushed))
    if not st.json:
        st.out.line("")
        st.out.table(pushed.get("member_list") or [], MEMBER_COLUMNS, empty="no members")


@push_groups.command("add")
def add(
    ctx: typer.Context,
    app: AppArg,
    group: GroupArg,
    unpush_action: Annotated[
        UnpushAction,
        typer.Option(
            help="What unpushing (or deleting the directory group) does to the app's group: "
            "leave it as it is, or delete it."
        ),
    ] = UnpushAction.leave,
    wait: WaitOption = False,
    timeout: TimeoutOption = 60,
) -> None:
    """Push a directory group: the app's group of that name is created, or linked if it exists.

    Needs the app's push_groups feature (`provisioning show APP`).
    """
    st = state(ctx)
    pushed = st.api.post(
        path("apps", app, "push-groups"), {"group": group, "unpush_action": unpush_action.value}
    )
    if not wait:
        st.out.done(
            pushed,
            f"pushing group {pushed['name']} to {app}; "
            f"`provisiond push-groups get {app} {pushed['group_id']}` shows how it went",
        )
        return
    settled = _wait(st, app, pushed, _applied_since(pushed), timeout)
    if settled is None:
        raise CliError(f"group {pushed['name']} was unpushed from {app} meanwhile")
    _outcome(st, app, settled, "pushing")


@push_groups.command("sync")
def sync(
    ctx: typer.Context,
    app: AppArg,
    group: GroupArg,
    wait: WaitOption = False,
    timeout: TimeoutOption = 60,
) -> None:
    """Read the app's group back and correct what was changed there."""
    st = state(ctx)
    pushed = st.api.post(path("apps", app, "push-groups", group, "sync"))
    if not wait:
        st.out.done(pushed, f"checking group {pushed['name']} in {app} against the directory")
        return
    settled = _wait(st, app, pushed, _applied_since(pushed), timeout)
    if settled is None:
        raise CliError(f"group {pushed['name']} was unpushed from {app} meanwhile")
    _outcome(st, app, settled, "syncing")


@push_groups.command("remove")
def remove(
    ctx: typer.Context,
    app: AppArg,
    group: GroupArg,
    delete: Annotated[
        bool, typer.Option("--delete", help="Delete the app's group.", show_default=False)
    ] = False,
    leave: Annotated[
        bool, typer.Option("--leave", help="Leave the app's group as it is.", show_default=False)
    ] = False,
    wait: WaitOption = False,
    timeout: TimeoutOption = 60,
) -> None:
    """Stop pushing a group (without --delete or --leave: as chosen when it was pushed)."""
    if delete and leave:
        raise typer.BadParameter("give --delete or --leave, not both")
    st = state(ctx)
    action = "delete" if delete else "leave" if leave else None
    url = path("apps", app, "push-groups", group)
    pushed = st.api.request("DELETE", url, params={"action": action})
    name, chosen = pushed["name"], pushed["unpush_action"]
    fate = "deleted" if chosen == "delete" else "left as it is"
    if wait:
        if _wait(st, app, pushed, lambda p: p["status"] != "unpushing", timeout) is not None:
            raise CliError(f"group {name} was pushed to {app} again meanwhile")
        st.out.done(pushed, f"unpushed group {name} from {app}; the app's group was {fate}")
        return
    st.out.done(pushed, f"unpushing group {name} from {app}; the app's group will be {fate}")
