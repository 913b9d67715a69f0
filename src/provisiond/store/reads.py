"""Reads on a DBAPI connection, of SQLAlchemy Core statements compiled once per dialect.

For the few reads on a hot path (the SCIM ``userName eq`` lookup): SQLAlchemy's execution
(the connection, its transaction, the compiled cache's key, the result's metadata) cost more
than the indexed SELECT itself. The statement is still written in Core, once, and its
columns are read through their own types' result processors (``UTCDateTime``, JSON), so a
row holds what an ORM row's attributes would.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Select


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...] | None  # the parameters' order (a positional paramstyle)
    defaults: dict[str, Any]  # the values written into the statement (a LIMIT's)
    processors: tuple[Callable[[Any], Any] | None, ...]
    row: Any  # a namedtuple of the selected columns


# Keyed by id, and the statement kept beside its compiled form: an entry is used only for the
# very statement it was made from, so a statement built per call (its id reused once it is
# collected) is compiled afresh rather than given another statement's SQL.
_compiled: dict[tuple[int, str], tuple[Select[Any], _Compiled]] = {}


def _compile(statement: Select[Any], dialect: Dialect) -> _Compiled:
    key = (id(statement), dialect.name)
    entry = _compiled.get(key)
    found = entry[1] if entry is not None and entry[0] is statement else None
    if found is None:
        compiled = statement.compile(dialect=dialect)
        columns = list(statement.selected_columns)
        found = _Compiled(
            sql=compiled.string,
            names=tuple(compiled.positiontup or ()) if compiled.positional else None,
            defaults={k: v for k, v in compiled.params.items() if v is not None},
            processors=tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in columns
            ),
            row=namedtuple("Row", [column.key for column in columns]),  # type: ignore[misc]
        )
        _compiled[key] = (statement, found)
    return found


class Reads:
    """One read transaction's DBAPI connection (``Database.reads``)."""

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self.connection = connection
        self.dialect = dialect

    def all(self, statement: Select[Any], **params: Any) -> list[Any]:
        """The rows ``statement`` selects, as named tuples of the columns' Python values.
        ``params``: the statement's ``bindparam`` values (passed as they are, unprocessed)."""
        compiled = _compile(statement, self.dialect)
        params = {**compiled.defaults, **params}
        arguments = (
            tuple(params[name] for name in compiled.names) if compiled.names is not None else params
        )
        cursor = self.connection.cursor()
        try:
            cursor.execute(compiled.sql, arguments)
            raw = cursor.fetchall()
        finally:
            cursor.close()
        processors = compiled.processors
        return [
            compiled.row(*(value if p is None or value is None else p(value)
                           for p, value in zip(processors, values, strict=True)))
            for values in raw
        ]
