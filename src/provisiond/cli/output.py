"""Every command's output: Rich tables and fields for people, the API's JSON with ``--json``.

Values from the server are always printed as plain ``Text``, never parsed as Rich markup (a
login such as ``[bold]x`` must print as it is), and with their control characters taken out
(``printable``): a last name holding ``ESC ] 52`` must not write the admin's clipboard, nor one
holding ``ESC [ 2 J`` clear the screen. ``--json`` prints the API's values exactly (escaped by
JSON). When stdout is not a terminal, lines are not wrapped, so that ``provisiond users list |
grep ada`` sees whole rows.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer
from rich.text import Text

if TYPE_CHECKING:  # Rich's console and tables load when something is printed, not at start
    from rich.console import Console
    from rich.table import Table

STYLES = {
    "green": ("active", "success", "succeeded", "ok", "enabled", "yes"),
    "yellow": ("suspended", "retry", "queued", "running", "pending", "unpushing",
               "draining"),
    "red": ("failure", "failed", "dead", "deprovisioned", "deactivated", "deleted",
            "lost"),
    "dim": ("staged", "skipped", "dismissed", "superseded", "disabled", "no", "never", "-"),
}
STYLE_OF = {word: style for style, words in STYLES.items() for word in words}


# Every C0 control (a newline in a value would forge a table row), DEL, and the C1 controls
# (0x9b is a one-byte CSI). Without its ESC or C1 byte, the rest of a sequence is inert text.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


RAW_IN_JSON = re.compile(r"[\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` without the control characters that a terminal would act on."""
    return CONTROL.sub("", text)


def printable_text(text: Text) -> Text:
    """A ``Text`` with the control characters of its plain string taken out, styles kept."""
    if not CONTROL.search(text.plain):
        return text
    # Cut at every style boundary, so that each span covers a piece whole or not at all.
    cuts = sorted({edge for span in text.spans for edge in (span.start, span.end)})
    clean = Text(style=text.style, end=text.end)
    for part in text.divide(cuts):
        piece = Text(printable(part.plain))
        for span in part.spans:
            piece.stylize(span.style)
        clean.append_text(piece)
    return clean


def make_console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width: int | None = None
    if not stream.isatty():
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() else 1000
    return Console(stderr=stderr, width=width, highlight=False, emoji=False)


def print_error(message: str) -> None:
    console = make_console(stderr=True)
    console.print(Text("error: ", style="bold red") + Text(printable(message)), soft_wrap=True)


def dig(item: dict[str, Any], dotted: str) -> Any:
    value: Any = item
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def when(value: str | None) -> str:
    """An API timestamp in local time, to the second, with the zone it is in: a time without
    one is ambiguous between the admin's machine, the server and UTC."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:  # the API's times are UTC
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or local.strftime("%z"))


def yes_no(value: Any) -> str:
    return "yes" if value else "no"


def styled(value: Any) -> Text:
    if isinstance(value, Text):
        return printable_text(value)
    if value is None or value == "":
        text = "-"
    else:
        text = printable(yes_no(value) if isinstance(value, bool) else str(value))
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
        self._out: Console | None = None
        self._err: Console | None = None

    @property
    def out(self) -> Console:
        if self._out is None:
            self._out = make_console()
        return self._out

    @property
    def err(self) -> Console:
        if self._err is None:
            self._err = make_console(stderr=True)
        return self._err

    def print_json(self, payload: Any, *, compact: bool = False) -> None:
        indent = None if compact else 2
        text = json.dumps(payload, indent=indent, ensure_ascii=False)
        # JSON escapes C0 controls itself; DEL and C1 (0x9b is a CSI) it leaves raw. Escaped,
        # they are the same values to a JSON reader and inert on a terminal.
        typer.echo(RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text))

    def line(self, text: str | Text) -> None:
        line = printable_text(text) if isinstance(text, Text) else Text(printable(text))
        self.out.print(line, soft_wrap=True)

    def note(self, text: str) -> None:
        """A hint for people, on stderr: never in the way of the data on stdout."""
        self.err.print(Text(printable(text), style="dim"), soft_wrap=True)

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
        from rich.table import Table

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
        from rich.table import Table

        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for name, value in rows:
            grid.add_row(Text(printable(name)), styled(value))
        self._print(grid)

    def _print(self, renderable: Table) -> None:
        """Print a table; off a terminal, without the padding that ends its lines."""
        if self.out.is_terminal:
            self.out.print(renderable)
            return
        with self.out.capture() as captured:
            self.out.print(renderable)
        typer.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))
