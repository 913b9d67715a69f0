"""Signing in and out of the console."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from provisiond.services import admins
from provisiond.services.context import current_correlation_id, new_correlation_id
from provisiond.web.context import CsrfFailed, PostDep, codec, redirect, render, runtime
from provisiond.web.sessions import (
    COOKIE,
    LOGIN_COOKIE,
    clear_cookie,
    new_session,
    set_cookie,
    tokens_match,
)

router = APIRouter()


def _safe_next(target: str | None) -> str:
    # Only a path on this console: never an absolute or scheme-relative URL (open redirect).
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _login_page(
    request: Request, *, status_code: int = 200, error: str = "", username: str = ""
) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        status_code=status_code,
        csrf_token=token,
        error=error,
        username=username,
        next=_safe_next(request.query_params.get("next")),
        expired=request.query_params.get("expired") == "1",
    )
    set_cookie(request, response, LOGIN_COOKIE, codec(request).sign_token(token), 3600)
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    return _login_page(request)


async def _login_form(request: Request) -> dict[str, str]:
    form = await request.form()
    expected = codec(request).login_token(request.cookies.get(LOGIN_COOKIE))
    if not tokens_match(expected, form.get("csrf_token")):
        raise CsrfFailed()
    return {key: value for key, value in form.items() if isinstance(value, str)}


@router.post("/login")
def login(request: Request, form: Annotated[dict[str, str], Depends(_login_form)]) -> Response:
    username, password = form.get("username", "").strip(), form.get("password", "")
    if not username or not password:
        return _login_page(
            request, status_code=422, error="enter a username and a password", username=username
        )
    correlation = current_correlation_id.get() or new_correlation_id()
    rt = runtime(request)
    failure: admins.SignInFailed | None = None
    with rt.db.session() as session:  # committed on failure too: the event
        try:
            admin = admins.sign_in(
                session,
                username,
                password,
                correlation,
                address=request.client.host if request.client else "",
                throttle=request.app.state.login_throttle,
            )
            admin_id, epoch = admin.id, admin.session_epoch
        except admins.SignInFailed as exc:
            failure = exc
    if failure is not None:
        response = _login_page(
            request, status_code=failure.status, error=failure.detail, username=username
        )
        if isinstance(failure, admins.SignInThrottled):
            response.headers["Retry-After"] = str(failure.retry_after)
        return response
    request.state.console_session = new_session(admin_id, epoch)
    response = redirect(request, _safe_next(form.get("next")))
    clear_cookie(request, response, LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(console: PostDep) -> Response:
    with console.rt.db.session() as session:
        admin = admins.get_admin(session, console.session.admin_id)
        admins.sign_out(session, admin, console.actor.correlation_id)
    request = console.request
    request.state.console_session = None
    response = redirect(request, "/login")
    clear_cookie(request, response, COOKIE)
    return response
