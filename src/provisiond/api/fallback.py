"""Where no API route takes a request: the console answers only what is not the API's.

The console is mounted at ``/`` after every API route, and a mount there matches every path, so
by itself it would answer ``/api/v1/nope`` (or ``TRACE /api/v1/users``) with its HTML 404 page.
``ConsoleMount`` steps aside for the API's paths, and the router then answers as the API does:
a 404 problem for a path no route has, a 405 problem with ``Allow`` for a method it lacks.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Scope

API_PREFIX = "/api/"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _api_routes(routes: list[BaseRoute]) -> list[BaseRoute]:
    return [route for route in routes if not isinstance(route, ConsoleMount)]


def allowed_methods(routes: list[BaseRoute], path: str) -> list[str]:
    """The methods some API route answers on ``path`` (RFC 9110 §15.5.5: a 405 lists them)."""
    allowed = []
    for method in METHODS:
        scope: Scope = {"type": "http", "path": path, "method": method, "root_path": ""}
        if any(route.matches(scope)[0] is Match.FULL for route in _api_routes(routes)):
            allowed.append(method)
    return allowed


class ConsoleMount(Mount):
    """The console at ``/``, matching nothing under /api/ nor a path an API route serves."""

    def __init__(self, app: object, routes: list[BaseRoute]) -> None:
        super().__init__("/", app=app, name="console")  # type: ignore[arg-type]
        self._routes = routes  # the app's route list, read at request time

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http":
            path: str = scope.get("path", "")
            if path.startswith(API_PREFIX) or path == API_PREFIX.rstrip("/"):
                return Match.NONE, {}
            # Another method on an API path (TRACE /healthz): the API's 405, not the console.
            if any(
                route.matches(scope)[0] is Match.PARTIAL for route in _api_routes(self._routes)
            ):
                return Match.NONE, {}
        return super().matches(scope)
