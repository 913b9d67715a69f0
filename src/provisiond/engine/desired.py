"""What account a user should have in an app: a pure function of directory and configuration."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from provisiond.domain.directory import UserStatus

CORE_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


@dataclass(frozen=True)
class DirectoryUser:
    """The slice of a directory user the engine needs."""

    id: str
    status: UserStatus
    profile: Mapping[str, Any]


@dataclass(frozen=True)
class DesiredAccount:
    """The account a user should have: its SCIM attributes (``active`` included)."""

    attributes: dict[str, Any]
    assigned_by: tuple[str, ...] = field(default=())

    @property
    def active(self) -> bool:
        return bool(self.attributes.get("active", True))


def default_mapping(user: DirectoryUser) -> dict[str, Any]:
    """The default SCIM core User for a directory user (RFC 7643 §4.1)."""
    profile = user.profile
    first, last = profile.get("firstName"), profile.get("lastName")
    display = profile.get("displayName") or " ".join(part for part in (first, last) if part)
    attributes: dict[str, Any] = {
        "userName": profile["login"],
        "externalId": user.id,
        "name": {k: v for k, v in (("givenName", first), ("familyName", last)) if v},
        "active": user.status is UserStatus.ACTIVE,
    }
    if display:
        attributes["displayName"] = display
    if profile.get("email"):
        attributes["emails"] = [{"value": profile["email"], "type": "work", "primary": True}]
    return attributes


def desired_account(
    user: DirectoryUser, assigned_by: Iterable[str]
) -> DesiredAccount | None:
    """The account ``user`` should have given the assignments that reach them, or None.

    Staged users are not provisioned until activated; deprovisioned users have no account;
    suspended users keep theirs, deactivated (``active: false``).
    """
    sources = tuple(sorted(assigned_by))
    if not sources or user.status in (UserStatus.STAGED, UserStatus.DEPROVISIONED):
        return None
    return DesiredAccount(attributes=default_mapping(user), assigned_by=sources)
