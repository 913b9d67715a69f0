"""Following a run (a full sync, a policy change, a bulk change): its one-line summary, and a
progress bar until it ends.

Shared by ``sync``, ``assign --wait``, ``provisioning enable``, ``policy set`` and ``runs approve``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import typer

from provisiond.cli.client import CliError, State, path
from provisiond.cli.names import Names, is_id
from provisiond.cli.output import print_error, printable

if TYPE_CHECKING:  # Rich's progress bars load when one is drawn
    from rich.progress import Progress

POLL_SECONDS = 0.25


def kind_of(run: dict[str, Any]) -> str:
    """``full sync``, ``policy run``, ``change run``."""
    kind = run.get("kind", "full")
    return "full sync" if kind == "full" else f"{kind} run"


def what(run: dict[str, Any]) -> str:
    """``full sync <id>``, ``policy run <id>``, ``change run <id>``."""
    return f"{kind_of(run)} {run['id']}"


def summary(run: dict[str, Any]) -> str:
    if run["status"] == "held":
        held = run.get("held") or {}
        counts = held.get("counts", {})
        losing = counts.get("deactivate", 0) + counts.get("delete", 0)
        return (
            f"{what(run)} is held: it would deprovision {losing} of "
            f"{held.get('accounts', '?')} accounts, over the app's policy limit"
        )
    counts = ", ".join(f"{n} {outcome}" for outcome, n in run.get("counts", {}).items() if n)
    if run["status"] == "running":
        return f"{what(run)} started for {run['total']} user(s)"
    return f"{what(run)} {run['status']}: {counts or 'nothing to do'}"


def progress_bar(st: State) -> Progress:
    """A progress bar on stderr: a label (never markup), the bar, done of total, time taken."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    return Progress(*columns, console=st.out.err)


def follow_run(st: State, run: dict[str, Any], app: str, *, timeout: float | None = None) -> None:
    """Poll the run until it finishes, with a progress bar on stderr; exit 1 if it failed."""
    deadline = None if timeout is None else time.monotonic() + timeout

    def poll(current: dict[str, Any]) -> dict[str, Any]:
        if deadline is not None and time.monotonic() > deadline:
            raise CliError(f"{what(current)} is still running after {timeout:g} s", 1)
        time.sleep(POLL_SECONDS)
        latest: dict[str, Any] = st.api.get(path("runs", current["id"]))
        return latest

    try:
        if st.json:
            while run["status"] == "running":
                run = poll(run)
        else:
            with progress_bar(st) as bar:
                label = printable(f"{kind_of(run)} of {Names(st.api).app(app) if is_id(app) else app}")
                task = bar.add_task(label, total=run["total"], completed=run["done"])
                while run["status"] == "running":
                    run = poll(run)
                    bar.update(task, total=run["total"], completed=run["done"])
    except KeyboardInterrupt:
        st.out.note(f"stopped waiting; {what(run)} goes on on the server")
        raise typer.Exit(130) from None
    if st.json:
        st.out.print_json(run)
    else:
        st.out.line(summary(run))
    if run["status"] == "held":
        if not st.json:
            print_error(
                f"{what(run)} waits for approval: POST /api/v1/runs/{run['id']}/approve "
                "(or /cancel)"
            )
        raise typer.Exit(1)
    if run["status"] != "succeeded":
        if not st.json:
            print_error(
                f"{what(run)} {run['status']}: see `provisiond tasks list --status dead` "
                f"and `provisiond logs --app {app} --outcome failure`"
            )
        raise typer.Exit(1)
