"""The admin console: a server-rendered sub-app (Jinja2, a few lines of JS), mounted at ``/``.

It calls the same services as the REST API, in the same process and transaction shape, never
HTTP to itself. Its errors are pages, not problem documents.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from provisiond.errors import ProvisiondError
from provisiond.runtime import Runtime
from provisiond.services.login_throttle import LoginThrottle
from provisiond.web import charts
from provisiond.web.context import SignInRequired, render, sign_in_url
from provisiond.web.headers import SecurityHeaders
from provisiond.web.routes import (
    access,
    activity,
    app_side,
    app_tabs,
    apps,
    auth,
    dashboard,
    directory,
    groups,
    push_groups,
    reports,
    runs,
    tasks,
    workers,
)
from provisiond.web.sessions import SessionCodec

HERE = Path(__file__).parent


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def _json(value: object) -> str:
    """A value as the CLI and the API print it (``true``, ``null``, ``"Ada"``), not Python's."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _setting(value: object) -> str:
    """A policy field: an expression as written, anything else (limits, ``null``) as JSON."""
    if value is None:
        return "—"
    return value if isinstance(value, str) else _json(value)


def templates() -> Jinja2Templates:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True, default=str)
    env.filters["json"] = _json
    env.filters["setting"] = _setting
    env.globals["bar_chart"] = charts.bar_chart
    env.globals["latency_chart"] = charts.latency_chart
    return Jinja2Templates(env=env)


def create_console(rt: Runtime, *, idle_seconds: float | None = None) -> FastAPI:
    console = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    console.state.runtime = rt
    # Derived from the sealing key: a key rotation also ends every console session.
    key = rt.keys.primary
    console.state.codec = (
        SessionCodec(key, idle=idle_seconds) if idle_seconds is not None else SessionCodec(key)
    )
    console.state.templates = templates()
    # Per process, like the sessions' codec; tests swap its clock (services/login_throttle.py).
    console.state.login_throttle = LoginThrottle()
    console.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in (
        auth, dashboard, apps, app_tabs, app_side, push_groups, directory, groups, runs, tasks,
        activity, workers, access, reports,
    ):
        console.include_router(module.router)
    _install_errors(console)
    console.add_middleware(SecurityHeaders)
    return console


def _install_errors(console: FastAPI) -> None:
    @console.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(sign_in_url(request, exc.expired), status_code=303)

    @console.exception_handler(ProvisiondError)
    async def _domain(request: Request, exc: ProvisiondError) -> Response:
        return _error(request, exc.status, exc.title, exc.detail)

    @console.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, 422, "Invalid request", "the address or form is not valid")

    @console.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail), str(exc.detail))


def _error(request: Request, status: int, title: str, detail: str) -> Response:
    context: dict[str, Any] = {"status": status, "title": title, "detail": detail}
    return render(request, "error.html", status_code=status, **context)
