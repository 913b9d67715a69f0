"""Importing an app's side: every account (and pushed group) the app holds, then matching.

An import is a task of kind ``import`` whose subject is the ``app_imports`` row, run by any
worker. It walks every page of the app (``connectors.paging.Walk``: whatever the app gets
wrong about paging), and writes each page as it comes (one multi-row upsert into
``app_accounts``), so memory holds one page and the ids seen, not the accounts.

Nothing is decided until the walk is over: only a *completed* import marks the accounts it
did not see as gone and matches (engine.matching) and links what it found, in one
transaction. An import interrupted halfway (its worker killed, the app failing) starts again
from the first page when its task runs again: what it wrote is only "the app held this when
read", and nothing is half-linked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from provisiond.connectors.base import Connector, RemoteGroup, RemoteUser
from provisiond.connectors.paging import Walk
from provisiond.connectors.remote_ids import remote_id_flaw
from provisiond.engine import queue
from provisiond.engine.context import AppContext, read_context
from provisiond.engine.matching import AppSideAccount, Match, MatchState, Person, match_accounts
from provisiond.engine.outcomes import RetryPolicy, managed
from provisiond.errors import ConnectorError, RateLimited
from provisiond.store.db import Database
from provisiond.store.events import add_event
from provisiond.store.secrets import Vault
from provisiond.store.tables import (
    Account,
    AppAccount,
    AppGroup,
    AppImport,
    Task,
    User,
    new_id,
    utcnow,
)

log = logging.getLogger("provisiond.imports")
T = TypeVar("T")
WIDE = 256  # the width of the id and name columns: a longer remote id is skipped, counted
CHUNK = 900  # rows per executemany of updates
IDENTITY = ("userName", "externalId", "emails", "active", "name", "displayName")


class Host(Protocol):
    """What an import needs of the worker that runs it."""

    db: Database
    vault: Vault
    retry_policy: RetryPolicy

    async def in_db(self, function: Callable[..., T], *args: Any) -> T: ...

    async def connector_for(self, ctx: AppContext) -> Connector: ...


@dataclass(frozen=True)
class Started:
    ctx: AppContext
    lease: datetime
    mapped: frozenset[str]  # top-level attribute names the policy writes, casefolded
    groups: bool  # the app pushes groups: read them too


class Lost(Exception):
    """The task is no longer this worker's (its lease was taken over): stop writing."""


async def run_import(host: Host, claimed: queue.Claimed) -> None:
    started = await host.in_db(_begin, host, claimed)
    if started is None:
        return
    try:
        connector = await host.connector_for(started.ctx)
        settings = started.ctx.provisioning.imports
        users = Walk(connector.list_users, key=_remote_id, page_size=settings.page_size)
        async for page in users:
            await host.in_db(_write_accounts, host.db, claimed, started, page, users)
        groups: Walk | None = None
        if started.groups:
            groups = Walk(connector.list_groups, key=_remote_id, page_size=settings.page_size)
            async for group_page in groups:
                await host.in_db(_write_groups, host.db, claimed, started, group_page, groups)
        await host.in_db(_complete, host.db, claimed, started, users, groups)
    except Lost:
        log.info("import %s: task %s taken over, stopping", claimed.subject_id, claimed.id)
    except ConnectorError as exc:
        await host.in_db(_failed, host, claimed, started, exc)


def _remote_id(item: RemoteUser | RemoteGroup) -> str:
    return item.remote_id


def owned_task(session: Session, claimed: queue.Claimed, lease: datetime) -> Task:
    """The task, still this worker's under ``lease``; raises Lost when it is not."""
    task = session.get(Task, claimed.id)
    if task is None or task.status != queue.RUNNING or task.claimed_at != lease:
        raise Lost(claimed.id)
    return task


def _begin(host: Host, claimed: queue.Claimed) -> Started | None:
    with host.db.session() as session:
        task = session.get(Task, claimed.id)
        if task is None or task.status != queue.RUNNING:
            return None
        run = session.get(AppImport, claimed.subject_id)
        ctx = read_context(session, host.vault, claimed.app_id)
        # A failed import runs again when an admin retries its dead task (from the first page).
        if run is None or run.status == "completed" or ctx is None:
            task.status, task.updated_at = queue.SUCCEEDED, utcnow()
            return None
        # Renewed: the walk starts now. A second attempt starts again from the first page.
        task.claimed_at = lease = utcnow()
        run.status, run.started_at, run.attempts = "running", lease, run.attempts + 1
        run.finished_at = None
        run.pages = run.accounts = run.groups = run.repeated = 0
        run.claimed_total, run.error, run.counts = None, None, {}
        mapped = frozenset(
            path.split(".")[0].split("[")[0].casefold() for path in ctx.policy.document.mappings
        )
        return Started(ctx, lease, mapped, ctx.provisioning.features.push_groups)


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value and len(value) <= WIDE:
        return value
    return None


