"""Users, groups and the user lifecycle state machine."""

from __future__ import annotations

import enum
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

from provisiond.errors import Conflict


class UserStatus(enum.StrEnum):
    STAGED = "staged"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DEPROVISIONED = "deprovisioned"


class Lifecycle(enum.StrEnum):
    ACTIVATE = "activate"
    SUSPEND = "suspend"
    UNSUSPEND = "unsuspend"
    DEACTIVATE = "deactivate"


# The lifecycle as Okta draws it: staged users are not provisioned until activated,
# suspended users keep their accounts (deactivated downstream), deprovisioned users lose them.
TRANSITIONS: dict[Lifecycle, tuple[frozenset[UserStatus], UserStatus]] = {
    Lifecycle.ACTIVATE: (
        frozenset({UserStatus.STAGED, UserStatus.DEPROVISIONED}),
        UserStatus.ACTIVE,
    ),
    Lifecycle.SUSPEND: (frozenset({UserStatus.ACTIVE}), UserStatus.SUSPENDED),
    Lifecycle.UNSUSPEND: (frozenset({UserStatus.SUSPENDED}), UserStatus.ACTIVE),
    Lifecycle.DEACTIVATE: (
        frozenset({UserStatus.STAGED, UserStatus.ACTIVE, UserStatus.SUSPENDED}),
        UserStatus.DEPROVISIONED,
    ),
}


def next_status(current: UserStatus, action: Lifecycle) -> UserStatus:
    """The status after ``action``, or ``Conflict`` naming the current status."""
    allowed_from, target = TRANSITIONS[action]
    if current not in allowed_from:
        raise Conflict(
            f"cannot {action.value} a user who is {current.value}",
            current_status=current.value,
            allowed_from=sorted(status.value for status in allowed_from),
        )
    return target


_CUSTOM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class Profile(BaseModel):
    """A person's directory profile: standard fields plus custom attributes (extra keys)."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    login: str = Field(min_length=1, max_length=256)
    email: EmailStr
    firstName: str = Field(min_length=1, max_length=256)
    lastName: str = Field(min_length=1, max_length=256)
    displayName: str | None = Field(default=None, max_length=512)
    department: str | None = Field(default=None, max_length=256)
    title: str | None = Field(default=None, max_length=256)
    manager: str | None = Field(default=None, max_length=256)
    employeeNumber: str | None = Field(default=None, max_length=64)
    employeeType: str | None = Field(default=None, max_length=64)

    @field_validator("login")
    @classmethod
    def _login_has_no_spaces(cls, value: str) -> str:
        if any(ch.isspace() for ch in value):
            raise ValueError("login must not contain white space")
        return value

    @model_validator(mode="after")
    def _custom_attributes_are_simple(self) -> Profile:
        for name, value in (self.model_extra or {}).items():
            if not _CUSTOM_NAME.match(name):
                raise ValueError(
                    f"custom attribute name {name!r} must match {_CUSTOM_NAME.pattern}"
                )
            if not _is_custom_value(value):
                raise ValueError(
                    f"custom attribute {name!r} must be a string, number, boolean or list of strings"
                )
        return self

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def _is_custom_value(value: Any) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
