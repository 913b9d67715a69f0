"""An app that says "slow down" (HTTP 429 with Retry-After) is paused for the whole cluster.

One task's 429 is the app's answer to all of them: sending the next task's request a
millisecond later only earns another 429 and burns that task's attempts. So the app is
paused: a row in ``app_pauses`` that every worker's claim leaves out (engine.queue) and that
each worker also reads on its heartbeat, so tasks it already holds wait too (engine.worker).
The pause and its end are events in the activity log (``app.provisioning.pause`` /
``.resume``); a later 429 during a pause only extends it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from provisiond.store.events import add_event
from provisiond.store.tables import App, AppPause, utcnow

# A target asking for more than this is taken at its word only this far: tasks are retried and
# the pause renewed by the next 429, so a typo in a Retry-After cannot stop an app for a week.
MAX_PAUSE = timedelta(hours=1)


def pause(
    session: Session, app_id: str, seconds: float, reason: str, *, correlation_id: str,
    now: datetime | None = None,
) -> datetime:
    """Pause the app until ``now + seconds`` (or later, if it already is); when it is."""
    now = now or utcnow()
    until = now + min(timedelta(seconds=max(0.0, seconds)), MAX_PAUSE)
    row = session.get(AppPause, app_id, with_for_update=True)
    if row is not None and (row.until > now or row.kind == "quarantine"):
        if row.kind == "throttle":
            row.until = max(row.until, until)
        return row.until  # a quarantine holds it already, until a probe passes
    if row is None:
        row = AppPause(app_id=app_id, kind="throttle", since=now, until=until, reason=reason,
                       probes=0)
        session.add(row)
    else:
        row.since, row.until, row.reason = now, until, reason
    name = session.scalar(select(App.name).where(App.id == app_id)) or app_id
    add_event(
        session, actor="provisiond", correlation_id=correlation_id,
        action="app.provisioning.pause", outcome="retry", app_id=app_id,
        targets={"app": name},
        message=f"{name} asked to slow down ({reason}): paused for {seconds:.1f} s",
        details={"until": until.isoformat(), "reason": reason, "seconds": round(seconds, 3)},
    )
    return until


def paused(session: Session, now: datetime | None = None) -> dict[str, datetime]:
    """The apps paused or quarantined now, and until when a task held for them waits (a
    quarantined app's next probe: resuming it makes its tasks due at once)."""
    now = now or utcnow()
    rows = session.execute(
        select(AppPause.app_id, AppPause.until, AppPause.kind).where(
            (AppPause.until > now) | (AppPause.kind == "quarantine")
        )
    )
    return {app_id: max(until, now + timedelta(seconds=1)) for app_id, until, _ in rows}


def resume_expired(session: Session, correlation_id: str, now: datetime | None = None) -> int:
    """End the pauses that are over, each with its event, exactly once in the cluster (the
    row is deleted by whichever worker gets to it first)."""
    now = now or utcnow()
    ended = session.execute(
        delete(AppPause)
        .where(AppPause.kind == "throttle", AppPause.until <= now)
        .returning(AppPause.app_id, AppPause.since)
    ).all()
    for app_id, since in ended:
        name = session.scalar(select(App.name).where(App.id == app_id)) or app_id
        add_event(
            session, actor="provisiond", correlation_id=correlation_id,
            action="app.provisioning.resume", app_id=app_id, targets={"app": name},
            message=f"{name}: the pause is over, provisioning resumes",
            details={"paused_at": since.isoformat()},
        )
    return len(ended)
