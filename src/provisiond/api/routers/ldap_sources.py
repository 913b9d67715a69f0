"""Stored LDAP sources (``/ldap-sources``): an import's settings kept, the bind password sealed,
run on demand (``POST /ldap-sources/{id}/run``) or on a schedule, incremental between full runs
(services.ldap_sources). One-off imports with the settings in the request: api/routers/ldap_imports.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.problems import declare
from provisiond.api.routers.ldap_imports import IMPORT_EXAMPLE, SOURCE_EXAMPLE, ImportOut
from provisiond.api.schemas import example
from provisiond.authz import Action
from provisiond.domain.ldap_import import LdapSource
from provisiond.services import ldap_sources
from provisiond.services.ldap_sources import SourceSchedule

router = APIRouter(prefix="/ldap-sources", tags=["imports"])
WRITE = [requires(Action.DIRECTORY_WRITE)]


class SourceIn(SourceSchedule):
    # The source carries the bind password: never echo the input in a ValidationError's text.
    model_config = example({"source": SOURCE_EXAMPLE, "every_hours": 1, "full_every": 6}, secret=True)
    source: LdapSource


SOURCE_OUT_EXAMPLE: dict[str, Any] = {
        "id": "7f0c1f2e-8d4b-4c1a-9a43-2f1d3c4b5a69", "name": "corp",
        "source": {k: v for k, v in SOURCE_EXAMPLE.items() if k != "bind_password"},
        "every_hours": 1.0, "full_every": 6, "runs_since_full": 2,
        "last_run_at": "2026-12-01T15:00:00Z", "high_water": "20261201145502Z",
        "created_at": "2026-11-30T09:00:00Z",
}


class SourceOut(BaseModel):
    model_config = example(SOURCE_OUT_EXAMPLE)
    id: str
    name: str
    source: dict[str, Any] = Field(description="The settings, without the bind password.")
    every_hours: float | None
    full_every: int
    runs_since_full: int
    last_run_at: datetime | None
    high_water: str | None = Field(description="The highest modifyTimestamp an applied run read.")
    created_at: datetime


class SourcesOut(BaseModel):
    model_config = example({"items": [SOURCE_OUT_EXAMPLE]})
    items: list[SourceOut]


class RunIn(BaseModel):
    model_config = example({"apply": True, "full": False})
    apply: bool = Field(default=False, description="Apply the plan; false shows it only.")
    full: bool = Field(default=False, description="Read everything, not only what changed.")


class RunOut(ImportOut):
    model_config = example({**IMPORT_EXAMPLE, "full": True})
    full: bool = Field(description="Whether every entry was read (and leavers deactivated).")


@router.post("", status_code=201, dependencies=WRITE, responses=declare(409))
def create_source(body: SourceIn, rt: RuntimeDep, actor: AdminDep) -> SourceOut:
    """Store an LDAP source; with ``every_hours`` the scheduler applies it that often
    (409 if the name is taken). The bind password is sealed and never shown again."""
    with rt.db.session() as session:
        row = ldap_sources.create(
            session, actor, rt.vault, body.source,
            SourceSchedule(every_hours=body.every_hours, full_every=body.full_every),
        )
        return SourceOut.model_validate(ldap_sources.describe(row))


@router.get("", dependencies=WRITE)
def list_sources(rt: RuntimeDep) -> SourcesOut:
    """The stored LDAP sources, by name."""
    with rt.db.session() as session:
        rows = ldap_sources.listing(session)
        return SourcesOut(items=[SourceOut.model_validate(ldap_sources.describe(r)) for r in rows])


@router.get("/{source_id}", dependencies=WRITE, responses=declare(404))
def get_source(source_id: str, rt: RuntimeDep) -> SourceOut:
    """One stored LDAP source, with its schedule and high-water mark."""
    with rt.db.session() as session:
        return SourceOut.model_validate(ldap_sources.describe(ldap_sources.get(session, source_id)))


@router.delete("/{source_id}", status_code=204, dependencies=WRITE, responses=declare(404))
def delete_source(source_id: str, rt: RuntimeDep, actor: AdminDep) -> None:
    """Forget a stored source; the users it imported stay as they are."""
    with rt.db.session() as session:
        ldap_sources.delete(session, actor, source_id)


@router.post("/{source_id}/run", dependencies=WRITE, responses=declare(404, 409, 502))
async def run_source(source_id: str, body: RunIn, rt: RuntimeDep, actor: AdminDep) -> RunOut:
    """Preview, or with ``apply`` make, an import from the stored source: incremental (only
    entries modified since the last applied run) unless ``full``, the source's first run, or
    its every-Nth full run. 409, nothing changed, if any entry cannot be imported."""
    result = await ldap_sources.run(rt, actor, source_id, apply=body.apply, full=body.full)
    return RunOut.model_validate(result)
