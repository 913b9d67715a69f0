"""Every command's output: Rich tables and fields for people, the API's JSON with ``--json``.

Values from the server are always printed as plain ``Text``, never parsed as Rich markup (a
login such as ``[bold]x`` must print as it is). When stdout is not a terminal, lines are not
wrapped, so that ``provisiond users list | grep ada`` sees whole rows.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

STYLES = {
    "green": ("active", "success", "succeeded", "ok", "enabled", "yes"),
    "yellow": ("suspended", "retry", "queued", "running", "pending", "unpushing",
               "draining"),
    "red": ("failure", "failed", "dead", "deprovisioned", "deactivated", "deleted",
            "lost"),
    "dim": ("staged", "skipped", "dismissed", "superseded", "disabled", "no", "never", "-"),
}
STYLE_OF = {word: style for style, words in STYLES.items() for word in words}


def make_console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width: int | None = None
    if not stream.isatty():
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() else 1000
    return Console(stderr=stderr, width=width, highlight=False, emoji=False)


def print_error(message: str) -> None:
    console = make_console(stderr=True)
    console.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)


def dig(item: dict[str, Any], dotted: str) -> Any:
    value: Any = item
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def when(value: str | None) -> str:
    """An API timestamp in local time, to the second."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def yes_no(value: Any) -> str:
    return "yes" if value else "no"


def styled(value: Any) -> Text:
    if isinstance(value, Text):
        return value
    if value is None or value == "":
        text = "-"
    else:
        text = yes_no(value) if isinstance(value, bool) else str(value)
    return Text(text, style=STYLE_OF.get(text, ""))


@dataclass(frozen=True)
class Column:
    header: str
    value: str | Callable[[dict[str, Any]], Any]
    wrap: bool = False  # free text (messages, errors) may wrap; ids and names never do

    def of(self, item: dict[str, Any]) -> Text:
        return styled(dig(item, self.value) if isinstance(self.value, str) else self.value(item))


class Output:
    def __init__(self, json_mode: bool = False) -> None:
        self.json = json_mode
        self.out = make_console()
        self.err = make_console(stderr=True)

    def print_json(self, payload: Any, *, compact: bool = False) -> None:
        indent = None if compact else 2
        typer.echo(json.dumps(payload, indent=indent, ensure_ascii=False))

    def line(self, text: str | Text) -> None:
        self.out.print(text if isinstance(text, Text) else Text(text), soft_wrap=True)

    def note(self, text: str) -> None:
        """A hint for people, on stderr: never in the way of the data on stdout."""
        self.err.print(Text(text, style="dim"), soft_wrap=True)

    def done(self, payload: Any, message: str) -> None:
        """The outcome of a change: the API's answer with ``--json``, else one sentence."""
        if self.json:
            if payload is not None:
                self.print_json(payload)
        else:
            self.line(message)

    def table(
        self, items: Iterable[dict[str, Any]], columns: Sequence[Column], *, empty: str
    ) -> None:
        rows = list(items)
        if not rows:
            self.note(empty)
            return
        table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
        for column in columns:
            table.add_column(column.header, no_wrap=not column.wrap, overflow="fold")
        for item in rows:
            table.add_row(*(column.of(item) for column in columns))
        self._print(table)

    def page(
        self,
        page: dict[str, Any],
        columns: Sequence[Column],
        *,
        empty: str,
        limit: int | None = None,
    ) -> None:
        """A list answer: as JSON, or as a table with a hint when there is more."""
        if self.json:
            self.print_json(page)
            return
        self.table(page["items"], columns, empty=empty)
        if page.get("next_cursor"):
            shown = limit if limit is not None else len(page["items"])
            self.note(f"({shown} shown; raise --limit for more)")

    def show(self, payload: Any, rows: Iterable[tuple[str, Any]]) -> None:
        """One object: the API's JSON, or its fields."""
        if self.json:
            self.print_json(payload)
        else:
            self.fields(rows)

    def fields(self, rows: Iterable[tuple[str, Any]]) -> None:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for name, value in rows:
            grid.add_row(Text(name), styled(value))
        self._print(grid)

    def _print(self, renderable: Table) -> None:
        """Print a table; off a terminal, without the padding that ends its lines."""
        if self.out.is_terminal:
            self.out.print(renderable)
            return
        with self.out.capture() as captured:
            self.out.print(renderable)
        typer.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))
