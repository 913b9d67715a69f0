"""The app's side: ``import APP`` (with a progress bar), ``matches``, ``orphans``, ``drift``."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from provisiond.cli.apps import AppArg
from provisiond.cli.client import CliError, State, path, state
from provisiond.cli.names import user_id
from provisiond.cli.output import Column, printable, when
from provisiond.cli.runs import follow_run, summary

POLL_SECONDS = 0.25
IdsArg = Annotated[
    list[str] | None,
    typer.Argument(metavar="ID...", help="Account ids (see `matches list` / `orphans list`)."),
]
AllOpt = Annotated[bool, typer.Option("--all", help="Every one listed now.")]

matches = typer.Typer(
    help="Matches an import proposed: list, confirm, reject.", no_args_is_help=True
)
orphans = typer.Typer(
    help="Accounts in an app that belong to nobody: list, ignore, link, deactivate, delete.",
    no_args_is_help=True,
)

ACCOUNT_COLUMNS = (
    Column("ID", "id"),
    Column("REMOTE ID", "remote_id"),
    Column("USERNAME", "user_name"),
    Column("ACTIVE", "active"),
    Column("MATCH", "match"),
    Column("USER ID", "user_id"),
    Column("RULE", "rule"),
    Column("CANDIDATES", lambda a: ", ".join(a.get("candidates") or []) or None),
)
ORPHAN_COLUMNS = (
    Column("ID", lambda o: o["account"]["id"]),
    Column("REMOTE ID", lambda o: o["account"]["remote_id"]),
    Column("USERNAME", lambda o: o["account"]["user_name"]),
    Column("ACTIVE", lambda o: o["account"]["active"]),
    Column("REASON", "reason"),
    Column("LOGIN", "login"),
    Column("SINCE", lambda o: when(o.get("since"))),
    Column("DAYS", "days"),
)


def _summary(run: dict[str, Any]) -> str:
    counts = run.get("counts") or {}
    if run["status"] == "completed":
        return f"import {run['id']} completed: {run['accounts']} accounts read, " + ", ".join(
            f"{counts.get(k, 0)} {k}"
            for k in ("linked", "pending", "conflict", "unmatched", "gone")
        )
    if run["status"] == "failed":
        return f"import {run['id']} failed: {run.get('error')}"
    return f"import {run['id']} {run['status']}: {run['accounts']} accounts read so far"


def import_app(
    ctx: typer.Context,
    app: AppArg,
    wait: Annotated[
        bool, typer.Option(help="Wait for the import to finish, with progress.")
    ] = True,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Stop waiting after this many seconds (exit 1).")
    ] = None,
) -> None:
    """Read every account the app holds and match them to directory users (exit 1 on failure)."""
    st = state(ctx)
    run = st.api.post(path("apps", app, "import"))
    if wait:
        run = _follow(st, app, run, timeout)
    if st.json:
        st.out.print_json(run)
    else:
        st.out.line(_summary(run))
    if run["status"] == "failed":
        raise typer.Exit(1)


def _follow(st: State, app: str, run: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    deadline = None if timeout is None else time.monotonic() + timeout

    def poll() -> dict[str, Any]:
        if deadline is not None and time.monotonic() > deadline:
            raise CliError(f"import {run['id']} is still running after {timeout:g} s", 1)
        time.sleep(POLL_SECONDS)
        latest: dict[str, Any] = st.api.get(path("apps", app, "imports", run["id"]))
        return latest

    try:
        if st.json:
            while run["status"] in ("queued", "running"):
                run = poll()
            return run
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        columns = (
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
        )
        with Progress(*columns, console=st.out.err) as bar:
            task = bar.add_task(printable(f"import of {app}"), total=None)
            while run["status"] in ("queued", "running"):
                run = poll()
                bar.update(task, total=run.get("claimed_total"), completed=run["accounts"])
        return run
    except KeyboardInterrupt:
        st.out.note(f"stopped waiting; import {run['id']} goes on on the server")
        raise typer.Exit(130) from None


def _ids(st: State, ids: list[str] | None, every: bool, listing: list[str]) -> list[str]:
    if bool(ids) == every:
        raise typer.BadParameter("give account ids, or --all")
    return listing if every else list(ids or [])


def _listed(st: State, app: str, match: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = st.api.get(path("apps", app, "app-accounts"), match=match, after=after)
        items += page["items"]
        after = page.get("next_cursor")
        if not after:
            return items


@matches.command("list")
def list_matches(
    ctx: typer.Context,
    app: AppArg,
    match: Annotated[
        str, typer.Option(help="pending, conflict, unmatched, linked or rejected.")
    ] = "pending",
) -> None:
    """List the app's accounts by what matching made of them (pending by default)."""
    st = state(ctx)
    st.out.page({"items": _listed(st, app, match)}, ACCOUNT_COLUMNS, empty=f"no {match} accounts")


@matches.command("confirm")
def confirm(ctx: typer.Context, app: AppArg, ids: IdsArg = None, every: AllOpt = False) -> None:
    """Link pending matches; nothing changes in the app before the next reconcile."""
    _decide(ctx, app, ids, every, "confirm", {}, "linked {} accounts in " + app)


