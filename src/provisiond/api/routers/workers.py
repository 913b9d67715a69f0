from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from provisiond.api.authorization import requires
from provisiond.api.deps import RuntimeDep
from provisiond.api.schemas import Page, WorkerOut
from provisiond.authz import Action
from provisiond.services import monitoring

router = APIRouter(prefix="/workers", tags=["workers"])


@router.get("", dependencies=[requires(Action.METRICS_READ)])
def list_workers(rt: RuntimeDep) -> Page[WorkerOut]:
    """The worker processes sharing this database, newest first: what each holds and when it
    last beat. A ``lost`` worker stopped beating; its tasks went back to the queue."""
    with rt.db.session() as session:
        found = monitoring.workers(session, rt.settings.worker_timeout_seconds)
    return Page[WorkerOut](items=[WorkerOut(**asdict(w)) for w in found])
