"""Typed SQLAlchemy 2 tables. One class a table; the naming convention keeps migrations stable."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (which drops the zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONDoc = JSON().with_variant(JSONB(), "postgresql")
# None is SQL NULL, not JSON null: "no value" and "the empty list" stay apart in COALESCE.
NullableJSON = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
# SQLite's INTEGER PRIMARY KEY is its rowid; BIGINT would not autoincrement there.
EventId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSONDoc}


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    login: Mapped[str] = mapped_column(String(256))
    login_key: Mapped[str] = mapped_column(String(256), unique=True)  # casefolded login
    status: Mapped[str] = mapped_column(String(16), index=True)
    profile: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Indexed for SCIM's incremental reads (``meta.lastModified gt "…"``).
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    status_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set when a SCIM client (Okta, Entra, an HR system) created the user: it is the source
    # of truth for the user's attributes (docs/scim-server.md). The client's id, not a FK:
    # revoking or deleting the client leaves the mark, which is history.
    source: Mapped[str | None] = mapped_column(String(36), index=True)
    # The SCIM client's own id for the user, and the type of the user's one email address:
    # SCIM state the directory profile has no field for, kept so that it reads back as sent.
    external_id: Mapped[str | None] = mapped_column(String(256), index=True)
    email_type: Mapped[str | None] = mapped_column(String(32))


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(256))
    name_key: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    # A CEL bool over ``user``: the group's direct members are the users it holds for.
    rule: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str | None] = mapped_column(String(36), index=True)  # as User.source
    external_id: Mapped[str | None] = mapped_column(String(256), index=True)


class GroupMember(Base):
    """A direct member; ``source`` says whether an admin or the group's rule put them there."""

    __tablename__ = "group_members"

    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    source: Mapped[str] = mapped_column(
        String(8), default="manual", server_default=text("'manual'")
    )  # manual | rule
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class GroupChild(Base):
    """A nested group: the members of ``child_id`` are members of ``parent_id`` too. Acyclic."""

    __tablename__ = "group_children"

    parent_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    child_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class App(Base):
    __tablename__ = "apps"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    label: Mapped[str] = mapped_column(String(256))
    connector_type: Mapped[str] = mapped_column(String(32))
    # Connector settings without secrets; the secrets live encrypted in `credentials`.
    connector: Mapped[dict[str, Any]]
    credentials: Mapped[str | None] = mapped_column(Text)
    provisioning: Mapped[dict[str, Any]]
    last_test: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("app_id", "principal_type", "principal_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    principal_type: Mapped[str] = mapped_column(String(8))  # user | group
    principal_id: Mapped[str] = mapped_column(String(36), index=True)
    priority: Mapped[int | None] = mapped_column(Integer)  # group assignments: lower wins
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AppRole(Base):
    """A role an app defines (admin, editor, ...) and how the app expresses it."""

    __tablename__ = "app_roles"
    __table_args__ = (UniqueConstraint("app_id", "name_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    name_key: Mapped[str] = mapped_column(String(128))  # casefolded name
    description: Mapped[str | None] = mapped_column(Text)
    # {"kind": "scim_role" | "entitlement" | "group", "value": ...} (domain.roles)
    expression: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AssignmentRole(Base):
    """A role an assignment grants; an assigned role cannot be deleted (NO ACTION: checked at
    the end of the statement, so deleting an app still cascades through both)."""

    __tablename__ = "assignment_roles"

    assignment_id: Mapped[str] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[str] = mapped_column(
        ForeignKey("app_roles.id"), primary_key=True, index=True
    )


class Account(Base):
    """provisiond's record of one user's account in one app."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("app_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    remote_id: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))  # active | deactivated | deleted
    applied: Mapped[dict[str, Any]]
    last_synced_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    deactivated_at: Mapped[datetime | None]  # for "delete after N days deactivated"
    # The inputs (policy, settings, profile, status, assignments) this record was last
    # reconciled with: a preview skips users whose inputs have not changed since.
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    # What the last full reconcile found changed in the app since last applied (engine.drift):
    # [] checked and clean, NULL never checked; kept by writes that did not read the app.
    drift: Mapped[list[dict[str, Any]] | None] = mapped_column(NullableJSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Revocation(Base):
    """What the app showed when provisiond read an account back after deprovisioning it: the
    evidence a leaver's receipt is made of (services.receipts). One row per key, the latest
    deprovisioning's; kept when the account record forgets the remote id (a delete)."""

    __tablename__ = "revocations"

    app_id: Mapped[str] = mapped_column(
        ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
    action: Mapped[str] = mapped_column(String(16))  # deactivate | delete
    remote_id: Mapped[str] = mapped_column(String(256))
    applied_at: Mapped[datetime]  # when the app answered the deactivation or the delete
    read_state: Mapped[str] = mapped_column(String(16))  # inactive | absent | active
    read_at: Mapped[datetime]
    confirmed: Mapped[bool] = mapped_column(Boolean)
    correlation_id: Mapped[str] = mapped_column(String(36))


class SigningKey(Base):
    """An Ed25519 key that signs receipts. The private half is sealed with the credentials key
    (store.keys), like app credentials; the public half is published. The newest key not
    retired signs; retired keys stay so that receipts they signed still verify."""

    __tablename__ = "signing_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the public key's fingerprint
    public_key: Mapped[str] = mapped_column(String(64))  # raw 32 bytes, base64url
    private_key: Mapped[str] = mapped_column(Text)  # sealed (store.secrets.Vault)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]


class Policy(Base):
    """One version of an app's provisioning policy; the newest version is in force."""

    __tablename__ = "policies"
    __table_args__ = (UniqueConstraint("app_id", "version"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]]  # scope, mappings, deprovisioning, limits
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # full | change | on_demand
    status: Mapped[str] = mapped_column(String(16))  # running|succeeded|failed|held|cancelled
    policy_version: Mapped[int | None] = mapped_column(Integer)
    # A held run keeps what it would do, for the admin who approves or cancels it.
    held: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    total: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, Any]]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class Task(Base):
    """A durable request to reconcile one user's account in one app.

    Level-based, as in controller-runtime: the task carries the key and the reason; the worker
    reads the current desired and actual state when it runs, so a stale task can never undo a
    newer change. At most one queued task per key (the partial unique index).
    """

    __tablename__ = "tasks"
    __table_args__ = (
        Index(
            "uq_tasks_queued_key",
            "app_id",
            "subject_id",
            unique=True,
            sqlite_where=text("status = 'queued'"),
            postgresql_where=text("status = 'queued'"),
        ),
        # A key never runs twice at once: not two workers, not a worker and an on-demand call.
        Index(
            "uq_tasks_running_key",
            "app_id",
            "subject_id",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
        # The claim's order, whole: the due tasks are read in it and the scan stops at the
        # claim's window, where without ``created_at`` every queued row was read and sorted.
        Index("ix_tasks_due", "status", "priority", "next_attempt_at", "created_at"),
        # The claim's "is this key running elsewhere?" probe, and per-key lookups.
        Index("ix_tasks_key", "app_id", "subject_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    # ``user``: reconcile the account of user ``subject_id``; ``group``: reconcile the group
    # pushed from directory group ``subject_id``. Ids are UUID4s, unique across users and
    # groups, so the (app_id, subject_id) key indexes below hold for both kinds.
    kind: Mapped[str] = mapped_column(String(8), default="user", server_default=text("'user'"))
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    reason: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str | None] = mapped_column(String(32))  # the last planned operation
    # 0: a person's lifecycle (deprovisioning first), 1: other changes, 2: bulk runs.
    priority: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    verify_remote: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))  # queued|running|succeeded|dead|dismissed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    correlation_id: Mapped[str] = mapped_column(String(36))
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkerProcess(Base):
    """A worker's heartbeat: the tasks of a worker silent for longer than the worker timeout
    are given back to the queue (engine.liveness), so a killed process delays nobody long."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(default=utcnow)
    in_flight: Mapped[int] = mapped_column(Integer, default=0)
    # Set on SIGTERM: the worker claims nothing more and finishes or gives back what it holds.
    draining: Mapped[bool] = mapped_column(Boolean, default=False)


class AppPause(Base):
    """An app no worker in the cluster claims tasks of. ``throttle``: it answered 429 with
    Retry-After, paused until ``until`` (engine.throttle). ``quarantine``: its requests kept
    failing; held until a probe passes, the next probe at ``until`` (engine.quarantine)."""

    __tablename__ = "app_pauses"

    app_id: Mapped[str] = mapped_column(
        ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), default="throttle")
    since: Mapped[datetime] = mapped_column(default=utcnow)
    until: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    probes: Mapped[int] = mapped_column(Integer, default=0)  # quarantine: probes failed so far


class AppRateSlot(Base):
    """The next free moment to send a request to an app with a rate limit, for the whole
    cluster (engine.rate): each request takes the slot and moves it on by 1/rate seconds."""

    __tablename__ = "app_rate_slots"

    app_id: Mapped[str] = mapped_column(
        ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    next_slot: Mapped[datetime]


class PushedGroup(Base):
    """A directory group pushed to an app: the app holds a group of the same name whose members
    are the group's effective members who have an active account there (services.pushes)."""

    __tablename__ = "pushed_groups"
    __table_args__ = (UniqueConstraint("app_id", "group_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    # No foreign key: when the directory group is deleted, the row stays until the worker has
    # left or deleted the app's group, as ``unpush_action`` says.
    group_id: Mapped[str] = mapped_column(String(36), index=True)
    group_name: Mapped[str] = mapped_column(String(256))  # the directory name, as last seen
    state: Mapped[str] = mapped_column(String(16))  # pushed | unpushing
    unpush_action: Mapped[str] = mapped_column(String(8))  # leave | delete
    remote_id: Mapped[str | None] = mapped_column(String(256))
    remote_name: Mapped[str | None] = mapped_column(String(256))  # displayName as last applied
    linked: Mapped[bool] = mapped_column(Boolean, default=False)  # adopted, not created
    last_synced_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PushedGroupMember(Base):
    """A member provisiond last applied to a pushed group: the actual state the next diff uses."""

    __tablename__ = "pushed_group_members"

    pushed_group_id: Mapped[str] = mapped_column(
        ForeignKey("pushed_groups.id", ondelete="CASCADE"), primary_key=True
    )
    remote_id: Mapped[str] = mapped_column(String(256), primary_key=True)  # the member's account
    user_id: Mapped[str | None] = mapped_column(String(36), index=True)  # None: a stranger


class AppImport(Base):
    """One import of an app's side (engine.imports): what it read, and what matching made of it.

    ``queued`` -> ``running`` -> ``completed`` | ``failed``. Only a completed import marks the
    accounts it did not see as gone and links what it matched: one interrupted halfway starts
    again from the first page, nothing half-linked."""

    __tablename__ = "app_imports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    correlation_id: Mapped[str] = mapped_column(String(36))
    pages: Mapped[int] = mapped_column(Integer, default=0)
    accounts: Mapped[int] = mapped_column(Integer, default=0)  # distinct accounts read so far
    groups: Mapped[int] = mapped_column(Integer, default=0)
    repeated: Mapped[int] = mapped_column(Integer, default=0)  # items the app listed twice
    claimed_total: Mapped[int | None] = mapped_column(Integer)  # the app's totalResults
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # starts from the first page
    # linked, pending, conflict, unmatched, gone, skipped (no usable id): set on completion
    counts: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class AppAccount(Base):
    """An account as the app holds it, read by an import; what matching decided about it.

    ``match``: ``linked`` (an ``accounts`` row holds its remote id), ``pending`` (a match an
    admin confirms or rejects), ``conflict`` (several candidates: never a guess), ``unmatched``,
    ``rejected`` (an admin said the match was wrong). ``gone_at``: a completed import no longer
    saw it."""

    __tablename__ = "app_accounts"
    __table_args__ = (
        UniqueConstraint("app_id", "remote_id"),
        Index("ix_app_accounts_app_match", "app_id", "match"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    remote_id: Mapped[str] = mapped_column(String(256))
    user_name: Mapped[str | None] = mapped_column(String(256))
    external_id: Mapped[str | None] = mapped_column(String(256))
    emails: Mapped[list[str]] = mapped_column(JSONDoc, default=list)  # the primary first
    primary_email: Mapped[str | None] = mapped_column(String(256))  # what matching reads
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The attributes as read (without meta, schemas, password), capped in size by the reader.
    attributes: Mapped[dict[str, Any]]
    read_at: Mapped[datetime]
    import_id: Mapped[str] = mapped_column(String(36))  # the last import that saw it
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    gone_at: Mapped[datetime | None]
    match: Mapped[str] = mapped_column(String(16), default="unmatched")
    user_id: Mapped[str | None] = mapped_column(String(36), index=True)  # linked or proposed
    rule: Mapped[str | None] = mapped_column(String(160))  # the rule that matched, as text
    candidates: Mapped[list[str]] = mapped_column(JSONDoc, default=list)  # a conflict's users
    # An orphan an admin chose to leave (with why); a deprovisioning it asked for (orphans).
    ignored_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AppGroup(Base):
    """A group as the app holds it, read by an import of an app that pushes groups."""

    __tablename__ = "app_groups"

    app_id: Mapped[str] = mapped_column(
        ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    remote_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(256))
    members: Mapped[list[str]] = mapped_column(JSONDoc, default=list)  # account remote ids
    read_at: Mapped[datetime]
    import_id: Mapped[str] = mapped_column(String(36))
    gone_at: Mapped[datetime | None]


class Event(Base):
    """One line of the activity log.

    On PostgreSQL the table is partitioned by month of ``time`` (migration 0026,
    store.partitions): its primary key there is (id, time), as a partitioned table's must hold
    the partition key; ids still come from one sequence, so ``id`` alone names an event and is
    what the mapper keys on. Every index ends with ``id``, the log's order (newest first, keyset
    pages by id), so a filter by app, user or action reads its page off one index in order.
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_app_time", "app_id", "id"),
        Index("ix_events_app_action", "app_id", "action", "id"),
        Index("ix_events_action_id", "action", "id"),
        Index("ix_events_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))  # success | failure | skipped | retry
    app_id: Mapped[str | None] = mapped_column(String(36))
    user_id: Mapped[str | None] = mapped_column(String(36))
    targets: Mapped[dict[str, Any]]
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]]
    correlation_id: Mapped[str] = mapped_column(String(36), index=True)


class EventRollup(Base):
    """Events counted per UTC day, app, action and outcome (store.rollups): what /metrics and
    the dashboard read instead of the log. ``bucket`` is the latency histogram bucket of a
    successful deprovisioning (an index into store.rollups.LATENCY_BOUNDS_MS, its length for
    +Inf only) and -1 for every other event; ``app_id`` is '' for events of no app."""

    __tablename__ = "event_rollups"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    app_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    action: Mapped[str] = mapped_column(String(64), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    latency_ms: Mapped[float] = mapped_column(Float)  # the sum, for the histogram's _sum


class PeriodicJob(Base):
    """A job of the cluster (the activity log's retention): a leased row, so exactly one
    process runs it at a time and once per interval (engine.retention)."""

    __tablename__ = "periodic_jobs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    due_at: Mapped[datetime]
    holder: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]
    last_done_at: Mapped[datetime | None]
    last_result: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32), default="super_admin")
    # App ids an app_admin token may manage (provisiond.authz); empty for the other roles.
    apps: Mapped[list[str]] = mapped_column(JSONDoc, default=list, server_default=text("'[]'"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # None: the token never expires on its own (it can still be revoked).
    expires_at: Mapped[datetime | None]


class ScimClient(Base):
    """A SCIM client (Okta, Entra, an HR system) that provisions into the directory over
    /scim/v2 with its own bearer token: stored hashed, accepted nowhere else."""

    __tablename__ = "scim_clients"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Admin(Base):
    """A console administrator: a local account with an argon2 password hash and a role."""

    __tablename__ = "admins"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32))
    apps: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    # Bumped on sign-out: every session cookie issued before stops working.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A disabled admin cannot sign in and its sessions ended when it was disabled.
    disabled_at: Mapped[datetime | None]


class KeyCanary(Base):
    """A value sealed with the credentials key, so a start with another key is refused at once.

    One row. ``fingerprint`` names the key that sealed it (a hash, never the key), so the refusal
    can say which key the database expects.
    """

    __tablename__ = "key_canary"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(32))
    sealed: Mapped[str] = mapped_column(Text)
    sealed_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserImport(Base):
    """A CSV file of users read and planned (``ready`` or ``invalid``), then applied in chunks
    with live counts (``applying`` -> ``succeeded`` / ``failed``). services/imports.py. While
    applying, ``applier`` (a process) holds it until ``lease_until``, renewed by every chunk: an
    import whose lease ran out was interrupted and is resumed (services/import_apply.py)."""

    __tablename__ = "user_imports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    status: Mapped[str] = mapped_column(String(16))  # invalid|ready|applying|succeeded|failed
    actor: Mapped[str] = mapped_column(String(128))
    filename: Mapped[str | None] = mapped_column(String(256))
    # mapping, deactivate_missing, skip_invalid: what the file was read with.
    options: Mapped[dict[str, Any]]
    rows: Mapped[int] = mapped_column(Integer, default=0)  # data rows read from the file
    planned: Mapped[dict[str, Any]]  # create, update, unchanged, deactivate, invalid
    done: Mapped[dict[str, Any]]  # the same, counted as they are applied, plus failed
    # The first errors (line, message); ``error_count`` counts all of them.
    errors: Mapped[dict[str, Any]]
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    applier: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]


class ImportRow(Base):
    """One planned change of an import: a row of the file, or a user missing from it (to
    deactivate). ``seq`` orders them (the file's rows by line, then the deactivations)."""

    __tablename__ = "user_import_rows"

    import_id: Mapped[str] = mapped_column(
        ForeignKey("user_imports.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    line: Mapped[int | None] = mapped_column(Integer)  # None for a deactivation
    action: Mapped[str] = mapped_column(String(16))  # create|update|unchanged|deactivate
    user_id: Mapped[str | None] = mapped_column(String(36))  # known at planning for all but create
    values: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, nullable=True)  # RowValues
    state: Mapped[str] = mapped_column(String(8), default="pending")  # pending|done|failed
    error: Mapped[str | None] = mapped_column(Text)


class LdapSourceRow(Base):
    """A stored LDAP source (services.ldap_sources): its settings without the bind password,
    which is sealed in ``credentials``; a schedule; and where its incremental reads resume."""

    __tablename__ = "ldap_sources"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    settings: Mapped[dict[str, Any]]
    credentials: Mapped[str | None] = mapped_column(Text)
    every_hours: Mapped[float | None] = mapped_column(Float)  # None: on demand only
    # Every full_every-th run reads everything: only a full read sees who left the filter.
    full_every: Mapped[int] = mapped_column(Integer, default=6)
    runs_since_full: Mapped[int] = mapped_column(Integer, default=0)
    last_run_at: Mapped[datetime | None] = mapped_column(nullable=True)
    high_water: Mapped[str | None] = mapped_column(String(32))  # highest modifyTimestamp read
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
