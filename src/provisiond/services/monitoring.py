"""The figures behind /metrics and the console dashboard, read from the database when asked.

Nothing is counted in memory: every figure comes from the tables (tasks, accounts, runs) or from
the activity log's rollups (store.rollups, kept in the transactions that write the events), so
any number of API and worker processes agree, and a restart loses nothing. No figure scans the
log: the dashboard's latency chart reads an app's last deprovisionings off one index.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisiond.engine import liveness
from provisiond.store.rollups import ALL_TIME, DEPROVISION, LATENCY_BUCKETS_SECONDS
from provisiond.store.tables import Account, App, AppPause, Event, EventRollup, Run, Task, utcnow

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
        select(EventRollup.app_id, EventRollup.action, EventRollup.outcome,
               func.sum(EventRollup.count))
        .where(EventRollup.day == ALL_TIME, EventRollup.action.startswith("app.user."))
        .group_by(EventRollup.app_id, EventRollup.action, EventRollup.outcome)
    )
    return [
        (app or None, action.removeprefix("app.user."), outcome, int(n))
        for app, action, outcome, n in rows
    ]


def retries(session: Session) -> dict[str | None, int]:
    """Attempts that failed and were scheduled again, per app."""
    rows = session.execute(
        select(EventRollup.app_id, func.sum(EventRollup.count))
        .where(EventRollup.day == ALL_TIME, EventRollup.outcome == "retry")
        .group_by(EventRollup.app_id)
    )
    return {app_id or None: int(count) for app_id, count in rows}


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
    """How many times each app was quarantined (from the activity log's rollups)."""
    rows = session.execute(
        select(EventRollup.app_id, func.sum(EventRollup.count))
        .where(EventRollup.day == ALL_TIME, EventRollup.action == "app.provisioning.quarantine")
        .group_by(EventRollup.app_id)
    )
    return {app_id or None: int(count) for app_id, count in rows}


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
    per_app: dict[str | None, dict[int, tuple[int, float]]] = defaultdict(dict)
    for app, bucket, count, total in session.execute(
        select(EventRollup.app_id, EventRollup.bucket, func.sum(EventRollup.count),
               func.sum(EventRollup.latency_ms))
        .where(
            EventRollup.day == ALL_TIME,
            EventRollup.action == DEPROVISION,
            EventRollup.outcome == "success",
        )
        .group_by(EventRollup.app_id, EventRollup.bucket)
    ):
        per_app[app or None][int(bucket)] = (int(count), float(total or 0))
    result: dict[str | None, Histogram] = {}
    for app_id, counted in per_app.items():
        buckets, running = [], 0
        for index, bound in enumerate(LATENCY_BUCKETS_SECONDS):
            running += counted.get(index, (0, 0.0))[0]
            buckets.append((bound, running))
        count = sum(n for n, _ in counted.values())
        buckets.append((float("inf"), count))
        total_ms = sum(ms for _, ms in counted.values())
        result[app_id] = Histogram(buckets, count, total_ms / 1000)
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
