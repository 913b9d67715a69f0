"""The SCIM 2.0 connector: a thin async httpx layer, payloads built and checked with scim2-models.

Why not scim2-client: its current release runs on ``httpx2`` (Pydantic's fork), not httpx, and it
validates every response strictly, so one odd attribute from a real app loses a create that
succeeded. Here requests are built as pure data with scim2-models (User, PatchOp, ListResponse,
Error, ServiceProviderConfig) and sent through one pooled ``httpx.AsyncClient`` per app, the
single I/O seam that tests can point at a misbehaving transport.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

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
    RateGate,
    RemoteGroup,
    RemoteUser,
)
from provisiond.connectors.bodies import ACCEPT_ENCODING, read_bounded
from provisiond.connectors.destinations import (
    DestinationPolicy,
    DestinationRefused,
)
from provisiond.connectors.paging import Walk
from provisiond.connectors.payloads import (
    ScimUser,
    UserPatchOp,
    UserPatchOperation,
    dump,
    user_payload,
)
from provisiond.connectors.remote_ids import check_remote_id, segment
from provisiond.connectors.scim_auth import scim_auth
from provisiond.connectors.scim_dialect import (
    encoded,
    match_key,
    match_keys,
    matches,
    member_removals,
    only_match,
    patch_body,
    quoted,
    refs,
    unmet,
    user_operations,
)
from provisiond.connectors.transport import BOUNDED, AiohttpTransport, ReceivedCookies
from provisiond.domain.apps import (
    ScimConnectorSettings,
)
from provisiond.domain.dialects import ScimProfile
from provisiond.errors import (
    ConnectorError,
    RateLimited,
    RemoteConflict,
    RemoteNotFound,
    RemoteUnsupported,
    TerminalError,
    TransientError,
)

SCIM_MEDIA_TYPE = "application/scim+json"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
# The batch limits are a profile's (domain/dialects.py); these are the RFC profile's defaults.
# Member values one PATCH carries at most: big pushes go in a few requests, not one per member,
# yet no request grows past what targets accept (Entra caps a PATCH at about 1,000 values).
MEMBERS_PER_REQUEST = ScimProfile().members_per_request
# A ``members[value eq "…"]`` removal is one filter pass over the group at the target: at 5,000
# members scim2-server takes ~0.15 s for each (measured), so removals get a budget of their own.
REMOVALS_PER_REQUEST = ScimProfile().removals_per_request
# Beyond this many removals one ``replace`` of the whole member list is far cheaper (0.24 s at
# 5,000 members, against ~40 s for 250 removals), as long as the list itself stays moderate.
REPLACE_ABOVE_REMOVALS = ScimProfile().replace_above_removals
REPLACE_MAX_MEMBERS = ScimProfile().replace_max_members
# What an answer to a PATCH may mean "this app does not do PATCH": 501 (RFC 7644 §3.12), 405.
_UNSUPPORTED = (405, 501)
# How long a listing of an app that cannot filter is trusted to find accounts by (it is kept
# current with what this connector creates, and dropped when a create meets an existing account).
LISTING_SECONDS = 300.0
UserListResponse = ListResponse[ScimUser]


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
        rate_gate: RateGate | None = None,
    ) -> None:
        """``transport`` replaces the network (tests' in-process targets); without it every
        connection is checked against ``policy`` (by default: no loopback, link-local or
        metadata addresses). ``rate_gate`` replaces this process's own rate limiter (a
        cluster's, shared by every worker)."""
        self.settings = settings
        self.max_response_bytes = max_response_bytes
        policy = policy or DestinationPolicy()
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.AsyncClient(
            base_url=settings.base_url + "/",
            auth=scim_auth(settings, transport, max_response_bytes, policy),
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
        # httpx 0.28 keeps the client's jar here (its public setter would copy it into a
        # plain one); cookies are kept and sent back as before.
        self._client._cookies = ReceivedCookies()
        # Absolute URLs, built here rather than merged with base_url by httpx on every request
        # (a third of httpx's cost of building one, measured); the fixed paths kept parsed.
        self._root = settings.base_url + "/"
        self._urls: dict[str, httpx.URL] = {}
        # What build_request merges into every request, merged once.
        self._headers = httpx.Headers(self._client.headers)
        self._json_headers = httpx.Headers(self._client.headers)
        self._json_headers["Content-Type"] = SCIM_MEDIA_TYPE
        self._timeouts = self._client.timeout.as_dict()
        self._gate = asyncio.Semaphore(concurrency)
        # The app's own hourly budget (its profile) paces requests too; the lower rate wins.
        rate_limit_per_second = settings.profile.paced(rate_limit_per_second)
        self._bucket: RateGate | None = rate_gate or (
            _TokenBucket(rate_limit_per_second) if rate_limit_per_second else None
        )
        self._quirks: Quirks | None = None
        # Whether a deactivation's PATCH asks for the account back (cleared for the
        # connector's life by an app that refuses the parameter).
        self._patch_shows_active = True
        self._discovery = asyncio.Lock()
        # An app without filters: per matching attribute, when it was listed and the account
        # ids by match key (ids only: the accounts are read again when found).
        self._listed: dict[str, tuple[float, dict[str, list[str]]]] = {}
        self._listing = asyncio.Lock()

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
                # Not published: the profile as the admin picked it.
                self._quirks = Quirks.of(self.settings.profile)
            else:
                body = _body(response, "ServiceProviderConfig")
                self._quirks = _quirks_from(body, self.settings.profile)
        return self._quirks

    async def _profile(self) -> ScimProfile:
        return (await self.quirks()).profile

    async def _fall_back(self, **changes: str) -> None:
        """The app refused what its profile promised (a 501 to PATCH): speak without it from
        now on, as if its ServiceProviderConfig had said so."""
        quirks = await self.quirks()
        self._quirks = Quirks.of(quirks.profile.model_copy(update=changes), etag=quirks.etag)

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
                    _body(response, "GET /ServiceProviderConfig"), self.settings.profile
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
            report.quirks = self._quirks = Quirks.of(self.settings.profile)
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
        assert report.quirks is not None
        report.notes = report.quirks.profile.notes()
        return report

    # -- users --------------------------------------------------------------------------------

    async def find_user(self, attribute: str, value: str) -> RemoteUser | None:
        profile = await self._profile()
        if not profile.filters:
            # RFC 7644 §3.4.2.2 lets an app not filter: match a listing here, by the RFC's case
            # rules (a create would otherwise collide, or duplicate the account). Listed once,
            # not per lookup: a full sync would list the app once per person.
            index = await self._listed_by(attribute, profile)
            found = []
            for remote_id in index.get(match_key(attribute, value), []):
                user = await self.get_user(remote_id)  # current, and still there
                if user is not None and matches(user, attribute, value):
                    found.append(user)
            return only_match(found, attribute, value)
        response = await self._send(
            "GET",
            "Users",
            params={"filter": f'{attribute} eq "{quoted(value)}"', "startIndex": 1, "count": 2},
        )
        resources = _parse_list(_body(response, "GET /Users?filter"))
        users = [_remote(resource, "GET /Users?filter") for resource in resources]
        return only_match(users, attribute, value)

    async def _listed_by(self, attribute: str, profile: ScimProfile) -> dict[str, list[str]]:
        async with self._listing:  # the first lookups of a sync must not each list the app
            listed = self._listed.get(attribute)
            if listed is not None and time.monotonic() - listed[0] < LISTING_SECONDS:
                return listed[1]
            index: dict[str, list[str]] = {}
            walk = Walk(self.list_users, key=lambda u: u.remote_id, page_size=profile.page_size)
            async for page in walk:
                for user in page:
                    for key in match_keys(user, attribute):
                        index.setdefault(key, []).append(user.remote_id)
            self._listed[attribute] = (time.monotonic(), index)
            return index

    def _listed_now(self, created: RemoteUser | None) -> None:
        """Keep the listings current: an account created here joins them; ``None`` (a create
        that met an existing account) drops them, so the next lookup lists the app again."""
        if created is None:
            self._listed.clear()
            return
        for attribute, (_, index) in self._listed.items():
            for key in match_keys(created, attribute):
                index.setdefault(key, []).append(created.remote_id)

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
        # Lenient, as a listing must be: totalResults may be missing, and one account with an
        # unusable id must not hide the others. The ids are not checked here: whoever uses
        # one checks it (remote_ids.remote_id_flaw; the import skips and counts them).
        resources = body.get("Resources") or []
        if not isinstance(resources, list):
            raise TerminalError("GET /Users answered Resources that is not a list")
        users = [
            RemoteUser(str(r["id"]), dict(r)) for r in resources if isinstance(r, dict) and r.get("id")
        ]
        return Page(users, _total(body), start_index)

    async def create_user(self, attributes: Mapping[str, Any]) -> RemoteUser:
        # Encoding is the admin's stated profile: discovery narrows what is sent, not how.
        payload = encoded(
            user_payload(attributes, Context.RESOURCE_CREATION_REQUEST), self.settings.profile
        )
        response = await self._send("POST", "Users", body=payload)
        if response.status_code == 409:
            self._listed_now(None)
            raise RemoteConflict(_problem(response, "POST /Users"), http_status=409)
        created = _remote(_body(response, "POST /Users"), "POST /Users")
        # Indexed by what was sent too: an app may answer without every attribute.
        self._listed_now(RemoteUser(created.remote_id, {**payload, **created.attributes}))
        return created

    async def update_user(
        self, remote_id: str, changes: Sequence[Change], attributes: Mapping[str, Any]
    ) -> RemoteUser | None:
        """Apply the changes; the account as the app's answer shows it when the answer carries
        the resource (a 200 with it, RFC 7644 §3.5.1/§3.5.2), else None (a 204)."""
        profile = await self._profile()
        deactivating = any(c.attribute.lower() == "active" and c.new is False for c in changes)
        if profile.deactivate_by == "delete" and deactivating:
            # The app has no active flag: an account that must be off goes. A reactivation then
            # meets a 404, and the executor creates the account again.
            await self.delete_user(remote_id)
            return None
        if not profile.put_only:
            operations = user_operations(_patch_paths(changes), changes, profile)
            if profile.patch == "rfc":  # checked by scim2-models; no-path values are free-form
                model = UserPatchOp(operations=[UserPatchOperation(**o) for o in operations])
                operations = dump(model, Context.RESOURCE_PATCH_REQUEST)["Operations"]
            # RFC 7644 §3.5.2: asked for "attributes" the app MUST answer 200 with the
            # resource, so a deactivation's own answer shows whether the account is off (the
            # read-back, sparing a GET).
            try:
                response = await self._patch_user(
                    remote_id, patch_body(operations, profile), deactivating
                )
            except RemoteUnsupported:
                response = None
            if response is not None and not (
                response.status_code == 404 and profile.patch_404 == "unsupported"
            ):
                return self._updated(response, remote_id, "PATCH /Users/{id}")
            await self._fall_back(patch="none", membership="put")
        # RFC 7644 §3.5.1: PUT replaces the whole resource; send all that provisiond manages.
        body = user_payload(attributes, Context.RESOURCE_REPLACEMENT_REQUEST)
        body["id"] = remote_id
        response = await self._send(
            "PUT", f"Users/{segment(remote_id)}", body=encoded(body, profile)
        )
        self._updated(response, remote_id, "PUT /Users/{id}")
        # A PUT's answer is no read-back: it may be the resource provisiond just sent, echoed
        # by a naive app or a gateway that never stored it. The executor reads it back.
        return None

    async def _patch_user(
        self, remote_id: str, body: dict[str, Any], deactivating: bool
    ) -> httpx.Response:
        path = f"Users/{segment(remote_id)}"
        if not (deactivating and self._patch_shows_active):
            return await self._send("PATCH", path, body=body)
        try:
            return await self._send("PATCH", path, params=_SHOW_ACTIVE, body=body)
        except RemoteUnsupported:
            raise
        except TerminalError as exc:
            if exc.http_status != 400:
                raise
        # An app that refuses the parameter (RFC 7644 §3.9 lets a client send it): a
        # deactivation is never lost to it. Sent once more without, and never again.
        self._patch_shows_active = False
        return await self._send("PATCH", path, body=body)

    @staticmethod
    def _updated(response: httpx.Response, remote_id: str, what: str) -> RemoteUser | None:
        if response.status_code == 404:
            raise RemoteNotFound(
                f"{what}: the account {remote_id} no longer exists", http_status=404
            )
        _require_success(response, what)
        body = _body(response, what, allow_empty=True)
        # Only an answer that names this very account tells what the app now holds.
        return RemoteUser(remote_id, body) if body.get("id") == remote_id else None

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
                    "filter": f'displayName eq "{quoted(display_name)}"',
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
            walk = Walk(self.list_groups, key=lambda g: g.remote_id, page_size=quirks.max_results)
            found = [group async for page in walk for group in page]
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
        body = {"schemas": [CORE_GROUP], "displayName": display_name, "members": refs(members)}
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
        """Member changes in place, as the profile's membership style says (RFC 7644 §3.5.2.2):
        ``add`` of ``members`` and removals by ``members[value eq "…"]`` filter (or by value
        list), in requests of at most the profile's ``members_per_request`` values and
        ``removals_per_request`` filtered removals, a rename riding on the first. Many removals,
        given the whole new member list (``members``), are one ``replace`` of ``members``
        instead (§3.5.2.3), as is every change for a replace-only app. Where the app answers
        with the group, it must hold what was asked. Returns the number of requests sent."""
        change = _MemberChange(display_name, add, remove, members)
        if (await self._profile()).membership != "put":
            try:
                return await self._patch_members(remote_id, change)
            except RemoteUnsupported:
                # A 501 (or what the profile says a 404 means): the app does not PATCH groups.
                await self._fall_back(membership="put")
        return await self._put_members(remote_id, change)

    async def _patch_members(self, remote_id: str, change: _MemberChange) -> int:
        display_name, add, remove = change.display_name, change.add, change.remove
        members = change.members
        profile = await self._profile()
        rename: list[dict[str, Any]] = (
            [{"op": "replace", "path": "displayName", "value": display_name}]
            if display_name is not None
            else []
        )
        if profile.membership == "replace" or (
            members is not None
            and len(remove) > profile.replace_above_removals
            and len(members) <= profile.replace_max_members
        ):
            sent = 0
            if members is None:  # replace-only, without the list: read the group first
                members = (await self._group_after(remote_id, add, remove))[1]
                sent = 1
            replace = {"op": "replace", "path": "members", "value": refs(members)}
            await self._patch_group(remote_id, [*rename, replace], members, remove)
            return sent + 1
        removals = member_removals(remove, profile)
        additions = list(add)
        sent = 0
        while rename or removals or additions:
            # Each request is filled up to the bounds: removals first, then additions.
            operations: list[dict[str, Any]] = [*rename]
            rename = []
            room, filtered = profile.members_per_request, profile.removals_per_request
            removed: list[str] = []
            while removals and room >= len(removals[0][1]) and filtered > 0:
                operation, values = removals.pop(0)
                operations.append(operation)
                removed += values
                room -= len(values)
                filtered -= 1 if "[" in operation["path"] else 0
            added: list[str] = []
            if room > 0 and additions:
                added, additions = additions[:room], additions[room:]
                operations.append({"op": "add", "path": "members", "value": refs(added)})
            await self._patch_group(remote_id, operations, added, removed)
            sent += 1
        return sent

    async def _group_after(
        self, remote_id: str, add: Sequence[str], remove: Sequence[str]
    ) -> tuple[RemoteGroup, list[str]]:
        """The group as the app holds it, and its members once ``add`` and ``remove`` apply."""
        group = await self.get_group(remote_id)
        if group is None:
            raise RemoteNotFound(f"the group {remote_id} no longer exists", http_status=404)
        return group, sorted((group.members | set(add)) - set(remove))

    async def _put_members(self, remote_id: str, change: _MemberChange) -> int:
        """For an app whose groups change by PUT only: read the group (for its name, and its
        members when not given) and send it whole."""
        group, after = await self._group_after(remote_id, change.add, change.remove)
        wanted = list(change.members) if change.members is not None else after
        await self.replace_group(remote_id, change.display_name or group.display_name, wanted)
        return 2

    async def _patch_group(
        self,
        remote_id: str,
        operations: list[dict[str, Any]],
        added: Sequence[str] = (),
        removed: Sequence[str] = (),
    ) -> None:
        profile = await self._profile()
        body = patch_body(operations, profile)
        what = "PATCH /Groups/{id}"
        response = await self._send("PATCH", f"Groups/{segment(remote_id)}", body=body)
        if response.status_code == 404 and profile.patch_404 == "unsupported":
            raise RemoteUnsupported(f"{what} answered 404: taken as PATCH not supported")
        if response.status_code == 404:
            raise RemoteNotFound(f"{what}: the group {remote_id} no longer exists", http_status=404)
        _require_success(response, what)
        returned = _body(response, what, allow_empty=True)
        if returned.get("members") is not None and returned.get("id"):
            # A 200 with the group: believe what it holds, not the status (a target that
            # answers 200 and keeps a removed member would otherwise pass for healthy).
            problem = unmet(_group(returned, what), added, removed)
            if problem:
                raise TerminalError(f"{what} answered {response.status_code}, yet {problem}")

    async def replace_group(
        self, remote_id: str, display_name: str, members: Sequence[str]
    ) -> None:
        """PUT the whole group (RFC 7644 §3.5.1), for an app without PATCH."""
        body = {
            "schemas": [CORE_GROUP],
            "id": remote_id,
            "displayName": display_name,
            "members": refs(members),
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
        target = f"{self.settings.base_url}/{path}"
        what = f"{method} /{path.split('?')[0]}"
        deadline = self.settings.request_deadline_seconds
        async with self._gate:
            # httpx's timeouts bound each read, so a target that drips its answer a byte at a
            # time never trips them: the whole exchange (the auth flow, the send, every byte of
            # the body) gets one deadline. Waiting for the rate limit and the gate is not charged.
            timer = asyncio.timeout(deadline)
            request = self._request(method, self._url(path, params), content, what)
            try:
                async with timer:
                    # Streamed, so the size cap applies while reading, under the deadline (the
                    # aiohttp transport reads it so itself, and hands the answer over read).
                    streamed = await self._client.send(request, stream=True)
                    try:
                        response = await read_bounded(streamed, self.max_response_bytes, what)
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


    def _request(
        self, method: str, url: httpx.URL, content: bytes | None, what: str
    ) -> httpx.Request:
        """The request ``build_request`` would build, from the client's headers merged once
        (its merge copied and normalised every default header on every request). With a
        cookie to send back, httpx's own merge builds it, Cookie header included."""
        extensions = {"timeout": self._timeouts, BOUNDED: (self.max_response_bytes, what)}
        headers = self._headers if content is None else self._json_headers
        if self._client.cookies:
            return self._client.build_request(
                method, url, content=content, headers=headers, extensions=extensions
            )
        return httpx.Request(method, url, headers=headers, content=content, extensions=extensions)

    def _url(self, path: str, params: Mapping[str, Any] | None) -> httpx.URL:
        """The request's absolute URL; the same as httpx's merge of ``path`` and ``params``
        with the base URL (urlencode quotes as httpx.QueryParams does)."""
        if params and "/" not in path:
            # The fixed path's parsed URL with the query put in: parsing the whole URL again
            # (httpx checks and quotes it character by character) was a tenth of the
            # connector's CPU per lookup. urlencode's output is what httpx would keep as it is
            # (only unreserved characters, '%', '+', '=' and '&'); tests hold the two equal.
            return _with_query(self._fixed(path), urlencode(params))
        if params:
            return httpx.URL(f"{self._root}{path}?{urlencode(params)}")
        return self._fixed(path) if "/" not in path else httpx.URL(self._root + path)

    def _fixed(self, path: str) -> httpx.URL:
        """The parsed URL of Users, Groups, ServiceProviderConfig: kept, not one per account."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self._root + path)
        return url


def _with_query(url: httpx.URL, query: str) -> httpx.URL:
    # httpx 0.28's URL is its parse result (a NamedTuple); httpx is pinned (pyproject.toml).
    built = httpx.URL.__new__(httpx.URL)
    built._uri_reference = url._uri_reference._replace(query=query)
    return built


# -- pure helpers: building requests and checking responses ------------------------------------


@dataclass(frozen=True)
class _MemberChange:
    """What ``update_group`` was asked: a rename, members to add and remove, the whole list."""

    display_name: str | None
    add: Sequence[str]
    remove: Sequence[str]
    members: Sequence[str] | None


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
    if status in _UNSUPPORTED:  # RFC 7644 §3.12: not supported; asking again changes nothing
        raise RemoteUnsupported(_problem(response, what), http_status=status)
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


_SHOW_ACTIVE = {"attributes": "active"}


def _remote(body: Mapping[str, Any], what: str) -> RemoteUser:
    remote_id = body.get("id")
    if not isinstance(remote_id, str) or not remote_id:
        raise TerminalError(f"{what} answered a resource without an id (RFC 7643 §3.1)")
    check_remote_id(remote_id, what)
    return RemoteUser(remote_id=remote_id, attributes=dict(body))


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
    # An empty answer (what the lookup before every create gets) is the same few bytes for
    # every lookup of an app: one that passed already passes again, without scim2-models
    # (~0.3 ms of the event loop's time per create, measured).
    empty = None if body.get("Resources") else json.dumps(body, sort_keys=True)
    if empty is not None and empty in _EMPTY_LISTINGS:
        return []
    try:
        listing = UserListResponse.model_validate(body, scim_ctx=Context.SEARCH_RESPONSE)
    except ValidationError as exc:
        raise TerminalError(f"the answer is not a SCIM ListResponse: {_first_error(exc)}") from exc
    del listing  # validated; the raw resources keep what the model would drop
    if empty is not None:
        if len(_EMPTY_LISTINGS) >= 256:
            _EMPTY_LISTINGS.clear()
        _EMPTY_LISTINGS.add(empty)
    resources = body.get("Resources") or []
    return [dict(resource) for resource in resources]


_EMPTY_LISTINGS: set[str] = set()  # empty ListResponse bodies validated, as canonical JSON


def _quirks_from(body: Mapping[str, Any], profile: ScimProfile) -> Quirks:
    """The app's profile, narrowed by what its ServiceProviderConfig announces."""
    try:
        config = ServiceProviderConfig.model_validate(
            body, scim_ctx=Context.RESOURCE_QUERY_RESPONSE
        )
    except ValidationError as exc:
        raise TerminalError(
            f"the answer is not a SCIM ServiceProviderConfig: {_first_error(exc)}"
        ) from exc
    narrowed = profile.narrowed(
        patch=bool(config.patch and config.patch.supported),
        filter=bool(config.filter and config.filter.supported),
        max_results=config.filter.max_results if config.filter else None,
    )
    return Quirks.of(narrowed, etag=bool(config.etag and config.etag.supported))


def _discovery_step(quirks: Quirks | None) -> ConnectionStep:
    assert quirks is not None
    profile = quirks.profile
    features = ", ".join(
        f"{name} {'yes' if on else 'no'}"
        for name, on in (("PATCH", not profile.put_only), ("filter", profile.filters))
    )
    return ConnectionStep(
        "discovery", True, f"ServiceProviderConfig read: {features}; profile {profile.name}"
    )


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
