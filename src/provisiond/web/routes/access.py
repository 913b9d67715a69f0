"""Admins & tokens (super_admin only): console admins and API tokens, and their lifecycle.

Every change goes through services/admin_accounts.py and services/tokens.py, as the API's do.
A new token's secret is rendered once in the answer to the form, never put in the flash (the
flash rides in the session cookie, which is signed, not encrypted).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.responses import Response

from provisiond.authz import Action
from provisiond.errors import ProvisiondError
from provisiond.services import admin_accounts, tokens
from provisiond.services.context import ROLES, Actor
from provisiond.services.monitoring import app_names
from provisiond.web.context import Console, ConsoleDep, PostDep, redirect, render

router = APIRouter()
PAGE = "/access"


def _page(console: Console, status_code: int = 200, **extra: object) -> Response:
    console.authorize(Action.ADMIN_MANAGE)
    with console.rt.db.session() as session:
        admins = admin_accounts.list_admins(session)
        rows = tokens.list_tokens(session, include_revoked=True)
        apps = app_names(session)
    return render(
        console.request,
        "access.html",
        status_code=status_code,
        admins=admins,
        admin_status=admin_accounts.status_of,
        tokens=rows,
        token_status=tokens.status_of,
        apps=apps,
        roles=ROLES,
        **extra,
    )


@router.get(PAGE)
def access(console: ConsoleDep) -> Response:
    return _page(console)


def _change(console: Console, done: str, change: Callable[[Session, Actor], object]) -> Response:
    """Run one change; its refusal (the last super_admin, a short password) is flashed."""
    console.authorize(Action.ADMIN_MANAGE)
    try:
        with console.rt.db.session() as session:
            change(session, console.actor)
    except ProvisiondError as exc:
        if exc.status >= 500:
            raise
        console.flash(f"Not changed: {exc.detail}")
    else:
        console.flash(done)
    return redirect(console.request, PAGE)


@router.post(PAGE + "/admins/{admin_id}/role")
def change_role(admin_id: str, console: PostDep) -> Response:
    role = console.field("role")
    apps = [str(app) for app in console.form.getlist("apps")] if console.form else []
    return _change(
        console, "Role changed.",
        lambda s, a: admin_accounts.update_admin(s, a, admin_id, role=role, apps=apps),
    )


@router.post(PAGE + "/admins/{admin_id}/disable")
def disable(admin_id: str, console: PostDep) -> Response:
    return _change(
        console, "Admin disabled; its sessions ended.",
        lambda s, a: admin_accounts.disable_admin(s, a, admin_id),
    )


@router.post(PAGE + "/admins/{admin_id}/enable")
def enable(admin_id: str, console: PostDep) -> Response:
    return _change(
        console, "Admin enabled.", lambda s, a: admin_accounts.enable_admin(s, a, admin_id)
    )


@router.post(PAGE + "/admins/{admin_id}/unlock")
def unlock(admin_id: str, console: PostDep) -> Response:
    return _change(
        console, "Failed sign-ins cleared.", lambda s, a: admin_accounts.unlock_admin(s, a, admin_id)
    )


@router.post(PAGE + "/admins/{admin_id}/password")
def reset_password(admin_id: str, console: PostDep) -> Response:
    password = console.form.get("password") if console.form else None
    given = password if isinstance(password, str) else ""
    return _change(
        console, "Password reset; the admin's sessions ended.",
        lambda s, a: admin_accounts.reset_password(s, a, admin_id, given),
    )


@router.post(PAGE + "/admins/{admin_id}/delete")
def delete(admin_id: str, console: PostDep) -> Response:
    return _change(
        console, "Admin deleted.", lambda s, a: admin_accounts.delete_admin(s, a, admin_id)
    )


@router.post(PAGE + "/tokens/{token_id}/revoke")
def revoke(token_id: str, console: PostDep) -> Response:
    return _change(
        console, "Token revoked.", lambda s, a: tokens.revoke_token(s, a, token_id)
    )


@router.post(PAGE + "/tokens")
def create_token(console: PostDep) -> Response:
    console.authorize(Action.ADMIN_MANAGE)
    name, role, days = console.field("name"), console.field("role"), console.field("expires_days")
    errors: dict[str, str] = {}
    lifetime = None
    if days:
        if not days.isdigit() or not 1 <= int(days) <= 3650:
            errors["expires_days"] = "a whole number of days, 1 to 3650 (or empty: never)"
        else:
            lifetime = timedelta(days=int(days))
    if not errors:
        try:
            with console.rt.db.session() as session:
                secret = tokens.create_token(
                    session, console.actor, name, role, expires_in=lifetime
                )
        except ProvisiondError as exc:
            if exc.status >= 500:
                raise
            errors[str(exc.extra.get("field") or "name")] = exc.detail
    if errors:
        values = {"name": name, "role": role, "expires_days": days}
        return _page(console, 422, errors=errors, values=values)
    shown = _page(console, 201, new_token=secret, new_token_name=name)
    shown.headers["Cache-Control"] = "no-store"  # the page holds the secret
    return shown
