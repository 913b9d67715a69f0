"""The dashboard: per app, accounts provisioned, pending and failed, the last runs, and
deprovisioning latency over time, from the same figures as /metrics."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from provisiond.authz import Action, app_scope, visible_apps
from provisiond.services import monitoring
from provisiond.services.apps import list_apps
from provisiond.web.context import ConsoleDep, render

router = APIRouter()


@router.get("/")
def dashboard(console: ConsoleDep) -> Response:
    console.authorize(Action.APP_READ)
    with console.rt.db.session() as session:
        ids = visible_apps(console.actor, [app.id for app in list_apps(session)])
        figures = monitoring.dashboard(session, ids)
        # An app_admin's figures are its apps' only, the queue's age too (authz.app_scope).
        queued_age = monitoring.oldest_queued_age_seconds(session, app_ids=app_scope(console.actor))
    return render(console.request, "dashboard.html", figures=figures, queued_age=queued_age,
                  posture=console.may(Action.DIRECTORY_READ))
