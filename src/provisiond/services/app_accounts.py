"""The app's side of the truth: imports, what they found, matches to confirm, and orphans.

For other services (the access posture report reads these):

- ``start_import`` / ``get_import`` / ``latest_import``: an import and its progress;
- ``list_app_accounts(session, app_id, match=...)``: the accounts as the app holds them;
- ``confirm`` / ``reject``: an admin's decision on pending matches, in bulk;
- ``orphans(session, app_id)`` and ``orphan_count``: accounts linked to no directory user, or
  to one no longer assigned or no longer active, with since when;
- ``ignore`` / ``link`` / ``deprovision``: what an admin does about orphans. Deprovisioning
  goes through the policy's safety limits: over them, a held run waits for approval
  (services.runs.approve queues it then);
- ``drifted(session, app_id)`` and ``drift_count``: linked accounts a full reconcile found
  changed in the app since provisiond applied them, attribute by attribute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from provisiond.engine import queue
from provisiond.engine.linking import write_links
from provisiond.engine.matching import Match, MatchState
from provisiond.engine.orphans import DEACTIVATE, DELETE
from provisiond.errors import Conflict, Invalid, NotFound
from provisiond.services import activity, policies, reach
from provisiond.services.context import Actor
from provisiond.store.tables import Account, App, AppAccount, AppImport, Run, User, utcnow

ACTIVE_IMPORT = ("queued", "running")
DECIDED = frozenset({"pending"})  # what an admin confirms or rejects


def start_import(session: Session, actor: Actor, app: App) -> AppImport:
    """Queue an import of everything the app holds; 409 while one is queued or running."""
    running = session.scalar(
        select(AppImport.id).where(AppImport.app_id == app.id, AppImport.status.in_(ACTIVE_IMPORT))
    )
    if running is not None:
        raise Conflict(
            f"an import of {app.name} is already under way ({running})", import_id=running
        )
    run = AppImport(
        app_id=app.id,
        status="queued",
        actor=actor.name,
        correlation_id=actor.correlation_id,
        counts={},
    )
    session.add(run)
    session.flush()
    queue.enqueue(
        session,
        app.id,
        [run.id],
        reason="app.import",
        correlation_id=actor.correlation_id,
        kind="import",
        priority=2,
    )
    activity.record(
        session,
        actor,
        "app.import.start",
        f"import of {app.name} queued",
        app_id=app.id,
        targets={"app": app.name, "import_id": run.id},
    )
    return run


def get_import(session: Session, import_id: str) -> AppImport:
    run = session.get(AppImport, import_id)
    if run is None:
        raise NotFound(f"no import with id {import_id!r}")
    return run


def list_imports(session: Session, app_id: str, limit: int = 20) -> Sequence[AppImport]:
    return session.scalars(
        select(AppImport)
        .where(AppImport.app_id == app_id)
        .order_by(AppImport.created_at.desc())
        .limit(limit)
    ).all()


def latest_import(session: Session, app_id: str) -> AppImport | None:
    return session.scalars(
        select(AppImport)
        .where(AppImport.app_id == app_id)
        .order_by(AppImport.created_at.desc())
        .limit(1)
    ).first()


def list_app_accounts(
    session: Session,
    app_id: str,
    *,
    match: str | None = None,
    include_gone: bool = False,
    limit: int = 500,
    after: str | None = None,
) -> Sequence[AppAccount]:
    """The app's accounts as last imported, by remote id; ``after`` pages on from one."""
    statement = select(AppAccount).where(AppAccount.app_id == app_id)
    if match is not None:
        statement = statement.where(AppAccount.match == match)
    if not include_gone:
        statement = statement.where(AppAccount.gone_at.is_(None))
    if after is not None:
        statement = statement.where(AppAccount.remote_id > after)
    return session.scalars(statement.order_by(AppAccount.remote_id).limit(limit)).all()


def _rows(session: Session, app: App, ids: Sequence[str]) -> list[AppAccount]:
    if not ids:
        raise Invalid("name at least one account", field="ids")
    found = {
        row.id: row
        for row in session.scalars(
            select(AppAccount).where(AppAccount.app_id == app.id, AppAccount.id.in_(set(ids)))
        )
    }
    missing = sorted(set(ids) - set(found))
    if missing:
        raise NotFound(f"no account {missing[0]!r} in {app.name}")
    return [found[i] for i in dict.fromkeys(ids)]


def confirm(session: Session, actor: Actor, app: App, ids: Sequence[str]) -> int:
    """Link pending matches; all or nothing (a user linked meanwhile refuses the lot)."""
    rows = _rows(session, app, ids)
    for row in rows:
        if row.match not in DECIDED or row.user_id is None:
            raise Conflict(f"account {row.remote_id!r} has no pending match ({row.match})")
    _link(session, actor, app, [(row, row.user_id) for row in rows if row.user_id], "confirm")
    return len(rows)