def _get(attributes: Mapping[str, Any], name: str) -> Any:
    # RFC 7643 §2.1: attribute names are case-insensitive.
    folded = name.casefold()
    return next((v for k, v in attributes.items() if k.casefold() == folded), None)


def emails_of(attributes: Mapping[str, Any]) -> list[str]:
    """The account's e-mail addresses, the primary one first (RFC 7643 §4.1.2)."""
    listed = _get(attributes, "emails")
    if not isinstance(listed, list):
        return []
    entries = [e for e in listed if isinstance(e, dict) and isinstance(e.get("value"), str)]
    entries.sort(key=lambda e: e.get("primary") is not True)  # stable: the app's order kept
    return [e["value"] for e in entries][:20]


def account_row(user: RemoteUser, mapped: frozenset[str]) -> dict[str, Any] | None:
    """What ``app_accounts`` keeps of one account; None for one without a usable id."""
    if len(user.remote_id) > WIDE or remote_id_flaw(user.remote_id) is not None:
        return None  # never stored: it would become a request path (connectors.remote_ids)
    attributes = managed(user.attributes)
    kept = {
        k: v
        for k, v in attributes.items()
        if k.casefold() in mapped or k in IDENTITY or k.startswith("urn:")
    }
    emails = emails_of(attributes)
    return {
        "remote_id": user.remote_id,
        "user_name": _text(_get(attributes, "userName")),
        "external_id": _text(_get(attributes, "externalId")),
        "emails": emails,
        "primary_email": _text(emails[0]) if emails else None,
        "active": user.active,
        "attributes": kept,
    }


@lru_cache(maxsize=4)
def _upsert_accounts(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(AppAccount)
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["app_id", "remote_id"],
        set_={
            name: getattr(new, name)
            for name in (
                "user_name",
                "external_id",
                "emails",
                "primary_email",
                "active",
                "attributes",
                "read_at",
                "import_id",
                "updated_at",
            )
        }
        | {"gone_at": None},
    )


@lru_cache(maxsize=4)
def _upsert_groups(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(AppGroup)
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["app_id", "remote_id"],
        set_={
            "display_name": new.display_name,
            "members": new.members,
            "read_at": new.read_at,
            "import_id": new.import_id,
            "gone_at": None,
        },
    )


def _write_accounts(
    db: Database, claimed: queue.Claimed, started: Started, page: list[RemoteUser], walk: Walk
) -> None:
    now = utcnow()
    rows = []
    skipped = 0
    for user in page:
        row = account_row(user, started.mapped)
        if row is None:
            skipped += 1
            continue
        rows.append(
            row
            | {
                "id": new_id(),
                "app_id": claimed.app_id,
                "read_at": now,
                "import_id": claimed.subject_id,
                "first_seen_at": now,
                "updated_at": now,
                "match": "unmatched",
                "candidates": [],
            }
        )
    with db.session() as session:
        owned_task(session, claimed, started.lease)
        if rows:
            session.execute(_upsert_accounts(session.get_bind().dialect.name), rows)
        run = session.get(AppImport, claimed.subject_id)
        assert run is not None
        run.pages, run.accounts, run.repeated = walk.pages, walk.seen, walk.repeated
        run.claimed_total = walk.claimed_total
        if skipped:
            run.counts = {**run.counts, "skipped": run.counts.get("skipped", 0) + skipped}


def _write_groups(
    db: Database, claimed: queue.Claimed, started: Started, page: list[RemoteGroup], walk: Walk
) -> None:
    now = utcnow()
    rows = [
        {
            "app_id": claimed.app_id,
            "remote_id": group.remote_id,
            "display_name": group.display_name[:WIDE],
            "members": sorted(group.members),
            "read_at": now,
            "import_id": claimed.subject_id,
        }
        for group in page
        if len(group.remote_id) <= WIDE and remote_id_flaw(group.remote_id) is None
    ]
    with db.session() as session:
        owned_task(session, claimed, started.lease)
        if rows:
            session.execute(_upsert_groups(session.get_bind().dialect.name), rows)
        run = session.get(AppImport, claimed.subject_id)
        assert run is not None
        run.groups = walk.seen


