from __future__ import annotations

from fastapi import APIRouter, Query
from sqlalchemy import select

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.problems import declare
from provisiond.api.schemas import AccountOut, Page, RunOut
from provisiond.authz import Action
from provisiond.services import apps, runs
from provisiond.store.tables import Account, User

router = APIRouter(tags=["sync"])


@router.post(
    "/apps/{app_id}/sync",
    status_code=202,
    dependencies=[requires(Action.APP_MANAGE)],
    responses=declare(404, 409),
)
def sync(app_id: str, rt: RuntimeDep, actor: AdminDep) -> RunOut:
    """Start a full reconcile: every assigned user and every account, read back from the app."""
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        return RunOut.of(runs.start_full_sync(session, actor, app))


@router.get("/apps/{app_id}/runs", dependencies=[requires(Action.APP_READ)], responses=declare(404))
def list_runs(
    app_id: str, rt: RuntimeDep, _: AdminDep, limit: int = Query(default=50, ge=1, le=500)
) -> Page[RunOut]:
    """The app's runs (full syncs, reconciles), newest first, with their counts."""
    with rt.db.session() as session:
        return Page[RunOut](
            items=[RunOut.of(run) for run in runs.list_runs(session, app_id, limit)]
        )


@router.get("/runs/{run_id}", dependencies=[requires(Action.APP_READ)], responses=declare(404))
def get_run(run_id: str, rt: RuntimeDep, _: AdminDep) -> RunOut:
    """One run with live counts (``done`` of ``total``); ``held`` says why one waits."""
    with rt.db.session() as session:
        return RunOut.of(runs.get_run(session, run_id))


@router.get(
    "/apps/{app_id}/accounts", dependencies=[requires(Action.APP_READ)], responses=declare(404)
)
def list_accounts(
    app_id: str,
    rt: RuntimeDep,
    _: AdminDep,
    status: str | None = Query(default=None, pattern="^(active|deactivated|deleted)$"),
) -> Page[AccountOut]:
    """The accounts provisiond holds in the app, by login, with what it last applied."""
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        statement = (
            select(Account, User.login)
            .outerjoin(User, User.id == Account.user_id)
            .where(Account.app_id == app.id)
            .order_by(User.login_key)
        )
        if status:
            statement = statement.where(Account.status == status)
        items = [
            AccountOut(
                id=account.id,
                app_id=account.app_id,
                user_id=account.user_id,
                login=login,
                remote_id=account.remote_id,
                status=account.status,
                attributes=account.applied,
                last_synced_at=account.last_synced_at,
                last_error=account.last_error,
            )
            for account, login in session.execute(statement)
        ]
        return Page[AccountOut](items=items)
