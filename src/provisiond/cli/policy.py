"""Provisioning policies from the command line: ``policy``, ``preview``, ``provision``, ``runs``.

A policy file is the JSON document ``policy show APP --json`` prints, so the round trip is:
show it, edit it, ``preview APP --policy FILE``, then ``policy set APP --file FILE``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from provisiond.cli.apps import AppArg
from provisiond.cli.client import CliError, path, state
from provisiond.cli.names import Names, user_id
from provisiond.cli.output import Column, when
from provisiond.cli.runs import follow_run, summary

PANEL = "Policies"
policy = typer.Typer(help="Show and change an app's provisioning policy.", no_args_is_help=True)
runs = typer.Typer(help="Runs of an app: list, approve or cancel a held run.", no_args_is_help=True)

PolicyFile = Annotated[
    Path,
    typer.Option(
        "--file",
        "-f",
        exists=True,
        dir_okay=False,
        readable=True,
        help="A policy document in JSON (what `policy show APP --json` prints).",
    ),
]
RUN_COLUMNS = (
    Column("ID", "id"),
    Column("KIND", "kind"),
    Column("STATUS", "status"),
    Column("POLICY", "policy_version"),
    Column("DONE", lambda r: f"{r['done']}/{r['total']}"),
    Column("STARTED", lambda r: when(r.get("started_at"))),
    Column("BY", "actor"),
)


def _document(file: Path) -> dict[str, Any]:
    text = file.read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"{file}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(document, dict):
        raise CliError(f"{file}: a policy is a JSON object")
    document.pop("version", None)
    return document


@policy.command("show")
def show(ctx: typer.Context, app: AppArg) -> None:
    """The policy in force (version 0 is the built-in default)."""
    st = state(ctx)
    current = st.api.get(path("apps", app, "policy"))
    if st.json:
        st.out.print_json(current)
        return
    rows: list[tuple[str, Any]] = [
        ("version", current["version"]),
        ("scope", current["scope"] or "(every assigned user)"),
    ]
    rows += [(f"map {target}", source) for target, source in current["mappings"].items()]
    rows += [
        ("deprovisioning", json.dumps(current["deprovisioning"])),
        ("limits", json.dumps(current["limits"])),
    ]
    st.out.fields(rows)


@policy.command("set")
def set_policy(ctx: typer.Context, app: AppArg, file: PolicyFile) -> None:
    """Save a policy as the next version; every user of the app is reconciled under it."""
    st = state(ctx)
    saved = st.api.put(path("apps", app, "policy"), _document(file))
    if not saved["changed"]:
        st.out.done(saved, f"policy of {app} unchanged (version {saved['version']})")
        return
    run = saved.get("run")
    if saved.get("pending") and run:
        # Over the safety limit: saved, but not in force until the held run is approved.
        st.out.done(
            saved,
            f"policy of {app} is pending, not in force: version {saved['version']} stays in force "
            f"until the held run is approved; {summary(run)}",
        )
        raise typer.Exit(1)
    st.out.done(
        saved,
        f"policy of {app} is now version {saved['version']}" + (f"; {summary(run)}" if run else ""),
    )
    if run and run["status"] == "held":
        raise typer.Exit(1)


def preview(
    ctx: typer.Context,
    app: AppArg,
    policy_file: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            exists=True,
            dir_okay=False,
            help="Preview this draft instead of the saved policy.",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=100_000, help="List at most this many changes.")
    ] = 200,
) -> None:
    """Dry run: what a policy would change, user by user (nothing is changed or sent)."""
    st = state(ctx)
    body: dict[str, Any] = {"limit": limit}
    if policy_file is not None:
        body["policy"] = _document(policy_file)
    result = st.api.post(path("apps", app, "policy", "preview"), body)
    if st.json:
        st.out.print_json(result)
        return
    names = Names(st.api)
    for change in result["changes"]:
        head = Text(f"{change['operation']:<10} ", style=_STYLE.get(change["operation"], ""))
        head.append(f"{change['login']}  ", style="bold")
        head.append(names.sources(change.get("reason", "")), style="dim")
        st.out.line(head)
        if change.get("error"):
            st.out.line(Text(f"    {change['error']}", style="red"))
        for item in change["changes"]:
            st.out.line(
                f"    {item['attribute']}: {json.dumps(item['old'])} -> {json.dumps(item['new'])}"
            )
    counts = ", ".join(f"{n} {k}" for k, n in result["counts"].items() if n)
    st.out.line(
        Text(f"{result['users_considered']} users considered: {counts or 'nothing'}", style="bold")
    )
    if result["truncated"]:
        st.out.note(f"(only the first {limit} changes listed; raise --limit for more)")
    if result["would_hold"]:
        st.out.line(
            Text(
                "a run of this policy would be HELD: it deprovisions more than the limits allow",
                style="yellow",
            )
        )


_STYLE = {
    "create": "green",
    "update": "cyan",
    "reactivate": "green",
    "deactivate": "yellow",
    "delete": "red",
    "error": "red",
}


def provision(
    ctx: typer.Context,
    app: AppArg,
    user: Annotated[str, typer.Argument(metavar="USER", help="The user's login or id.")],
) -> None:
    """Provision one user now and print every step (exit 1 if it failed)."""
    st = state(ctx)
    result = st.api.post(path("apps", app, "users", user_id(st.api, user), "provision"))
    if st.json:
        st.out.print_json(result)
    else:
        names = Names(st.api)
        for step in result["trace"]:
            detail = names.sources(str(step.get("detail", "")))
            st.out.line(Text(f"{step['step']:<8} ", style="bold").append(detail))
            for item in step.get("changes", []):
                st.out.line(
                    f"         {item['attribute']}: {json.dumps(item['old'])} -> {json.dumps(item['new'])}"
                )
        st.out.line(Text(f"outcome: {result['outcome']}", style="bold"))
    if result["outcome"] == "failed":
        raise typer.Exit(1)


@runs.command("list")
def list_runs(ctx: typer.Context, app: AppArg) -> None:
    """The app's runs, newest first."""
    st = state(ctx)
    st.out.page(st.api.get(path("apps", app, "runs")), RUN_COLUMNS, empty="no runs")


@runs.command("approve")
def approve(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")],
    wait: Annotated[bool, typer.Option(help="Follow the run until it finishes.")] = True,
) -> None:
    """Release a held run: its deprovisions go ahead."""
    st = state(ctx)
    run = st.api.post(path("runs", run_id, "approve"))
    if wait and not st.json:
        follow_run(st, run, Names(st.api).app(run["app_id"]))
    else:
        st.out.done(run, summary(run))


@runs.command("cancel")
def cancel(ctx: typer.Context, run_id: Annotated[str, typer.Argument(metavar="RUN_ID")]) -> None:
    """Cancel a held run: nothing it held back is deprovisioned."""
    st = state(ctx)
    run = st.api.post(path("runs", run_id, "cancel"))
    st.out.done(run, f"run {run_id} cancelled: nothing was deprovisioned")
