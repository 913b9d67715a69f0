"""The settings of the connectors that are not SCIM: LDAP directories and PostgreSQL roles.

Each kind is one pydantic model whose ``SecretStr`` fields are its credentials: services.apps
seals them (store.secrets) and keeps the rest as the app's public connector settings, as it
does with a SCIM app's ``auth``. ``domain.apps.ConnectorSettings`` is the union, by ``kind``.
"""

from __future__ import annotations

import re
import string
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

# As for SCIM auth (domain.apps): a validation error must never quote a password.
_SECRET_BEARING = ConfigDict(extra="forbid", hide_input_in_errors=True)

_HOST = re.compile(r"^[A-Za-z0-9._:\[\]-]{1,253}$")
# An attribute type name (RFC 4512 §1.4 descr) or an OID.
_ATTRIBUTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)$")
# The SCIM attributes a DN template may name: the flat ones, and name.* sub-attributes.
_PLACEHOLDER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)?$")


def _host(value: str) -> str:
    value = value.strip()
    if not _HOST.match(value):
        raise ValueError("host must be a host name or an IP address")
    return value


def check_dn(value: str, what: str) -> str:
    """A DN as RFC 4514 writes it: comma-separated attribute=value pairs. The server checks the
    rest; this refuses what can never be one (a typo caught when saved, not at the first create)."""
    value = value.strip()
    if not value:
        raise ValueError(f"{what} must not be empty")
    if any(not ch.isprintable() for ch in value):
        raise ValueError(f"{what} must not contain control characters")
    for rdn in _split_unescaped(value, ","):
        for ava in _split_unescaped(rdn, "+"):
            attribute, equals, text = ava.partition("=")
            if not equals or not _ATTRIBUTE.match(attribute.strip()) or not text.strip():
                # Not quoted: a password pasted in the wrong field must not come back.
                raise ValueError(
                    f"{what} is not a DN: each part must be attribute=value, "
                    "e.g. ou=people,dc=example,dc=org"
                )
    return value


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, escaped = [], "", False
    for ch in text:
        if escaped:
            current, escaped = current + ch, False
        elif ch == "\\":
            current, escaped = current + ch, True
        elif ch == separator:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


# PostgreSQL truncates longer names silently (NAMEDATALEN 64): two long logins would collide.
ROLE_NAME_MAX_BYTES = 63


def check_role_name(name: str) -> str:
    """A name provisiond gives a PostgreSQL role. Every statement quotes it (sql.Identifier),
    so this is not what keeps SQL safe: it refuses names that would be truncated, that
    PostgreSQL reserves, or that no client could type in a connection string."""
    if not name:
        raise ValueError("a role name must not be empty")
    if len(name.encode()) > ROLE_NAME_MAX_BYTES:
        raise ValueError(f"role name {name!r} is longer than PostgreSQL's 63 bytes")
    if any(ch in "\"'\\" or not ch.isprintable() for ch in name):
        raise ValueError(f"role name {name!r} must not contain quotes, backslashes or control characters")
    if name.lower().startswith("pg_"):
        raise ValueError(f"role name {name!r}: names starting with pg_ are PostgreSQL's own")
    return name


class PostgresConnectorSettings(BaseModel):
    """A PostgreSQL server whose roles are the app's accounts.

    Accounts are LOGIN roles, app roles are group roles granted to them. provisiond connects as
    ``username``, which needs CREATEROLE (and, to end a deactivated role's sessions, the
    privileges of pg_signal_backend)."""

    model_config = _SECRET_BEARING

    kind: Literal["postgresql"] = "postgresql"
    host: str
    port: int = Field(default=5432, ge=1, le=65535)
    database: str = Field(default="postgres", min_length=1, max_length=63)
    username: str = Field(min_length=1, max_length=63)
    password: SecretStr | None = None
    sslmode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    connect_timeout_seconds: int = Field(default=10, ge=1, le=120)
    # Deleting an account (deprovision_action delete) drops its role; what it owns in the
    # connected database goes to this role first (REASSIGN OWNED), by default provisiond's own.
    reassign_owned_to: str | None = Field(default=None, min_length=1, max_length=63)

    @field_validator("host")
    @classmethod
    def _host_name(cls, value: str) -> str:
        return _host(value)

    @field_validator("reassign_owned_to")
    @classmethod
    def _role_name(cls, value: str | None) -> str | None:
        return None if value is None else check_role_name(value)