@matches.command("reject")
def reject(
    ctx: typer.Context,
    app: AppArg,
    ids: IdsArg = None,
    every: AllOpt = False,
    note: Annotated[str | None, typer.Option(help="Why the matches are wrong.")] = None,
) -> None:
    """Reject pending matches: the accounts stay unlinked and are not matched again."""
    _decide(ctx, app, ids, every, "reject", {"note": note}, "rejected {} matches in " + app)


def _decide(
    ctx: typer.Context,
    app: str,
    ids: list[str] | None,
    every: bool,
    action: str,
    body: dict[str, Any],
    message: str,
) -> None:
    st = state(ctx)
    listing = [a["id"] for a in _listed(st, app, "pending")] if every else []
    chosen = _ids(st, ids, every, listing)
    if not chosen:
        st.out.done({"count": 0}, "no pending matches")
        return
    done = st.api.post(path("apps", app, "matches", action), {"ids": chosen, **body})
    st.out.done(done, message.format(done["count"]))


def _orphan_ids(st: State, app: str) -> list[str]:
    return [o["account"]["id"] for o in st.api.get(path("apps", app, "orphans"))["items"]]


@orphans.command("list")
def list_orphans(
    ctx: typer.Context,
    app: AppArg,
    ignored: Annotated[bool, typer.Option("--ignored", help="Show ignored ones too.")] = False,
) -> None:
    """Accounts linked to nobody, or to a user no longer assigned or active, with since when."""
    st = state(ctx)
    page = st.api.get(path("apps", app, "orphans"), include_ignored=ignored or None)
    st.out.page(page, ORPHAN_COLUMNS, empty="no orphans")


@orphans.command("ignore")
def ignore(
    ctx: typer.Context,
    app: AppArg,
    note: Annotated[str, typer.Option(help="Why they stay (required).")],
    ids: IdsArg = None,
    every: AllOpt = False,
) -> None:
    """Leave orphans as they are, saying why."""
    st = state(ctx)
    chosen = _ids(st, ids, every, _orphan_ids(st, app) if every else [])
    done = st.api.post(path("apps", app, "orphans", "ignore"), {"ids": chosen, "note": note})
    st.out.done(done, f"ignored {done['count']} orphans in {app}")


@orphans.command("link")
def link(
    ctx: typer.Context,
    app: AppArg,
    account: Annotated[str, typer.Argument(metavar="ID", help="The account's id.")],
    user: Annotated[str, typer.Option(metavar="USER", help="The user (login or id).")],
) -> None:
    """Link an orphan to a directory user; the next reconcile plans from it."""
    st = state(ctx)
    body = {"id": account, "user_id": user_id(st.api, user)}
    done = st.api.post(path("apps", app, "orphans", "link"), body)
    st.out.done(done, f"linked {done['remote_id']} in {app} to {user}")


def _deprovision(
    ctx: typer.Context, app: str, ids: list[str] | None, every: bool, action: str, wait: bool
) -> None:
    st = state(ctx)
    chosen = _ids(st, ids, every, _orphan_ids(st, app) if every else [])
    if not chosen:
        st.out.done(None, "no orphans")
        return
    run = st.api.post(
        path("apps", app, "orphans", "deprovision"), {"ids": chosen, "action": action}
    )
    if wait and run["status"] == "running":
        follow_run(st, run, app)
    else:
        st.out.done(run, summary(run))


WaitOpt = Annotated[bool, typer.Option(help="Wait for the run, with progress.")]


@orphans.command("deactivate")
def deactivate(
    ctx: typer.Context, app: AppArg, ids: IdsArg = None, every: AllOpt = False, wait: WaitOpt = True
) -> None:
    """Deactivate orphans, within the policy's safety limits (over them, the run is held)."""
    _deprovision(ctx, app, ids, every, "deactivate", wait)


@orphans.command("delete")
def delete(
    ctx: typer.Context, app: AppArg, ids: IdsArg = None, every: AllOpt = False, wait: WaitOpt = True
) -> None:
    """Delete orphans from the app, within the policy's safety limits (over them, held)."""
    _deprovision(ctx, app, ids, every, "delete", wait)


DRIFT_COLUMNS = (
    Column("LOGIN", "login"),
    Column("REMOTE ID", "remote_id"),
    Column("ATTRIBUTE", lambda d: "; ".join(e["attribute"] for e in d["drift"])),
    Column("APPLIED", lambda d: "; ".join(json.dumps(e.get("applied")) for e in d["drift"])),
    Column("IN THE APP", lambda d: "; ".join(json.dumps(e.get("found")) for e in d["drift"])),
    Column("CHECKED", lambda d: when(d.get("last_synced_at"))),
)


def drift(ctx: typer.Context, app: AppArg) -> None:
    """Accounts changed in the app behind provisiond's back, as the last full sync found them."""
    st = state(ctx)
    st.out.page(st.api.get(path("apps", app, "drift")), DRIFT_COLUMNS, empty="no drift found")
