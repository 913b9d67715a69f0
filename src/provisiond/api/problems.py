"""RFC 9457 problem details for every error the API answers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from provisiond.errors import ProvisiondError, validation_message

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://provisiond.dev/problems/"


def problem(status: int, kind: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": TYPE_BASE + kind, "title": title, "status": status, "detail": detail, **extra}
    headers = {"WWW-Authenticate": 'Bearer realm="provisiond"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ProvisiondError)
    async def _domain(_: Request, exc: ProvisiondError) -> JSONResponse:
        return problem(exc.status, exc.type, exc.title, exc.detail, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(part) for part in error["loc"] if part != "body") or "body",
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
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}.get(
            exc.status_code, "http-error"
        )
        return problem(exc.status_code, kind, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return problem(
            500, "internal", "Internal error", "an unexpected error occurred; see the server log"
        )