def reject(session: Session, actor: Actor, app: App, ids: Sequence[str], note: str | None) -> int:
    """Reject pending matches: the accounts stay unlinked (orphans) and are not matched again."""
    rows = _rows(session, app, ids)
    for row in rows:
        if row.match not in DECIDED:
            raise Conflict(f"account {row.remote_id!r} has no pending match ({row.match})")
    now = utcnow()
    for row in rows:
        row.match, row.user_id, row.note = "rejected", None, note or row.note
        row.decided_by, row.updated_at = actor.name, now
    _record(session, actor, app, "app.account.reject", f"rejected {len(rows)} matches", rows, note)
    return len(rows)


def link(session: Session, actor: Actor, app: App, account_id: str, user_id: str) -> AppAccount:
    """Link an app account to a directory user an admin names (an orphan, a conflict)."""
    (row,) = _rows(session, app, [account_id])
    if session.get(User, user_id) is None:
        raise NotFound(f"no user with id {user_id!r}")
    _link(session, actor, app, [(row, user_id)], "link")
    return row


def _link(
    session: Session, actor: Actor, app: App, pairs: list[tuple[AppAccount, str]], how: str
) -> None:
    users = [user_id for _, user_id in pairs]
    if len(set(users)) != len(users):
        raise Conflict("two accounts would be linked to the same user: never both")
    holders = dict(
        session.execute(
            select(Account.user_id, Account.remote_id).where(
                Account.app_id == app.id,
                Account.remote_id.is_not(None),
                Account.status != "deleted",
                Account.user_id.in_(users),
            )
        ).all()
    )
    for row, user_id in pairs:
        if row.gone_at is not None:
            raise Conflict(f"account {row.remote_id!r} is no longer in {app.name}")
        held = holders.get(user_id)
        if held is not None and held != row.remote_id:
            raise Conflict(f"that user already has account {held!r} in {app.name}")
        owner = session.scalar(
            select(Account.user_id).where(
                Account.app_id == app.id,
                Account.remote_id == row.remote_id,
                Account.status != "deleted",
            )
        )
        if owner is not None and owner != user_id:
            raise Conflict(f"account {row.remote_id!r} is linked to another user already")
    now = utcnow()
    fresh = [
        Match(row.remote_id, MatchState.MATCHED, user_id, "admin")
        for row, user_id in pairs
        if holders.get(user_id) != row.remote_id
    ]
    write_links(session, app.id, fresh, now)
    for row, user_id in pairs:
        row.match, row.user_id, row.candidates = "linked", user_id, []
        row.rule = row.rule if how == "confirm" else "admin"
        row.decided_by, row.updated_at, row.ignored_at = actor.name, now, None
    activity.record(
        session,
        actor,
        f"app.account.{how}",
        f"linked {len(pairs)} accounts in {app.name}; nothing changes in the app before the "
        "next reconcile",
        app_id=app.id,
        user_id=pairs[0][1] if len(pairs) == 1 else None,
        targets={"app": app.name},
        details={"links": [{"remote_id": r.remote_id, "user_id": u} for r, u in pairs[:100]]},
    )


@dataclass(frozen=True)
class Orphan:
    account: AppAccount
    reason: str  # unlinked | unassigned | inactive
    since: datetime
    user_id: str | None
    login: str | None
    user_status: str | None


def orphans(
    session: Session, app_id: str, *, include_ignored: bool = False, limit: int | None = None
) -> list[Orphan]:
    """App accounts linked to nobody, or to a user no longer assigned or no longer active.

    ``since``: when the import first saw an unlinked account; when an inactive user's status
    changed; for an unassigned user, when provisiond deactivated the account or last
    reconciled it (the assignment's removal leaves no row)."""
    assigned = set(reach.assigned_users(session, app_id))
    statement = (
        select(AppAccount, Account, User.login, User.status, User.status_changed_at)
        .outerjoin(
            Account,
            and_(
                Account.app_id == AppAccount.app_id,
                Account.remote_id == AppAccount.remote_id,
                Account.status != "deleted",
            ),
        )
        .outerjoin(User, User.id == Account.user_id)
        .where(AppAccount.app_id == app_id, AppAccount.gone_at.is_(None))
        .order_by(AppAccount.first_seen_at, AppAccount.remote_id)
    )
    if not include_ignored:
        statement = statement.where(AppAccount.ignored_at.is_(None))
    found: list[Orphan] = []
    for row, account, login, status, changed in session.execute(statement):
        if account is None:
            found.append(Orphan(row, "unlinked", row.first_seen_at, None, None, None))
        elif status != "active":
            since = changed or account.deactivated_at or row.first_seen_at
            found.append(Orphan(row, "inactive", since, account.user_id, login, status))
        elif account.user_id not in assigned:
            since = account.deactivated_at or account.last_synced_at or row.first_seen_at
            found.append(Orphan(row, "unassigned", since, account.user_id, login, status))
        else:
            continue
        if limit is not None and len(found) >= limit:
            break
    return found


def orphan_count(session: Session, app_id: str) -> int:
    return len(orphans(session, app_id))


