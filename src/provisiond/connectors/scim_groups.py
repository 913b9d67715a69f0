"""The SCIM connector's groups (RFC 7643 §4.2): found, read, created, their members changed
in as few requests as the app's profile allows, replaced, deleted.

A mixin of ``ScimConnector`` (connectors/scim.py), which holds the HTTP exchange, the app's
quirks and the fall-back when the app refuses what its profile promised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from provisiond.connectors.base import Page, Quirks, RemoteGroup
from provisiond.connectors.paging import Walk
from provisiond.connectors.remote_ids import segment
from provisiond.connectors.scim_answers import (
    body_of,
    group_of,
    groups_of,
    problem_of,
    require_success,
    total_of,
)
from provisiond.connectors.scim_dialect import (
    member_removals,
    patch_body,
    quoted,
    refs,
    unmet,
)
from provisiond.domain.dialects import ScimProfile
from provisiond.errors import (
    RemoteConflict,
    RemoteNotFound,
    RemoteUnsupported,
    TerminalError,
)

CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


@dataclass(frozen=True)
class _MemberChange:
    """What ``update_group`` was asked: a rename, members to add and remove, the whole list."""

    display_name: str | None
    add: Sequence[str]
    remove: Sequence[str]
    members: Sequence[str] | None


class GroupOperations:
    """The group half of ``ScimConnector``; what it needs of the connector is declared here."""

    _send: Callable[..., Awaitable[httpx.Response]]

    async def quirks(self) -> Quirks:
        raise NotImplementedError

    async def _profile(self) -> ScimProfile:
        raise NotImplementedError

    async def _fall_back(self, **changes: str) -> None:
        raise NotImplementedError

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
            body = body_of(response, "GET /Groups?filter")
            found = groups_of(body, "GET /Groups?filter")
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
        return group_of(body_of(response, "GET /Groups/{id}"), "GET /Groups/{id}")

    async def list_groups(self, start_index: int, count: int) -> Page:
        response = await self._send(
            "GET", "Groups", params={"startIndex": start_index, "count": count}
        )
        body = body_of(response, "GET /Groups")
        return Page(groups_of(body, "GET /Groups"), total_of(body), start_index)

    async def create_group(self, display_name: str, members: Sequence[str]) -> RemoteGroup:
        body = {"schemas": [CORE_GROUP], "displayName": display_name, "members": refs(members)}
        response = await self._send("POST", "Groups", body=body)
        if response.status_code == 409:
            raise RemoteConflict(problem_of(response, "POST /Groups"), http_status=409)
        created = group_of(body_of(response, "POST /Groups"), "POST /Groups")
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
        require_success(response, what)
        returned = body_of(response, what, allow_empty=True)
        if returned.get("members") is not None and returned.get("id"):
            # A 200 with the group: believe what it holds, not the status (a target that
            # answers 200 and keeps a removed member would otherwise pass for healthy).
            problem = unmet(group_of(returned, what), added, removed)
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
        require_success(response, "PUT /Groups/{id}")

    async def delete_group(self, remote_id: str) -> None:
        response = await self._send("DELETE", f"Groups/{segment(remote_id)}")
        if response.status_code == 404:
            return  # already gone
        require_success(response, "DELETE /Groups/{id}")
