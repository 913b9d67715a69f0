"""``users import`` and ``users export``: CSV files of users, over the REST API.

The file is streamed to the server as the body of ``POST /imports`` (never parsed or held
here), which reads and plans it; the plan is printed; then, unless ``--dry-run``, ``POST
/imports/{id}/apply`` applies it while a progress bar follows ``GET /imports/{id}``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from provisiond.cli.client import CliError, State, path, state
from provisiond.cli.directory import users
from provisiond.cli.output import print_error, printable
from provisiond.cli.runs import progress_bar

__all__ = ["users"]
POLL_SECONDS = 0.5
UPLOAD_CHUNK = 1 << 16
ERRORS_SHOWN = 50


def parse_map(values: list[str] | None, mapping_file: Path | None) -> dict[str, str]:
    """``--mapping FILE`` (a JSON object, column -> attribute), then each ``--map COL=ATTR``."""
    mapping: dict[str, str] = {}
    if mapping_file is not None:
        try:
            loaded = json.loads(mapping_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(f"cannot read {mapping_file}: {exc}", param_hint="--mapping") from None
        if not isinstance(loaded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
        ):
            raise typer.BadParameter(
                'expected a JSON object {"Column": "attribute"}', param_hint="--mapping"
            )
        mapping.update(loaded)
    for item in values or []:
        column, sep, target = item.partition("=")
        if not sep or not column.strip():
            raise typer.BadParameter(f"expected COLUMN=ATTRIBUTE, got {item!r}", param_hint="--map")
        mapping[column.strip()] = target.strip()
    return mapping


def chunks(file: Path) -> Iterator[bytes]:
    with file.open("rb") as stream:
        while block := stream.read(UPLOAD_CHUNK):
            yield block


def plan_lines(imported: dict[str, Any]) -> list[str]:
    planned = imported["planned"]
    lines = [
        f"{imported['rows']} rows read: {planned.get('create', 0)} to create, "
        f"{planned.get('update', 0)} to update, {planned.get('unchanged', 0)} unchanged"
        + (f", {planned['deactivate']} to deactivate (not in the file)"
           if planned.get("deactivate") else "")
        + (f", {planned['invalid']} bad" if planned.get("invalid") else "")
    ]
    for error in imported["errors"][:ERRORS_SHOWN]:
        where = f"line {error['line']}: " if error.get("line") else ""
        lines.append(f"  {where}{error['message']}")
    if imported["error_count"] > ERRORS_SHOWN:
        lines.append(f"  ... and {imported['error_count'] - ERRORS_SHOWN} more errors")
    return lines


@users.command("import")
def import_users(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(metavar="FILE.csv", exists=True, dir_okay=False, readable=True,
                             help="A header row, then one user a row (UTF-8).")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what the file would change; change nothing.")
    ] = False,
    maps: Annotated[
        list[str] | None,
        typer.Option("--map", metavar="COLUMN=ATTRIBUTE",
                     help="Read COLUMN into a profile attribute (repeatable); COLUMN= leaves it out. "
                     "Columns named after an attribute need none."),
    ] = None,
    mapping_file: Annotated[
        Path | None,
        typer.Option("--mapping", metavar="FILE.json", help='The mapping as JSON: {"Column": "attribute"}.'),
    ] = None,
    deactivate_missing: Annotated[
        bool, typer.Option("--deactivate-missing",
                           help="Also deactivate every user the file does not name.")
    ] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid",
                           help="Apply the good rows of a file with bad ones (otherwise nothing).")
    ] = False,
) -> None:
    """Create and update users from a CSV file (and their groups: a `groups` column)."""
    st = state(ctx)
    params = {
        "mapping": json.dumps(parse_map(maps, mapping_file)) if maps or mapping_file else None,
        "deactivate_missing": "true" if deactivate_missing else None,
        "skip_invalid": "true" if skip_invalid else None,
        "filename": file.name,
    }
    imported = st.api.request(
        "POST", "/imports", params=params, content=chunks(file),
        headers={"Content-Type": "text/csv", "Content-Length": str(file.stat().st_size)},
    )
    if dry_run or imported["status"] != "ready":
        # Nothing is applied: the server keeps no plan for a dry run or a refused file.
        st.api.delete(path("imports", imported["id"]))
    if st.json and (dry_run or imported["status"] != "ready"):
        st.out.print_json(imported)
    elif not st.json:
        for line in plan_lines(imported):
            st.out.line(line)
    if imported["status"] != "ready":
        print_error(
            f"nothing was imported: correct the {imported['error_count']} errors above"
            + ("" if skip_invalid else ", or import the good rows with --skip-invalid")
        )
        raise typer.Exit(1)
    if dry_run:
        st.out.note("dry run: nothing was changed")
        return
    imported = st.api.post(path("imports", imported["id"], "apply"))
    imported = follow_import(st, imported)
    if st.json:
        st.out.print_json(imported)
    else:
        st.out.line(summary(imported))
        failed = [e for e in imported["errors"] if e.get("line") is not None]
        for error in failed[:ERRORS_SHOWN]:
            st.out.line(f"  line {error['line']}: {error['message']}")
    if imported["status"] != "succeeded" or imported["done"].get("failed"):
        raise typer.Exit(1)


def summary(imported: dict[str, Any]) -> str:
    done = imported["done"]
    words = {"create": "created", "update": "updated", "unchanged": "unchanged",
             "deactivate": "deactivated", "failed": "failed"}
    counts = ", ".join(f"{done[k]} {word}" for k, word in words.items() if done.get(k))
    return f"import {imported['status']}: {counts or 'nothing to do'}"


def follow_import(st: State, imported: dict[str, Any]) -> dict[str, Any]:
    """Poll the import until it is applied, with a progress bar on stderr."""

    def poll() -> dict[str, Any]:
        time.sleep(POLL_SECONDS)
        latest: dict[str, Any] = st.api.get(path("imports", imported["id"]))
        return latest

    try:
        if st.json:
            while imported["status"] == "applying":
                imported = poll()
            return imported
        with progress_bar(st) as bar:
            task = bar.add_task(printable(f"import of {imported['filename'] or 'the file'}"),
                                total=imported["total"], completed=imported["applied"])
            while imported["status"] == "applying":
                imported = poll()
                bar.update(task, total=imported["total"], completed=imported["applied"])
    except KeyboardInterrupt:
        st.out.note(f"stopped waiting; import {imported['id']} goes on on the server")
        raise typer.Exit(130) from None
    return imported


@users.command("export")
def export_users(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE.csv", dir_okay=False,
                     help="Write here (otherwise to stdout)."),
    ] = None,
) -> None:
    """Write every user, with their groups, as CSV: the columns `users import` reads."""
    st = state(ctx)
    if output is None:
        st.api.download("/exports/users", sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    partial = output.with_name(output.name + ".part")
    try:
        with partial.open("wb") as sink:
            size = st.api.download("/exports/users", sink)
        partial.replace(output)  # a failed export never leaves a truncated file behind
    except CliError:
        partial.unlink(missing_ok=True)
        raise
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CliError(f"cannot write {output}: {exc}") from None
    st.out.note(f"wrote {size} bytes to {output}")
