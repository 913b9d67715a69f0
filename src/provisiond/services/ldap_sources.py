"""Stored LDAP sources: an import's settings kept (the bind password sealed), run on demand
or on a schedule, incremental between full runs.

A run is ``services.ldap_import`` with the stored settings. When the server gives
``modifyTimestamp``, a run after the first reads only the entries modified since the highest
stamp seen (the filter gains ``(modifyTimestamp>=…)``); such a run cannot see who left the
filter or a group's membership change, so every ``full_every``-th run — and any run asked
``full`` — reads everything. The scheduler (services.schedules) runs those due: a source is
due ``every_hours`` after its last run, and a missed schedule runs once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from provisiond.domain.ldap_import import LdapSource
from provisiond.errors import Conflict, NotFound
from provisiond.runtime import Runtime
from provisiond.services import activity
from provisiond.services.context import Actor
from provisiond.services.ldap_import import import_from_ldap
from provisiond.store.secrets import Vault
from provisiond.store.tables import LdapSourceRow, utcnow

log = logging.getLogger(__name__)


class SourceSchedule(BaseModel):
    # Bounded: a timedelta of 1e300 hours overflows, and the scheduler's tick must not fail.
    every_hours: float | None = Field(
        default=None, gt=0, le=87600,
        description="Run (applying) this long after the last run; null: on demand.",
    )
    full_every: int = Field(
        default=6, ge=1, le=1000,
        description="Every Nth run reads everything (and deactivates who left the filter).",
    )


def describe(row: LdapSourceRow) -> dict[str, Any]:
    """The stored source as shown: never its bind password."""
    return {
        "id": row.id, "name": row.name, "source": row.settings,
        "every_hours": row.every_hours, "full_every": row.full_every,
        "runs_since_full": row.runs_since_full, "last_run_at": row.last_run_at,
        "high_water": row.high_water, "created_at": row.created_at,
    }


def create(session: Session, actor: Actor, vault: Vault, source: LdapSource, schedule: SourceSchedule) -> LdapSourceRow:
    if session.scalar(select(LdapSourceRow.id).where(LdapSourceRow.name == source.name)):
        raise Conflict(f"an LDAP source named {source.name} exists already")
    row = LdapSourceRow(
        name=source.name,
        settings=source.model_dump(mode="json", exclude={"bind_password"}),
        credentials=vault.seal({"bind_password": source.bind_password.get_secret_value()}),
        every_hours=schedule.every_hours, full_every=schedule.full_every, runs_since_full=0,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # created at once by another admin
        raise Conflict(f"an LDAP source named {source.name} exists already") from exc
    activity.record(
        session, actor, "ldap_source.create", f"LDAP source {source.name} stored",
        targets={"source": source.name}, details=schedule.model_dump(),
    )
    return row


def get(session: Session, source_id: str) -> LdapSourceRow:
    row = session.get(LdapSourceRow, source_id)
    if row is None:
        raise NotFound(f"no LDAP source {source_id}")
    return row


def listing(session: Session) -> list[LdapSourceRow]:
    return list(session.scalars(select(LdapSourceRow).order_by(LdapSourceRow.name)))


def delete(session: Session, actor: Actor, source_id: str) -> None:
    row = get(session, source_id)
    session.delete(row)
    activity.record(
        session, actor, "ldap_source.delete", f"LDAP source {row.name} deleted",
        targets={"source": row.name},
    )


def source_of(row: LdapSourceRow, vault: Vault) -> LdapSource:
    return LdapSource.model_validate({**row.settings, **vault.open(row.credentials)})


async def run(
    rt: Runtime, actor: Actor, source_id: str, *, apply: bool, full: bool = False
) -> dict[str, Any]:
    """One run of a stored source. Only an applied run moves the schedule and the high-water
    mark: a preview leaves the next run as it would have been."""
    with rt.db.session() as session:
        row = get(session, source_id)
        source = source_of(row, rt.vault)
        full = full or row.high_water is None or row.runs_since_full + 1 >= row.full_every
        since = None if full else row.high_water
    result = await import_from_ldap(rt, actor, source, apply=apply, since=since)
    if apply:
        with rt.db.session() as session:
            row = get(session, source_id)
            row.last_run_at = utcnow()
            row.runs_since_full = 0 if full else row.runs_since_full + 1
            # A full read's highest stamp is the truth; an incremental one only moves it on.
            if result["high_water"] is not None and (full or result["high_water"] > (row.high_water or "")):
                row.high_water = result["high_water"]
    return {**result, "full": full}


def due(session: Session, now: datetime | None = None) -> list[LdapSourceRow]:
    """The stored sources whose scheduled run is due now."""
    now = now or utcnow()
    return [
        row for row in listing(session)
        if row.every_hours is not None
        and (row.last_run_at or row.created_at) + timedelta(hours=row.every_hours) <= now
    ]


async def run_due(rt: Runtime, ids: list[str]) -> list[str]:
    """Apply the given due sources, one after another, as ``ldap:NAME``; one that fails is
    logged and tried again at its next tick. Returns the names run."""
    ran = []
    for source_id in ids:
        with rt.db.session() as session:
            name = get(session, source_id).name
        actor = Actor(f"ldap:{name}")
        try:
            await run(rt, actor, source_id, apply=True)
        except Exception as exc:  # a directory away, or a plan with errors: recorded, tried later
            log.warning("the scheduled run of LDAP source %s failed: %s", name, exc)
            with rt.db.session() as session:
                get(session, source_id).last_run_at = utcnow()  # a missed run runs once
                activity.record(
                    session, actor, "ldap_source.run", f"scheduled run of LDAP source {name} failed",
                    outcome="failure", targets={"source": name}, details={"error": str(exc)[:500]},
                )
            continue
        ran.append(name)
    return ran