def ignore(session: Session, actor: Actor, app: App, ids: Sequence[str], note: str) -> int:
    """Leave these orphans as they are (with why): they no longer show as orphans."""
    if not note.strip():
        raise Invalid("say why the accounts are ignored", field="note")
    rows = _rows(session, app, ids)
    now = utcnow()
    for row in rows:
        row.ignored_at, row.note, row.decided_by, row.updated_at = now, note, actor.name, now
    _record(session, actor, app, "app.orphan.ignore", f"ignored {len(rows)} orphans", rows, note)
    return len(rows)


def _record(
    session: Session,
    actor: Actor,
    app: App,
    action: str,
    what: str,
    rows: Sequence[AppAccount],
    note: str | None,
) -> None:
    """One event for a decision on many accounts (the first hundred named)."""
    activity.record(
        session,
        actor,
        action,
        f"{what} in {app.name}",
        app_id=app.id,
        targets={"app": app.name},
        details={"remote_ids": [r.remote_id for r in rows[:100]], "note": note},
    )


def deprovision(session: Session, actor: Actor, app: App, ids: Sequence[str], action: str) -> Run:
    """Deactivate or delete orphans, as a run: held over the policy's safety limits (approve
    or cancel it like any held run), queued at once otherwise."""
    if action not in ("deactivate", "delete"):
        raise Invalid("action is deactivate or delete", field="action")
    rows = _rows(session, app, ids)
    orphaned = {o.account.id for o in orphans(session, app.id, include_ignored=True)}
    for row in rows:
        if row.id not in orphaned:
            raise Conflict(f"account {row.remote_id!r} is not an orphan of {app.name}")
    limits = policies.compiled(session, app.id).document.limits
    accounts = max(reach.account_count(session, app.id), _app_side_count(session, app.id))
    counts = {"deactivate": 0, "delete": 0, action: len(rows)}
    held = None
    if not limits.allows(len(rows), accounts):
        held = {
            "reason": f"app.orphan.{action}",
            "user_ids": [],
            "orphans": {"action": action, "ids": [row.id for row in rows]},
            "counts": counts,
            "deprovisions": [
                {
                    "remote_id": r.remote_id,
                    "login": r.user_name,
                    "operation": action,
                    "reason": "orphan",
                }
                for r in rows[:1000]
            ],
            "limit": limits.model_dump(),
            "accounts": accounts,
        }
    run = Run(
        app_id=app.id,
        kind="orphans",
        status="held" if held else "running",
        actor=actor.name,
        total=0 if held else len(rows),
        counts=dict.fromkeys(_OUTCOMES, 0),
        held=held,
    )
    session.add(run)
    session.flush()
    if held is not None:
        activity.record(
            session,
            actor,
            "app.run.held",
            f"{action} of {len(rows)} orphan accounts in {app.name} held: over the policy's "
            "safety limit; approve or cancel it",
            outcome="skipped",
            app_id=app.id,
            targets={"app": app.name, "run_id": run.id},
            details={"counts": counts, "limit": held["limit"]},
        )
        return run
    queue_orphans(session, actor, app, run, action, [row.id for row in rows])
    return run


_OUTCOMES = ("deactivated", "deleted", "unchanged", "failed")


def queue_orphans(
    session: Session, actor: Actor, app: App, run: Run, action: str, ids: Sequence[str]
) -> None:
    """Queue the run's orphan deprovisionings (at once, or when its hold is approved)."""
    queue.enqueue(
        session,
        app.id,
        ids,
        reason=DELETE if action == "delete" else DEACTIVATE,
        correlation_id=actor.correlation_id,
        run_id=run.id,
        kind="orphan",
        priority=queue.priority_of("app.orphan", None),
    )
    run.status, run.total = "running", len(ids)
    activity.record(
        session,
        actor,
        "app.run.start",
        f"{action} of {len(ids)} orphan accounts in {app.name} started",
        app_id=app.id,
        targets={"app": app.name, "run_id": run.id},
    )


def _app_side_count(session: Session, app_id: str) -> int:
    return (
        session.scalar(
            select(func.count()).where(AppAccount.app_id == app_id, AppAccount.gone_at.is_(None))
        )
        or 0
    )


@dataclass(frozen=True)
class Drifted:
    account: Account
    login: str | None


def drifted(session: Session, app_id: str, *, limit: int | None = None) -> list[Drifted]:
    """Linked accounts whose last full reconcile found attributes changed in the app since
    provisiond applied them (engine.drift), by login."""
    statement = (
        select(Account, User.login)
        .outerjoin(User, User.id == Account.user_id)
        .where(Account.app_id == app_id, Account.drift.is_not(None))
        .order_by(User.login_key)
    )
    found: list[Drifted] = []
    for account, login in session.execute(statement):
        if account.drift:
            found.append(Drifted(account, login))
            if limit is not None and len(found) >= limit:
                break
    return found


def drift_count(session: Session, app_id: str) -> int:
    return len(drifted(session, app_id))