def _complete(
    db: Database, claimed: queue.Claimed, started: Started, users: Walk, groups: Walk | None
) -> None:
    now = utcnow()
    with db.session() as session:
        task = owned_task(session, claimed, started.lease)
        run = session.get(AppImport, claimed.subject_id)
        assert run is not None
        gone = session.execute(
            update(AppAccount)
            .where(
                AppAccount.app_id == claimed.app_id,
                AppAccount.import_id != run.id,
                AppAccount.gone_at.is_(None),
            )
            .values(gone_at=now, updated_at=now)
        ).rowcount  # type: ignore[attr-defined]
        if groups is not None:
            session.execute(
                update(AppGroup)
                .where(
                    AppGroup.app_id == claimed.app_id,
                    AppGroup.import_id != run.id,
                    AppGroup.gone_at.is_(None),
                )
                .values(gone_at=now)
            )
        counts = link_matches(session, started.ctx, claimed.subject_id, now)
        counts["gone"] = gone
        counts["skipped"] = (run.counts or {}).get("skipped", 0)
        run.counts, run.status, run.finished_at = counts, "completed", now
        run.pages = users.pages + (groups.pages if groups is not None else 0)
        task.status, task.updated_at, task.last_error = queue.SUCCEEDED, now, None
        mismatch = " (the app's totalResults said otherwise)" if users.total_mismatch else ""
        add_event(
            session,
            actor=run.actor,
            correlation_id=run.correlation_id,
            action="app.import.complete",
            message=(
                f"imported {run.accounts} accounts of {started.ctx.name}{mismatch}: "
                f"{counts['linked']} linked, {counts['pending']} pending, "
                f"{counts['conflict']} in conflict, {counts['unmatched']} unmatched"
            ),
            app_id=claimed.app_id,
            targets={"app": started.ctx.name, "import_id": run.id},
            details={
                "counts": counts,
                "pages": users.pages,
                "repeated": users.repeated,
                "claimed_total": users.claimed_total,
                "groups": run.groups,
            },
        )


def _people(session: Session, attributes: set[str]) -> Iterator[Person]:
    """Every directory user with the values the rules name, as text. Profile attributes are
    read out of the JSON by the database (``json_extract`` / ``->>``): decoding 100,000
    profiles in Python was most of an import's matching time."""
    extra = sorted(attributes - {"id", "login"})
    columns = [User.profile[name].as_string() for name in extra]
    statement = select(User.id, User.login, *columns).execution_options(yield_per=2000)
    for user_id, login, *found in session.execute(statement):
        values = {"id": user_id, "login": login}
        values.update({name: str(v) for name, v in zip(extra, found, strict=True) if v})
        yield Person(user_id, {name: values[name] for name in attributes if values.get(name)})


def link_matches(
    session: Session, ctx: AppContext, import_id: str, now: datetime
) -> dict[str, int]:
    """Match the app's accounts to directory users and link (or propose) each exact match.

    Accounts an admin rejected a match of stay as they are; a pending match is matched again
    (the directory may have changed). Linking writes the ``accounts`` row with the attributes
    as read as "last applied": the next reconcile plans from them as usual, so nothing is
    changed in the app until then (and a preview shows it first)."""
    settings = ctx.provisioning.imports
    linked: dict[str, str] = {
        remote_id: user_id
        for remote_id, user_id in session.execute(
            select(Account.remote_id, Account.user_id).where(
                Account.app_id == ctx.app_id,
                Account.remote_id.is_not(None),
                Account.status != "deleted",
            )
        )
        if remote_id is not None
    }
    current: dict[str, tuple[str, str, str | None]] = {}
    accounts: list[AppSideAccount] = []
    for row in session.execute(
        select(
            AppAccount.id,
            AppAccount.remote_id,
            AppAccount.user_name,
            AppAccount.external_id,
            AppAccount.primary_email,
            AppAccount.match,
            AppAccount.user_id,
        ).where(
            AppAccount.app_id == ctx.app_id,
            AppAccount.gone_at.is_(None),
            AppAccount.match != "rejected",
        )
    ):
        current[row.remote_id] = (row.id, row.match, row.user_id)
        accounts.append(
            AppSideAccount(row.remote_id, row.user_name, row.external_id, row.primary_email)
        )
    wanted = {rule.user_attribute for rule in settings.match_rules}
    matches = match_accounts(accounts, _people(session, wanted), settings.match_rules, linked)
    counts = {"linked": 0, "pending": 0, "conflict": 0, "unmatched": 0, "newly_linked": 0}
    changes: list[dict[str, Any]] = []
    links: list[Match] = []
    connection = session.connection()
    for remote_id, match in matches.items():
        row_id, was, was_user = current[remote_id]
        state = _stored_state(match, settings.auto_link)
        if match.state is MatchState.MATCHED and settings.auto_link:
            links.append(match)
        counts["linked" if state == "linked" else state] += 1
        # A conflict is written every time: its candidates may have changed.
        if (state, match.user_id) != (was, was_user) or state == "conflict":
            changes.append(
                {
                    "row_id": row_id,
                    "match": state,
                    "user_id": match.user_id,
                    "rule": match.rule,
                    "candidates": list(match.candidates),
                    "now": now,
                }
            )
            if len(changes) >= CHUNK:  # written as they come: never 100,000 dicts at once
                connection.execute(_MATCHED, changes)
                changes = []
    if changes:
        connection.execute(_MATCHED, changes)
    counts["newly_linked"] = len(links)
    write_links(session, ctx.app_id, links, now)
    return counts