LdapDeactivation = Literal["attribute", "move"]


class LdapConnection(BaseModel):
    """How to reach and bind to an LDAP directory: what the target connector and an import
    from a directory (services.ldap_import) share."""

    model_config = _SECRET_BEARING

    url: str = Field(description="ldap://host[:port] or ldaps://host[:port]")
    start_tls: bool = False
    # Verify the server's certificate (LDAPS and StartTLS) against the system's CAs or ca_file.
    tls_verify: bool = True
    ca_file: str | None = None
    bind_dn: str
    bind_password: SecretStr
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _ldap_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            raise ValueError("url must be ldap://host[:port] or ldaps://host[:port]")
        try:
            parts.port  # noqa: B018 -- raises on a port that is not a number in range
        except ValueError:
            raise ValueError("url has a port that is not a number from 0 to 65535") from None
        if "@" in parts.netloc or parts.query or parts.fragment or parts.path not in ("", "/"):
            raise ValueError("url must be only scheme://host[:port]: the DNs are settings of their own")
        return value.strip().rstrip("/")

    @field_validator("bind_dn")
    @classmethod
    def _bind_dn(cls, value: str) -> str:
        return check_dn(value, "bind_dn")

    @model_validator(mode="after")
    def _tls_once(self) -> LdapConnection:
        if self.start_tls and self.url.startswith("ldaps:"):
            raise ValueError("start_tls is for ldap:// URLs: ldaps:// is TLS from the start")
        return self


class LdapConnectorSettings(LdapConnection):
    """An LDAP directory (OpenLDAP, 389 DS, AD LDS...) where accounts are inetOrgPerson entries
    and pushed groups groupOfNames entries."""

    kind: Literal["ldap"] = "ldap"
    users_dn: str
    groups_dn: str | None = None
    # The new entry's RDN from its SCIM attributes, e.g. "uid={userName}" or "cn={displayName}";
    # values are escaped (RFC 4514), so any user name gives a valid DN.
    user_rdn: str = "uid={userName}"
    # Deactivating an account: set disabled_attribute to disabled_value, or move the entry to
    # inactive_dn. Deleting (deprovision_action delete) removes the entry.
    deactivation: LdapDeactivation = "attribute"
    disabled_attribute: str = "employeeType"
    disabled_value: str = "disabled"
    inactive_dn: str | None = None

    @field_validator("users_dn", "groups_dn", "inactive_dn")
    @classmethod
    def _dn(cls, value: str | None, info: object) -> str | None:
        name = getattr(info, "field_name", "DN")
        return None if value is None else check_dn(value, name)

    @field_validator("disabled_attribute")
    @classmethod
    def _attribute(cls, value: str) -> str:
        if not _ATTRIBUTE.match(value):
            raise ValueError("disabled_attribute must be an attribute name, e.g. employeeType")
        return value

    @field_validator("user_rdn")
    @classmethod
    def _rdn_template(cls, value: str) -> str:
        value = value.strip()
        attribute, equals, template = value.partition("=")
        if not equals or not _ATTRIBUTE.match(attribute) or not template:
            raise ValueError("user_rdn must be attribute={scimAttribute}, e.g. uid={userName}")
        try:
            fields = [
                (name, spec, conv)
                for _, name, spec, conv in string.Formatter().parse(template)
                if name is not None
            ]
        except ValueError as exc:
            raise ValueError(f"user_rdn is not a template: {exc}") from None
        if not fields:
            raise ValueError("user_rdn must name a SCIM attribute in braces, e.g. uid={userName}")
        for name, spec, conv in fields:
            if not _PLACEHOLDER.match(name) or spec or conv:
                raise ValueError(
                    f"user_rdn: {{{name}}} must be a SCIM attribute (userName, name.familyName...)"
                )
        return value

    @model_validator(mode="after")
    def _move_needs_a_place(self) -> LdapConnectorSettings:
        if self.deactivation == "move" and not self.inactive_dn:
            raise ValueError("deactivation move needs inactive_dn, the OU deactivated entries go to")
        return self
