"""Running the migrations to a given revision, up or down, as the store runs them."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine

from provisiond.store.migrate import alembic_config


def migrate(url: str, revision: str, *, down: bool = False) -> None:
    engine = create_engine(url)
    config = alembic_config(url)
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")  # as the store runs it
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)
    engine.dispose()
