"""Accounts whose "delete after N days deactivated" period has run out, queued for deletion.

Nothing else would touch them (their users no longer change), so the worker sweeps now and
then; the planner itself decides, from the same rule, that they are deleted.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.domain.apps import ProvisioningSettings
from provisiond.engine import queue
from provisiond.engine.context import policy_in_force
from provisiond.store.tables import Account, App, utcnow


def sweep_expired(session: Session, now: datetime | None = None) -> int:
    """Queue every account past its grace period; returns how many were queued."""
    now = now or utcnow()
    queued = 0
    for app_id, provisioning in session.execute(select(App.id, App.provisioning)):
        if not ProvisioningSettings.model_validate(provisioning).enabled:
            continue
        days = policy_in_force(session, app_id).document.deprovisioning.delete_after_days
        if not days:
            continue
        expired = list(
            session.scalars(
                select(Account.user_id).where(
                    Account.app_id == app_id,
                    Account.status == "deactivated",
                    Account.deactivated_at <= now - timedelta(days=days),
                )
            )
        )
        if expired:
            queue.enqueue(
                session, app_id, expired, reason="policy.delete_after",
                correlation_id=str(uuid.uuid4()),
            )
            queued += len(expired)
    return queued
