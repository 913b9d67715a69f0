"""/Users and /Groups: one set of routes, over the two resource kinds of services/inbound."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from scim2_models import Context
from sqlalchemy.orm import Session

from provisiond.api.deps import RuntimeDep, runtime
from provisiond.api.scim.deps import (
    BodyDep,
    Caller,
    CallerDep,
    ListQuery,
    TokenDep,
    authenticated,
    base_url,
    bearer_token,
    list_query,
    projection,
    search_query,
)
from provisiond.api.scim.errors import scim_response
from provisiond.errors import NotFound
from provisiond.runtime import Runtime
from provisiond.services.inbound import LIST_RESPONSE, ScimError
from provisiond.services.inbound import groups as scim_groups
from provisiond.services.inbound import users as scim_users
from provisiond.services.inbound.resources import Searchable, page_window, project, search
from provisiond.store.tables import Group, ScimClient, User


@dataclass(frozen=True)
class Kind:
    """How one resource type is read and written (the routes are the same for both)."""

    name: str  # "Users"
    row: type[Any]
    render: Callable[[Session, Any, str], dict[str, Any]]
    render_all: Callable[[Session, list[Any], str], list[dict[str, Any]]]  # a page's rows
    searchable: Searchable
    create: Callable[[Session, Any, Any, Any], Any]
    replace: Callable[[Session, Any, Any, Any], Any]
    patch: Callable[[Session, Any, Any, Any, str, str], Any]
    delete: Callable[[Session, Any, Any], None]
    patch_answers_body: bool  # a group's PATCH answers 204: its body can be 10,000 members

    def get(self, session: Session, resource_id: str) -> Any:
        row = session.get(self.row, resource_id)
        if row is None:
            raise NotFound(f"no {self.name[:-1].lower()} with id {resource_id!r}")
        return row


def _create_user(session: Session, actor: Any, client: Any, body: Any) -> Any:
    return scim_users.create(
        session, actor, client, scim_users.read_input(body, Context.RESOURCE_CREATION_REQUEST)
    )


def _replace_user(session: Session, actor: Any, row: Any, body: Any) -> Any:
    data = scim_users.read_input(body, Context.RESOURCE_REPLACEMENT_REQUEST)
    return scim_users.replace(session, actor, row, data)


USERS = Kind(
    name="Users",
    row=User,
    render=lambda session, row, base: scim_users.render_all(session, [row], base)[0],
    render_all=scim_users.render_all,
    searchable=scim_users.SEARCHABLE,
    create=_create_user,
    replace=_replace_user,
    patch=lambda s, actor, row, body, base, _dialect: scim_users.patch(s, actor, row, body, base),
    delete=scim_users.delete,
    patch_answers_body=True,
)
GROUPS = Kind(
    name="Groups",
    row=Group,
    render=scim_groups.render,
    render_all=lambda session, rows, base: [scim_groups.render(session, r, base) for r in rows],
    searchable=scim_groups.SEARCHABLE,
    create=scim_groups.create,
    replace=scim_groups.replace,
    patch=lambda s, actor, row, body, _base, dialect: scim_groups.patch(s, actor, row, body, dialect),
    delete=scim_groups.delete,
    patch_answers_body=False,
)


def _matches(header: str, current: str) -> bool:
    wanted = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in wanted or current.removeprefix("W/") in wanted


def _if_match(header: str | None, body: dict[str, Any]) -> None:
    if header and not _matches(header, body["meta"]["version"]):
        raise ScimError(412, None, "the resource changed since it was read (If-Match)")


# The writes, one directory change each in its own transaction: a single request and each
# operation of a /Bulk (api/scim/bulk.py) go through these same functions.


@dataclass(frozen=True)
class Written:
    """How a write is checked and answered: the base URL, the ``If-Match`` version (a bulk
    operation's ``version``), and whether the resource is rendered after it."""

    base: str
    if_match: str | None = None
    answer_body: bool = True


def create_resource(rt: Runtime, kind: Kind, caller: Caller, body: Any, base: str) -> dict[str, Any]:
    """POST: the new resource, rendered."""
    with rt.db.session() as session:
        client = session.get(ScimClient, caller.client_id)
        row = kind.create(session, caller.actor, client, body)
        session.flush()
        return kind.render(session, row, base)


def _write(
    rt: Runtime, kind: Kind, resource_id: str, how: Written, change: Callable[[Session, Any], Any]
) -> dict[str, Any] | None:
    """One write, checked against ``If-Match`` (412 on an older version) first."""
    with rt.db.session() as session:
        row = kind.get(session, resource_id)
        _if_match(how.if_match, kind.render(session, row, how.base))
        change(session, row)
        session.flush()
        return kind.render(session, row, how.base) if how.answer_body else None


def replace_resource(
    rt: Runtime, kind: Kind, caller: Caller, resource_id: str, body: Any, how: Written
) -> dict[str, Any] | None:
    """PUT."""
    return _write(rt, kind, resource_id, how,
                  lambda session, row: kind.replace(session, caller.actor, row, body))


def patch_resource(
    rt: Runtime, kind: Kind, caller: Caller, resource_id: str, body: Any, how: Written
) -> dict[str, Any] | None:
    """PATCH (RFC 7644 §3.5.2)."""
    dialect = rt.db.engine.dialect.name
    return _write(
        rt, kind, resource_id, how,
        lambda session, row: kind.patch(session, caller.actor, row, body, how.base, dialect),
    )


def delete_resource(rt: Runtime, kind: Kind, caller: Caller, resource_id: str, how: Written) -> None:
    """DELETE (a user is deprovisioned downstream first, in the same transaction)."""
    with rt.db.session() as session:
        row = kind.get(session, resource_id)
        _if_match(how.if_match, kind.render(session, row, how.base))
        kind.delete(session, caller.actor, row)


def _answer(body: dict[str, Any], request: Request, status: int = 200) -> Response:
    attributes, excluded = projection(request)
    headers = {"ETag": body["meta"]["version"], "Location": body["meta"]["location"]}
    return scim_response(project(body, attributes, excluded), status, headers)


def _list(rt: Runtime, kind: Kind, query: ListQuery, base: str, token: str) -> Response:
    offset, limit = page_window(query.start_index, query.count)
    with rt.db.session() as session:
        authenticated(session, token)
        total, rows = search(
            session,
            rt.db.engine.dialect.name,
            kind.searchable,
            filter_text=query.filter,
            sort_by=query.sort_by,
            descending=query.descending,
            offset=offset,
            limit=limit,
        )
        resources = [
            project(body, query.attributes, query.excluded)
            for body in kind.render_all(session, rows, base)
        ]
    return listed(total, offset, resources)


def search_all(rt: Runtime, query: ListQuery, base: str) -> Response:
    """POST /.search at the root: Users then Groups, one page over both (RFC 7644 §3.4.3).

    An attribute one type lacks is false for that type (§3.4.2.1), not an error.
    ``sortBy`` must name an attribute both types have."""
    offset, limit = page_window(query.start_index, query.count)
    dialect = rt.db.engine.dialect.name
    total = 0
    resources: list[dict[str, Any]] = []
    args: dict[str, Any] = {"filter_text": query.filter, "sort_by": query.sort_by,
                            "descending": query.descending, "across_types": True}
    with rt.db.session() as session:
        for kind in (USERS, GROUPS):
            count, _ = search(session, dialect, kind.searchable, **args, offset=0, limit=0)
            skip, room = max(0, offset - total), limit - len(resources)
            if room > 0 and skip < count:
                _, rows = search(
                    session, dialect, kind.searchable, **args, offset=skip, limit=room
                )
                resources += [
                    project(body, query.attributes, query.excluded)
                    for body in kind.render_all(session, rows, base)
                ]
            total += count
    return listed(total, offset, resources)


def list_body(total: int, offset: int, resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A ListResponse (RFC 7644 §3.4.2)."""
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": offset + 1,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def listed(total: int, offset: int, resources: list[dict[str, Any]]) -> Response:
    return scim_response(list_body(total, offset, resources))


def routes(kind: Kind) -> APIRouter:
    router = APIRouter(prefix=f"/{kind.name}")

    @router.get("")
    def list_resources(
        request: Request,
    ) -> Response:
        """A page of the resources a filter selects (RFC 7644 §3.4.2)."""
        # Everything read from the request here, not by dependencies: the lookup IdPs make
        # before every write is the hottest route (bench/RESULTS.md §10).
        token = bearer_token(request)
        return _list(runtime(request), kind, list_query(request), base_url(request), token)

    @router.post("/.search")
    def search(request: Request, rt: RuntimeDep, token: TokenDep, body: BodyDep) -> Response:
        """The same, the parameters in a SearchRequest body (RFC 7644 §3.4.3)."""
        return _list(rt, kind, search_query(body), base_url(request), token)

    @router.post("")
    def create(request: Request, rt: RuntimeDep, caller: CallerDep, body: BodyDep) -> Response:
        """Create; 409 uniqueness if the name is taken."""
        return _answer(create_resource(rt, kind, caller, body, base_url(request)), request, 201)

    @router.get("/{resource_id}")
    def read(resource_id: str, request: Request) -> Response:
        """One resource; 304 if ``If-None-Match`` names its current version."""
        token = bearer_token(request)
        with runtime(request).db.session() as session:
            authenticated(session, token)
            out = kind.render(session, kind.get(session, resource_id), base_url(request))
        none_match = request.headers.get("if-none-match")
        if none_match and _matches(none_match, out["meta"]["version"]):
            return Response(status_code=304, headers={"ETag": out["meta"]["version"]})
        return _answer(out, request)

    def answered(out: dict[str, Any] | None, request: Request) -> Response:
        return Response(status_code=204) if out is None else _answer(out, request)

    @router.put("/{resource_id}")
    def replace(
        resource_id: str, request: Request, rt: RuntimeDep, caller: CallerDep, body: BodyDep
    ) -> Response:
        """Replace the whole resource; 412 if ``If-Match`` names an older version."""
        out = replace_resource(rt, kind, caller, resource_id, body, Written(base_url(request),
                               request.headers.get("if-match")))
        return answered(out, request)

    @router.patch("/{resource_id}")
    def patch(
        resource_id: str, request: Request, rt: RuntimeDep, caller: CallerDep, body: BodyDep
    ) -> Response:
        """Apply a PatchOp (RFC 7644 §3.5.2, Okta's and Entra's dialects too)."""
        answer_body = kind.patch_answers_body or "attributes" in request.query_params
        out = patch_resource(rt, kind, caller, resource_id, body, Written(
            base_url(request), request.headers.get("if-match"), answer_body))
        return answered(out, request)

    @router.delete("/{resource_id}", status_code=204)
    def delete(resource_id: str, request: Request, rt: RuntimeDep, caller: CallerDep) -> Response:
        """Delete (a user is deprovisioned downstream first, in the same transaction)."""
        delete_resource(rt, kind, caller, resource_id,
                        Written(base_url(request), request.headers.get("if-match")))
        return Response(status_code=204)

    return router
