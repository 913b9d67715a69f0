from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Response
from pydantic import ValidationError

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.problems import declare
from provisiond.api.schemas import (
    AppCreate,
    AppOut,
    AppPatch,
    Page,
    ProvisioningOut,
    ProvisioningStateOut,
    RunOut,
    TaskOut,
)
from provisiond.authz import Action, may, shown_test, shown_test_failure
from provisiond.domain.apps import ProvisioningSettings
from provisiond.errors import Conflict, Invalid, validation_message
from provisiond.services import apps, connection, holds, tasks

router = APIRouter(prefix="/apps", tags=["apps"])


@router.get("", dependencies=[requires(Action.APP_READ)])
def list_apps(rt: RuntimeDep, actor: AdminDep) -> Page[AppOut]:
    """The apps the token may read, with their connector (secrets only as ``secret_set``)."""
    with rt.db.session() as session:
        rows = [app for app in apps.list_apps(session) if may(actor, Action.APP_READ, app.id)]
        return Page[AppOut](items=[AppOut.of(app, actor) for app in rows])


@router.post(
    "", status_code=201, dependencies=[requires(Action.APP_CREATE)], responses=declare(409)
)
def create_app(body: AppCreate, rt: RuntimeDep, actor: AdminDep, response: Response) -> AppOut:
    """Add an app (409 if the name is taken). Provisioning starts disabled: enable it with
    ``PUT /apps/{id}/provisioning`` once the connection test passes."""
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


@router.get("/{app_id}", dependencies=[requires(Action.APP_READ)], responses=declare(404))
def get_app(app_id: str, rt: RuntimeDep, actor: AdminDep) -> AppOut:
    """One app, by id or name."""
    with rt.db.session() as session:
        return AppOut.of(apps.get_app(session, app_id), actor)


@router.patch("/{app_id}", dependencies=[requires(Action.APP_MANAGE)], responses=declare(404))
def update_app(app_id: str, body: AppPatch, rt: RuntimeDep, actor: AdminDep) -> AppOut:
    """Change the label or connector fields; secrets left out keep the stored ones."""
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
        # Without the input: it is the merged auth, secrets and all.
        first = exc.errors(include_input=False, include_url=False)[0]
        field = ".".join(["connector", *(str(part) for part in first["loc"])])
        raise Invalid(f"{field}: {validation_message(first)}", field=field) from None


@router.delete(
    "/{app_id}", status_code=204, dependencies=[requires(Action.APP_DELETE)], responses=declare(404)
)
def delete_app(app_id: str, rt: RuntimeDep, actor: AdminDep) -> None:
    """Delete an app with its assignments, roles and records; nothing is sent to the app."""
    with rt.db.session() as session:
        apps.delete_app(session, actor, app_id)


class ProvisioningPut(ProvisioningOut):
    initial_run: RunOut | None = None


@router.get(
    "/{app_id}/provisioning", dependencies=[requires(Action.APP_READ)], responses=declare(404)
)
def get_provisioning(app_id: str, rt: RuntimeDep, actor: AdminDep) -> ProvisioningOut:
    """What provisiond may do in the app and how fast, with the last connection test."""
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        return ProvisioningOut(
            **apps.provisioning_of(app).model_dump(), last_test=shown_test(actor, app.last_test)
        )


@router.put(
    "/{app_id}/provisioning",
    dependencies=[requires(Action.APP_MANAGE)],
    responses=declare(404, 409),
)
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


@router.get(
    "/{app_id}/provisioning/state",
    dependencies=[requires(Action.APP_READ)],
    responses=declare(404),
)
def get_provisioning_state(app_id: str, rt: RuntimeDep, _: AdminDep) -> ProvisioningStateOut:
    """Is provisioning flowing, paused (the app answered 429 with Retry-After) or quarantined
    (its requests kept failing: tasks wait, a probe runs on a backoff schedule), and how many
    tasks (deprovisionings among them) wait."""
    with rt.db.session() as session:
        return ProvisioningStateOut(**asdict(holds.state_of(session, app_id)))


@router.post(
    "/{app_id}/provisioning/resume",
    dependencies=[requires(Action.APP_MANAGE)],
    responses=declare(404, 409),
)
def resume_provisioning(app_id: str, rt: RuntimeDep, actor: AdminDep) -> ProvisioningStateOut:
    """End the app's quarantine now, without waiting for the next probe (409 if it is not
    quarantined); its waiting tasks are due at once."""
    with rt.db.session() as session:
        state = holds.resume(session, actor, app_id)
    if rt.worker is not None:
        rt.worker.wake()
    return ProvisioningStateOut(**asdict(state))


@router.post(
    "/{app_id}/provisioning/test",
    dependencies=[requires(Action.APP_MANAGE)],
    responses=declare(404),
)
async def test_provisioning(app_id: str, rt: RuntimeDep, actor: AdminDep) -> dict[str, Any]:
    """A real round trip: ServiceProviderConfig discovery, then an authenticated GET /Users."""
    report = shown_test(actor, await connection.test_app(rt, actor, app_id))
    assert report is not None
    return report


@router.post(
    "/{app_id}/tasks/retry", dependencies=[requires(Action.TASK_RETRY)], responses=declare(404)
)
def retry_dead_tasks(app_id: str, rt: RuntimeDep, actor: AdminDep) -> Page[TaskOut]:
    """Retry every dead task of the app at once (after an outage); the tasks now queued."""
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        return Page[TaskOut](items=[TaskOut.of(t) for t in tasks.retry_dead(session, actor, app)])
