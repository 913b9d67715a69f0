"""Runs: the held ones waiting for an admin, each with its plan, approved or cancelled here."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from starlette.responses import Response

from provisiond.authz import Action
from provisiond.domain.policy import PolicyDocument
from provisiond.services import policies, runs
from provisiond.services.monitoring import app_names
from provisiond.store.tables import Run
from provisiond.web.context import Console, ConsoleDep, PostDep, redirect, render

router = APIRouter()
RECENT = 50  # finished runs listed under the held ones


@router.get("/runs")
def list_runs(console: ConsoleDep) -> Response:
    console.authorize(Action.APP_READ)
    with console.rt.db.session() as session:
        held = [
            run
            for run in session.scalars(
                select(Run).where(Run.status == "held").order_by(Run.started_at.desc())
            )
            if console.may(Action.APP_READ, run.app_id)
        ]
        recent = [
            run
            for run in session.scalars(
                select(Run)
                .where(Run.status != "held")
                .order_by(Run.started_at.desc())
                .limit(4 * RECENT)
            )
            if console.may(Action.APP_READ, run.app_id)
        ][:RECENT]
        names = app_names(session)
    return render(console.request, "runs/list.html", held=held, recent=recent, apps=names)


def _load(console: Console, run_id: str, action: Action) -> Run:
    with console.rt.db.session() as session:
        run = runs.get_run(session, run_id)
        session.expunge(run)
    console.authorize(action, run.app_id)
    return run


@router.get("/runs/{run_id}")
def show_run(run_id: str, console: ConsoleDep) -> Response:
    run = _load(console, run_id, Action.APP_READ)
    held: dict[str, Any] = run.held or {}
    with console.rt.db.session() as session:
        names = app_names(session)
        policy_change = None
        if runs.is_pending_policy(run):
            # What approving it changes in the policy, against the version in force now.
            version, in_force = policies.current(session, run.app_id)
            pending = PolicyDocument.model_validate(held["policy"])
            policy_change = {
                "in_force": version,
                "base_version": held.get("base_version"),
                "diff": policies.policy_diff(in_force, pending),
            }
    deprovisions = held.get("counts", {}).get("deactivate", 0) + held.get("counts", {}).get(
        "delete", 0
    )
    return render(
        console.request,
        "runs/detail.html",
        run=run,
        held=held,
        app_name=names.get(run.app_id, run.app_id),
        deprovisions=deprovisions,
        policy_change=policy_change,
        can_manage=console.may(Action.APP_MANAGE, run.app_id),
    )


@router.post("/runs/{run_id}/approve")
def approve(run_id: str, console: PostDep) -> Response:
    _load(console, run_id, Action.APP_MANAGE)
    with console.rt.db.session() as session:
        run = runs.approve(session, console.actor, run_id)
        message = f"Approved: the run is reconciling {run.total} users." + (
            f" Policy version {run.policy_version} is now in force."
            if runs.is_pending_policy(run)
            else ""
        )
    console.flash(message)
    return redirect(console.request, f"/runs/{run_id}")


@router.post("/runs/{run_id}/cancel")
def cancel(run_id: str, console: PostDep) -> Response:
    _load(console, run_id, Action.APP_MANAGE)
    with console.rt.db.session() as session:
        run = runs.cancel(session, console.actor, run_id)
        message = "Cancelled: nothing was deprovisioned." + (
            " The pending policy was discarded."
            if runs.is_pending_policy(run)
            else ""
        )
    console.flash(message)
    return redirect(console.request, f"/runs/{run_id}")
