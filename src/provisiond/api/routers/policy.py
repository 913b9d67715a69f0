from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.problems import declare
from provisiond.api.schemas import RunOut
from provisiond.authz import Action
from provisiond.domain.policy import PolicyDocument
from provisiond.services import apps, policies, policy_saves, preview, runs

router = APIRouter(tags=["policy"])


class PendingPolicy(BaseModel):
    run_id: str = Field(description="The held run: approve it to put this policy in force.")
    actor: str
    saved_at: datetime
    version: int | None = Field(description="The version it becomes when approved.")
    base_version: int | None = Field(description="The version in force when it was saved.")
    deprovisions: int
    accounts: int | None
    document: PolicyDocument


class PolicyOut(PolicyDocument):
    version: int = Field(description="0 is the built-in default; saving makes a new version.")
    pending: PendingPolicy | None = Field(
        default=None,
        description="A save over the safety limit, not in force until its held run is approved.",
    )


_POLICY_EXAMPLE: dict[str, Any] = {
    "scope": 'user.department in ["Sales", "Support"]',
    "mappings": {
        "userName": "user.login",
        "name.givenName": "user.firstName",
        "name.familyName": "user.lastName",
        'emails[type eq "work"].value': "user.email",
    },
    "deprovisioning": {"action": "deactivate", "delete_after_days": 30},
    "limits": {"max_deprovisions": 50, "max_deprovision_percent": 10},
}


class PolicyPut(PolicyOut):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_POLICY_EXAMPLE]})
    version: int | None = Field(default=None, description="Read-only; ignored.")  # type: ignore[assignment]
    pending: Any = Field(default=None, description="Read-only; ignored.")


class PolicySaved(PolicyOut):
    changed: bool
    run: RunOut | None = None


class PreviewRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"policy": _POLICY_EXAMPLE, "limit": 100}]}
    )
    # A PolicyPut, so that what GET returns can be sent back as a draft as it is.
    policy: PolicyPut | None = Field(
        default=None, description="A draft; the saved policy if absent."
    )
    limit: int = Field(
        default=1000, ge=1, le=100_000, description="At most this many changes listed."
    )


@router.get("/apps/{app_id}/policy", dependencies=[requires(Action.APP_READ)], responses=declare(404))
def get_policy(app_id: str, rt: RuntimeDep, _: AdminDep) -> PolicyOut:
    """The app's current policy (scope, matching, mappings, limits) and its version."""
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        version, document = policies.current(session, app.id)
        pending = policy_saves.pending_of(session, app.id)
        return PolicyOut(version=version, pending=pending, **document.model_dump())


@router.put(
    "/apps/{app_id}/policy", dependencies=[requires(Action.APP_MANAGE)], responses=declare(404)
)
def put_policy(app_id: str, body: PolicyPut, rt: RuntimeDep, actor: AdminDep) -> PolicySaved:
    """Check, save as a new version, and reconcile every user of the app under it. A save that
    would deprovision more than the limits allow is not put in force: it is returned as
    ``pending`` with its held run, and takes effect only when that run is approved."""
    document = PolicyDocument.model_validate(body.model_dump(exclude={"version", "pending"}))
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        saved = policy_saves.save(session, actor, app, document)
        in_force = document if saved.pending is None else policies.current(session, app.id)[1]
        return PolicySaved(
            version=saved.version,
            changed=saved.changed,
            run=RunOut.of(saved.run) if saved.run else None,
            pending=saved.pending,
            **in_force.model_dump(),
        )


@router.post(
    "/apps/{app_id}/policy/preview",
    dependencies=[requires(Action.APP_MANAGE)],
    responses=declare(404),
)
def preview_policy(
    app_id: str, body: PreviewRequest, rt: RuntimeDep, actor: AdminDep
) -> dict[str, Any]:
    """A dry run: the exact plan for every user, attribute by attribute, with counts. Nothing is
    changed and nothing is sent to the app."""
    with rt.db.session() as session:
        draft = (
            None
            if body.policy is None
            else PolicyDocument.model_validate(body.policy.model_dump(exclude={"version", "pending"}))
        )
        return preview.preview(session, actor, app_id, draft, limit=body.limit)


@router.post(
    "/apps/{app_id}/users/{user_id}/provision",
    dependencies=[requires(Action.APP_MANAGE)],
    responses=declare(404, 409),
)
async def provision_user(
    app_id: str, user_id: str, rt: RuntimeDep, actor: AdminDep
) -> dict[str, Any]:
    """Provision one user now and return each step: scope, matching, mapped attributes, the
    operation and the app's answer."""
    return await preview.provision_now(rt, actor, app_id, user_id)


@router.post(
    "/runs/{run_id}/approve", dependencies=[requires(Action.APP_MANAGE)], responses=declare(404, 409)
)
def approve_run(run_id: str, rt: RuntimeDep, actor: AdminDep) -> RunOut:
    """Let a held run go ahead (409 unless it is held)."""
    with rt.db.session() as session:
        return RunOut.of(runs.approve(session, actor, run_id))


@router.post(
    "/runs/{run_id}/cancel", dependencies=[requires(Action.APP_MANAGE)], responses=declare(404, 409)
)
def cancel_run(run_id: str, rt: RuntimeDep, actor: AdminDep) -> RunOut:
    """Cancel a held run: none of its changes are made (409 unless it is held)."""
    with rt.db.session() as session:
        return RunOut.of(runs.cancel(session, actor, run_id))
