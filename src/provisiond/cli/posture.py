"""``posture``: the access posture report, as a table, JSON (``--json``) or CSV (``--csv``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from provisiond.cli.client import state
from provisiond.cli.output import Column, when


def posture(
    ctx: typer.Context,
    csv: Annotated[bool, typer.Option("--csv", help="Print (or save) it as CSV.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Save it to this file.")
    ] = None,
) -> None:
    """Show the access posture: what to fix, and where (exit 0 either way)."""
    st = state(ctx)
    if csv:
        text = st.api.text("/reports/posture", format="csv")
        if output is not None:
            output.write_text(text)
        else:
            typer.echo(text, nl=False)
        return
    report: dict[str, Any] = st.api.get("/reports/posture")
    if output is not None:
        output.write_text(json.dumps(report, indent=2) + "\n")
    if st.json:
        st.out.print_json(report)
        return
    st.out.table(
        report["findings"],
        (Column("KIND", "kind"), Column("APP", "app"), Column("COUNT", "count"),
         Column("SINCE", lambda f: when(f.get("since"))),
         Column("SUMMARY", "summary", wrap=True), Column("FIX", "console")),
        empty="nothing to fix",
    )
    for note in report.get("notes", []):
        st.out.note(note)
