"""provisiond's directory as a SCIM 2.0 service provider, mounted at ``/scim/v2``.

A sub-application of its own: SCIM errors (not problem+json), SCIM client tokens (not admin
tokens), and not part of the /api/v1 OpenAPI document. docs/scim-server.md is the guide.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response

from provisiond.api.deps import RuntimeDep
from provisiond.api.scim import bulk, errors
from provisiond.api.scim.deps import SCIM_PREFIX, BodyDep, CallerDep, base_url, search_query
from provisiond.api.scim.errors import scim_response
from provisiond.api.scim.resources import GROUPS, USERS, listed, routes, search_all
from provisiond.runtime import Runtime
from provisiond.services.inbound import ScimError, discovery

PREFIX = SCIM_PREFIX


def create_scim_app(rt: Runtime) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.runtime = rt
    errors.install(app)
    app.include_router(routes(USERS))
    app.include_router(routes(GROUPS))
    app.include_router(bulk.routes())

    @app.post("/.search")
    def search(request: Request, rt: RuntimeDep, _: CallerDep, body: BodyDep) -> Response:
        """Users and Groups at once, the parameters in a SearchRequest body."""
        return search_all(rt, search_query(body), base_url(request))

    @app.get("/ServiceProviderConfig")
    def service_provider_config(request: Request, rt: RuntimeDep, _: CallerDep) -> Response:
        """What this service provider supports (RFC 7643 §5)."""
        return scim_response(
            discovery.service_provider_config(base_url(request), rt.settings.max_body_bytes)
        )

    def _schemas(request: Request, rt: Runtime) -> list[dict[str, Any]]:
        with rt.db.session() as session:
            return discovery.schemas_of(session, base_url(request))

    def _one(items: list[dict[str, Any]], wanted: str, what: str) -> Response:
        for item in items:
            if str(item["id"]).lower() == wanted.lower():
                return scim_response(item)
        raise ScimError(404, None, f"no {what} {wanted!r}")

    def _listed(items: list[dict[str, Any]]) -> Response:
        return listed(len(items), 0, items)

    @app.get("/Schemas")
    def schemas(request: Request, rt: RuntimeDep, _: CallerDep) -> Response:
        """The User, enterprise, provisiond profile and Group schemas (RFC 7643 §7)."""
        return _listed(_schemas(request, rt))

    @app.get("/Schemas/{schema_id}")
    def schema(schema_id: str, request: Request, rt: RuntimeDep, _: CallerDep) -> Response:
        """One schema, by its URN."""
        return _one(_schemas(request, rt), schema_id, "schema")

    @app.get("/ResourceTypes")
    def resource_types(request: Request, _: CallerDep) -> Response:
        """User and Group (RFC 7643 §6)."""
        return _listed(discovery.resource_types(base_url(request)))

    @app.get("/ResourceTypes/{name}")
    def resource_type(name: str, request: Request, _: CallerDep) -> Response:
        """One resource type."""
        return _one(discovery.resource_types(base_url(request)), name, "resource type")

    return app
