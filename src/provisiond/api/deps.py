"""Request dependencies: the runtime and the authenticated admin."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from provisiond.errors import Unauthorized
from provisiond.runtime import Runtime
from provisiond.services import tokens
from provisiond.services.context import Actor, current_correlation_id, new_correlation_id


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def admin(request: Request, rt: Annotated[Runtime, Depends(runtime)]) -> Actor:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send an API token: Authorization: Bearer <token>")
    with rt.db.session() as db_session:
        row = tokens.authenticate(db_session, token.strip())
        name, role, grants = row.name, row.role, frozenset(row.apps or ())
    correlation = current_correlation_id.get() or new_correlation_id()
    return Actor(name=f"token:{name}", role=role, correlation_id=correlation, grants=grants)


RuntimeDep = Annotated[Runtime, Depends(runtime)]
AdminDep = Annotated[Actor, Depends(admin)]
