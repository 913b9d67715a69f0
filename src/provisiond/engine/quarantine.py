"""Quarantine (Entra's name for it): an app whose requests keep failing is held, not hammered.

Without it, an app that is down for an hour burns every queued task's attempts in minutes and
leaves a wall of dead tasks (a leaver's deprovisioning among them) for an admin to retry. In
quarantine its tasks wait instead (the claim leaves the app out, engine.queue; tasks a worker
already holds are deferred), a probe (the connection test) runs on a backoff schedule, and
the app resumes by itself when a probe passes: its backlog is worked off in the usual order,
deprovisionings first. An admin sees the state, the reason and the next probe, and can resume
it at once (services.apps). The state is a row in ``app_pauses`` (kind ``quarantine``), so
every worker of the cluster honours it, and exactly one of them runs each probe.

When: most of an app's recent attempts (``WINDOW``) failed for reasons that do not depend on
the task (timeouts, 5xx, refused connections), or the app refused credentials (401/403) that
worked before. Counted per worker: one worker seeing a dead app is enough to hold it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from provisiond.store.events import add_event
from provisiond.store.tables import App, AppPause, Task, utcnow

# Seconds from the quarantine to each probe; hourly after the last.
SCHEDULE = (60.0, 300.0, 900.0, 3600.0)
WINDOW = 20  # the attempts looked at per app
FAILING = 16  # ... of which this many failing transiently quarantines the app


def next_probe_in(probes_failed: int) -> float:
    return SCHEDULE[min(probes_failed, len(SCHEDULE) - 1)]


@dataclass
class Watch:
    """A worker's recent attempts per app: is one of them to be quarantined?"""

    window: int = WINDOW
    failing: int = FAILING
    _seen: dict[str, deque[bool]] = field(default_factory=dict)
    _worked: set[str] = field(default_factory=set)  # apps whose credentials were accepted

    def succeeded(self, app_id: str) -> None:
        self._record(app_id, True)
        self._worked.add(app_id)

    def failed(self, app_id: str, *, transient: bool, http_status: int | None) -> str | None:
        """Record a failed attempt; the reason to quarantine the app, if it is time."""
        if http_status in (401, 403) and app_id in self._worked:
            self._worked.discard(app_id)
            return f"the app refused credentials that worked before (HTTP {http_status})"
        if not transient:
            return None  # about this task (a 400, a conflict), not the app
        seen = self._record(app_id, False)
        bad = sum(1 for ok in seen if not ok)
        if len(seen) >= self.window and bad >= self.failing:
            seen.clear()
            return f"{bad} of its last {self.window} requests failed"
        return None

    def _record(self, app_id: str, ok: bool) -> deque[bool]:
        seen = self._seen.setdefault(app_id, deque(maxlen=self.window))
        seen.append(ok)
        return seen


def enter(
    session: Session, app_id: str, reason: str, *, correlation_id: str, now: datetime | None = None
) -> bool:
    """Quarantine the app (a throttle pause becomes a quarantine). False if it already was."""
    now = now or utcnow()
    row = session.get(AppPause, app_id, with_for_update=True)
    if row is not None and row.kind == "quarantine":
        return False
    first_probe = now + timedelta(seconds=next_probe_in(0))
    if row is None:
        session.add(AppPause(app_id=app_id, kind="quarantine", since=now, until=first_probe,
                             reason=reason, probes=0))
    else:
        row.kind, row.since, row.until, row.reason, row.probes = (
            "quarantine", now, first_probe, reason, 0
        )
    _event(
        session, app_id, correlation_id, "app.provisioning.quarantine", "failure",
        "{name} is quarantined: " + f"{reason}. Its tasks wait; the first probe runs at "
        f"{first_probe:%H:%M:%S} UTC",
        {"reason": reason, "next_probe": first_probe.isoformat()},
    )
    return True


def take_due_probes(session: Session, now: datetime | None = None) -> list[str]:
    """The quarantined apps whose probe is due, each taken by this caller only: its next
    probe is scheduled now (as if this one fails), so no other worker runs it too."""
    now = now or utcnow()
    due = list(
        session.scalars(
            select(AppPause)
            .where(AppPause.kind == "quarantine", AppPause.until <= now)
            .with_for_update(skip_locked=True)
        )
    )
    for row in due:
        row.probes += 1
        row.until = now + timedelta(seconds=next_probe_in(row.probes))
    return [row.app_id for row in due]


def probe_failed(session: Session, app_id: str, why: str, *, correlation_id: str) -> None:
    row = session.get(AppPause, app_id)
    if row is None or row.kind != "quarantine":
        return  # resumed meanwhile
    _event(
        session, app_id, correlation_id, "app.provisioning.probe", "failure",
        "{name} is still quarantined: " + f"the probe failed ({why}); next probe at "
        f"{row.until:%H:%M:%S} UTC",
        {"reason": why, "probes": row.probes, "next_probe": row.until.isoformat()},
    )


def resume(
    session: Session, app_id: str, why: str, *, actor: str, correlation_id: str,
    now: datetime | None = None,
) -> bool:
    """End the app's quarantine: its waiting tasks are due at once. False if it was not."""
    now = now or utcnow()
    row = session.get(AppPause, app_id, with_for_update=True)
    if row is None or row.kind != "quarantine":
        return False
    session.delete(row)
    session.execute(
        update(Task)
        .where(Task.app_id == app_id, Task.status == "queued", Task.next_attempt_at > now)
        .values(next_attempt_at=now)
    )
    _event(
        session, app_id, correlation_id, "app.provisioning.resume", "success",
        "{name} resumes after its quarantine: " + why,
        {"quarantined_at": row.since.isoformat(), "reason": row.reason}, actor=actor,
    )
    return True


def _event(
    session: Session, app_id: str, correlation_id: str, action: str, outcome: str,
    message: str, details: dict[str, object], *, actor: str = "provisiond",
) -> None:
    """An event about the app; ``{name}`` in ``message`` is the app's name."""
    name = session.scalar(select(App.name).where(App.id == app_id)) or app_id
    add_event(
        session, actor=actor, correlation_id=correlation_id, action=action, outcome=outcome,
        app_id=app_id, targets={"app": name}, message=message.replace("{name}", name),
        details=details,
    )


@dataclass(frozen=True)
class State:
    kind: str  # throttle | quarantine
    since: datetime
    until: datetime  # throttle: its end; quarantine: the next probe
    reason: str
    probes: int


def state_of(session: Session, app_id: str) -> State | None:
    row = session.get(AppPause, app_id)
    if row is None:
        return None
    return State(row.kind, row.since, row.until, row.reason, row.probes)
