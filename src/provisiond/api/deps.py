"""Request dependencies: the runtime and the authenticated admin."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from provisiond.errors import Invalid, Unauthorized
from provisiond.runtime import Runtime
from provisiond.services import tokens
from provisiond.services.context import Actor, current_correlation_id, new_correlation_id


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


# The security scheme of the OpenAPI document (Swagger UI's Authorize button). It does not
# refuse by itself (auto_error=False): a missing token is our 401 problem, not FastAPI's 403.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token: `provisiond token create`, shown once.",
)


def admin(
    rt: Annotated[Runtime, Depends(runtime)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    token = credentials.credentials.strip() if credentials else ""
    if not token:
        raise Unauthorized("send an API token: Authorization: Bearer <token>")
    with rt.db.session() as db_session:
        row = tokens.authenticate(db_session, token)
        name, role, grants = row.name, row.role, frozenset(row.apps or ())
    correlation = current_correlation_id.get() or new_correlation_id()
    return Actor(name=f"token:{name}", role=role, correlation_id=correlation, grants=grants)


RuntimeDep = Annotated[Runtime, Depends(runtime)]
AdminDep = Annotated[Actor, Depends(admin)]


def _query_fields(dependant: Dependant) -> Iterator[tuple[str, Any]]:
    yield from ((field.alias, field.field_info.annotation) for field in dependant.query_params)
    for sub in dependant.dependencies:
        yield from _query_fields(sub)


def _takes_many(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _takes_many(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return any(_takes_many(arg) for arg in get_args(annotation))
    return origin in (list, set, tuple, frozenset)


def single_query_values(request: Request) -> None:
    """A parameter given twice (``?limit=5&limit=500``) is refused, not silently the last one,
    unless the route declares it a list."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    many = {name for name, annotation in _query_fields(route.dependant) if _takes_many(annotation)}
    for name in request.query_params:
        if name not in many and len(request.query_params.getlist(name)) > 1:
            raise Invalid(f"give the query parameter {name} once", field=f"query.{name}")
