"""the activity log at scale: indexes in the log's order, rollups, the periodic job's lease;
on PostgreSQL the events table partitioned by month (existing events kept)

Revision ID: 0026
Revises: 0018
Create Date: 2026-12-01 14:30:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import provisiond.store.tables
from provisiond.store import partitions
from provisiond.store.rollups import ALL_TIME, DEPROVISION, LATENCY_BOUNDS_MS

revision: str = "0026"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every index ends with id, the log's order: a filter's newest page is read off one index.
INDEXES = {
    "ix_events_app_time": ["app_id", "id"],
    "ix_events_app_action": ["app_id", "action", "id"],
    "ix_events_action_id": ["action", "id"],
    "ix_events_user_id_id": ["user_id", "id"],
    "ix_events_time": ["time"],
    "ix_events_correlation_id": ["correlation_id"],
}
OLD_INDEXES = ["ix_events_action", "ix_events_app_time", "ix_events_correlation_id",
               "ix_events_time", "ix_events_user_id"]
COLUMNS = "id, time, actor, action, outcome, app_id, user_id, targets, message, details, " \
          "correlation_id"
# A month partition for each month of the oldest events at most this far back; older ones go
# to the default partition, which the periodic job empties in chunks.
MAX_MONTHS_BACK = 120


def upgrade() -> None:
    moment = provisiond.store.tables.UTCDateTime(timezone=True)
    op.create_table(
        "event_rollups",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "app_id", "action", "outcome", "bucket", name=op.f("pk_event_rollups")
        ),
    )
    op.create_table(
        "periodic_jobs",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("due_at", moment, nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=True),
        sa.Column("lease_until", moment, nullable=True),
        sa.Column("last_done_at", moment, nullable=True),
        sa.Column("last_result", provisiond.store.tables.JSONDoc, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_periodic_jobs")),
    )
    if op.get_bind().dialect.name == "postgresql":
        _partition_events()
    else:
        with op.batch_alter_table("events") as batch_op:
            for name in ("ix_events_action", "ix_events_user_id"):
                batch_op.drop_index(name)
            for name, columns in INDEXES.items():
                if name not in OLD_INDEXES:
                    batch_op.create_index(name, columns)
    _backfill_rollups()


def _partition_events() -> None:
    """Rename the table away, make the partitioned one with the same sequence, copy, index."""
    bind = op.get_bind()
    op.execute("ALTER TABLE events RENAME TO events_unpartitioned")
    for name in OLD_INDEXES:
        op.execute(f"DROP INDEX {name}")
    op.execute("ALTER TABLE events_unpartitioned RENAME CONSTRAINT pk_events TO pk_events_old")
    # The sequence outlives its table: ids go on from where they were.
    op.execute("ALTER TABLE events_unpartitioned ALTER COLUMN id DROP DEFAULT")
    op.execute("ALTER SEQUENCE events_id_seq OWNED BY NONE")
    op.execute(
        "CREATE TABLE events ("
        " id BIGINT NOT NULL DEFAULT nextval('events_id_seq'),"
        " time TIMESTAMP WITH TIME ZONE NOT NULL,"
        " actor VARCHAR(128) NOT NULL, action VARCHAR(64) NOT NULL,"
        " outcome VARCHAR(16) NOT NULL, app_id VARCHAR(36), user_id VARCHAR(36),"
        " targets JSONB NOT NULL, message TEXT NOT NULL, details JSONB NOT NULL,"
        " correlation_id VARCHAR(36) NOT NULL,"
        " CONSTRAINT pk_events PRIMARY KEY (id, time)"
        ") PARTITION BY RANGE (time)"
    )
    op.execute("ALTER SEQUENCE events_id_seq OWNED BY events.id")
    op.execute(f"CREATE TABLE {partitions.DEFAULT} PARTITION OF events DEFAULT")
    oldest = bind.execute(sa.text("SELECT min(time) FROM events_unpartitioned")).scalar()
    now = datetime.now(UTC)
    start = partitions.month_start(oldest or now)
    back = now.year * 12 + now.month - 1 - MAX_MONTHS_BACK
    start = max(start, datetime(back // 12, back % 12 + 1, 1, tzinfo=UTC))
    last = partitions.next_month(partitions.month_start(now))
    for _ in range(partitions.MONTHS_AHEAD - 1):
        last = partitions.next_month(last)
    while start < last:
        end = partitions.next_month(start)
        op.execute(
            f"CREATE TABLE {partitions.name_of(start)} PARTITION OF events "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
        start = end
    op.execute(f"INSERT INTO events ({COLUMNS}) SELECT {COLUMNS} FROM events_unpartitioned")  # noqa: S608 - constants
    op.execute("DROP TABLE events_unpartitioned")
    # Indexed after the copy: building an index once is cheaper than keeping it row by row.
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON events ({', '.join(columns)})")
    op.execute("ANALYZE events")


def _backfill_rollups() -> None:
    """The existing events, counted as the writer now counts them on write (store.rollups)."""
    postgres = op.get_bind().dialect.name == "postgresql"
    day = "(time AT TIME ZONE 'UTC')::date" if postgres else "date(time)"
    latency = (
        "(details->>'latency_ms')::float" if postgres
        else "CAST(json_extract(details, '$.latency_ms') AS REAL)"
    )
    whens = " ".join(
        f"WHEN {latency} <= {bound} THEN {index}" for index, bound in enumerate(LATENCY_BOUNDS_MS)
    )
    success = f"action = '{DEPROVISION}' AND outcome = 'success'"
    bucket = f"CASE WHEN NOT ({success}) THEN -1 {whens} ELSE {len(LATENCY_BOUNDS_MS)} END"
    summed = f"CASE WHEN {success} THEN coalesce({latency}, 0) ELSE 0 END"
    # Each day's rows, and the rows of all time (store.rollups.ALL_TIME) that /metrics reads.
    total = f"DATE '{ALL_TIME}'" if postgres else f"'{ALL_TIME}'"
    for day_of, group in ((day, "1, 2, 3, 4, 5"), (total, "2, 3, 4, 5")):
        op.execute(
            "INSERT INTO event_rollups (day, app_id, action, outcome, bucket, count, latency_ms) "  # noqa: S608 - constants
            f"SELECT {day_of}, coalesce(app_id, ''), action, outcome, {bucket}, count(*), "
            f"sum({summed}) FROM events GROUP BY {group}"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE events RENAME TO events_partitioned")
        op.execute("ALTER SEQUENCE events_id_seq OWNED BY NONE")
        for name in INDEXES:
            op.execute(f"DROP INDEX {name}")
        op.execute("ALTER TABLE events_partitioned RENAME CONSTRAINT pk_events TO pk_events_new")
        op.execute(
            "CREATE TABLE events (LIKE events_partitioned INCLUDING DEFAULTS, "
            "CONSTRAINT pk_events PRIMARY KEY (id))"
        )
        op.execute("ALTER SEQUENCE events_id_seq OWNED BY events.id")
        op.execute(f"INSERT INTO events ({COLUMNS}) SELECT {COLUMNS} FROM events_partitioned")  # noqa: S608
        op.execute("DROP TABLE events_partitioned CASCADE")
        for name, columns in (("ix_events_action", ["action"]), ("ix_events_app_time",
                              ["app_id", "id"]), ("ix_events_correlation_id", ["correlation_id"]),
                              ("ix_events_time", ["time"]), ("ix_events_user_id", ["user_id"])):
            op.execute(f"CREATE INDEX {name} ON events ({', '.join(columns)})")
    else:
        with op.batch_alter_table("events") as batch_op:
            for name in INDEXES:
                if name not in OLD_INDEXES:
                    batch_op.drop_index(name)
            batch_op.create_index("ix_events_action", ["action"])
            batch_op.create_index("ix_events_user_id", ["user_id"])
    op.drop_table("periodic_jobs")
    op.drop_table("event_rollups")
