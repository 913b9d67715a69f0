"""What the apps showed when deprovisioned accounts were read back: the receipts' evidence.

The writer (engine.writer) hands each batch's read-backs here, inside its transaction. One row
per (app, user) key, the latest deprovisioning's: a retry that is confirmed replaces the
unconfirmed row, a later deprovisioning replaces an older one.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from provisiond.store.tables import Revocation

if TYPE_CHECKING:
    from provisiond.engine.outcomes import Outcome

KEPT = ("action", "remote_id", "applied_at", "read_state", "read_at", "confirmed",
        "correlation_id")


def record(session: Session, outcomes: Sequence[Outcome]) -> None:
    """Upsert the read-back of each outcome that has one (written whoever owns the task)."""
    rows = [
        {
            "app_id": outcome.task.app_id, "user_id": outcome.task.subject_id,
            "action": seen.action, "remote_id": seen.remote_id, "applied_at": seen.applied_at,
            "read_state": seen.state, "read_at": seen.at, "confirmed": seen.confirmed,
            "correlation_id": outcome.task.correlation_id,
        }
        for outcome in outcomes
        if (seen := outcome.readback) is not None
    ]
    if rows:
        session.connection().execute(_upsert(session.get_bind().dialect.name), rows)


@lru_cache(maxsize=4)
def _upsert(dialect: str) -> Any:
    """One statement for any number of rows (executemany), compiled once per dialect."""
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Revocation)
    return statement.on_conflict_do_update(
        index_elements=["app_id", "user_id"],
        set_={name: statement.excluded[name] for name in KEPT},
    )
