"""The app's side: imports, the accounts they found, matches to confirm, orphans."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.problems import declare
from provisiond.api.schemas import Page, RunOut, Strict, example
from provisiond.authz import Action
from provisiond.services import app_accounts, apps
from provisiond.store import tables
from provisiond.store.tables import utcnow

router = APIRouter(tags=["import"], responses=declare(404))

MatchFilter = Literal["linked", "pending", "conflict", "unmatched", "rejected"]


class ImportOut(BaseModel):
    id: str
    app_id: str
    status: str  # queued | running | completed | failed
    actor: str
    pages: int
    accounts: int
    groups: int
    repeated: int
    claimed_total: int | None
    attempts: int
    counts: dict[str, int]
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, run: tables.AppImport) -> ImportOut:
        return cls(
            id=run.id,
            app_id=run.app_id,
            status=run.status,
            actor=run.actor,
            pages=run.pages,
            accounts=run.accounts,
            groups=run.groups,
            repeated=run.repeated,
            claimed_total=run.claimed_total,
            attempts=run.attempts,
            counts=run.counts or {},
            error=run.error,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
        )


class AppAccountOut(BaseModel):
    id: str
    remote_id: str
    user_name: str | None
    external_id: str | None
    emails: list[str]
    active: bool
    attributes: dict[str, Any]
    read_at: datetime
    first_seen_at: datetime
    gone_at: datetime | None
    match: str
    user_id: str | None
    rule: str | None
    candidates: list[str]
    ignored_at: datetime | None
    note: str | None

    @classmethod
    def of(cls, row: tables.AppAccount) -> AppAccountOut:
        return cls(
            id=row.id,
            remote_id=row.remote_id,
            user_name=row.user_name,
            external_id=row.external_id,
            emails=list(row.emails or []),
            active=row.active,
            attributes=row.attributes,
            read_at=row.read_at,
            first_seen_at=row.first_seen_at,
            gone_at=row.gone_at,
            match=row.match,
            user_id=row.user_id,
            rule=row.rule,
            candidates=list(row.candidates or []),
            ignored_at=row.ignored_at,
            note=row.note,
        )


class OrphanOut(BaseModel):
    account: AppAccountOut
    reason: str = Field(description="unlinked, unassigned or inactive")
    since: datetime
    days: int
    user_id: str | None
    login: str | None
    user_status: str | None


class AccountIds(Strict):
    model_config = example({"ids": ["0b9d1c52-3f0e-4c1e-9d35-0d6f0f2b8a41"]})
    ids: list[str] = Field(min_length=1, max_length=10_000)


class Rejection(Strict):
    model_config = example({"ids": ["0b9d1c52-3f0e-4c1e-9d35-0d6f0f2b8a41"], "note": "not her"})
    ids: list[str] = Field(min_length=1, max_length=10_000)
    note: str | None = Field(default=None, max_length=1000)


class Ignoring(Strict):
    model_config = example(
        {"ids": ["0b9d1c52-3f0e-4c1e-9d35-0d6f0f2b8a41"], "note": "the app's service account"}
    )
    ids: list[str] = Field(min_length=1, max_length=10_000)
    note: str = Field(min_length=1, max_length=1000)


class Linking(Strict):
    model_config = example(
        {
            "id": "0b9d1c52-3f0e-4c1e-9d35-0d6f0f2b8a41",
            "user_id": "5f1c3e4a-8d2b-4d6e-9a1f-2c3b4d5e6f70",
        }
    )
    id: str
    user_id: str


class Deprovisioning(Strict):
    model_config = example(
        {"ids": ["0b9d1c52-3f0e-4c1e-9d35-0d6f0f2b8a41"], "action": "deactivate"}
    )
    ids: list[str] = Field(min_length=1, max_length=10_000)
    action: Literal["deactivate", "delete"]


class Decided(BaseModel):
    count: int


@router.post(
    "/apps/{app_id}/import",
    status_code=202,
    dependencies=[requires(Action.APP_MANAGE)],
    responses=declare(409),
)
def start_import(app_id: str, rt: RuntimeDep, actor: AdminDep) -> ImportOut:
    """Read every account (and pushed group) the app holds, then match them to directory users.

    Answers at once with the import; its progress is ``GET /apps/{app_id}/imports/{id}``.
    409 while another import of the app is under way."""
    with rt.db.session() as session:
        return ImportOut.of(
            app_accounts.start_import(session, actor, apps.get_app(session, app_id))
        )


@router.get("/apps/{app_id}/imports", dependencies=[requires(Action.APP_READ)])
def list_imports(
    app_id: str, rt: RuntimeDep, _: AdminDep, limit: int = Query(default=20, ge=1, le=200)
) -> Page[ImportOut]:
    """The app's imports, newest first."""
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        return Page[ImportOut](
            items=[ImportOut.of(r) for r in app_accounts.list_imports(session, app.id, limit)]
        )


@router.get("/apps/{app_id}/imports/{import_id}", dependencies=[requires(Action.APP_READ)])
def get_import(app_id: str, import_id: str, rt: RuntimeDep, _: AdminDep) -> ImportOut:
    """One import: pages and accounts read so far, and once completed what matching did."""
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        run = app_accounts.get_import(session, import_id)
        if run.app_id != app.id:
            app_accounts.get_import(session, "")  # the same 404 as an unknown id
        return ImportOut.of(run)


