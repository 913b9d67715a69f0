"""Whether an app's provisioning is flowing, paused (it answered 429) or quarantined (its
requests kept failing), and resuming a quarantined app at once (engine.quarantine)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisiond.engine import quarantine, queue
from provisiond.errors import Conflict
from provisiond.services.apps import get_app
from provisiond.services.context import Actor
from provisiond.store.tables import Task, utcnow


@dataclass(frozen=True)
class ProvisioningState:
    state: str  # flowing | paused | quarantined
    since: datetime | None
    until: datetime | None  # paused: its end; quarantined: the next probe
    reason: str | None
    probes_failed: int
    queued: int  # tasks waiting in the queue
    queued_deprovisions: int  # ... of which a person's lifecycle (a leaver's deprovisioning)


def state_of(session: Session, app: str) -> ProvisioningState:
    app_id = get_app(session, app).id
    hold = quarantine.state_of(session, app_id)
    now = utcnow()
    waiting: dict[int, int] = {
        priority: count
        for priority, count in session.execute(
            select(Task.priority, func.count())
            .where(Task.app_id == app_id, Task.status == queue.QUEUED)
            .group_by(Task.priority)
        )
    }
    queued = sum(waiting.values())
    lifecycle = waiting.get(0, 0)
    if hold is None or (hold.kind == "throttle" and hold.until <= now):
        return ProvisioningState("flowing", None, None, None, 0, queued, lifecycle)
    state = "quarantined" if hold.kind == "quarantine" else "paused"
    return ProvisioningState(state, hold.since, hold.until, hold.reason, hold.probes, queued,
                             lifecycle)


def resume(session: Session, actor: Actor, app: str) -> ProvisioningState:
    """Resume a quarantined app now, without waiting for its next probe."""
    app_row = get_app(session, app)
    if not quarantine.resume(session, app_row.id, f"resumed by {actor.name}", actor=actor.name,
                             correlation_id=actor.correlation_id):
        raise Conflict(f"app {app_row.name!r} is not quarantined")
    session.flush()
    return state_of(session, app_row.id)
