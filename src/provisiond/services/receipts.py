"""A leaver's revocation receipt: every app the user had an account in, what was done there,
what the app showed when read back, and when - signed (domain.receipts, services.signing).

The evidence is the ``revocations`` table the worker writes when it reads an account back
after a deprovisioning (engine.executor.read_back). One statement reads every line.
"""

from __future__ import annotations

from collections.abc import Set
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from provisiond.domain import receipts
from provisiond.engine import queue
from provisiond.services import signing
from provisiond.services.directory import get_user
from provisiond.store.secrets import Vault
from provisiond.store.tables import Account, App, Revocation, Task, utcnow

CONFIRMED, NOT_CONFIRMED, ACTIVE = "confirmed", "not confirmed", "active"


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def line_status(account_status: str, revocation: Revocation | None) -> str:
    """Confirmed only by a read-back that showed the access gone, of an account that is not
    active again since; "active" for an account never deprovisioned (or reactivated since)."""
    if revocation is not None and revocation.confirmed and account_status != "active":
        return CONFIRMED
    if account_status == "active" and (revocation is None or revocation.confirmed):
        return ACTIVE
    return NOT_CONFIRMED


def build(session: Session, user_id: str, *, apps: Set[str] | None = None) -> dict[str, Any]:
    """The receipt's body (unsigned). ``apps``: the apps the reader may see (None: all)."""
    user = get_user(session, user_id)
    statement = (
        select(App.id, App.name, Account.status, Account.remote_id, Account.last_synced_at,
               Revocation)
        .join(App, App.id == Account.app_id)
        .outerjoin(Revocation, and_(Revocation.app_id == Account.app_id,
                                    Revocation.user_id == Account.user_id))
        .where(Account.user_id == user.id)
        .order_by(App.name)
    )
    if apps is not None:
        statement = statement.where(Account.app_id.in_(sorted(apps)))
    open_tasks: dict[str, str] = {
        app_id: status
        for app_id, status in session.execute(
            select(Task.app_id, Task.status).where(
                Task.subject_id == user.id,
                Task.status.in_([queue.QUEUED, queue.RUNNING, queue.DEAD]),
            )
        )
    }
    lines = []
    for app_id, name, status, remote_id, synced, revocation in session.execute(statement):
        lines.append({
            "app_id": app_id,
            "app": name,
            "account_status": status,
            "action": revocation.action if revocation is not None else None,
            "remote_id": revocation.remote_id if revocation is not None else remote_id,
            "applied_at": _time(revocation.applied_at) if revocation is not None else None,
            "read_back": None if revocation is None else {
                "state": revocation.read_state, "at": _time(revocation.read_at),
            },
            "last_synced_at": _time(synced),
            "pending_task": open_tasks.get(app_id),
            "status": line_status(status, revocation),
        })
    confirmed = all(line["status"] == CONFIRMED for line in lines)
    return {
        "kind": receipts.KIND,
        "version": 1,
        "issued_at": utcnow().isoformat(),
        "user": {
            "id": user.id, "login": user.login, "status": user.status,
            "status_changed_at": _time(user.status_changed_at),
        },
        "scope": "all apps" if apps is None else "the apps the reader may see",
        "status": CONFIRMED if confirmed else NOT_CONFIRMED,
        "apps": lines,
    }


def signed_receipt(
    session: Session, vault: Vault, user_id: str, *, apps: Set[str] | None = None
) -> dict[str, Any]:
    """The receipt, signed with the current signing key (made on first use)."""
    body = build(session, user_id, apps=apps)
    return receipts.sign(body, signing.signing_key(session, vault))