@router.get("/apps/{app_id}/app-accounts", dependencies=[requires(Action.APP_READ)])
def list_app_accounts(
    app_id: str,
    rt: RuntimeDep,
    _: AdminDep,
    match: MatchFilter | None = None,
    after: str | None = Query(default=None, max_length=256),
    limit: int = Query(default=500, ge=1, le=5000),
) -> Page[AppAccountOut]:
    """The accounts the app holds, as the last import read them, by remote id; ``match``
    filters (``pending``: matches waiting for an admin), ``next_cursor`` pages on."""
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        rows = app_accounts.list_app_accounts(
            session, app.id, match=match, limit=limit, after=after
        )
        cursor = rows[-1].remote_id if len(rows) == limit else None
        return Page[AppAccountOut](items=[AppAccountOut.of(r) for r in rows], next_cursor=cursor)


@router.post(
    "/apps/{app_id}/matches/confirm",
    dependencies=[requires(Action.APP_MANAGE)],
    responses=declare(409),
)
def confirm_matches(app_id: str, body: AccountIds, rt: RuntimeDep, actor: AdminDep) -> Decided:
    """Link pending matches (all or none). Nothing changes in the app before the next
    reconcile, which plans any update as usual (a preview shows it first)."""
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        return Decided(count=app_accounts.confirm(session, actor, app, body.ids))


@router.post(
    "/apps/{app_id}/matches/reject",
    dependencies=[requires(Action.APP_MANAGE)],
    responses=declare(409),
)
def reject_matches(app_id: str, body: Rejection, rt: RuntimeDep, actor: AdminDep) -> Decided:
    """Reject pending matches: the accounts stay unlinked and are not matched again."""
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        return Decided(count=app_accounts.reject(session, actor, app, body.ids, body.note))


@router.get("/apps/{app_id}/orphans", dependencies=[requires(Action.APP_READ)])
def list_orphans(
    app_id: str,
    rt: RuntimeDep,
    _: AdminDep,
    include_ignored: bool = False,
    limit: int = Query(default=1000, ge=1, le=10_000),
) -> Page[OrphanOut]:
    """App accounts linked to no directory user (``unlinked``), or to a user no longer
    assigned (``unassigned``) or no longer active (``inactive``), oldest first, with since
    when."""
    now = utcnow()
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        found = app_accounts.orphans(session, app.id, include_ignored=include_ignored, limit=limit)
        return Page[OrphanOut](
            items=[
                OrphanOut(
                    account=AppAccountOut.of(o.account),
                    reason=o.reason,
                    since=o.since,
                    days=(now - o.since).days,
                    user_id=o.user_id,
                    login=o.login,
                    user_status=o.user_status,
                )
                for o in found
            ]
        )


@router.post("/apps/{app_id}/orphans/ignore", dependencies=[requires(Action.APP_MANAGE)])
def ignore_orphans(app_id: str, body: Ignoring, rt: RuntimeDep, actor: AdminDep) -> Decided:
    """Leave these orphans as they are, saying why; they no longer show as orphans."""
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        return Decided(count=app_accounts.ignore(session, actor, app, body.ids, body.note))


@router.post(
    "/apps/{app_id}/orphans/link",
    dependencies=[requires(Action.APP_MANAGE)],
    responses=declare(409),
)
def link_orphan(app_id: str, body: Linking, rt: RuntimeDep, actor: AdminDep) -> AppAccountOut:
    """Link an app account to a directory user; 409 if either is linked elsewhere already."""
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        return AppAccountOut.of(app_accounts.link(session, actor, app, body.id, body.user_id))


@router.post(
    "/apps/{app_id}/orphans/deprovision",
    status_code=202,
    dependencies=[requires(Action.APP_MANAGE)],
    responses=declare(409),
)
def deprovision_orphans(
    app_id: str, body: Deprovisioning, rt: RuntimeDep, actor: AdminDep
) -> RunOut:
    """Deactivate or delete orphan accounts, as a run: over the policy's safety limits the
    run is held until approved (``POST /runs/{id}/approve``), like any deprovisioning."""
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        return RunOut.of(app_accounts.deprovision(session, actor, app, body.ids, body.action))


class DriftOut(BaseModel):
    user_id: str
    login: str | None
    remote_id: str | None
    drift: list[dict[str, Any]] = Field(
        description="attribute, applied (last sent), found (in the app), desired (now), modified"
    )
    last_synced_at: datetime | None


@router.get("/apps/{app_id}/drift", dependencies=[requires(Action.APP_READ)])
def list_drift(
    app_id: str, rt: RuntimeDep, _: AdminDep, limit: int = Query(default=1000, ge=1, le=10_000)
) -> Page[DriftOut]:
    """Accounts changed in the app behind provisiond's back, as the last full reconcile found
    them: per attribute what was applied, what the app holds and what the policy maps now.
    Corrected or only reported, as the app's ``imports.drift`` setting says."""
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        return Page[DriftOut](
            items=[
                DriftOut(
                    user_id=d.account.user_id,
                    login=d.login,
                    remote_id=d.account.remote_id,
                    drift=d.account.drift or [],
                    last_synced_at=d.account.last_synced_at,
                )
                for d in app_accounts.drifted(session, app.id, limit=limit)
            ]
        )
