"""Per-request console context: the signed-in admin, the CSRF check, rendering and redirects.

Every page depends on ``signed_in``; every form post on ``posted``, which also reads the form
and refuses it unless its ``csrf_token`` is the session's. Changes are made with the
admin's ``Actor`` (``admin:<username>``, the request's correlation id), so the activity log
reads the same whether a change came through the console or the API.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from provisiond import authz
from provisiond.authz import Action
from provisiond.errors import Forbidden
from provisiond.runtime import Runtime
from provisiond.services import admins
from provisiond.services.context import Actor, current_correlation_id, new_correlation_id
from provisiond.store.tables import Admin
from provisiond.web.sessions import COOKIE, ConsoleSession, SessionCodec, set_cookie, tokens_match


class SignInRequired(Exception):
    def __init__(self, expired: bool) -> None:
        super().__init__("sign in")
        self.expired = expired


class CsrfFailed(Forbidden):
    def __init__(self) -> None:
        super().__init__(
            "this form has expired or did not come from this console: reload the page and try again"
        )


@dataclass
class Console:
    request: Request
    rt: Runtime
    username: str
    role: str
    actor: Actor
    session: ConsoleSession
    form: FormData | None = None

    def may(self, action: Action | str, app_id: str | None = None) -> bool:
        return authz.may(self.actor, action, app_id)

    def authorize(self, action: Action | str, app_id: str | None = None) -> None:
        authz.authorize(self.actor, action, app_id)

    def field(self, name: str) -> str:
        value = self.form.get(name) if self.form is not None else None
        return value.strip() if isinstance(value, str) else ""

    def flash(self, message: str) -> None:
        self.session = replace(self.session, flash=message)
        self.request.state.console_session = self.session


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def codec(request: Request) -> SessionCodec:
    value: SessionCodec = request.app.state.codec
    return value


def signed_in(request: Request) -> Console:
    rt = runtime(request)
    sessions = codec(request)
    session, expired = sessions.load(request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired(expired)
    with rt.db.session() as db:
        admin = db.get(Admin, session.admin_id)
        if admin is None or admin.session_epoch != session.epoch or admin.disabled_at:
            # Signed out elsewhere, or the admin was disabled or removed.
            raise SignInRequired(expired=True)
        actor = admins.actor_of(admin, current_correlation_id.get() or new_correlation_id())
        username, role = admin.username, admin.role
    session = sessions.touch(session)
    request.state.console_session = session
    console = Console(request, rt, username, role, actor, session)
    request.state.console = console
    return console


async def posted(request: Request, console: Annotated[Console, Depends(signed_in)]) -> Console:
    form = await request.form()
    if not tokens_match(console.session.csrf, form.get("csrf_token")):
        raise CsrfFailed()
    console.form = form
    return console


ConsoleDep = Annotated[Console, Depends(signed_in)]
PostDep = Annotated[Console, Depends(posted)]


def _store_session(request: Request, response: Response, session: ConsoleSession) -> None:
    sessions = codec(request)
    set_cookie(request, response, COOKIE, sessions.dump(session), int(sessions.absolute))


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """A page, with the session cookie renewed (sliding idle expiry) and the flash consumed."""
    templates: Jinja2Templates = request.app.state.templates
    session: ConsoleSession | None = getattr(request.state, "console_session", None)
    flash = session.flash if session else ""
    response = templates.TemplateResponse(
        request,
        template,
        {
            "session": session,
            "flash": flash,
            "c": getattr(request.state, "console", None),
            "Action": Action,
            **context,
        },
        status_code=status_code,
    )
    if session is not None:
        _store_session(request, response, replace(session, flash=""))
    return response


def redirect(request: Request, url: str) -> Response:
    """303 See Other after a successful post (the flash rides along in the cookie)."""
    response = RedirectResponse(url, status_code=303)
    session: ConsoleSession | None = getattr(request.state, "console_session", None)
    if session is not None:
        _store_session(request, response, session)
    return response


def sign_in_url(request: Request, expired: bool) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = "/login?next=" + quote(target, safe="/")
    return url + ("&expired=1" if expired else "")
