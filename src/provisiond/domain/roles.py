"""App roles: a name and how the role is expressed in the app (pure data).

An app role (admin, editor, viewer, ...) reaches the app one of three ways:

* ``scim_role``: a value of the SCIM User's multi-valued ``roles`` (RFC 7643 §4.1.2);
* ``entitlement``: a value of ``entitlements`` (same section);
* ``group``: membership of a group pushed to the app; ``value`` names the directory group
  whose pushed counterpart the role's holders join (services.pushes). Until that group is
  pushed to the app, the role grants access but is not visible there.
"""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

NAME_MAX = 128


class RoleKind(enum.StrEnum):
    SCIM_ROLE = "scim_role"
    ENTITLEMENT = "entitlement"
    GROUP = "group"


# The SCIM attribute each kind is written to; ``group`` has none (it is a pushed group's member).
ATTRIBUTE_OF: dict[RoleKind, str] = {
    RoleKind.SCIM_ROLE: "roles",
    RoleKind.ENTITLEMENT: "entitlements",
}

RoleMode = Literal["priority", "combine"]


class RoleExpression(BaseModel):
    """How a role is expressed in the app; ``value`` defaults to the role's name."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: RoleKind = RoleKind.SCIM_ROLE
    value: str = Field(min_length=1, max_length=256)
