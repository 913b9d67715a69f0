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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from provisiond.connectors.base import Connector, RemoteGroup, RemoteUser
from provisiond.connectors.paging import Walk
from provisiond.connectors.remote_ids import remote_id_flaw
from provisiond.engine import queue
from provisiond.engine.context import AppContext, read_context
from provisiond.engine.linking import link_matches
from provisiond.engine.outcomes import RetryPolicy, managed
from provisiond.engine.planner import _get
from provisiond.errors import ConnectorError, RateLimited
from provisiond.store.db import Database
from provisiond.store.events import add_event
from provisiond.store.secrets import Vault
from provisiond.store.tables import (
    AppAccount,
    AppGroup,
    AppImport,
    Task,
    new_id,
    utcnow,
)

log = logging.getLogger("provisiond.imports")
T = TypeVar("T")
WIDE = 256  # the width of the id and name columns: a longer remote id is skipped, counted
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


def running_task(session: Session, claimed: queue.Claimed) -> Task | None:
    """The claimed task if it is still running (requeued meanwhile: its new owner runs it)."""
    task = session.get(Task, claimed.id)
    return task if task is not None and task.status == queue.RUNNING else None


def _begin(host: Host, claimed: queue.Claimed) -> Started | None:
    with host.db.session() as session:
        task = running_task(session, claimed)
        if task is None:
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
