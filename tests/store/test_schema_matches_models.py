"""The Alembic history builds exactly the schema the models declare, on both backends: a
column added to a model without its migration (or the other way round) fails here, not in a
production upgrade."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from provisiond.store.db import Database
from provisiond.store.migrate import upgrade
from provisiond.store.tables import Base


def test_the_migrations_build_the_models_schema(database_url: str) -> None:
    db = Database(database_url)
    try:
        upgrade(db.engine)
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            differences: list[Any] = compare_metadata(context, Base.metadata)
    finally:
        db.dispose()
    # PostgreSQL's monthly partitions of the events table are made by store.partitions, not
    # by the models.
    differences = [d for d in differences if not _is_partition(d)]
    assert differences == []


def _is_partition(difference: Any) -> bool:
    """A monthly partition of ``events`` (``events_2027_01``), or one of its indexes."""
    if not isinstance(difference, tuple) or len(difference) < 2:
        return False
    found = difference[1]
    table = found if difference[0] == "remove_table" else getattr(found, "table", None)
    return table is not None and str(table.name).startswith("events_")
