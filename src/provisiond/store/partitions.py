"""Monthly partitions of the events table on PostgreSQL (migration 0026, engine.retention).

``events`` is partitioned by range of ``time``, one partition a UTC month (``events_2026_12``),
and a default partition (``events_default``) takes whatever no month holds (an event dated far
back, or one written when the periodic job had not created its month): an insert never fails for
want of a partition. The periodic job creates the months ahead (MONTHS_AHEAD), moving into a new
month whatever the default partition holds of it, and drops a month whole once all of it is past
retention. SQLite has one plain table; nothing here runs there.

DDL that locks the parent table waits at most LOCK_TIMEOUT for running queries: a long /logs
query then makes the job try again next round, it never queues every writer behind it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import Connection, text

MONTHS_AHEAD = 3  # the current month and the next two exist before anything is written there
DEFAULT = "events_default"
LOCK_TIMEOUT = "5s"
_MONTH = re.compile(r"^events_(\d{4})_(\d{2})$")


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def name_of(start: datetime) -> str:
    return f"events_{start.year:04d}_{start.month:02d}"


def months(connection: Connection) -> dict[str, datetime]:
    """The month partitions that exist: name -> first moment of the month."""
    names = connection.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events'"
        )
    ).scalars()
    found = {}
    for name in names:
        match = _MONTH.match(name)
        if match:
            found[name] = datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)
    return found


def create_month(connection: Connection, start: datetime) -> int:
    """Create the month's partition (if it does not exist), moving its events out of the
    default partition in the same transaction; returns how many were moved."""
    name, end = name_of(start), next_month(start)
    if name in months(connection):
        return 0
    connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    # Made apart and attached: attaching checks the default partition holds nothing of the
    # month, which it no longer does once its rows are moved here.
    connection.execute(
        text(f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    )
    bounds = {"start": start, "end": end}
    moved = connection.execute(
        text(
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE time >= :start AND time < :end "  # noqa: S608 - our names
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        ),
        bounds,
    ).rowcount
    connection.execute(
        text(
            f"ALTER TABLE events ATTACH PARTITION {name} "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
    )
    return int(moved or 0)


def ensure_ahead(connection: Connection, now: datetime) -> list[str]:
    """Create the months from this one to MONTHS_AHEAD - 1 ahead; the names created."""
    created, start = [], month_start(now)
    existing = months(connection)
    for _ in range(MONTHS_AHEAD):
        if name_of(start) not in existing:
            create_month(connection, start)
            created.append(name_of(start))
        start = next_month(start)
    return created


def expired(connection: Connection, cutoff: datetime) -> list[str]:
    """The month partitions every moment of which is before ``cutoff``, oldest first."""
    found = months(connection)
    return sorted(name for name, start in found.items() if next_month(start) <= cutoff)


def drop(connection: Connection, name: str) -> None:
    if not _MONTH.match(name):
        raise ValueError(f"{name!r} is not a month partition of events")
    connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    connection.execute(text(f"DROP TABLE IF EXISTS {name}"))
