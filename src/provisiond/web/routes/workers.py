"""Workers: the processes reconciling for this database, and whether each still beats."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from provisiond.authz import Action
from provisiond.services import monitoring
from provisiond.web.context import ConsoleDep, render

router = APIRouter()


@router.get("/workers")
def list_workers(console: ConsoleDep) -> Response:
    console.authorize(Action.METRICS_READ)
    timeout = console.rt.settings.worker_timeout_seconds
    with console.rt.db.session() as session:
        found = monitoring.workers(session, timeout)
    return render(console.request, "workers.html", workers=found, timeout=timeout)
