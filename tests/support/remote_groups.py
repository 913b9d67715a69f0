"""What a SCIM target holds, read with a plain client: its groups, by display name, and members."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import remote_user

CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def remote_group(scim: httpx.Client, name: str) -> dict[str, Any] | None:
    response = scim.get("Groups", params={"filter": f'displayName eq "{name}"'})
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json().get("Resources", [])
    assert len(found) <= 1, found
    return found[0] if found else None


def remote_members(scim: httpx.Client, name: str) -> set[str] | None:
    """The remote ids of the group's members; None if the target has no such group."""
    group = remote_group(scim, name)
    return None if group is None else {m["value"] for m in group.get("members") or []}


def remote_ids(scim: httpx.Client, *logins: str) -> set[str]:
    out = set()
    for login in logins:
        account = remote_user(scim, login)
        assert account is not None, f"{login} has no account in the app"
        out.add(account["id"])
    return out


def set_members(scim: httpx.Client, name: str, remote_ids: set[str]) -> None:
    """Change the group's members in the app itself, behind provisiond's back (drift)."""
    group = remote_group(scim, name)
    assert group is not None, f"no group {name} in the app"
    answer = scim.put(
        f"Groups/{group['id']}",
        json={
            "schemas": [CORE_GROUP],
            "displayName": name,
            "members": [{"value": remote_id} for remote_id in sorted(remote_ids)],
        },
    )
    answer.raise_for_status()
