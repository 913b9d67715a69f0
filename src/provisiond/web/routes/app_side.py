"""The Accounts tab's app side: an import with its progress, matches to confirm or reject,
orphans to ignore, link, deactivate or delete, and drift (services.app_accounts)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from provisiond.authz import Action
from provisiond.errors import ProvisiondError
from provisiond.services import app_accounts, directory
from provisiond.store.tables import App, User
from provisiond.web.confirm import Confirmation, ask, confirmed
from provisiond.web.context import Console, PostDep, redirect
from provisiond.web.routes.apps import load

router = APIRouter()
LISTED = 200  # rows per table on the tab; the API and CLI page through all of them


def accounts_context(session: Session, app_id: str) -> dict[str, Any]:
    """What the Accounts tab shows of the app's side."""
    latest = app_accounts.latest_import(session, app_id)
    return {
        "latest_import": latest,
        "importing": latest is not None and latest.status in app_accounts.ACTIVE_IMPORT,
        "pending": app_accounts.list_app_accounts(session, app_id, match="pending", limit=LISTED),
        "conflicts": app_accounts.list_app_accounts(
            session, app_id, match="conflict", limit=LISTED
        ),
        "orphans": app_accounts.orphans(session, app_id, limit=LISTED),
        "drifted": app_accounts.drifted(session, app_id, limit=LISTED),
    }


def _ids(console: Console) -> list[str]:
    form = console.form
    chosen = [str(v) for v in form.getlist("ids")] if form is not None else []
    joined = console.field("ids_joined")
    return chosen or [i for i in joined.split(",") if i]


def _user(session: Session, text: str) -> User:
    """A user by login (any case) or id: what an admin types in the link form."""
    found = session.scalar(select(User).where(User.login_key == text.casefold()))
    return found if found is not None else directory.get_user(session, text)


def _back(console: Console, app: App, message: str) -> Response:
    console.flash(message)
    return redirect(console.request, f"/apps/{app.id}/accounts")


@router.post("/apps/{app_id}/import")
def start_import(app_id: str, console: PostDep) -> Response:
    app = load(console, app_id, Action.APP_MANAGE)
    try:
        with console.rt.db.session() as session:
            app_accounts.start_import(session, console.actor, app)
    except ProvisiondError as exc:
        return _back(console, app, f"Import not started: {exc.detail}")
    return _back(console, app, f"Import of {app.label} started.")


@router.post("/apps/{app_id}/matches")
def decide_matches(app_id: str, console: PostDep) -> Response:
    app = load(console, app_id, Action.APP_MANAGE)
    action, ids = console.field("action"), _ids(console)
    try:
        with console.rt.db.session() as session:
            if action == "confirm":
                n = app_accounts.confirm(session, console.actor, app, ids)
                message = f"Linked {n} account(s); the next reconcile plans any update."
            elif action == "reject":
                note = console.field("note") or None
                n = app_accounts.reject(session, console.actor, app, ids, note)
                message = f"Rejected {n} match(es)."
            else:
                message = "Choose confirm or reject."
    except ProvisiondError as exc:
        message = f"Nothing changed: {exc.detail}"
    return _back(console, app, message)


@router.post("/apps/{app_id}/orphans")
def act_on_orphans(app_id: str, console: PostDep) -> Response:
    app = load(console, app_id, Action.APP_MANAGE)
    action, ids = console.field("action"), _ids(console)
    if action in ("deactivate", "delete") and not confirmed(console):
        return ask(
            console,
            Confirmation(
                title=f"{action.title()} {len(ids)} orphan account(s) in {app.label}?",
                summary=(
                    f"This {'deletes' if action == 'delete' else 'deactivates'} {len(ids)} "
                    "account(s) in the app that no directory user should hold; over the "
                    "policy's safety limit the run is held for approval."
                ),
                action=f"/apps/{app.id}/orphans",
                button=f"{action.title()} {len(ids)} account(s)",
                back=f"/apps/{app.id}/accounts",
                hidden={"action": action, "ids_joined": ",".join(ids)},
            ),
        )
    try:
        with console.rt.db.session() as session:
            if action == "ignore":
                n = app_accounts.ignore(session, console.actor, app, ids, console.field("note"))
                message = f"Ignored {n} orphan(s)."
            elif action == "link":
                user = _user(session, console.field("user"))
                (account_id,) = ids[:1] or [""]
                app_accounts.link(session, console.actor, app, account_id, user.id)
                message = f"Linked to {user.login}; the next reconcile plans any update."
            elif action in ("deactivate", "delete"):
                run = app_accounts.deprovision(session, console.actor, app, ids, action)
                if run.status == "held":
                    return redirect(console.request, f"/runs/{run.id}")
                message = f"{action.title()} of {len(ids)} orphan(s) queued."
            else:
                message = "Choose an action."
    except ProvisiondError as exc:
        message = f"Nothing changed: {exc.detail}"
    return _back(console, app, message)
