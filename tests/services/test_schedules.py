"""Scheduled full syncs (services.schedules): due after the app's interval, once however late,
never for disabled or quarantined apps, and started by one scheduler of the cluster at a time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings
from provisiond.runtime import Runtime
from provisiond.services import apps, schedules
from provisiond.services.context import SYSTEM
from provisiond.store.tables import AppPause, Event, Run, utcnow
from tests.engine.test_queue import make_app, make_users


def full_runs(rt: Runtime, app_id: str) -> list[Run]:
    with rt.db.session() as session:
        return list(session.scalars(select(Run).where(Run.app_id == app_id, Run.kind == "full")))


def every(rt: Runtime, app_id: str, hours: float | None, *, enabled: bool = True) -> None:
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        apps.set_provisioning(session, SYSTEM, app, ProvisioningSettings(
            enabled=enabled, full_sync_every_hours=hours))


def backdate(rt: Runtime, app_id: str, by: timedelta) -> None:
    """As if the app, and its runs, were that much older (the scheduler stopped meanwhile)."""
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        app.created_at -= by
        for run in session.scalars(select(Run).where(Run.app_id == app_id)):
            run.started_at -= by


def test_a_missed_schedule_runs_once_and_resets_the_clock(runtime: Runtime) -> None:
    app_id = make_app(runtime)
    make_users(runtime, 2)
    every(runtime, app_id, 24)
    assert schedules.run_due(runtime.db) == []  # made just now: the first is due in a day
    backdate(runtime, app_id, timedelta(days=30))
    assert schedules.run_due(runtime.db) == ["queue-app"]
    assert schedules.run_due(runtime.db) == []  # once, not thirty times
    (run,) = full_runs(runtime, app_id)
    assert run.actor == "scheduler" and run.status == "succeeded"
    with runtime.db.session() as session:
        events = list(session.scalars(select(Event).where(Event.action == "app.sync.schedule")))
    assert len(events) == 1 and "every 24 h" in events[0].message
    backdate(runtime, app_id, timedelta(hours=23))
    assert schedules.run_due(runtime.db) == []  # a day after the last run began, not before
    backdate(runtime, app_id, timedelta(hours=1, seconds=1))
    assert schedules.run_due(runtime.db) == ["queue-app"]
    assert len(full_runs(runtime, app_id)) == 2


def test_apps_off_disabled_quarantined_or_mid_run_are_left_alone(runtime: Runtime) -> None:
    app_id = make_app(runtime)
    later = utcnow() + timedelta(days=2)
    every(runtime, app_id, None)
    assert schedules.run_due(runtime.db, later) == []  # on demand only
    every(runtime, app_id, 1, enabled=False)
    assert schedules.run_due(runtime.db, later) == []  # provisioning disabled
    every(runtime, app_id, 1)
    with runtime.db.session() as session:
        session.add(AppPause(app_id=app_id, kind="quarantine", until=later, reason="down"))
    assert schedules.run_due(runtime.db, later) == []  # its tasks would only wait
    with runtime.db.session() as session:
        pause = session.get(AppPause, app_id)
        assert pause is not None
        session.delete(pause)
    assert schedules.run_due(runtime.db, later) == ["queue-app"]
    with runtime.db.session() as session:  # still running (a big app): not started again
        for run in session.scalars(select(Run).where(Run.app_id == app_id)):
            run.status = "running"
    assert schedules.run_due(runtime.db, later + timedelta(days=1)) == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_one_scheduler_of_the_cluster_ticks_at_a_time(runtime: Runtime) -> None:
    app_id = make_app(runtime)
    every(runtime, app_id, 1)
    later = utcnow() + timedelta(hours=2)
    with runtime.db.session() as other:  # another process's scheduler, mid-tick
        other.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": schedules.SCHEDULE_LOCK})
        assert schedules.run_due(runtime.db, later) == []
    assert schedules.run_due(runtime.db, later) == ["queue-app"]
    assert len(full_runs(runtime, app_id)) == 1


def test_an_app_whose_run_cannot_start_is_logged_and_leaves_the_others_theirs(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_app(runtime)
    with runtime.db.session() as session:  # a second app, due as well
        second = apps.create_app(
            session, SYSTEM, runtime.vault, name="zz-app", label="Second",
            connector=ScimConnectorSettings(
                base_url="http://127.0.0.1:9/v2", auth={"type": "bearer", "token": "t"}
            ),
            provisioning=ProvisioningSettings(),
        ).id
    for app_id in (first, second):
        every(runtime, app_id, 1)
        backdate(runtime, app_id, timedelta(hours=2))
    real = schedules.runs.start_full_sync

    def broken(session: Any, actor: Any, app: Any, **kw: Any) -> Any:
        if app.id == first:
            raise RuntimeError("the database refused the run")
        return real(session, actor, app, **kw)

    monkeypatch.setattr(schedules.runs, "start_full_sync", broken)
    assert schedules.run_due(runtime.db) == ["zz-app"]
    assert full_runs(runtime, first) == [] and len(full_runs(runtime, second)) == 1
    with runtime.db.session() as session:
        failed = list(session.scalars(select(Event).where(
            Event.action == "app.sync.schedule", Event.outcome == "failure")))
    assert len(failed) == 1 and "the database refused the run" in failed[0].message
