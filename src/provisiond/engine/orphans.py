"""Deprovisioning an orphan: an app account an admin asked to deactivate or delete.

A task of kind ``orphan`` whose subject is the ``app_accounts`` row; its reason says the
action (``app.orphan.deactivate`` / ``app.orphan.delete``). The account is read again first
(it may have changed or gone since the import), then deactivated (PATCH or, for a PUT-only
app, the whole account with ``active: false``) or deleted. A linked ``accounts`` row follows,
so provisiond's record says what the app now holds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from provisiond.engine import queue
from provisiond.engine.context import AppContext, read_context
from provisiond.engine.imports import Host, Lost, owned_task, retried, running_task
from provisiond.engine.outcomes import managed
from provisiond.engine.planner import Change
from provisiond.engine.writer import count_outcomes
from provisiond.errors import ConnectorError, RemoteNotFound
from provisiond.store.events import add_event
from provisiond.store.tables import Account, AppAccount, utcnow

DEACTIVATE, DELETE = "app.orphan.deactivate", "app.orphan.delete"


@dataclass(frozen=True)
class _Orphan:
    ctx: AppContext
    lease: datetime
    remote_id: str
    delete: bool


async def run_orphan(host: Host, claimed: queue.Claimed) -> None:
    orphan = await host.in_db(_begin, host, claimed)
    if orphan is None:
        return
    connector = await host.connector_for(orphan.ctx)
    outcome = "deleted" if orphan.delete else "deactivated"
    try:
        current = await connector.get_user(orphan.remote_id)
        if current is None:
            outcome = "gone"
        elif orphan.delete:
            await connector.delete_user(orphan.remote_id)
        elif current.active:
            # The whole account with active false: what a PUT-only app must be sent.
            attributes = {
                **{k: v for k, v in managed(current.attributes).items() if k.lower() != "active"},
                "active": False,
            }
            await connector.update_user(
                orphan.remote_id, [Change("active", True, False)], attributes
            )
        else:
            outcome = "unchanged"
    except RemoteNotFound:
        outcome = "gone"
    except ConnectorError as exc:
        await host.in_db(_failed, host, claimed, orphan, exc)
        return
    try:
        await host.in_db(_done, host, claimed, orphan, outcome)
    except Lost:
        return


def _begin(host: Host, claimed: queue.Claimed) -> _Orphan | None:
    with host.db.session() as session:
        task = running_task(session, claimed)
        if task is None:
            return None
        row = session.get(AppAccount, claimed.subject_id)
        ctx = read_context(session, host.vault, claimed.app_id)
        if row is None or ctx is None or row.gone_at is not None:
            task.status, task.updated_at = queue.SUCCEEDED, utcnow()
            if task.run_id:
                count_outcomes(session, task.run_id, Counter({"unchanged": 1}), utcnow())
            return None
        task.claimed_at = lease = utcnow()
        return _Orphan(ctx, lease, row.remote_id, claimed.reason == DELETE)


def _done(host: Host, claimed: queue.Claimed, orphan: _Orphan, outcome: str) -> None:
    now = utcnow()
    with host.db.session() as session:
        task = owned_task(session, claimed, orphan.lease)
        row = session.get(AppAccount, claimed.subject_id)
        assert row is not None
        gone = outcome in ("deleted", "gone")
        row.active, row.updated_at = False, now
        if gone:
            row.gone_at = now
        account = (
            session.query(Account)
            .filter_by(app_id=claimed.app_id, remote_id=orphan.remote_id)
            .one_or_none()
        )
        if account is not None:
            account.status = "deleted" if gone else "deactivated"
            account.remote_id = None if gone else account.remote_id
            account.applied = {} if gone else {**account.applied, "active": False}
            account.deactivated_at = account.deactivated_at or now
            account.fingerprint, account.last_synced_at = None, now
        task.status, task.updated_at, task.last_error = queue.SUCCEEDED, now, None
        if task.run_id:
            counted = {"gone": "deleted"}.get(outcome, outcome)
            count_outcomes(session, task.run_id, Counter({counted: 1}), now)
        verb = "deleted" if orphan.delete else "deactivated"
        add_event(
            session,
            actor="system",
            correlation_id=claimed.correlation_id,
            action=claimed.reason,
            message=(
                f"orphan account {row.user_name or row.remote_id} in {orphan.ctx.name} {verb}"
                if outcome in ("deleted", "deactivated")
                else f"orphan account {row.user_name or row.remote_id} in {orphan.ctx.name}: "
                f"{'already gone' if outcome == 'gone' else 'already inactive'}"
            ),
            app_id=claimed.app_id,
            user_id=account.user_id if account is not None else None,
            targets={"app": orphan.ctx.name, "remote_id": orphan.remote_id},
            details={"outcome": outcome},
        )


def _failed(host: Host, claimed: queue.Claimed, orphan: _Orphan, exc: ConnectorError) -> None:
    now = utcnow()
    error = f"{type(exc).__name__}: {exc.detail}"
    with host.db.session() as session:
        try:
            task = owned_task(session, claimed, orphan.lease)
        except Lost:
            return
        if retried(session, task, host.retry_policy, exc, error):
            return
        task.status, task.last_error, task.updated_at = queue.DEAD, error, now
        if task.run_id:
            count_outcomes(session, task.run_id, Counter({"failed": 1}), now)
        add_event(
            session,
            actor="system",
            correlation_id=claimed.correlation_id,
            action=claimed.reason,
            outcome="failure",
            message=f"deprovisioning orphan account {orphan.remote_id} in {orphan.ctx.name} "
            f"failed: {error}",
            app_id=claimed.app_id,
            targets={"app": orphan.ctx.name, "remote_id": orphan.remote_id},
            details={"error": error},
        )
