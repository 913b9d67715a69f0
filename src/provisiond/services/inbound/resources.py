"""What Users and Groups share: meta and ETags, error translation, projection, paging."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from scim2_models import Error
from scim2_models.exceptions import SCIMException
from sqlalchemy import Select, SQLColumnExpression, func, select
from sqlalchemy.orm import Session

from provisiond.services.inbound import MAX_RESULTS, ScimError, invalid_value
from provisiond.services.inbound.filters import Attribute, InvalidFilter, Scope, compile_filter


def etag(body: dict[str, Any]) -> str:
    """A weak ETag of the representation: any change to what a client reads changes it,
    including membership, which moves no timestamp of the group's own."""
    digest = hashlib.sha256(
        json.dumps({k: v for k, v in body.items() if k != "meta"}, sort_keys=True, default=str)
        .encode()
    ).hexdigest()
    return f'W/"{digest[:32]}"'


def meta(
    resource_type: str, location: str, created: datetime, modified: datetime, body: dict[str, Any]
) -> dict[str, Any]:
    return {
        "resourceType": resource_type,
        "created": _iso(created),
        "lastModified": _iso(modified),
        "location": location,
        "version": etag(body),
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def validation_error(exc: ValidationError) -> ScimError:
    """scim2-models' reading of a pydantic error: the §3.12 keyword and the attribute."""
    error = Error.from_validation_errors(exc)[0]
    status = int(error.status or 400)
    return ScimError(status, error.scim_type or "invalidValue", error.detail or str(exc))


def scim_error_of(exc: SCIMException) -> ScimError:
    error = exc.to_error()
    return ScimError(int(error.status or 400), error.scim_type, error.detail or str(exc))


def project(
    body: dict[str, Any], attributes: Sequence[str], excluded: Sequence[str]
) -> dict[str, Any]:
    """``attributes`` / ``excludedAttributes`` (RFC 7644 §3.4.2.5) on a rendered resource.

    Names may be qualified by a schema URN and name a sub-attribute (``name.givenName``);
    ``id`` and ``schemas`` are always returned.
    """
    if not attributes and not excluded:
        return body
    wanted = [_split(name, body) for name in attributes]
    dropped = [_split(name, body) for name in excluded]
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in ("id", "schemas"):
            out[key] = value
            continue
        if key.startswith("urn:") and isinstance(value, dict):
            kept = _select(value, [p[1:] for p in wanted if p[0] == key.lower()],
                           [p[1:] for p in dropped if p[0] == key.lower()], bool(wanted))
            if kept:
                out[key] = kept
            continue
        kept_value = _select({key: value}, [p[1:] for p in wanted if p[0] == ""],
                             [p[1:] for p in dropped if p[0] == ""], bool(wanted))
        out.update(kept_value)
    return out


def _split(name: str, body: dict[str, Any]) -> tuple[str, ...]:
    """``urn:…:User:name.givenName`` -> (urn, "name", "givenname"); core names get urn "".

    The core schema's URN is dropped: its attributes sit at the top of the resource."""
    lowered = name.strip().lower()
    extensions = [key.lower() for key in body if key.startswith("urn:")]
    for urn in sorted(extensions, key=len, reverse=True):
        if lowered.startswith(urn + ":"):
            return (urn, *lowered[len(urn) + 1 :].split("."))
        if lowered == urn:
            return (urn,)
    schemas = [s.lower() for s in body.get("schemas", ())]
    for urn in schemas:
        if lowered.startswith(urn + ":"):
            lowered = lowered[len(urn) + 1 :]
    return ("", *lowered.split("."))


def _select(
    value: dict[str, Any], wanted: list[tuple[str, ...]], dropped: list[tuple[str, ...]],
    restrict: bool,
) -> dict[str, Any]:
    if restrict and any(len(path) == 0 for path in wanted):
        restrict = False  # the whole extension asked for
    out: dict[str, Any] = {}
    for key, item in value.items():
        low = key.lower()
        if any(path == (low,) for path in dropped):
            continue
        subs_dropped = [path[1:] for path in dropped if len(path) > 1 and path[0] == low]
        if restrict:
            if any(path == (low,) for path in wanted):
                out[key] = _drop_subs(item, subs_dropped)
                continue
            subs = [path[1] for path in wanted if len(path) > 1 and path[0] == low]
            if subs:
                out[key] = _keep_subs(item, subs)
            continue
        out[key] = _drop_subs(item, subs_dropped)
    return {k: v for k, v in out.items() if v not in ({}, [])}


def _keep_subs(item: Any, subs: Iterable[str]) -> Any:
    names = set(subs)
    if isinstance(item, dict):
        return {k: v for k, v in item.items() if k.lower() in names}
    if isinstance(item, list):
        return [_keep_subs(entry, names) for entry in item]
    return item


def _drop_subs(item: Any, paths: list[tuple[str, ...]]) -> Any:
    names = {path[0] for path in paths if path}
    if not names:
        return item
    if isinstance(item, dict):
        return {k: v for k, v in item.items() if k.lower() not in names}
    if isinstance(item, list):
        return [_drop_subs(entry, paths) for entry in item]
    return item


def page_window(start_index: int | None, count: int | None) -> tuple[int, int]:
    """(offset, limit) from ``startIndex``/``count`` (RFC 7644 §3.4.2.4: a startIndex under
    1 is 1, a negative count is 0), the count capped at MAX_RESULTS."""
    start = max(1, start_index if start_index is not None else 1)
    limit = MAX_RESULTS if count is None else max(0, min(count, MAX_RESULTS))
    return start - 1, limit


def sort_key(
    column: SQLColumnExpression[Any], dialect: str, case_exact: bool, folded: bool
) -> SQLColumnExpression[Any]:
    if not case_exact and not folded:
        column = func.lower(column)
    if dialect == "postgresql":
        column = column.collate("C")
    return column


@dataclass(frozen=True)
class Searchable:
    """How one resource type is searched: its table, filter scope, default and other orders."""

    model: Any  # the table class: Users or Groups
    scope: Callable[[Session], Scope]
    default_order: Attribute
    sort_attribute: Callable[[Scope, str], Attribute | None]


def search(
    session: Session,
    dialect: str,
    what: Searchable,
    *,
    filter_text: str | None,
    sort_by: str | None,
    descending: bool,
    offset: int,
    limit: int,
    across_types: bool = False,
) -> tuple[int, list[Any]]:
    """totalResults and one page of what ``filter_text`` selects, sorted by ``sort_by``
    (``across_types``: a root search, where an attribute this type lacks is false)."""
    scope = what.scope(session)
    statement = select(what.model)
    if filter_text:
        try:
            statement = statement.where(
                compile_filter(filter_text, scope, dialect, unknown_is_false=across_types)
            )
        except InvalidFilter as exc:
            raise ScimError(400, "invalidFilter", str(exc)) from None
    order = what.sort_attribute(scope, sort_by) if sort_by else what.default_order
    if order is None or order.kind == "boolean":
        raise invalid_value(f"cannot sort by {sort_by}: not a sortable attribute")
    key = sort_key(order.column, dialect, order.case_exact, order.folded)
    if filter_text:
        # Sort what the filter found: an index on the sort key would have SQLite walk every
        # row in order instead of using the filter's index (40 ms against 0.1 ms at 100k users
        # for meta.lastModified gt). Without a filter, the index gives pages in order.
        key = key.concat("")
    statement = statement.order_by(key.desc() if descending else key.asc(), what.model.id)
    return count_and_page(session, statement, offset, limit)


def count_and_page(
    session: Session, statement: Select[Any], offset: int, limit: int
) -> tuple[int, list[Any]]:
    rows = list(session.scalars(statement.offset(offset).limit(limit))) if limit else []
    if offset == 0 and len(rows) < limit:
        return len(rows), rows  # all of them: no count query (a userName lookup, most lists)
    total = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    return int(total or 0), rows
