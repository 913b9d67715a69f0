"""The SCIM 2.0 connector: a thin async httpx layer, payloads built and checked with scim2-models.

Why not scim2-client: its current release runs on ``httpx2`` (Pydantic's fork), not httpx, and it
validates every response strictly, so one odd attribute from a real app loses a create that
succeeded. Here requests are built as pure data with scim2-models (User, PatchOp, ListResponse,
Error, ServiceProviderConfig) and sent through one pooled ``httpx.AsyncClient`` per app, the
single I/O seam that tests can point at a misbehaving transport.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import deque
from collections.abc import AsyncGenerator, Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote_plus, urlencode

import httpx
from pydantic import ValidationError
from scim2_models import (
    Context,
    Error,
    ListResponse,
    ServiceProviderConfig,
)

from provisiond import __version__
from provisiond.config import DEFAULT_MAX_RESPONSE_BYTES
from provisiond.connectors.base import (
    Change,
    ConnectionReport,
    ConnectionStep,
    Page,
    Quirks,
    RemoteGroup,
    RemoteUser,
)
from provisiond.connectors.bodies import ACCEPT_ENCODING, TooLarge, read_bounded
from provisiond.connectors.destinations import (
    DestinationPolicy,
    DestinationRefused,
    guarded_transport,
)
from provisiond.connectors.payloads import (
    ScimUser,
    patch_body,
    user_payload,
)
from provisiond.connectors.remote_ids import check_remote_id, segment
from provisiond.connectors.transport import AiohttpTransport
from provisiond.domain.apps import (
    BasicAuth,
    BearerAuth,
    OAuth2ClientCredentials,
    ScimConnectorSettings,
)
from provisiond.errors import (
    ConnectorError,
    RateLimited,
    RemoteConflict,
    RemoteNotFound,
    TerminalError,
    TransientError,
)

SCIM_MEDIA_TYPE = "application/scim+json"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
# Member values one PATCH carries at most: big pushes go in a few requests, not one per member,
# yet no request grows past what targets accept (Entra caps a PATCH at about 1,000 values).
MEMBERS_PER_REQUEST = 500
# A ``members[value eq "…"]`` removal is one filter pass over the group at the target: at 5,000
# members scim2-server takes ~0.15 s for each (measured), so removals get a budget of their own.
REMOVALS_PER_REQUEST = 25
# Beyond this many removals one ``replace`` of the whole member list is far cheaper (0.24 s at
# 5,000 members, against ~40 s for 250 removals), as long as the list itself stays moderate.
REPLACE_ABOVE_REMOVALS = 100
REPLACE_MAX_MEMBERS = 10_000
UserListResponse = ListResponse[ScimUser]
# A token response is a few hundred bytes (RFC 6749 §5.1); a larger one is not read into memory.
TOKEN_RESPONSE_MAX_BYTES = 64 * 1024


class ScimConnector:
    """One SCIM 2.0 application. Safe to share between the tasks of one event loop."""

    def __init__(
        self,
        settings: ScimConnectorSettings,
        *,
        concurrency: int = 4,
        rate_limit_per_second: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: DestinationPolicy | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        """``transport`` replaces the network (tests' in-process targets); without it every
        connection is checked against ``policy`` (by default: no loopback, link-local or
        metadata addresses)."""
        self.settings = settings
        self.max_response_bytes = max_response_bytes
        policy = policy or DestinationPolicy()
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.AsyncClient(
            base_url=settings.base_url + "/",
            auth=_auth(settings, transport, max_response_bytes, policy),
            timeout=httpx.Timeout(settings.timeout_seconds),
            headers={
                "Accept": SCIM_MEDIA_TYPE,
                "Accept-Encoding": ACCEPT_ENCODING,
                "User-Agent": f"provisiond/{__version__}",
            },
            transport=transport or AiohttpTransport(policy, limits),
            # Proxies from the environment would bypass the destination policy (the address
            # connected to would be the proxy's) and could read the app's credentials.
            trust_env=False,
        )
        # Absolute URLs, built here rather than merged with base_url by httpx on every request
        # (a third of httpx's cost of building one, measured); the fixed paths kept parsed.
        self._root = settings.base_url + "/"
        self._urls: dict[str, httpx.URL] = {}
        self._gate = asyncio.Semaphore(concurrency)
        self._bucket = _TokenBucket(rate_limit_per_second) if rate_limit_per_second else None
        self._quirks: Quirks | None = None
        self._discovery = asyncio.Lock()

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- discovery and connection test -------------------------------------------------------

    async def quirks(self) -> Quirks:
        if self._quirks is not None:
            return self._quirks
        async with self._discovery:  # the first tasks of an app must not each discover it
            return await self._discover()

    async def _discover(self) -> Quirks:
        if self._quirks is None:
            response = await self._send("GET", "ServiceProviderConfig")
            if response.status_code == 404:
                self._quirks = Quirks()  # not published: assume the RFC's common ground
            else:
                self._quirks = _quirks_from(_body(response, "ServiceProviderConfig"))
        return self._quirks

    async def test_connection(self) -> ConnectionReport:
        """Discovery, then an authenticated ``GET /Users?count=1``; says precisely what failed."""
        report = ConnectionReport()
        url = self.settings.base_url
        try:
            response = await self._send("GET", "ServiceProviderConfig")
        except ConnectorError as exc:
            report.steps.append(_failed("discovery", exc))
            return report
        spc_missing = response.status_code == 404
        if not spc_missing:
            try:
                report.quirks = self._quirks = _quirks_from(
                    _body(response, "GET /ServiceProviderConfig")
                )
            except ConnectorError as exc:
                report.steps.append(_failed("discovery", exc))
                return report
        try:
            response = await self._send("GET", "Users", params={"startIndex": 1, "count": 1})
            if response.status_code == 404:
                raise TerminalError(
                    f"{url}/Users answered 404 Not Found: the base URL is not a SCIM root "
                    "(it usually ends in /scim/v2)",
                    http_status=404,
                )
            listing = _body(response, "GET /Users")
            _parse_list(listing)
        except ConnectorError as exc:
            if spc_missing:
                report.steps.append(_failed("discovery", exc))
            else:
                report.steps.append(_discovery_step(report.quirks))
                report.steps.append(_failed("authenticated read", exc))
            return report
        if spc_missing:
            report.quirks = self._quirks = Quirks()
            report.steps.append(
                ConnectionStep(
                    "discovery",
                    True,
                    "no ServiceProviderConfig published; assuming PATCH and filters",
                )
            )
        else:
            report.steps.append(_discovery_step(report.quirks))
        total = listing.get("totalResults", "?")
        report.steps.append(
            ConnectionStep("authenticated read", True, f"GET /Users answered, {total} users")
        )
        return report

    # -- users --------------------------------------------------------------------------------

    async def find_user(self, attribute: str, value: str) -> RemoteUser | None:
        quirks = await self.quirks()
        if not quirks.filter:
            return None  # a create that collides then answers 409 and is adopted
        response = await self._send(
            "GET",
            "Users",
            params={"filter": f'{attribute} eq "{_quoted(value)}"', "startIndex": 1, "count": 2},
        )
        resources = _parse_list(_body(response, "GET /Users?filter"))
        if len(resources) > 1:
            raise TerminalError(
                f"{len(resources)} accounts match {attribute} eq {value!r}: refusing to guess"
            )
        return _remote(resources[0], "GET /Users?filter") if resources else None

    async def holds_no_users(self) -> bool:
        """Whether the app holds no user at all; False when its answer cannot say."""
        response = await self._send("GET", "Users", params={"startIndex": 1, "count": 1})
        body = _body(response, "GET /Users")
        total = body.get("totalResults")
        return isinstance(total, int) and total == 0 and not body.get("Resources")

    async def get_user(self, remote_id: str) -> RemoteUser | None:
        response = await self._send("GET", f"Users/{segment(remote_id)}")
        if response.status_code == 404:
            return None
        return _remote(_body(response, "GET /Users/{id}"), "GET /Users/{id}")

    async def list_users(self, start_index: int, count: int) -> Page:
        response = await self._send(
            "GET", "Users", params={"startIndex": start_index, "count": count}
        )
        body = _body(response, "GET /Users")
        users = [_remote(resource, "GET /Users") for resource in _parse_list(body)]
        return Page(users, _total(body), start_index)

    async def create_user(self, attributes: Mapping[str, Any]) -> RemoteUser:
        payload = user_payload(attributes, Context.RESOURCE_CREATION_REQUEST)
        response = await self._send("POST", "Users", body=payload)
        if response.status_code == 409:
            raise RemoteConflict(_problem(response, "POST /Users"), http_status=409)
        return _remote(_body(response, "POST /Users"), "POST /Users")

    async def update_user(
        self, remote_id: str, changes: Sequence[Change], attributes: Mapping[str, Any]
    ) -> None:
        quirks = await self.quirks()
        if quirks.patch:
            body = patch_body(_patch_paths(changes))
            response = await self._send("PATCH", f"Users/{segment(remote_id)}", body=body)
            what = "PATCH /Users/{id}"
        else:
            # RFC 7644 §3.5.1: PUT replaces the whole resource; send all that provisiond manages.
            body = user_payload(attributes, Context.RESOURCE_REPLACEMENT_REQUEST)
            body["id"] = remote_id
            response = await self._send("PUT", f"Users/{segment(remote_id)}", body=body)
            what = "PUT /Users/{id}"
        if response.status_code == 404:
            raise RemoteNotFound(
                f"{what}: the account {remote_id} no longer exists", http_status=404
            )
        _require_success(response, what)
        _body(response, what, allow_empty=True)

    async def delete_user(self, remote_id: str) -> None:
        response = await self._send("DELETE", f"Users/{segment(remote_id)}")
        if response.status_code == 404:
            return  # already gone: the goal is reached
        _require_success(response, "DELETE /Users/{id}")

    # -- groups -------------------------------------------------------------------------------

    async def find_group(self, display_name: str) -> RemoteGroup | None:
        """The app's group of that name (case-insensitive, RFC 7643 §4.2), if any."""
        quirks = await self.quirks()
        if quirks.filter:
            response = await self._send(
                "GET",
                "Groups",
                params={
                    "filter": f'displayName eq "{_quoted(display_name)}"',
                    "startIndex": 1,
                    "count": 2,
                },
            )
            body = _body(response, "GET /Groups?filter")
            found = _groups(body, "GET /Groups?filter")
            total = int(body.get("totalResults") or len(found))
            if total > 1 and len(found) > 1:
                raise TerminalError(
                    f"{total} groups in the app are named {display_name!r}: refusing to guess"
                )
        else:  # no filter: page through the groups
            found, start = [], 1
            while True:
                response = await self._send(
                    "GET", "Groups", params={"startIndex": start, "count": quirks.max_results}
                )
                body = _body(response, "GET /Groups")
                page = _groups(body, "GET /Groups")
                found += [g for g in page if g.display_name.casefold() == display_name.casefold()]
                start += len(page)
                listed = body.get("totalResults")
                # Without totalResults, a short page is the last one.
                last = (
                    start > int(listed) if listed is not None else len(page) < quirks.max_results
                )
                if not page or last:
                    break
        found = [g for g in found if g.display_name.casefold() == display_name.casefold()]
        if len(found) > 1:
            raise TerminalError(
                f"{len(found)} groups in the app are named {display_name!r}: refusing to guess"
            )
        return found[0] if found else None

    async def get_group(self, remote_id: str) -> RemoteGroup | None:
        response = await self._send("GET", f"Groups/{segment(remote_id)}")
        if response.status_code == 404:
            return None
        return _group(_body(response, "GET /Groups/{id}"), "GET /Groups/{id}")

    async def list_groups(self, start_index: int, count: int) -> Page:
        response = await self._send(
            "GET", "Groups", params={"startIndex": start_index, "count": count}
        )
        body = _body(response, "GET /Groups")
        return Page(_groups(body, "GET /Groups"), _total(body), start_index)

    async def create_group(self, display_name: str, members: Sequence[str]) -> RemoteGroup:
        body = {"schemas": [CORE_GROUP], "displayName": display_name, "members": _refs(members)}
        response = await self._send("POST", "Groups", body=body)
        if response.status_code == 409:
            raise RemoteConflict(_problem(response, "POST /Groups"), http_status=409)
        created = _group(_body(response, "POST /Groups"), "POST /Groups")
        return RemoteGroup(created.remote_id, display_name, frozenset(members))

    async def update_group(
        self,
        remote_id: str,
        *,
        display_name: str | None = None,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        members: Sequence[str] | None = None,
    ) -> int:
        """PATCH add/remove of members (``members[value eq "…"]`` for a removal, RFC 7644
        §3.5.2.2), in requests of at most MEMBERS_PER_REQUEST values and REMOVALS_PER_REQUEST
        removals; a rename rides on the first. Many removals, given the whole new member list
        (``members``), are one ``replace`` of ``members`` instead (§3.5.2.3). Returns the number
        of requests sent."""
        rename: list[dict[str, Any]] = (
            [{"op": "replace", "path": "displayName", "value": display_name}]
            if display_name is not None
            else []
        )
        if (
            members is not None
            and len(remove) > REPLACE_ABOVE_REMOVALS
            and len(members) <= REPLACE_MAX_MEMBERS
        ):
            replace = {"op": "replace", "path": "members", "value": _refs(members)}
            await self._patch_group(remote_id, [*rename, replace])
            return 1
        removals = [
            {"op": "remove", "path": f'members[value eq "{_quoted(member)}"]'} for member in remove
        ]
        additions = list(add)
        sent = 0
        while rename or removals or additions:
            # Each request is filled up to the bound: removals first, then additions.
            taken, removals = removals[:REMOVALS_PER_REQUEST], removals[REMOVALS_PER_REQUEST:]
            operations: list[dict[str, Any]] = [*rename, *taken]
            rename = []
            room = MEMBERS_PER_REQUEST - len(taken)
            if room and additions:
                operations.append(
                    {"op": "add", "path": "members", "value": _refs(additions[:room])}
                )
                additions = additions[room:]
            await self._patch_group(remote_id, operations)
            sent += 1
        return sent

    async def _patch_group(self, remote_id: str, operations: list[dict[str, Any]]) -> None:
        body = {"schemas": [PATCH_OP], "Operations": operations}
        response = await self._send("PATCH", f"Groups/{segment(remote_id)}", body=body)
        if response.status_code == 404:
            raise RemoteNotFound(
                f"PATCH /Groups/{{id}}: the group {remote_id} no longer exists", http_status=404
            )
        _require_success(response, "PATCH /Groups/{id}")

    async def replace_group(
        self, remote_id: str, display_name: str, members: Sequence[str]
    ) -> None:
        """PUT the whole group (RFC 7644 §3.5.1), for an app without PATCH."""
        body = {
            "schemas": [CORE_GROUP],
            "id": remote_id,
            "displayName": display_name,
            "members": _refs(members),
        }
        response = await self._send("PUT", f"Groups/{segment(remote_id)}", body=body)
        if response.status_code == 404:
            raise RemoteNotFound(
                f"PUT /Groups/{{id}}: the group {remote_id} no longer exists", http_status=404
            )
        _require_success(response, "PUT /Groups/{id}")

    async def delete_group(self, remote_id: str) -> None:
        response = await self._send("DELETE", f"Groups/{segment(remote_id)}")
        if response.status_code == 404:
            return  # already gone
        _require_success(response, "DELETE /Groups/{id}")

    # -- transport ----------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        if self._bucket is not None:
            await self._bucket.take()
        content = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": SCIM_MEDIA_TYPE} if content is not None else None
        target = f"{self.settings.base_url}/{path}"
        deadline = self.settings.request_deadline_seconds
        async with self._gate:
            # httpx's timeouts bound each read, so a target that drips its answer a byte at a
            # time never trips them: the whole exchange (the auth flow, the send, every byte of
            # the body) gets one deadline. Waiting for the rate limit and the gate is not charged.
            timer = asyncio.timeout(deadline)
            request = self._client.build_request(
                method, self._url(path, params), content=content, headers=headers
            )
            try:
                async with timer:
                    # Streamed, so the size cap applies while reading, under the deadline.
                    streamed = await self._client.send(request, stream=True)
                    try:
                        response = await read_bounded(
                            streamed, self.max_response_bytes, f"{method} /{path.split('?')[0]}"
                        )
                    finally:
                        await streamed.aclose()
            except TimeoutError as exc:
                if timer.expired():
                    raise TransientError(
                        f"{method} {target}: the app did not answer within {deadline:g} s "
                        "(total deadline)"
                    ) from exc
                raise TransientError(f"{method} {target}: timed out: {exc}") from exc
            except httpx.TimeoutException as exc:
                raise TransientError(
                    f"{method} {target}: no answer within {self.settings.timeout_seconds:g} s"
                ) from exc
            except httpx.ConnectError as exc:
                if _is_tls_failure(exc):
                    raise TerminalError(f"TLS handshake with {target} failed: {exc}") from exc
                raise TransientError(
                    f"cannot reach {target}: {exc or 'connection failed'}"
                ) from exc
            except httpx.HTTPError as exc:
                raise TransientError(f"{method} {target}: {type(exc).__name__}: {exc}") from exc
        _raise_for_status(response, f"{method} /{path.split('?')[0]}")
        return response


    def _url(self, path: str, params: Mapping[str, Any] | None) -> httpx.URL:
        """The request's absolute URL; the same as httpx's merge of ``path`` and ``params``
        with the base URL (urlencode quotes as httpx.QueryParams does)."""
        if params:
            return httpx.URL(f"{self._root}{path}?{urlencode(params)}")
        url = self._urls.get(path)
        if url is None:
            url = httpx.URL(self._root + path)
            if "/" not in path:  # Users, Groups, ServiceProviderConfig: not one per account
                self._urls[path] = url
        return url


# -- pure helpers: building requests and checking responses ------------------------------------


def _patch_paths(changes: Sequence[Change]) -> list[tuple[str, Any]]:
    """(path, value) per PATCH operation. An extension's attributes are addressed one by one
    as ``urn:...:User:department`` (RFC 7644 §3.10): the URN alone is not an attrPath."""
    paths: list[tuple[str, Any]] = []
    for change in changes:
        if change.attribute.startswith("urn:") and isinstance(change.new or change.old, dict):
            new, old = change.new or {}, change.old or {}
            for name in sorted(set(new) | set(old)):
                if new.get(name) != old.get(name):
                    paths.append((f"{change.attribute}:{name}", new.get(name)))
        else:
            paths.append((change.attribute, change.new))
    return paths


def _require_success(response: httpx.Response, what: str) -> None:
    """Only a 2xx means the change was made; a 409 (or a redirect) on an update or a delete is
    a failure to see, never a success (the app still holds what it held)."""
    if not 200 <= response.status_code < 300:
        raise TerminalError(_problem(response, what), http_status=response.status_code)


def _raise_for_status(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status < 400 or status in (404, 409):
        return  # 404 and 409 mean something to the caller
    if status == 429:
        raise RateLimited(
            _problem(response, what), retry_after=_retry_after(response.headers.get("Retry-After"))
        )
    if status in (401, 403):
        raise TerminalError(
            f"the application rejected the credentials: {_problem(response, what)}",
            http_status=status,
        )
    if status >= 500 or status == 408:
        raise TransientError(_problem(response, what), http_status=status)
    raise TerminalError(_problem(response, what), http_status=status)


def _problem(response: httpx.Response, what: str) -> str:
    """``what -> status reason: detail``, reading an RFC 7644 §3.12 error body when there is one.

    An excerpt of the body is quoted only from a JSON answer: an HTML page or a banner from
    whatever listens at the URL would make the connection test a way to read other hosts."""
    head = f"{what} answered {response.status_code} {response.reason_phrase}".rstrip()
    if _content_type(response) not in (SCIM_MEDIA_TYPE, "application/json"):
        shown = _content_type(response) or "no content type"
        return f"{head} ({shown}, not SCIM JSON; not shown)" if response.content else head
    try:
        error = Error.model_validate(response.json())
    except (ValueError, ValidationError):
        text = "".join(c for c in response.text.strip() if c.isprintable())[:200]
        return f"{head}: {text}" if text else head
    parts = [part for part in (error.scim_type, error.detail) if part]
    return f"{head}: {' - '.join(parts)}" if parts else head


def _body(response: httpx.Response, what: str, *, allow_empty: bool = False) -> dict[str, Any]:
    if response.status_code == 404:
        raise TerminalError(f"{what} answered 404 Not Found", http_status=404)
    if allow_empty and (response.status_code == 204 or not response.content):
        return {}
    content_type = _content_type(response)
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


def _content_type(response: httpx.Response) -> str:
    return str(response.headers.get("Content-Type", "")).split(";")[0].strip().lower()


def _remote(body: Mapping[str, Any], what: str) -> RemoteUser:
    remote_id = body.get("id")
    if not isinstance(remote_id, str) or not remote_id:
        raise TerminalError(f"{what} answered a resource without an id (RFC 7643 §3.1)")
    check_remote_id(remote_id, what)
    return RemoteUser(remote_id=remote_id, attributes=dict(body))


def _refs(members: Sequence[str]) -> list[dict[str, str]]:
    return [{"value": member} for member in members]


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _group(body: Mapping[str, Any], what: str) -> RemoteGroup:
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


def _groups(body: Mapping[str, Any], what: str) -> list[RemoteGroup]:
    resources = body.get("Resources") or []
    if not isinstance(resources, list):
        raise TerminalError(f"{what}: the answer is not a SCIM ListResponse")
    return [_group(resource, what) for resource in resources if isinstance(resource, dict)]


def _total(body: Mapping[str, Any]) -> int | None:
    """``totalResults`` when the app sends a usable one (RFC 7644 §3.4.2: it is REQUIRED, yet
    some apps leave it out or send it as a string)."""
    total = body.get("totalResults")
    if isinstance(total, str) and total.isdigit():
        total = int(total)
    return total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None


def _parse_list(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    try:
        listing = UserListResponse.model_validate(body, scim_ctx=Context.SEARCH_RESPONSE)
    except ValidationError as exc:
        raise TerminalError(f"the answer is not a SCIM ListResponse: {_first_error(exc)}") from exc
    del listing  # validated; the raw resources keep what the model would drop
    resources = body.get("Resources") or []
    return [dict(resource) for resource in resources]


def _quirks_from(body: Mapping[str, Any]) -> Quirks:
    try:
        config = ServiceProviderConfig.model_validate(
            body, scim_ctx=Context.RESOURCE_QUERY_RESPONSE
        )
    except ValidationError as exc:
        raise TerminalError(
            f"the answer is not a SCIM ServiceProviderConfig: {_first_error(exc)}"
        ) from exc
    return Quirks(
        patch=bool(config.patch and config.patch.supported),
        filter=bool(config.filter and config.filter.supported),
        max_results=(
            config.filter.max_results if config.filter and config.filter.max_results else 100
        ),
        etag=bool(config.etag and config.etag.supported),
    )


def _discovery_step(quirks: Quirks | None) -> ConnectionStep:
    assert quirks is not None
    features = ", ".join(
        f"{name} {'yes' if on else 'no'}"
        for name, on in (("PATCH", quirks.patch), ("filter", quirks.filter))
    )
    return ConnectionStep("discovery", True, f"ServiceProviderConfig read: {features}")


NO_SCIM_ANSWER = (
    "no SCIM answer: the app is unreachable, not HTTP or not a SCIM service "
    "(a super admin sees the details)"
)


def _failed(name: str, exc: ConnectorError) -> ConnectionStep:
    """A failed step: the detail as it is, and a summary that does not tell a closed port from
    an open one or from another service's answer (what any admin who reads the app sees)."""
    if isinstance(exc, DestinationRefused):
        summary = "refused by the connector destination policy"
    elif exc.http_status in (401, 403):
        summary = f"the app rejected the credentials ({exc.http_status})"
    else:
        summary = NO_SCIM_ANSWER
    return ConnectionStep(name, False, exc.detail, summary)


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "(root)"
    return f"{where}: {first.get('msg')}"


def _retry_after(value: str | None) -> float | None:
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


def _is_tls_failure(exc: Exception) -> bool:
    text = repr(exc) + repr(exc.__cause__) + repr(exc.__context__)
    return any(mark in text for mark in ("SSL", "CERTIFICATE", "TLS", "certificate"))


# -- authentication -----------------------------------------------------------------------------


def _auth(
    settings: ScimConnectorSettings,
    transport: httpx.AsyncBaseTransport | None,
    max_response_bytes: int,
    policy: DestinationPolicy,
) -> httpx.Auth | None:
    auth = settings.auth
    if isinstance(auth, BearerAuth):
        return _StaticBearer(auth.token.get_secret_value())
    if isinstance(auth, BasicAuth):
        return httpx.BasicAuth(auth.username, auth.password.get_secret_value())
    if isinstance(auth, OAuth2ClientCredentials):
        return _ClientCredentials(
            auth, settings.timeout_seconds, transport, max_response_bytes, policy
        )
    return None


class _StaticBearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = self._header
        yield request


class _ClientCredentials(httpx.Auth):
    """OAuth 2.0 client credentials (RFC 6749 §4.4): one token shared by the app's requests,
    fetched again shortly before it expires, or once when the app refuses it (a 401)."""

    def __init__(
        self,
        settings: OAuth2ClientCredentials,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None,
        max_response_bytes: int,
        policy: DestinationPolicy,
    ) -> None:
        self.settings = settings
        self._timeout = timeout
        self._transport = transport
        self._max_response_bytes = max_response_bytes
        self._policy = policy
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def _fresh_token(self, *, refused: str | None = None) -> str:
        """The cached token while it is valid; a new one once it expires, or if ``refused``
        (the token the app answered 401 to) is still the cached one. Concurrent requests refused
        the same token fetch one new token between them, not one each."""
        async with self._lock:
            valid = self._token is not None and time.monotonic() < self._expires_at
            if valid and self._token != refused:
                assert self._token is not None
                return self._token
            self._token, lifetime = await self._request_token()
            # Renew ahead of the expiry (a request in flight must not carry a token that lapses
            # on the way), by a tenth of the lifetime and at most 30 s.
            self._expires_at = time.monotonic() + lifetime - min(30.0, lifetime / 10)
            return self._token

    async def _request_token(self) -> tuple[str, float]:
        settings = self.settings
        url = str(settings.token_url)
        secret = settings.client_secret.get_secret_value()
        data = {"grant_type": "client_credentials"}
        if settings.scope:
            data["scope"] = settings.scope
        headers = {"Accept": "application/json"}
        if settings.token_endpoint_auth_method == "client_secret_post":  # noqa: S105 - a name
            data |= {"client_id": settings.client_id, "client_secret": secret}
        else:
            # RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined for
            # HTTP Basic (a ':' or '%' in a secret would otherwise change its meaning).
            pair = f"{quote_plus(settings.client_id)}:{quote_plus(secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        try:
            # Its own client: the app's default headers (and its auth) are not for this host,
            # and a redirect is not followed, so the secret goes to the configured URL only.
            # The token endpoint is a destination like the app: the same policy (its own
            # resolution and checked addresses, no environment proxy) and a size cap.
            transport = self._transport or guarded_transport(self._policy, httpx.Limits())
            limit = min(TOKEN_RESPONSE_MAX_BYTES, self._max_response_bytes)
            async with httpx.AsyncClient(
                timeout=self._timeout, transport=transport, trust_env=False,
                headers={"Accept-Encoding": ACCEPT_ENCODING},
            ) as client:
                streamed = await client.send(
                    client.build_request("POST", url, data=data, headers=headers), stream=True
                )
                try:  # inflated in bounded steps: a gzip bomb is refused, not unpacked
                    response = await read_bounded(streamed, limit, f"token endpoint {url}")
                except TooLarge:
                    raise TooLarge(
                        f"token endpoint {url} answered more than {limit} bytes",
                        http_status=streamed.status_code,
                    ) from None
                finally:
                    await streamed.aclose()
                raw = response.content
        except httpx.HTTPError as exc:
            raise TransientError(f"cannot reach the token endpoint {url}: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"token endpoint {url} answered {response.status_code}")
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            payload = {}
        if response.status_code != 200:
            # RFC 6749 §5.2: an error code (invalid_client, invalid_scope, …) and perhaps a
            # description; both are the server's words, shown without anything we sent.
            said = " ".join(
                _redacted(str(payload[key]), secret)[:200]
                for key in ("error", "error_description")
                if payload.get(key)
            )
            raise TerminalError(
                f"token endpoint {url} refused the client credentials of "
                f"{settings.client_id!r}: {response.status_code} {said or response.reason_phrase}",
                http_status=response.status_code,
            )
        token, token_type = payload.get("access_token"), payload.get("token_type", "bearer")
        if not isinstance(token, str) or not token:
            raise TerminalError(f"token endpoint {url} answered 200 without an access_token")
        if str(token_type).lower() != "bearer":  # RFC 6750 is the only kind we can send
            raise TerminalError(
                f"token endpoint {url} issued a {str(token_type)[:40]!r} token, not a bearer token"
            )
        # RFC 6749 §5.1: expires_in is recommended, not required; without it assume 5 minutes.
        try:
            lifetime = float(payload.get("expires_in", 300))
        except (TypeError, ValueError):
            lifetime = 300.0
        return token, max(0.0, min(lifetime, 86_400.0))

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._fresh_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            # The app refused a token we thought valid (revoked, or its clock ahead of ours):
            # one new token and one retry; a second 401 is the app's answer.
            request.headers["Authorization"] = f"Bearer {await self._fresh_token(refused=token)}"
            yield request


def _redacted(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret else text


class _TokenBucket:
    """Per-app rate limit: at most ``rate`` requests a second, bursts up to one second's worth.

    A sliding window, not a refilling bucket: a bucket holding a second's worth lets a full burst
    and then the refill through within the same second (40 requests in the first second at 20/s).
    Here a request waits until the one ``capacity`` requests before it is ``window`` seconds old.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1, int(rate))
        self.window = self.capacity / rate
        self.sent: deque[float] = deque(maxlen=self.capacity)
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            while len(self.sent) == self.capacity:
                wait = self.sent[0] + self.window - time.monotonic()
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            self.sent.append(time.monotonic())
