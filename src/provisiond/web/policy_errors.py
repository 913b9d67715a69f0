"""Every problem of a draft policy, each beside the mapping line it concerns, with its position.

Compiling a policy stops at its first problem (``Invalid`` with ``field="mappings.<attr>"``),
and the mappings are one textarea of ``attribute = expression`` lines. So when a draft is
refused, each mapping is compiled alone (beside a plain ``userName``, which every policy must
map) to find all of them, and each problem is tied to its line and to the column in that line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from provisiond.errors import Invalid


@dataclass(frozen=True)
class MappingError:
    line: int  # 1-based line of the textarea
    attribute: str
    source: str
    message: str
    column: int | None = None  # 1-based, in the expression
    line_column: int | None = None  # 1-based, in the textarea's line

    @property
    def caret(self) -> str:
        """Spaces then ``^`` under the expression's column, for a <pre> below the source."""
        return " " * (self.column - 1) + "^" if self.column else ""


def mapping_lines(text: str) -> dict[str, tuple[int, str, int]]:
    """``{attribute: (line, expression, where the expression starts in its line, 0-based)}``."""
    found: dict[str, tuple[int, str, int]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        path, sep, rest = line.partition("=")
        if sep and path.strip() and rest.strip():
            start = len(path) + 1 + (len(rest) - len(rest.lstrip()))
            found[path.strip()] = (number, rest.strip(), start)
    return found


def _message(exc: Invalid, field: str) -> str:
    # The detail starts with its field ("mappings.title: ..."), which the line already names.
    return exc.detail.removeprefix(f"{field}: ")


def each_mapping(
    text: str, check: Callable[[Any], object], document_type: Callable[..., Any]
) -> list[MappingError]:
    """The problem of each mapping line compiled alone (``check`` is ``policies.check``)."""
    problems: list[MappingError] = []
    for attribute, (line, source, start) in mapping_lines(text).items():
        mappings = {attribute: source}
        if attribute.lower() != "username":
            mappings = {"userName": "user.login", **mappings}
        try:
            check(document_type(mappings=mappings))
        except Invalid as exc:
            field = f"mappings.{attribute}"
            if exc.field not in (field, None) and exc.field != "mappings":
                continue  # the userName beside it: never the mapping's own problem
            column = exc.extra.get("column")
            line_column = None
            if isinstance(column, int) and exc.extra.get("line") == 1:
                line_column = start + column
            problems.append(
                MappingError(
                    line, attribute, source, _message(exc, field),
                    column if isinstance(column, int) and exc.extra.get("line") == 1 else None,
                    line_column,
                )
            )
    return problems
