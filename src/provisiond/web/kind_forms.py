"""The console's forms for the connector kinds that are not SCIM (LDAP, PostgreSQL roles).

Each form field is named after its settings field, so a validation error lands beside the
field it concerns; the settings themselves are validated by the same models (and, on edit,
the same service merge) the API uses. Secrets are never shown: an empty secret field on
edit keeps the stored one (services.apps refuses that when the server moves)."""

from __future__ import annotations

from typing import Any

from provisiond.domain.connector_kinds import LdapConnectorSettings, PostgresConnectorSettings
from provisiond.web.context import Console
from provisiond.web.forms import FieldErrors

KINDS = ("scim", "ldap", "postgresql")
MODELS: dict[str, type[LdapConnectorSettings] | type[PostgresConnectorSettings]] = {
    "ldap": LdapConnectorSettings,
    "postgresql": PostgresConnectorSettings,
}
SECRET = {"ldap": "bind_password", "postgresql": "password"}
CHECKBOXES = {"ldap": ("start_tls", "tls_verify"), "postgresql": ()}


def fields_of(kind: str) -> tuple[str, ...]:
    """The form's fields for a kind: its settings, ``kind`` and the secret apart."""
    return tuple(name for name in MODELS[kind].model_fields if name not in ("kind", SECRET[kind]))


def typed(console: Console, kind: str) -> dict[str, str]:
    """What was typed, to show again (the secret never)."""
    return {name: console.field(name) for name in fields_of(kind)}


def settings_from(console: Console, kind: str, *, keep_secret: bool) -> dict[str, Any]:
    """The connector settings the form gives. An empty field is the default on create and,
    on edit, an optional setting cleared; checkboxes are present or not."""
    model = MODELS[kind]
    given: dict[str, Any] = {"kind": kind}
    for name in fields_of(kind):
        raw = console.field(name)
        if name in CHECKBOXES[kind]:
            given[name] = raw in ("on", "true", "1", "yes")
        elif raw:
            given[name] = raw
        elif (
            not model.model_fields[name].is_required() and model.model_fields[name].default is None
        ):
            given[name] = None  # an optional DN or role left empty: none
    secret = console.field(SECRET[kind])
    if secret or not keep_secret:
        given[SECRET[kind]] = secret or None
    return given


def shown(stored: dict[str, Any], kind: str) -> dict[str, Any]:
    """A stored connector as the form's values: booleans as checkboxes' state, None blank."""
    return {
        name: stored.get(name) if isinstance(stored.get(name), bool) else stored.get(name) or ""
        for name in fields_of(kind)
    }


# The settings-wide checks (model validators, the service's refusal to move a kept secret),
# by what their messages say, and the field each belongs beside.
WHOLE_CHECKS = (
    ("start_tls is for", "start_tls"),
    ("needs inactive_dn", "inactive_dn"),
    ("bind_password", "bind_password"),
    ("password", "password"),
)


def placed(errors: FieldErrors, kind: str) -> FieldErrors:
    """A settings-wide refusal (start_tls with ldaps://, a move with nowhere to go, a kept
    secret sent to another server) beside the field to change, not only atop the form."""
    # "form": the model's own check; the kind: the same check through the API's union.
    loose = next((errors.pop(key) for key in ("form", "connector", kind) if key in errors), None)
    if loose:
        named = [field for needle, field in WHOLE_CHECKS if needle in loose]
        errors.setdefault(named[0] if named else "form", loose)
    return errors


def secret_hint(kind: str, stored: bool, *, new: bool = False) -> str:
    if new:
        return "Stored encrypted; never shown again."
    return "Set — leave empty to keep it." if stored else "Not set."
