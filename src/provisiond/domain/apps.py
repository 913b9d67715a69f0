"""Applications, their connector settings and provisioning settings (pure data)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    HttpUrl,
    SecretStr,
    Tag,
    field_validator,
)

from provisiond.domain.connector_kinds import LdapConnectorSettings, PostgresConnectorSettings
from provisiond.domain.dialects import ScimProfile
from provisiond.domain.roles import RoleMode

_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class DeprovisionAction(enum.StrEnum):
    DEACTIVATE = "deactivate"
    DELETE = "delete"
    NONE = "none"


@dataclass(frozen=True)
class Deprovision:
    """What happens to the account of someone who should not have one (the policy decides)."""

    action: DeprovisionAction
    delete_after: timedelta | None = None  # with DEACTIVATE: delete this long after


class Features(BaseModel):
    model_config = ConfigDict(extra="forbid")

    create_users: bool = True
    update_users: bool = True
    deactivate_users: bool = True
    push_groups: bool = False
    password_on_create: bool = False


MatchingAttribute = Literal["userName", "externalId", "emails.value"]


class MatchRule(BaseModel):
    """One rule an import links app accounts by: the app's ``app_attribute`` equals the
    directory's ``user_attribute`` (``id``, ``login``, ``email`` or any profile attribute).
    userName and emails compare case-insensitively (RFC 7643 §4.1: caseExact false);
    externalId exactly (caseExact true)."""

    model_config = ConfigDict(extra="forbid")

    app_attribute: Literal["externalId", "userName", "emails"]
    user_attribute: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


def default_match_rules() -> list[MatchRule]:
    return [
        MatchRule(app_attribute="externalId", user_attribute="id"),
        MatchRule(app_attribute="userName", user_attribute="login"),
        MatchRule(app_attribute="emails", user_attribute="email"),
    ]


class ImportSettings(BaseModel):
    """The app's side (services.app_accounts): how an import reads the app and links what it
    finds, and what a full reconcile does about drift (engine.drift)."""

    model_config = ConfigDict(extra="forbid")

    page_size: int = Field(default=100, ge=1, le=1000)
    # In precedence order: the first rule that finds exactly one directory user decides.
    match_rules: list[MatchRule] = Field(default_factory=default_match_rules, max_length=8)
    # Off: every match waits for an admin to confirm or reject it.
    auto_link: bool = True
    # What a full reconcile does about attributes changed in the app behind provisiond's back
    # (engine.drift): send the policy's values again, or only record and show the drift.
    drift: Literal["correct", "report"] = "correct"


class ProvisioningSettings(BaseModel):
    """What provisiond may do in an app and how fast."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    features: Features = Field(default_factory=Features)
    deprovision_action: DeprovisionAction = DeprovisionAction.DEACTIVATE
    matching: MatchingAttribute = "userName"
    concurrency: int = Field(default=4, ge=1, le=64)
    # At least one request every 100 s: slower budgets are the SCIM profile's requests per hour.
    rate_limit_per_second: float | None = Field(default=None, ge=0.01, le=10_000)
    # A full reconcile (reading the app, repairing drift) this often; None: only on demand.
    full_sync_every_hours: float | None = Field(default=24.0, gt=0, le=8760)
    # How the roles of several assignments combine (engine/roles.py): the winning assignment's
    # (a direct one, else the group with the lowest priority number), or all of them.
    role_mode: RoleMode = "priority"
    imports: ImportSettings = Field(default_factory=ImportSettings)


# Validation errors of connector settings never carry the input: pydantic puts the whole
# offending value (an auth object, with its password) into str(ValidationError), which ends up
# in tracebacks and logs. The setting applies to the model validated at the top, so each one
# that may be validated alone sets it.
_SECRET_BEARING = ConfigDict(extra="forbid", hide_input_in_errors=True)


class BearerAuth(BaseModel):
    model_config = _SECRET_BEARING
    type: Literal["bearer"] = "bearer"
    token: SecretStr


class BasicAuth(BaseModel):
    model_config = _SECRET_BEARING
    type: Literal["basic"] = "basic"
    username: str = Field(min_length=1)
    password: SecretStr


TokenEndpointAuthMethod = Literal["client_secret_basic", "client_secret_post"]


