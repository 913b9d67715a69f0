"""Reading a SCIM app's answers: a status as provisiond's error, a body as the JSON object it
must be, resources as provisiond's types, checked only for what is used from them.

Pure functions of an ``httpx.Response`` (already read, within its size cap), shared by the
connector's user and group operations (connectors/scim.py, connectors/scim_groups.py) and
its HTTP exchange (connectors/scim_http.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic import ValidationError
from scim2_models import Context, Error, ListResponse, ServiceProviderConfig

from provisiond.connectors.base import Quirks, RemoteGroup, RemoteUser
from provisiond.connectors.payloads import ScimUser
from provisiond.connectors.remote_ids import check_remote_id
from provisiond.domain.dialects import ScimProfile
from provisiond.errors import (
    RateLimited,
    RemoteUnsupported,
    TerminalError,
    TransientError,
)

SCIM_MEDIA_TYPE = "application/scim+json"
# What an answer to a PATCH may mean "this app does not do PATCH": 501 (RFC 7644 §3.12), 405.
_UNSUPPORTED = (405, 501)
UserListResponse = ListResponse[ScimUser]


def require_success(response: httpx.Response, what: str) -> None:
    """Only a 2xx means the change was made; a 409 (or a redirect) on an update or a delete is
    a failure to see, never a success (the app still holds what it held)."""
    if not 200 <= response.status_code < 300:
        raise TerminalError(problem_of(response, what), http_status=response.status_code)


def raise_for_status(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status < 400 or status in (404, 409):
        return  # 404 and 409 mean something to the caller
    if status == 429:
        raise RateLimited(
            problem_of(response, what), retry_after=retry_after(response.headers.get("Retry-After"))
        )
    if status in (401, 403):
        raise TerminalError(
            f"the application rejected the credentials: {problem_of(response, what)}",
            http_status=status,
        )
    if status in _UNSUPPORTED:  # RFC 7644 §3.12: not supported; asking again changes nothing
        raise RemoteUnsupported(problem_of(response, what), http_status=status)
    if status >= 500 or status == 408:
        raise TransientError(problem_of(response, what), http_status=status)
    raise TerminalError(problem_of(response, what), http_status=status)


def problem_of(response: httpx.Response, what: str) -> str:
    """``what -> status reason: detail``, reading an RFC 7644 §3.12 error body when there is one.

    An excerpt of the body is quoted only from a JSON answer: an HTML page or a banner from
    whatever listens at the URL would make the connection test a way to read other hosts."""
    head = f"{what} answered {response.status_code} {response.reason_phrase}".rstrip()
    if media_type(response) not in (SCIM_MEDIA_TYPE, "application/json"):
        shown = media_type(response) or "no content type"
        return f"{head} ({shown}, not SCIM JSON; not shown)" if response.content else head
    try:
        error = Error.model_validate(response.json())
    except (ValueError, ValidationError):
        text = "".join(c for c in response.text.strip() if c.isprintable())[:200]
        return f"{head}: {text}" if text else head
    parts = [part for part in (error.scim_type, error.detail) if part]
    return f"{head}: {' - '.join(parts)}" if parts else head


def body_of(response: httpx.Response, what: str, *, allow_empty: bool = False) -> dict[str, Any]:
    if response.status_code == 404:
        raise TerminalError(f"{what} answered 404 Not Found", http_status=404)
    if allow_empty and (response.status_code == 204 or not response.content):
        return {}
    content_type = media_type(response)
    if content_type not in (SCIM_MEDIA_TYPE, "application/json"):
        raise TerminalError(
            f"{what} answered {content_type or 'no content type'}, not SCIM JSON: "
            "is the base URL the SCIM root?",
            http_status=response.status_code,
        )
    try:
        body = response.json()
    except ValueError as exc:
        raise TerminalError(f"{what} answered malformed JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise TerminalError(f"{what} answered JSON that is not a SCIM object")
    return body


def media_type(response: httpx.Response) -> str:
    return str(response.headers.get("Content-Type", "")).split(";")[0].strip().lower()


def remote_user(body: Mapping[str, Any], what: str) -> RemoteUser:
    remote_id = body.get("id")
    if not isinstance(remote_id, str) or not remote_id:
        raise TerminalError(f"{what} answered a resource without an id (RFC 7643 §3.1)")
    check_remote_id(remote_id, what)
    return RemoteUser(remote_id=remote_id, attributes=dict(body))


def group_of(body: Mapping[str, Any], what: str) -> RemoteGroup:
    """A SCIM Group (RFC 7643 §4.2): an id, a displayName, members by ``value``."""
    remote_id, name = body.get("id"), body.get("displayName")
    if not isinstance(remote_id, str) or not remote_id:
        raise TerminalError(f"{what} answered a group without an id (RFC 7643 §3.1)")
    if not isinstance(name, str):
        raise TerminalError(f"{what} answered a group without a displayName (RFC 7643 §4.2)")
    check_remote_id(remote_id, what)
    members = body.get("members") or []
    if not isinstance(members, list):
        raise TerminalError(f"{what} answered members that are not a list")
    values = {m.get("value") for m in members if isinstance(m, dict)}
    return RemoteGroup(remote_id, name, frozenset(v for v in values if isinstance(v, str) and v))


def groups_of(body: Mapping[str, Any], what: str) -> list[RemoteGroup]:
    resources = body.get("Resources") or []
    if not isinstance(resources, list):
        raise TerminalError(f"{what}: the answer is not a SCIM ListResponse")
    return [group_of(resource, what) for resource in resources if isinstance(resource, dict)]


def total_of(body: Mapping[str, Any]) -> int | None:
    """``totalResults`` when the app sends a usable one (RFC 7644 §3.4.2: it is REQUIRED, yet
    some apps leave it out or send it as a string)."""
    total = body.get("totalResults")
    if isinstance(total, str) and total.isdigit():
        total = int(total)
    return total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None


def parse_list(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    # An empty answer (what the lookup before every create gets) is the same few bytes for
    # every lookup of an app: one that passed already passes again, without scim2-models
    # (~0.3 ms of the event loop's time per create, measured).
    empty = None if body.get("Resources") else json.dumps(body, sort_keys=True)
    if empty is not None and empty in _EMPTY_LISTINGS:
        return []
    try:
        listing = UserListResponse.model_validate(body, scim_ctx=Context.SEARCH_RESPONSE)
    except ValidationError as exc:
        raise TerminalError(f"the answer is not a SCIM ListResponse: {first_error(exc)}") from exc
    del listing  # validated; the raw resources keep what the model would drop
    if empty is not None:
        if len(_EMPTY_LISTINGS) >= 256:
            _EMPTY_LISTINGS.clear()
        _EMPTY_LISTINGS.add(empty)
    resources = body.get("Resources") or []
    return [dict(resource) for resource in resources]


_EMPTY_LISTINGS: set[str] = set()  # empty ListResponse bodies validated, as canonical JSON


def quirks_from(body: Mapping[str, Any], profile: ScimProfile) -> Quirks:
    """The app's profile, narrowed by what its ServiceProviderConfig announces."""
    try:
        config = ServiceProviderConfig.model_validate(
            body, scim_ctx=Context.RESOURCE_QUERY_RESPONSE
        )
    except ValidationError as exc:
        raise TerminalError(
            f"the answer is not a SCIM ServiceProviderConfig: {first_error(exc)}"
        ) from exc
    narrowed = profile.narrowed(
        patch=bool(config.patch and config.patch.supported),
        filter=bool(config.filter and config.filter.supported),
        max_results=config.filter.max_results if config.filter else None,
    )
    return Quirks.of(narrowed, etag=bool(config.etag and config.etag.supported))


def first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "(root)"
    return f"{where}: {first.get('msg')}"


def retry_after(value: str | None) -> float | None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
