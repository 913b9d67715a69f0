"""ServiceProviderConfig, Schemas and ResourceTypes (RFC 7643 §5-7), saying only what
provisiond stores and does: the schemas are scim2-models' own, cut to the attributes the
directory keeps, so a client (or scim2-tester) never writes what would not read back."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    ETag,
    Filter,
    Group,
    Meta,
    Mutability,
    Patch,
    Required,
    ResourceType,
    Schema,
    SchemaExtension,
    ServiceProviderConfig,
    Sort,
    User,
)
from scim2_models.resources.schema import Attribute as SchemaAttribute
from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.services.inbound import (
    ENTERPRISE,
    GROUP,
    MAX_OPERATIONS,
    MAX_RESULTS,
    PROFILE,
    USER,
)
from provisiond.store.tables import User as UserRow

# attribute -> the sub-attributes kept (None: a simple attribute)
_USER_ATTRIBUTES: dict[str, tuple[str, ...] | None] = {
    "userName": None,
    "name": ("givenName", "familyName"),
    "displayName": None,
    "title": None,
    "userType": None,
    "active": None,
    "emails": ("value", "type"),
    "groups": ("value", "$ref", "display", "type"),  # readOnly in the core schema
}
_ENTERPRISE_ATTRIBUTES: dict[str, tuple[str, ...] | None] = {
    "employeeNumber": None,
    "department": None,
    "manager": ("value", "$ref"),
}
_GROUP_ATTRIBUTES: dict[str, tuple[str, ...] | None] = {
    "displayName": None,
    "members": ("value", "$ref", "type"),
}
_READ_ONLY: set[tuple[str, str]] = set()
# What the directory requires of every user, whatever the core schema allows.
# ``active`` too: a directory user always has a status, it cannot be removed.
_REQUIRED = {"userName", "name", "givenName", "familyName", "emails", "value", "active"}


def _cut(schema: Schema, keep: dict[str, tuple[str, ...] | None]) -> Schema:
    attributes: list[SchemaAttribute] = []
    for attribute in schema.attributes or ():
        if attribute.name not in keep:
            continue
        subs = keep[attribute.name]
        update: dict[str, Any] = {}
        if subs is not None:
            update["sub_attributes"] = [
                sub.model_copy(update={
                    **_required(sub.name, schema.id == USER),
                    **({"mutability": Mutability.read_only}
                       if (attribute.name, sub.name) in _READ_ONLY else {}),
                })
                for sub in attribute.sub_attributes or ()
                if sub.name in subs
            ]
        update.update(_required(attribute.name, schema.id == USER))
        attributes.append(attribute.model_copy(update=update))
    return schema.model_copy(update={"attributes": attributes})


def _required(name: str | None, user: bool) -> dict[str, Any]:
    return {"required": Required.true} if user and name in _REQUIRED else {}


def _meta(base: str, kind: str, name: str) -> Meta:
    return Meta(resource_type=kind, location=f"{base}/{kind}s/{name}")


@lru_cache(maxsize=16)
def _standard(base: str) -> tuple[dict[str, Any], ...]:
    # scim2-models builds a schema from its model in milliseconds: once per base is enough.
    out = []
    for schema, keep in (
        (User.to_schema(), _USER_ATTRIBUTES),
        (EnterpriseUser.to_schema(), _ENTERPRISE_ATTRIBUTES),
        (Group.to_schema(), _GROUP_ATTRIBUTES),
    ):
        cut = _cut(schema, keep)
        cut.meta = _meta(base, "Schema", str(cut.id))
        out.append(cut.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
    return tuple(out)


def schemas(base: str, custom: dict[str, str]) -> list[dict[str, Any]]:
    """The four schemas; ``custom``: the custom profile attributes and their SCIM types."""
    profile = Schema(
        id=PROFILE,
        name="ProvisiondProfile",
        description="provisiond's custom profile attributes (those beside the standard ones).",
        attributes=[
            SchemaAttribute(
                name=name,
                type=kind.removesuffix("[]"),
                multi_valued=kind.endswith("[]"),
                mutability=Mutability.read_write,
            )
            for name, kind in sorted(custom.items())
        ],
    )
    profile.meta = _meta(base, "Schema", PROFILE)
    return [*_standard(base), profile.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)]


def resource_types(base: str) -> list[dict[str, Any]]:
    user = ResourceType(
        id="User",
        name="User",
        endpoint="/Users",
        description="A person in provisiond's directory.",
        schema_=USER,
        schema_extensions=[
            SchemaExtension(schema_=ENTERPRISE, required=False),
            SchemaExtension(schema_=PROFILE, required=False),
        ],
        meta=_meta(base, "ResourceType", "User"),
    )
    group = ResourceType(
        id="Group",
        name="Group",
        endpoint="/Groups",
        description="A group of users (and of nested groups).",
        schema_=GROUP,
        meta=_meta(base, "ResourceType", "Group"),
    )
    return [rt.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE) for rt in (user, group)]


def service_provider_config(base: str, max_payload_size: int) -> dict[str, Any]:
    """What is supported; ``max_payload_size``: the largest body accepted (Settings)."""
    config = ServiceProviderConfig(
        documentation_uri="https://provisiond.dev/docs/scim-server",
        patch=Patch(supported=True),
        bulk=Bulk(supported=True, max_operations=MAX_OPERATIONS, max_payload_size=max_payload_size),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="Bearer token",
                description="A SCIM client token: `provisiond scim-token create --name NAME`.",
                primary=True,
            )
        ],
        meta=Meta(resource_type="ServiceProviderConfig", location=f"{base}/ServiceProviderConfig"),
    )
    return config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


def schemas_of(session: Session, base: str) -> list[dict[str, Any]]:
    """The schemas, the provisiond extension listing the custom attributes in use."""
    from provisiond.services.inbound.users import STANDARD

    return schemas(base, custom_types(session.scalars(select(UserRow.profile)), STANDARD))


def custom_types(profiles: Iterable[dict[str, Any]], standard: tuple[str, ...]) -> dict[str, str]:
    """Custom attribute name -> SCIM type, from the values in use."""
    out: dict[str, str] = {}
    for profile in profiles:
        for key, value in profile.items():
            if key in standard or key in out:
                continue
            if isinstance(value, bool):
                out[key] = "boolean"
            elif isinstance(value, int):
                out[key] = "integer"
            elif isinstance(value, float):
                out[key] = "decimal"
            elif isinstance(value, list):
                out[key] = "string[]"
            else:
                out[key] = "string"
    return out
