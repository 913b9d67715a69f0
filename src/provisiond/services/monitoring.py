"""The figures behind /metrics and the console dashboard, read from the database when asked.

Nothing is counted in memory: every figure comes from the tables (tasks, accounts, runs) or is
derived from the activity log, so any number of API and worker processes agree, and a restart
loses nothing. Queries are grouped aggregates; the log ones scan the ``app.user.*`` events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from provisiond.engine import liveness
from provisiond.store.tables import Account, App, AppPause, Event, Run, Task, utcnow

DEPROVISION = "app.user.deprovision"
LATENCY_BUCKETS_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
RUN_BUCKETS_SECONDS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass(frozen=True)
class Histogram:
    """Cumulative counts per upper bound (``+Inf`` last), as Prometheus exposes them."""

    buckets: list[tuple[float, int]]
    count: int
    total: float


def app_names(session: Session) -> dict[str, str]:
    return {app_id: name for app_id, name in session.execute(select(App.id, App.name))}


def operations(session: Session) -> list[tuple[str | None, str, str, int]]:
    """(app id, operation, outcome, count) of every provisioning attempt in the log."""
    rows = session.execute(
        select(Event.app_id, Event.action, Event.outcome, func.count())
        .where(Event.action.startswith("app.user."))
        .group_by(Event.app_id, Event.action, Event.outcome)
    )
    return [(app, action.removeprefix("app.user."), outcome, n) for app, action, outcome, n in rows]


def retries(session: Session) -> dict[str | None, int]:
    """Attempts that failed and were scheduled again, per app."""
    rows = session.execute(
        select(Event.app_id, func.count()).where(Event.outcome == "retry").group_by(Event.app_id)
    )
    return {app_id: count for app_id, count in rows}


def app_states(session: Session) -> dict[str, str]:
    """App id -> ``paused`` (a 429) or ``quarantined``; apps not listed are flowing."""
    now = utcnow()
    return {
        app_id: "quarantined" if kind == "quarantine" else "paused"
        for app_id, kind, until in session.execute(
            select(AppPause.app_id, AppPause.kind, AppPause.until)
        )
        if kind == "quarantine" or until > now
    }


def quarantines(session: Session) -> dict[str | None, int]:
    """How many times each app was quarantined (from the activity log)."""
    rows = session.execute(
        select(Event.app_id, func.count())
        .where(Event.action == "app.provisioning.quarantine")
        .group_by(Event.app_id)
    )
    return {app_id: count for app_id, count in rows}


def queue_depth(session: Session) -> dict[tuple[str, str], int]:
    """(app id, status) -> number of tasks."""
    rows = session.execute(
        select(Task.app_id, Task.status, func.count()).group_by(Task.app_id, Task.status)
    )
    return {(app, status): n for app, status, n in rows}


def oldest_queued_age_seconds(
    session: Session, now: datetime | None = None, app_ids: frozenset[str] | None = None
) -> float:
    """Among every app's tasks, or only ``app_ids``'."""
    statement = select(func.min(Task.created_at)).where(Task.status == "queued")
    if app_ids is not None:
        statement = statement.where(Task.app_id.in_(sorted(app_ids)))
    oldest = session.scalar(statement)
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:  # func.min bypasses the column type on SQLite
        oldest = datetime.fromisoformat(str(oldest)).replace(tzinfo=(now or utcnow()).tzinfo)
    return max(0.0, ((now or utcnow()) - oldest).total_seconds())


def accounts(session: Session) -> dict[tuple[str, str], int]:
    """(app id, account status) -> number of accounts."""
    rows = session.execute(
        select(Account.app_id, Account.status, func.count()).group_by(
            Account.app_id, Account.status
        )
    )
    return {(app, status): n for app, status, n in rows}


def deprovision_latency(session: Session) -> dict[str | None, Histogram]:
    """Time from the change to the app's account deprovisioned (successful ones), per app."""
    latency = Event.details["latency_ms"].as_float()
    bounds = [round(bound * 1000) for bound in LATENCY_BUCKETS_SECONDS]
    columns = [func.sum(case((latency <= bound, 1), else_=0)) for bound in bounds]
    rows = session.execute(
        select(Event.app_id, func.count(), func.sum(latency), *columns)
        .where(Event.action == DEPROVISION, Event.outcome == "success")
        .group_by(Event.app_id)
    ).all()
    result: dict[str | None, Histogram] = {}
    for app_id, count, total, *cumulative in rows:
        buckets = [
            (bound, int(n or 0))
            for bound, n in zip(LATENCY_BUCKETS_SECONDS, cumulative, strict=True)
        ]
        buckets.append((float("inf"), int(count)))
        result[app_id] = Histogram(buckets, int(count), float(total or 0) / 1000)
    return result


