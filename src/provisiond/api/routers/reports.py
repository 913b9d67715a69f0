from __future__ import annotations

from dataclasses import asdict
from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from provisiond import authz
from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.report_schemas import PostureOut
from provisiond.authz import Action
from provisiond.services import posture

router = APIRouter(prefix="/reports", tags=["reports"])


@router.get(
    "/posture",
    dependencies=[requires(Action.DIRECTORY_READ)],
    response_model=PostureOut,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def get_posture(
    rt: RuntimeDep,
    actor: AdminDep,
    format: Literal["json", "csv"] = Query(default="json", description="json, or csv to export"),
) -> PostureOut | Response:
    """The access posture: apps without provisioning, quarantined or failing apps, assigned
    users without an account (and why), deactivated users with an account still active,
    deprovisionings not confirmed by their read-back, dead tasks, the oldest pending
    deprovisioning. Each finding says where it is fixed (``console`` URL, ``api`` path).
    An app_admin sees its granted apps only. ``format=csv``: one finding a line."""
    with rt.db.session() as session:
        found = posture.report(session, apps=authz.app_scope(actor))
    if format == "json":
        return PostureOut.model_validate(asdict(found))
    return Response(
        posture.as_csv(found), media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="posture.csv"'},
    )
