"""RFC 9457 problem details for every error the API answers, and their place in the OpenAPI
document: a route lists the error statuses it answers with ``responses=declare(404, 409)``;
401, 403 and 422 are declared once for all of /api/v1 (api/app.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from provisiond.api.fallback import allowed_methods
from provisiond.domain.apps import MODEL_OF
from provisiond.errors import ProvisiondError, validation_message

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://provisiond.dev/problems/"


class Problem(BaseModel):
    """RFC 9457 problem details. Extension members depend on the type: ``field`` and ``errors``
    (invalid input), ``current_status`` (lifecycle conflicts), ``test`` (a failed connection
    test), ``assignments`` (a role still granted)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": TYPE_BASE + "not-found",
                    "title": "Not found",
                    "status": 404,
                    "detail": "no user with id 2f0c8b7e-...",
                }
            ]
        },
    )
    type: str
    title: str
    status: int
    detail: str


# What each status means on this API, as the OpenAPI document says it.
MEANINGS = {
    400: "The request could not be read (e.g. a body that is not a form or JSON).",
    401: "No API token, or one that is wrong, expired or revoked.",
    403: "The token's role may not do this (or not in this app).",
    404: "An id or name in the path or the query names nothing.",
    405: "The path exists, not with this method (see Allow).",
    409: "It conflicts with the current state (the detail says which and how to proceed).",
    413: "The request body is larger than the server accepts.",
    422: "Invalid input: `field` names the first offending one, `errors` lists them all.",
    502: "The app answered with an error, or could not be reached.",
}


def declare(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route (or a router) that answers these error statuses."""
    return {
        status: {
            "description": MEANINGS[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def document(app: FastAPI) -> None:
    """Put the ``Problem`` schema the declarations refer to in the app's OpenAPI document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Problem"] = Problem.model_json_schema()
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def problem(status: int, kind: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": TYPE_BASE + kind, "title": title, "status": status, "detail": detail, **extra}
    headers = {"WWW-Authenticate": 'Bearer realm="provisiond"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field(loc: Sequence[Any]) -> str:
    parts = [str(part) for part in loc if part != "body"]
    if len(parts) > 1 and parts[0] == "connector" and parts[1] in MODEL_OF:
        # The kind pydantic puts in the location of a connector's error is not a field sent.
        del parts[1]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(ProvisiondError)
    async def _domain(_: Request, exc: ProvisiondError) -> JSONResponse:
        return problem(exc.status, exc.type, exc.title, exc.detail, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": _field(error["loc"]),
                "message": validation_message(error),
                "type": error["type"],
            }
            for error in exc.errors()
        ]
        if any(error["type"] == "json_invalid" for error in errors):
            return problem(
                422,
                "invalid-json",
                "Malformed JSON",
                "the request body is not valid JSON",
                errors=errors,
            )
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        return problem(
            422,
            "invalid",
            "Invalid input",
            f"{first['field']}: {first['message']}",
            field=first["field"],
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI's "error parsing the body" (e.g. bytes that are not UTF-8): every body
            # this API takes is JSON, so it is the malformed JSON it answers 422 to otherwise.
            return problem(
                422, "invalid-json", "Malformed JSON", "the request body is not valid JSON"
            )
        kind = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}.get(
            exc.status_code, "http-error"
        )
        detail = str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 404:
            detail = f"no such resource: {request.url.path}"
        elif exc.status_code == 405:
            allowed = allowed_methods(app.router.routes, request.url.path)
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed here; use {', '.join(allowed)}"
        response = problem(exc.status_code, kind, str(exc.detail), detail)
        response.headers.update(headers)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return problem(
            500, "internal", "Internal error", "an unexpected error occurred; see the server log"
        )
