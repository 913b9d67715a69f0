"""SCIM errors (RFC 7644 §3.12): ``application/scim+json``, the Error schema, ``status`` as a
string, ``scimType`` where the RFC defines one; 401 with ``WWW-Authenticate: Bearer``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from provisiond.errors import Conflict, Invalid, ProvisiondError
from provisiond.services.inbound import ERROR, ScimError

SCIM_JSON = "application/scim+json"


def scim_json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def scim_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(scim_json(body), status, headers=headers, media_type=SCIM_JSON)


def error_body(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [ERROR], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return body


def error_response(status: int, detail: str, scim_type: str | None = None) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="scim"'} if status == 401 else None
    return scim_response(error_body(status, detail, scim_type), status, headers)


def body_of(exc: ProvisiondError) -> dict[str, Any]:
    """The SCIM error body for any of provisiond's errors (a response's, or a bulk
    operation's ``response``)."""
    if isinstance(exc, ScimError):
        return error_body(exc.status, exc.detail, exc.scim_type)
    if isinstance(exc, Conflict):
        # A directory conflict over SCIM is a taken userName or displayName.
        return error_body(409, exc.detail, "uniqueness" if "field" in exc.extra else None)
    if isinstance(exc, Invalid):
        return error_body(400, exc.detail, "invalidValue")
    return error_body(exc.status, exc.detail)


def of(exc: ProvisiondError) -> Response:
    """The SCIM error for any of provisiond's errors."""
    body = body_of(exc)
    return error_response(int(body["status"]), body["detail"], body.get("scimType"))


def install(app: FastAPI) -> None:
    async def provisiond_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProvisiondError)
        return of(exc)

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        response = error_response(exc.status_code, str(exc.detail))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    async def validation_error(_: Request, exc: Exception) -> Response:
        return error_response(400, f"invalid request: {exc}", "invalidValue")

    app.add_exception_handler(ProvisiondError, provisiond_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
