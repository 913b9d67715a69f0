"""Saving a policy: in force at once, or pending behind a held run when it is over the limit.

A saved policy used to be in force the moment it was stored, even when its run was held: the
hold kept back only the deprovisionings of that run, so cancelling it left the policy in force
and every later one-user change (a profile edit) deprovisioned under it, one at a time. Here a
save whose plan exceeds the safety limit is not stored as a version at all: the document waits
on the held run (``run.held["policy"]``) until an admin approves it (it becomes the next version
and every user is reconciled under it) or cancels it (it is discarded). The worker, provisioning
on demand and previews only ever read the versions in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from provisiond.domain.policy import PolicyDocument
from provisiond.services import policies, runs
from provisiond.services.apps import provisioning_of
from provisiond.services.context import Actor
from provisiond.store.tables import App, Run


@dataclass(frozen=True)
class Saved:
    version: int  # the version in force after the save
    changed: bool
    run: Run | None = None
    pending: dict[str, Any] | None = None  # the held save, when it waits for approval


def save(session: Session, actor: Actor, app: App, document: PolicyDocument) -> Saved:
    """Check ``document`` and save it: in force and every user reconciled under it, or, when
    that would deprovision more than the limits allow, pending behind a held run."""
    version, before = policies.current(session, app.id)
    proposed = policies.check(session, document, version=policies.next_version(session, app.id))
    if before == document:
        return Saved(version, False, pending=pending_of(session, app.id))
    # The newest save is the admin's intent: an earlier one still waiting is replaced by it.
    waiting = runs.pending_policy(session, app.id)
    if waiting is not None:
        runs.cancel(session, actor, waiting.id, superseded_by="replaced by a newer save")
    if not provisioning_of(app).enabled:
        new_version, _ = policies.save(session, actor, app, document, checked=True)
        return Saved(new_version, True)
    run = runs.reconcile_users(
        session,
        actor,
        app,
        runs.everyone(session, app.id),
        reason="app.policy.update",
        kind="policy",
        policy=proposed,
    )
    if run is not None and runs.is_pending_policy(run):
        return Saved(version, True, run, pending_of(session, app.id))
    new_version, _ = policies.save(session, actor, app, document, checked=True)
    return Saved(new_version, True, run)


def pending_of(session: Session, app_id: str) -> dict[str, Any] | None:
    """The pending policy, as the API and the console show it, or None."""
    run = runs.pending_policy(session, app_id)
    if run is None or run.held is None:
        return None
    counts = run.held.get("counts", {})
    return {
        "run_id": run.id,
        "actor": run.actor,
        "saved_at": run.started_at,
        "version": run.policy_version,  # the version it becomes if approved now
        "base_version": run.held.get("base_version"),
        "deprovisions": counts.get("deactivate", 0) + counts.get("delete", 0),
        "accounts": run.held.get("accounts"),
        "document": run.held["policy"],
    }
