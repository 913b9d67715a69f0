"""The SCIM 2.0 connector: a thin async httpx layer, payloads built and checked with scim2-models.

Why not scim2-client: its current release runs on ``httpx2`` (Pydantic's fork), not httpx, and it
validates every response strictly, so one odd attribute from a real app loses a create that
succeeded. Here requests are built as pure data with scim2-models (User, PatchOp, ListResponse,
Error, ServiceProviderConfig) and sent through one pooled ``httpx.AsyncClient`` per app, the
single I/O seam that tests can point at a misbehaving transport.

The connector is four modules: this one (discovery, the connection test, users), its groups
(connectors/scim_groups.py), its HTTP exchange (connectors/scim_http.py) and the reading of
answers (connectors/scim_answers.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from scim2_models import Context

from provisiond.config import DEFAULT_MAX_RESPONSE_BYTES
from provisiond.connectors.base import (
    Change,
    ConnectionReport,
    ConnectionStep,
    Page,
    Quirks,
    RateGate,
    RemoteUser,
)
from provisiond.connectors.destinations import (
    DestinationPolicy,
    DestinationRefused,
)
from provisiond.connectors.paging import Walk
from provisiond.connectors.payloads import (
    UserPatchOp,
    UserPatchOperation,
    dump,
    user_payload,
)
from provisiond.connectors.remote_ids import segment
from provisiond.connectors.scim_answers import (
    SCIM_MEDIA_TYPE,
    body_of,
    parse_list,
    problem_of,
    quirks_from,
    remote_user,
    require_success,
    total_of,
)
from provisiond.connectors.scim_dialect import (
    encoded,
    match_key,
    match_keys,
    matches,
    only_match,
    patch_body,
    quoted,
    user_operations,
)
from provisiond.connectors.scim_groups import CORE_GROUP, GroupOperations
from provisiond.connectors.scim_http import ScimHttp
from provisiond.domain.apps import ScimConnectorSettings
from provisiond.domain.dialects import ScimProfile
from provisiond.errors import (
    ConnectorError,
    RemoteConflict,
    RemoteNotFound,
    RemoteUnsupported,
    TerminalError,
)

__all__ = [
    "CORE_GROUP",
    "MEMBERS_PER_REQUEST",
    "REMOVALS_PER_REQUEST",
    "REPLACE_ABOVE_REMOVALS",
    "REPLACE_MAX_MEMBERS",
    "SCIM_MEDIA_TYPE",
    "ScimConnector",
]

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
# How long a listing of an app that cannot filter is trusted to find accounts by (it is kept
# current with what this connector creates, and dropped when a create meets an existing account).
LISTING_SECONDS = 300.0
_SHOW_ACTIVE = {"attributes": "active"}


class ScimConnector(GroupOperations):
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
        self._http = ScimHttp(
            settings,
            concurrency=concurrency,
            rate_limit_per_second=rate_limit_per_second,
            transport=transport,
            policy=policy or DestinationPolicy(),
            max_response_bytes=max_response_bytes,
            rate_gate=rate_gate,
        )
        self._send = self._http.send
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
        await self._http.aclose()

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
                body = body_of(response, "ServiceProviderConfig")
                self._quirks = quirks_from(body, self.settings.profile)
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
                report.quirks = self._quirks = quirks_from(
                    body_of(response, "GET /ServiceProviderConfig"), self.settings.profile
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
            listing = body_of(response, "GET /Users")
            parse_list(listing)
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
        resources = parse_list(body_of(response, "GET /Users?filter"))
        users = [remote_user(resource, "GET /Users?filter") for resource in resources]
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
        body = body_of(response, "GET /Users")
        total = body.get("totalResults")
        return isinstance(total, int) and total == 0 and not body.get("Resources")

    async def get_user(self, remote_id: str) -> RemoteUser | None:
        response = await self._send("GET", f"Users/{segment(remote_id)}")
        if response.status_code == 404:
            return None
        return remote_user(body_of(response, "GET /Users/{id}"), "GET /Users/{id}")

    async def list_users(self, start_index: int, count: int) -> Page:
        response = await self._send(
            "GET", "Users", params={"startIndex": start_index, "count": count}
        )
        body = body_of(response, "GET /Users")
        # Lenient, as a listing must be: totalResults may be missing, and one account with an
        # unusable id must not hide the others. The ids are not checked here: whoever uses
        # one checks it (remote_ids.remote_id_flaw; the import skips and counts them).
        resources = body.get("Resources") or []
        if not isinstance(resources, list):
            raise TerminalError("GET /Users answered Resources that is not a list")
        users = [
            RemoteUser(str(r["id"]), dict(r)) for r in resources if isinstance(r, dict) and r.get("id")
        ]
        return Page(users, total_of(body), start_index)

    async def create_user(self, attributes: Mapping[str, Any]) -> RemoteUser:
        # Encoding is the admin's stated profile: discovery narrows what is sent, not how.
        payload = encoded(
            user_payload(attributes, Context.RESOURCE_CREATION_REQUEST), self.settings.profile
        )
        response = await self._send("POST", "Users", body=payload)
        if response.status_code == 409:
            self._listed_now(None)
            raise RemoteConflict(problem_of(response, "POST /Users"), http_status=409)
        created = remote_user(body_of(response, "POST /Users"), "POST /Users")
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
        require_success(response, what)
        body = body_of(response, what, allow_empty=True)
        # Only an answer that names this very account tells what the app now holds.
        return RemoteUser(remote_id, body) if body.get("id") == remote_id else None

    async def delete_user(self, remote_id: str) -> None:
        response = await self._send("DELETE", f"Users/{segment(remote_id)}")
        if response.status_code == 404:
            return  # already gone: the goal is reached
        require_success(response, "DELETE /Users/{id}")


# -- pure helpers ---------------------------------------------------------------------------


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
