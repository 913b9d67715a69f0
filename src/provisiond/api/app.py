"""The application factory: REST API under /api/v1, health, and the worker in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Response
from sqlalchemy import text
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from provisiond import __version__
from provisiond.api import docs, metrics, problems
from provisiond.api.authorization import require_declared, requires
from provisiond.api.deps import AdminDep, admin, single_query_values
from provisiond.api.fallback import ConsoleMount
from provisiond.api.routers import (
    admins,
    app_accounts,
    apps,
    assignments,
    groups,
    imports,
    ldap_imports,
    ldap_sources,
    logs,
    policy,
    push_groups,
    receipts,
    reports,
    roles,
    scim_clients,
    sync,
    tasks,
    tokens,
    users,
    workers,
)
from provisiond.api.scim import PREFIX as SCIM_PREFIX
from provisiond.api.scim import create_scim_app
from provisiond.api.scim.errors import error_response
from provisiond.api.scim.lookups import UserNameLookups
from provisiond.authz import Action
from provisiond.config import Settings
from provisiond.runtime import Runtime
from provisiond.services.context import current_correlation_id, new_correlation_id
from provisiond.services.schedules import Scheduler
from provisiond.store import migrate
from provisiond.web import create_console
from provisiond.web.headers import HttpMiddleware
from provisiond.web.routes.imports import CONSOLE_IMPORT


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    start_worker: bool | None = None,
) -> FastAPI:
    settings = settings or (runtime.settings if runtime else Settings())
    rt = runtime or Runtime(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if migrate.is_empty(rt.db.engine):
            rt.migrate()
        current, head = migrate.revisions(rt.db.engine)
        if current != head:
            raise RuntimeError(
                f"the database is at revision {current}, the code needs {head}: run `provisiond migrate`"
            )
        rt.seal_canary()
        scheduler = None
        if start_worker if start_worker is not None else settings.run_worker:
            rt.start_worker()
            # Beside every worker; one of the cluster's schedulers runs each tick.
            scheduler = Scheduler(rt.db, settings.scheduler_tick_seconds, rt)
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()
            rt.stop()

    app = FastAPI(
        title="provisiond",
        version=__version__,
        description="Identity provisioning: one directory, every application kept in sync.",
        lifespan=lifespan,
        # Swagger UI is served from the package (api/docs.py), never a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = rt
    problems.install(app)
    problems.document(app)
    docs.install(app)

    # Every /api/v1 route may answer these; a route declares its own 404, 409... (problems.py).
    v1 = APIRouter(
        prefix="/api/v1",
        dependencies=[Depends(admin), Depends(require_declared), Depends(single_query_values)],
        responses=problems.declare(401, 403, 422),
    )
    for module in (
        users, groups, apps, roles, assignments, push_groups, policy, sync, tasks, logs, workers,
        tokens, admins, receipts, reports, app_accounts, scim_clients, ldap_imports, ldap_sources, imports,
    ):
        v1.include_router(module.router)
    v1.include_router(imports.exports)
    app.include_router(v1)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    head: list[str | None] = []  # the code's schema revision, read from disk once

    @app.get("/readyz", tags=["health"])
    def readyz(response: Response) -> dict[str, Any]:
        """The database answers with the schema this code expects, and this process's worker
        (if it runs one) beats."""
        try:
            with rt.db.session() as session:
                current = session.scalar(text("SELECT version_num FROM alembic_version"))
        except Exception:  # any database failure means not ready
            response.status_code = 503
            return {"status": "unavailable", "database": "unreachable"}
        if not head:
            head.append(migrate.revisions(rt.db.engine)[1])
        if current != head[0]:
            response.status_code = 503  # a rolling upgrade's old or new code: not this one's
            return {"status": "unavailable", "database": "ok",
                    "schema": f"at {current}, expected {head[0]}"}
        if rt.worker is not None and not rt.worker.upkeep.beating():
            response.status_code = 503  # this process's worker stopped beating: not ready
            return {"status": "unavailable", "database": "ok", "worker": "not beating"}
        return {"status": "ok", "database": "ok", "worker": rt.worker is not None}

    @app.get(
        "/metrics",
        tags=["health"],
        dependencies=[requires(Action.METRICS_READ)],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}, **problems.declare(401, 403)},
    )
    def prometheus_metrics(actor: AdminDep) -> Response:
        """Prometheus text format, read from the database at scrape time (needs a token);
        an app_admin token gets its own apps' series only."""
        body, content_type = metrics.exposition(rt, actor)
        return Response(body, media_type=content_type)

    # provisiond's directory as a SCIM service provider: its own errors, tokens and no OpenAPI.
    # First of the routes: the router tries them in order, and matching a lookup against every
    # /api/v1 route first was a seventh of its time (bench/RESULTS.md §10).
    app.router.routes.insert(0, Mount(SCIM_PREFIX, create_scim_app(rt)))

    # The console answers every path the API does not: it must stay the last route, and it
    # steps aside for /api/ paths so that the API answers its own 404s and 405s.
    app.router.routes.append(ConsoleMount(create_console(rt), app.router.routes))

    # Innermost of the middleware: the body limit and the correlation id stay every request's.
    app.add_middleware(UserNameLookups, rt=rt)
    app.add_middleware(Correlation)
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        # These routes stream their (larger) body to a file and count it themselves.
        streamed={imports.PATH: settings.import_max_bytes, CONSOLE_IMPORT: settings.import_max_bytes},
    )
    return app


class Correlation(HttpMiddleware):
    """Every request runs under a correlation id (the client's ``X-Request-ID`` if sane), echoed
    in the response. Pure ASGI: ``BaseHTTPMiddleware`` cost a task and a stream per request,
    a large share of a ``userName eq`` lookup's time (bench/RESULTS.md §10)."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        text_id = incoming.decode("latin-1")
        correlation_id = text_id if 8 <= len(text_id) <= 64 else new_correlation_id()
        header = (b"x-request-id", correlation_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        token = current_correlation_id.set(correlation_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_correlation_id.reset(token)


class BodyLimit:
    """Refuse bodies over the limit with 413, whether or not Content-Length announces them."""

    def __init__(self, app: ASGIApp, limit: int, streamed: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.streamed = streamed or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        streamed = self.streamed.get(scope["path"]) if scope["method"] == "POST" else None
        if streamed is not None:
            if declared is not None and declared.isdigit() and int(declared) > streamed:
                await self._refuse(scope, receive, send, streamed)
                return
            await self.app(scope, receive, send)
            return
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        # Read the body first (it is at most ``limit`` bytes), then replay it to the app: a body
        # without Content-Length is refused as soon as it passes the limit.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, limit: int | None = None
    ) -> None:
        detail = f"the request body is larger than {limit or self.limit} bytes"
        if str(scope.get("path", "")).startswith(SCIM_PREFIX):  # SCIM clients read SCIM errors
            await error_response(413, detail, "tooLarge")(scope, receive, send)
            return
        response = problems.problem(413, "payload-too-large", "Payload too large", detail)
        await response(scope, receive, send)