_MATCHED = (
    update(AppAccount)
    .where(AppAccount.id == bindparam("row_id"))
    .values(
        match=bindparam("match"),
        user_id=bindparam("user_id"),
        rule=bindparam("rule"),
        candidates=bindparam("candidates"),
        updated_at=bindparam("now"),
    )
)


def _stored_state(match: Match, auto_link: bool) -> str:
    if match.state is MatchState.MATCHED:
        return "linked" if auto_link else "pending"
    return "linked" if match.state is MatchState.LINKED else match.state.value


def write_links(session: Session, app_id: str, links: list[Match], now: datetime) -> None:
    """Write the ``accounts`` rows of new links: the remote id, and what the app holds as the
    attributes last applied. A user's row without a remote id (a create that failed, an
    account deleted) takes the link; a user already linked elsewhere never reaches here
    (matching made that a conflict). Core statements, a chunk at a time: 100,000 links never
    become 100,000 ORM objects."""
    connection = session.connection()
    for start in range(0, len(links), CHUNK):
        chunk = links[start : start + CHUNK]
        remote = {
            row.remote_id: row
            for row in connection.execute(
                select(AppAccount.remote_id, AppAccount.attributes, AppAccount.active).where(
                    AppAccount.app_id == app_id,
                    AppAccount.remote_id.in_([m.remote_id for m in chunk]),
                )
            )
        }
        existing = {
            row.user_id: row.id
            for row in connection.execute(
                select(Account.id, Account.user_id).where(
                    Account.app_id == app_id,
                    Account.user_id.in_([m.user_id for m in chunk if m.user_id]),
                )
            )
        }
        inserts, updates = [], []
        for match in chunk:
            assert match.user_id is not None
            read = remote[match.remote_id]
            row = {
                "remote_id": match.remote_id,
                "status": "active" if read.active else "deactivated",
                "applied": {**read.attributes, "active": bool(read.active)},
                "last_synced_at": now,
                "deactivated_at": None if read.active else now,
            }
            row_id = existing.get(match.user_id)
            if row_id is None:
                inserts.append(
                    row
                    | {
                        "id": new_id(),
                        "app_id": app_id,
                        "user_id": match.user_id,
                        "created_at": now,
                    }
                )
            else:
                updates.append(row | {"row_id": row_id})
        if inserts:
            connection.execute(insert(Account), inserts)
        if updates:
            connection.execute(_RELINK, updates)


_RELINK = (
    update(Account)
    .where(Account.id == bindparam("row_id"))
    .values(
        remote_id=bindparam("remote_id"),
        status=bindparam("status"),
        applied=bindparam("applied"),
        last_synced_at=bindparam("last_synced_at"),
        deactivated_at=bindparam("deactivated_at"),
        last_error=None,
        fingerprint=None,
    )
)


def retried(
    session: Session, task: Task, policy: RetryPolicy, exc: ConnectorError, error: str
) -> bool:
    """Requeue a task the app failed transiently, with backoff (its Retry-After a floor),
    while it has attempts left; False when it has not, or the error is terminal."""
    if not exc.retryable or task.attempts >= policy.max_attempts:
        return False
    retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
    delay = queue.backoff(task.attempts, policy.base_seconds, policy.ceiling_seconds, retry_after)
    queue.requeue(session, task, at=utcnow() + timedelta(seconds=delay), error=error)
    return True


def _failed(host: Host, claimed: queue.Claimed, started: Started, exc: ConnectorError) -> None:
    """The app failed the walk: try again later from the first page, or give up visibly."""
    now = utcnow()
    policy = host.retry_policy
    with host.db.session() as session:
        try:
            task = owned_task(session, claimed, started.lease)
        except Lost:
            return
        run = session.get(AppImport, claimed.subject_id)
        assert run is not None
        error = f"{type(exc).__name__}: {exc.detail}"
        run.error = error
        if retried(session, task, policy, exc, error):
            run.status = "queued"
            return
        run.status, run.finished_at = "failed", now
        task.status, task.last_error, task.updated_at = queue.DEAD, error, now
        add_event(
            session,
            actor=run.actor,
            correlation_id=run.correlation_id,
            action="app.import.fail",
            outcome="failure",
            message=f"the import of {started.ctx.name} failed: {error}",
            app_id=claimed.app_id,
            targets={"app": started.ctx.name, "import_id": run.id},
            details={"error": error, "pages": run.pages, "accounts": run.accounts},
        )