class OAuth2ClientCredentials(BaseModel):
    model_config = _SECRET_BEARING
    type: Literal["oauth2_client_credentials"] = "oauth2_client_credentials"
    token_url: HttpUrl
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    scope: str | None = None
    # How the client authenticates to the token endpoint (RFC 6749 §2.3.1; the names are RFC
    # 7591's): HTTP Basic, which every server must support, or the two fields in the form body.
    token_endpoint_auth_method: TokenEndpointAuthMethod = "client_secret_basic"  # noqa: S105


class NoAuth(BaseModel):
    model_config = _SECRET_BEARING
    type: Literal["none"] = "none"


ConnectorAuth = Annotated[
    BearerAuth | BasicAuth | OAuth2ClientCredentials | NoAuth, Field(discriminator="type")
]


class ScimConnectorSettings(BaseModel):
    """Where the app's SCIM 2.0 service lives and how to authenticate to it."""

    model_config = _SECRET_BEARING

    kind: Literal["scim"] = "scim"
    type: Literal["scim2"] = "scim2"
    base_url: str
    auth: ConnectorAuth = Field(default_factory=NoAuth)
    # Bounds each connect, read and write, not a whole request: every byte a target drips
    # starts it again.
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Bounds a whole request, answer read to its last byte (and a token fetch or 401 re-send
    # on the way), so no target holds a worker slot longer. At most 5 minutes: the lease of a
    # claim on demand (engine/queue.py LEASE) must outlast any one request it sends.
    request_deadline_seconds: float = Field(default=30.0, ge=1, le=300)
    # How this app speaks SCIM (domain/dialects.py): a shipped profile's name or a document.
    profile: ScimProfile = Field(default_factory=ScimProfile)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if any(ch.isspace() or not ch.isprintable() for ch in value.strip()):
            raise ValueError("base_url must not contain spaces or control characters")
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an http:// or https:// URL with a host")
        try:
            parts.port  # noqa: B018 -- raises on a port that is not a number in range
        except ValueError:
            raise ValueError("base_url has a port that is not a number from 0 to 65535") from None
        if parts.query or parts.fragment:
            raise ValueError("base_url must not carry a query or a fragment")
        if "@" in parts.netloc:
            # Credentials in the URL would be stored and shown as public settings: they go
            # in auth, which is sealed and never shown.
            raise ValueError("base_url must not carry a user name or password: use auth")
        return value.strip().rstrip("/")


def redacted_url(value: str) -> str:
    """A refused base URL as a form shows it again: without a user name, password, query or
    fragment, the parts where a secret may have been pasted (and that are refused anyway)."""
    try:
        parts = urlsplit(value.strip())
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return ""
    return parts._replace(netloc=host, query="", fragment="").geturl()


def connector_kind(value: Any) -> str:
    """The kind of a connector's settings: ``scim`` when it does not say (every app stored
    before there were other kinds)."""
    if isinstance(value, Mapping):
        return str(value.get("kind") or "scim")
    return str(getattr(value, "kind", "scim"))


# An app's connector, by kind (domain.connector_kinds holds the non-SCIM ones).
ConnectorSettings = Annotated[
    Annotated[ScimConnectorSettings, Tag("scim")]
    | Annotated[LdapConnectorSettings, Tag("ldap")]
    | Annotated[PostgresConnectorSettings, Tag("postgresql")],
    # A kind that is none of these is named in no error (it might be a pasted secret).
    Discriminator(
        connector_kind,
        custom_error_type="connector_kind",
        custom_error_message="kind must be scim, ldap or postgresql",
    ),
]
AnyConnectorSettings = ScimConnectorSettings | LdapConnectorSettings | PostgresConnectorSettings
MODEL_OF: dict[str, type[AnyConnectorSettings]] = {
    "scim": ScimConnectorSettings,
    "ldap": LdapConnectorSettings,
    "postgresql": PostgresConnectorSettings,
}


def shown_connector(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored (public) connector as it is shown: a setting added since it was saved shows
    the default the connector runs with, not a blank."""
    model = MODEL_OF.get(connector_kind(stored), ScimConnectorSettings)
    defaults = {
        name: _plain(info.get_default(call_default_factory=True))
        for name, info in model.model_fields.items()
        # Secrets are write-only: not even a default is shown for them.
        if name != "auth" and not info.is_required() and "SecretStr" not in str(info.annotation)
    }
    return {**defaults, **stored}


def _plain(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def app_name_pattern() -> str:
    return _NAME_PATTERN
