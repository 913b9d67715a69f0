"""What every /scim/v2 request needs: its SCIM client, its body, its paging parameters."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from provisiond.api.deps import RuntimeDep
from provisiond.errors import Unauthorized
from provisiond.services import scim_clients
from provisiond.services.context import Actor, current_correlation_id, new_correlation_id
from provisiond.services.inbound import ScimError
from provisiond.services.tokens import PREFIX as ADMIN_PREFIX

SCIM_PREFIX = "/scim/v2"


@dataclass(frozen=True)
class Caller:
    """The SCIM client behind a request, and the actor its changes are logged under."""

    client_id: str
    actor: Actor


def bearer_token(request: Request) -> str:
    """The request's SCIM token, checked for shape only. Whose it is is looked up in the
    session of the route that needs it (``authenticated``). A plain function of the request,
    not a chain of dependencies: FastAPI's dependency solving was a sixth of a lookup's time."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    token = credentials.strip() if scheme.lower() == "bearer" else ""
    if not token:
        raise Unauthorized("send a SCIM token: Authorization: Bearer <token>")
    if token.startswith(ADMIN_PREFIX):
        # An admin token is never a SCIM credential: scim-token create makes one.
        raise Unauthorized(
            "an admin API token is not accepted on /scim/v2: use a SCIM token "
            "(provisiond scim-token create --name NAME)"
        )
    return token


TokenDep = Annotated[str, Depends(bearer_token)]


def authenticated(session: Session, token: str) -> Caller:
    """The SCIM client behind ``token``, looked up in the caller's own session: a read then
    costs one session (and one SQLite writer-lock turn), not two (bench/RESULTS.md §10)."""
    client = scim_clients.authenticate(session, token)
    correlation = current_correlation_id.get() or new_correlation_id()
    return Caller(
        client.id,
        Actor(name=scim_clients.actor_name(client), role="scim_client", correlation_id=correlation),
    )


def caller(rt: RuntimeDep, token: TokenDep) -> Caller:
    with rt.db.session() as session:
        return authenticated(session, token)


CallerDep = Annotated[Caller, Depends(caller)]


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise ScimError(400, "invalidSyntax", "the request has no body")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ScimError(400, "invalidSyntax", f"the body is not JSON: {exc}") from None


BodyDep = Annotated[Any, Depends(json_body)]


def base_url(request: Request) -> str:
    """This service provider's root (``…/scim/v2``), for ``meta.location`` and ``$ref``."""
    base = str(request.base_url).rstrip("/")
    # A mount does not move base_url: the prefix is added here (once, whatever the proxy).
    return base if base.endswith(SCIM_PREFIX) else base + SCIM_PREFIX


def _integer(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ScimError(400, "invalidValue", f"{name} must be an integer, not {raw!r}") from None


@dataclass(frozen=True)
class ListQuery:
    """The list parameters of RFC 7644 §3.4.2, from the query string or a SearchRequest."""

    filter: str | None = None
    start_index: int | None = None
    count: int | None = None
    sort_by: str | None = None
    descending: bool = False
    attributes: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ScimError(400, "invalidValue", "attributes are a list of attribute names")
    return tuple(v.strip() for v in value if v.strip())


def _order(value: Any) -> bool:
    if value is None or value == "":
        return False
    if not isinstance(value, str) or value.lower() not in ("ascending", "descending"):
        raise ScimError(400, "invalidValue", "sortOrder is ascending or descending")
    return value.lower() == "descending"


def list_query(request: Request) -> ListQuery:
    """The list parameters of the query string."""
    params = request.query_params
    return ListQuery(
        filter=params.get("filter") or None,
        start_index=_integer(request, "startIndex"),
        count=_integer(request, "count"),
        sort_by=params.get("sortBy") or None,
        descending=_order(params.get("sortOrder")),
        attributes=_names(params.get("attributes")),
        excluded=_names(params.get("excludedAttributes")),
    )


def projection(request: Request) -> tuple[tuple[str, ...], tuple[str, ...]]:
    params = request.query_params
    return _names(params.get("attributes")), _names(params.get("excludedAttributes"))


def search_query(body: Any) -> ListQuery:
    """A SearchRequest body (POST /.search, RFC 7644 §3.4.3)."""
    from provisiond.services.inbound import SEARCH_REQUEST

    if not isinstance(body, dict) or SEARCH_REQUEST not in (body.get("schemas") or []):
        raise ScimError(400, "invalidSyntax", f"schemas must be [{SEARCH_REQUEST!r}]")

    def integer(name: str) -> int | None:
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ScimError(400, "invalidValue", f"{name} must be an integer")
        return value

    filter_text = body.get("filter")
    if filter_text is not None and not isinstance(filter_text, str):
        raise ScimError(400, "invalidFilter", "filter must be a string")
    sort_by = body.get("sortBy")
    if sort_by is not None and not isinstance(sort_by, str):
        raise ScimError(400, "invalidValue", "sortBy must be a string")
    return ListQuery(
        filter=filter_text or None,
        start_index=integer("startIndex"),
        count=integer("count"),
        sort_by=sort_by or None,
        descending=_order(body.get("sortOrder")),
        attributes=_names(body.get("attributes")),
        excluded=_names(body.get("excludedAttributes")),
    )