def run_durations(session: Session) -> dict[tuple[str, str], Histogram]:
    """Finished runs' durations, per (app id, kind)."""
    durations: dict[tuple[str, str], list[float]] = defaultdict(list)
    for app_id, kind, started, finished in session.execute(
        select(Run.app_id, Run.kind, Run.started_at, Run.finished_at).where(
            Run.finished_at.is_not(None)
        )
    ):
        assert finished is not None
        durations[(app_id, kind)].append(max(0.0, (finished - started).total_seconds()))
    return {key: histogram(values, RUN_BUCKETS_SECONDS) for key, values in durations.items()}


def histogram(values: Sequence[float], bounds: Sequence[float]) -> Histogram:
    buckets = [(bound, sum(1 for v in values if v <= bound)) for bound in bounds]
    buckets.append((float("inf"), len(values)))
    return Histogram(buckets, len(values), float(sum(values)))


@dataclass(frozen=True)
class LatencyPoint:
    time: datetime
    seconds: float


def recent_deprovisions(session: Session, app_id: str, limit: int = 100) -> list[LatencyPoint]:
    """The latest successful deprovisionings of an app, oldest first (the dashboard's chart)."""
    latency = Event.details["latency_ms"].as_float()
    rows = session.execute(
        select(Event.time, latency)
        .where(Event.app_id == app_id, Event.action == DEPROVISION, Event.outcome == "success")
        .order_by(Event.id.desc())
        .limit(limit)
    ).all()
    return [LatencyPoint(time, float(ms or 0) / 1000) for time, ms in reversed(rows)]


@dataclass(frozen=True)
class AppFigures:
    """One app's line on the dashboard."""

    id: str
    name: str
    label: str
    enabled: bool
    provisioned: int  # active accounts
    deactivated: int
    pending: int  # queued or running tasks
    failed: int  # dead tasks
    runs: list[Run]
    latency: list[LatencyPoint]


def dashboard(session: Session, app_ids: Sequence[str] | None = None) -> list[AppFigures]:
    """Figures for each app (or the given ones), from the same queries as /metrics."""
    held = accounts(session)
    depth = queue_depth(session)
    figures = []
    for app in session.scalars(select(App).order_by(App.name)):
        if app_ids is not None and app.id not in app_ids:
            continue
        runs = session.scalars(
            select(Run).where(Run.app_id == app.id).order_by(Run.started_at.desc()).limit(5)
        ).all()
        figures.append(
            AppFigures(
                id=app.id,
                name=app.name,
                label=app.label,
                enabled=bool(app.provisioning.get("enabled")),
                provisioned=held.get((app.id, "active"), 0),
                deactivated=held.get((app.id, "deactivated"), 0),
                pending=depth.get((app.id, "queued"), 0) + depth.get((app.id, "running"), 0),
                failed=depth.get((app.id, "dead"), 0),
                runs=list(runs),
                latency=recent_deprovisions(session, app.id),
            )
        )
    return figures


def workers(session: Session, timeout_seconds: float) -> list[liveness.WorkerState]:
    """The worker processes the database knows: running, draining or lost (silent longer
    than the worker timeout, their tasks given back to the queue)."""
    return liveness.workers(session, timedelta(seconds=timeout_seconds))
