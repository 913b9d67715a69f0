from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import ValidationError

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.schemas import AppCreate, AppOut, AppPatch, Page, ProvisioningOut, RunOut
from provisiond.authz import Action, may, shown_test, shown_test_failure
from provisiond.domain.apps import ProvisioningSettings
from provisiond.errors import Conflict, Invalid
from provisiond.services import apps, connection

router = APIRouter(prefix="/apps", tags=["apps"])


@router.get("", dependencies=[requires(Action.APP_READ)])
def list_apps(rt: RuntimeDep, actor: AdminDep) -> Page[AppOut]:
    with rt.db.session() as session:
        rows = [app for app in apps.list_apps(session) if may(actor, Action.APP_READ, app.id)]
        return Page[AppOut](items=[AppOut.of(app, actor) for app in rows])


@router.post("", status_code=201, dependencies=[requires(Action.APP_CREATE)])
def create_app(body: AppCreate, rt: RuntimeDep, actor: AdminDep, response: Response) -> AppOut:
    with rt.db.session() as session:
        app = apps.create_app(
            session,
            actor,
            rt.vault,
            name=body.name,
            label=body.label,
            connector=body.connector,
            provisioning=body.provisioning,
        )
        out = AppOut.of(app, actor)
    response.headers["Location"] = f"/api/v1/apps/{out.id}"
    return out


@router.get("/{app_id}", dependencies=[requires(Action.APP_READ)])
def get_app(app_id: str, rt: RuntimeDep, actor: AdminDep) -> AppOut:
    with rt.db.session() as session:
        return AppOut.of(apps.get_app(session, app_id), actor)


@router.patch("/{app_id}", dependencies=[requires(Action.APP_MANAGE)])
def update_app(app_id: str, body: AppPatch, rt: RuntimeDep, actor: AdminDep) -> AppOut:
    try:
        with rt.db.session() as session:
            return AppOut.of(
                apps.update_app(
                    session, actor, rt.vault, app_id, label=body.label, connector=body.connector
                ),
                actor,
            )
    except ValidationError as exc:
        # The connector is checked once merged with the stored one: a 422 naming the field,
        # as a schema violation in the body would be, not a 500.
        first = exc.errors()[0]
        field = ".".join(["connector", *(str(part) for part in first["loc"])])
        raise Invalid(f"{field}: {first['msg']}", field=field) from None


@router.delete("/{app_id}", status_code=204, dependencies=[requires(Action.APP_DELETE)])
def delete_app(app_id: str, rt: RuntimeDep, actor: AdminDep) -> None:
    with rt.db.session() as session:
        apps.delete_app(session, actor, app_id)


class ProvisioningPut(ProvisioningOut):
    initial_run: RunOut | None = None


@router.get("/{app_id}/provisioning", dependencies=[requires(Action.APP_READ)])
def get_provisioning(app_id: str, rt: RuntimeDep, actor: AdminDep) -> ProvisioningOut:
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        return ProvisioningOut(
            **apps.provisioning_of(app).model_dump(), last_test=shown_test(actor, app.last_test)
        )


@router.put("/{app_id}/provisioning", dependencies=[requires(Action.APP_MANAGE)])
async def put_provisioning(
    app_id: str, body: ProvisioningOut, rt: RuntimeDep, actor: AdminDep
) -> ProvisioningPut:
    """Replace the settings (``last_test`` is read-only and ignored, so a GET can be PUT back).
    Turning ``enabled`` on runs a connection test first (409 if it fails, with the reason) and
    then a full sync, returned as ``initial_run``."""
    wanted = ProvisioningSettings.model_validate(body.model_dump(exclude={"last_test"}))
    try:
        settings, last_test, run = await connection.put_provisioning(rt, actor, app_id, wanted)
    except Conflict as exc:
        raise shown_test_failure(actor, exc) from None
    return ProvisioningPut(
        **settings.model_dump(),
        last_test=shown_test(actor, last_test),
        initial_run=RunOut.of(run) if run else None,
    )


@router.post("/{app_id}/provisioning/test", dependencies=[requires(Action.APP_MANAGE)])
async def test_provisioning(app_id: str, rt: RuntimeDep, actor: AdminDep) -> dict[str, Any]:
    """A real round trip: ServiceProviderConfig discovery, then an authenticated GET /Users."""
    report = shown_test(actor, await connection.test_app(rt, actor, app_id))
    assert report is not None
    return report
