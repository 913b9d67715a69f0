"""Provisioning policies: who is in scope, how attributes are mapped, how people leave. Pure.

A policy is a document of CEL source text (checked and compiled by ``engine.mapping``):

* ``scope``: a bool expression over ``user``; only assigned users for whom it is true get an
  account. ``None`` means every assigned user.
* ``mappings``: SCIM attribute path -> expression. Paths name attributes of the SCIM core User
  (RFC 7643 §4.1) or of the enterprise extension (§4.3), e.g. ``displayName``,
  ``name.givenName``, ``emails[type eq "work"].value``,
  ``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department``. Filters select a
  multi-valued element by ``type`` (what Okta and Entra send); ``active`` follows the user's
  status and ``password`` the password-on-create feature, so neither can be mapped.
* ``deprovisioning``: what happens to accounts of people who leave the scope or the app.
* ``limits``: the most deprovisions one run or one change may make before it is held.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from scim2_models import EnterpriseUser, User

ENTERPRISE_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

DEFAULT_MAPPINGS: dict[str, str] = {
    "userName": "user.login",
    "externalId": "user.id",
    "name.givenName": "user.firstName",
    "name.familyName": "user.lastName",
    "displayName": (
        'has(user.displayName) && user.displayName != "" ? user.displayName'
        ' : user.firstName + " " + user.lastName'
    ),
    'emails[type eq "work"].value': "user.email",
}


class DeprovisionChoice(enum.StrEnum):
    INHERIT = "inherit"  # the app's provisioning setting
    DEACTIVATE = "deactivate"
    DELETE = "delete"
    NONE = "none"


class Deprovisioning(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: DeprovisionChoice = DeprovisionChoice.INHERIT
    delete_after_days: int | None = Field(
        default=None, ge=1, le=3650, description="Delete accounts deactivated this many days ago."
    )


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_deprovisions: int | None = Field(default=None, ge=1, description="At most this many.")
    max_deprovision_percent: float | None = Field(
        default=None, gt=0, le=100, description="At most this share of the app's accounts."
    )

    def allows(self, deprovisions: int, accounts: int) -> bool:
        if self.max_deprovisions is not None and deprovisions > self.max_deprovisions:
            return False
        if self.max_deprovision_percent is not None and accounts:
            return deprovisions * 100 <= self.max_deprovision_percent * accounts
        return True

    def tighter(self, other: Limits) -> Limits:
        """The stricter of two limits, field by field (None is no limit): a save is checked
        against both the policy in force and itself, so loosening the limit in the very save
        that makes a mass change does not wave that change through."""

        def low(a: Any, b: Any) -> Any:
            return b if a is None else a if b is None else min(a, b)

        return Limits(
            max_deprovisions=low(self.max_deprovisions, other.max_deprovisions),
            max_deprovision_percent=low(self.max_deprovision_percent, other.max_deprovision_percent),
        )


class PolicyDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: str | None = Field(default=None, max_length=4096)
    mappings: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_MAPPINGS))
    deprovisioning: Deprovisioning = Field(default_factory=Deprovisioning)
    limits: Limits = Field(default_factory=Limits)

    @field_validator("mappings")
    @classmethod
    def _user_name_is_mapped(cls, mappings: dict[str, str]) -> dict[str, str]:
        if not any(path.lower() == "username" for path in mappings):
            raise ValueError("mappings must map userName (RFC 7643 §4.1 requires it)")
        return mappings


# -- attribute paths ----------------------------------------------------------------------------

ResultType = Literal["string", "bool", "any", "list"]
_PATH = re.compile(
    r"^(?:(?P<urn>urn:ietf:params:scim:schemas:extension:enterprise:2\.0:User):)?"
    r"(?P<attr>[A-Za-z][A-Za-z0-9_]*)"
    r'(?:\[type eq "(?P<type>[^"\\]{1,64})"\])?'
    r"(?:\.(?P<sub>[A-Za-z][A-Za-z0-9_]*))?$"
)
_UNMAPPABLE = {"active": "follows the user's status", "password": "is set by password_on_create"}


@dataclass(frozen=True)
class AttributePath:
    """A resolved, writable SCIM attribute path and the CEL type its expression must yield."""

    text: str
    schema: str | None  # the extension URN, or None for the core schema
    attribute: str  # canonical case, as the schema spells it
    element_type: str | None  # the ``type`` a filter selects in a multi-valued attribute
    sub: str | None
    result: ResultType

    def assign(self, document: dict[str, Any], value: Any) -> None:
        """Write ``value`` at this path into a SCIM resource document (None writes nothing)."""
        if value is None:
            return
        container = document.setdefault(self.schema, {}) if self.schema else document
        if self.element_type is not None:
            elements: list[dict[str, Any]] = container.setdefault(self.attribute, [])
            element = next((e for e in elements if e.get("type") == self.element_type), None)
            if element is None:
                # The first element of a multi-valued attribute is its primary one (RFC 7643 §2.4).
                element = {"type": self.element_type, **({"primary": True} if not elements else {})}
                elements.append(element)
            element[self.sub or "value"] = value
        elif self.result == "list" and self.sub is None:
            container[self.attribute] = [{"value": item} for item in value]
        elif self.sub is not None:
            container.setdefault(self.attribute, {})[self.sub] = value
        else:
            container[self.attribute] = value


class PathError(ValueError):
    pass


def resolve_path(text: str) -> AttributePath:
    """Check ``text`` against the SCIM User schemas; PathError says what is wrong."""
    match = _PATH.match(text.strip())
    if match is None:
        raise PathError(
            f"{text!r} is not an attribute path: use attr, attr.sub, attr[type eq \"work\"].sub "
            f"or {ENTERPRISE_URN}:attr"
        )
    urn, name, element_type, sub = match["urn"], match["attr"], match["type"], match["sub"]
    if name.lower() == "externalid" and not urn:
        if element_type or sub:
            raise PathError("externalId is a plain string")
        return AttributePath(text, None, "externalId", None, None, "string")
    schema = (EnterpriseUser if urn else User).to_schema()
    attribute = next((a for a in schema.attributes or [] if a.name and a.name.lower() == name.lower()), None)
    if attribute is None or attribute.name is None:
        where = "the enterprise extension" if urn else "the SCIM core User"
        raise PathError(f"{name!r} is not an attribute of {where}")
    canonical = attribute.name
    if canonical.lower() in _UNMAPPABLE:
        raise PathError(f"{canonical} cannot be mapped: it {_UNMAPPABLE[canonical.lower()]}")
    if _mutability(attribute) in ("readOnly", "immutable"):
        raise PathError(f"{canonical} is {_mutability(attribute)}: the app sets it, not provisiond")
    subs = {s.name.lower(): s for s in attribute.sub_attributes or [] if s.name}
    multi = bool(attribute.multi_valued)
    if element_type is not None and not multi:
        raise PathError(f"{canonical} is single-valued: it takes no [type eq ...] filter")
    sub_canonical = None
    if sub is not None:
        found = subs.get(sub.lower())
        if found is None or found.name is None:
            raise PathError(f"{canonical} has no sub-attribute {sub!r} (it has {', '.join(sorted(subs))})")
        if _mutability(found) == "readOnly":
            raise PathError(f"{canonical}.{found.name} is readOnly")
        sub_canonical = found.name
        kind = _kind(found)
    elif subs and not (multi and element_type is None):
        if multi:
            sub_canonical, kind = "value", _kind(subs["value"])
        else:
            raise PathError(f"{canonical} is complex: map a sub-attribute, e.g. {canonical}.{next(iter(subs))}")
    elif multi and element_type is None:
        kind = "list"  # a list of strings, each becoming {"value": ...}
    else:
        kind = _kind(attribute)
    return AttributePath(text, ENTERPRISE_URN if urn else None, canonical, element_type, sub_canonical, kind)


def _mutability(attribute: Any) -> str:
    value = getattr(attribute, "mutability", None)
    return str(getattr(value, "value", value) or "readWrite")


def _kind(attribute: Any) -> ResultType:
    kind = str(getattr(attribute.type, "value", attribute.type))
    if kind == "boolean":
        return "bool"
    if kind in ("integer", "decimal", "complex"):
        return "any"
    return "string"
