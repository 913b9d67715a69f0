"""Configuring applications: connector, credentials (sealed), provisioning settings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.connectors.registry import connector_settings, parse_connector
from provisiond.domain.apps import (
    AnyConnectorSettings,
    ProvisioningSettings,
    ScimConnectorSettings,
    connector_kind,
)
from provisiond.errors import Conflict, Invalid, NotFound
from provisiond.services import activity
from provisiond.services.context import Actor
from provisiond.store.secrets import Vault, split_secrets
from provisiond.store.tables import App, utcnow


def get_app(session: Session, app_id: str) -> App:
    """An app by id or by name (names are unique and friendlier on the command line)."""
    app = session.get(App, app_id) or session.scalar(select(App).where(App.name == app_id))
    if app is None:
        raise NotFound(f"no app with id or name {app_id!r}")
    return app


def list_apps(session: Session) -> Sequence[App]:
    return session.scalars(select(App).order_by(App.name)).all()


def provisioning_of(app: App) -> ProvisioningSettings:
    return ProvisioningSettings.model_validate(app.provisioning)


def settings_of(app: App, vault: Vault) -> AnyConnectorSettings:
    return connector_settings(app.connector, vault.open(app.credentials))


def _seal(connector: AnyConnectorSettings, vault: Vault) -> tuple[dict[str, Any], str | None]:
    # The python dump tells the secrets (SecretStr) apart; the stored public half is the JSON
    # dump, since a python one keeps types a JSON column cannot hold (an OAuth token_url is
    # an HttpUrl).
    if not isinstance(connector, ScimConnectorSettings):
        # The other kinds hold their secrets as fields of their own (password, bind_password).
        names, secret = split_secrets(connector.model_dump(mode="python"))
        fields = type(connector).model_fields
        # An unset optional secret (a password under trust auth) is no public setting either.
        public_names = {n for n in names if "SecretStr" not in str(fields[n].annotation)}
        return connector.model_dump(mode="json", include=public_names), (
            vault.seal(secret) if secret else None
        )
    names, secret = split_secrets(connector.auth.model_dump(mode="python"))
    shown = connector.auth.model_dump(mode="json")
    public = {
        **connector.model_dump(mode="json", exclude={"auth"}),
        "auth": {name: shown[name] for name in names},
    }
    return public, (vault.seal(secret) if secret else None)


def create_app(
    session: Session,
    actor: Actor,
    vault: Vault,
    *,
    name: str,
    label: str,
    connector: AnyConnectorSettings,
    provisioning: ProvisioningSettings,
) -> App:
    if session.scalar(select(App).where(App.name == name)) is not None:
        raise Conflict(f"an app named {name!r} exists already", field="name")
    if provisioning.enabled:
        # Enabling needs a passing connection test: configure first, then enable.
        provisioning = provisioning.model_copy(update={"enabled": False})
    public, sealed = _seal(connector, vault)
    app = App(
        name=name,
        label=label,
        connector_type=connector_type_of(connector),
        connector=public,
        credentials=sealed,
        provisioning=provisioning.model_dump(mode="json"),
    )
    session.add(app)
    session.flush()
    activity.record(
        session,
        actor,
        "app.lifecycle.create",
        f"added app {name} ({connector_type_of(connector)})",
        app_id=app.id,
        targets={"app": name},
        details=_created_details(connector),
    )
    return app


def connector_type_of(connector: AnyConnectorSettings) -> str:
    """SCIM apps keep the type they always had ("scim2"); the other kinds are their kind."""
    return connector.type if isinstance(connector, ScimConnectorSettings) else connector.kind


def _created_details(connector: AnyConnectorSettings) -> dict[str, Any]:
    if isinstance(connector, ScimConnectorSettings):
        return {"base_url": connector.base_url, "auth": connector.auth.type}
    return {"kind": connector.kind, "destination": _destinations(connector)[0]}


def update_app(
    session: Session,
    actor: Actor,
    vault: Vault,
    app_id: str,
    *,
    label: str | None,
    connector: dict[str, Any] | None,
) -> App:
    """Change the label and/or connector. Secrets omitted from ``connector.auth`` are kept when
    the auth type is unchanged, so an admin can move the base URL without re-typing a token."""
    app = get_app(session, app_id)
    changes: dict[str, Any] = {}
    if label is not None and label != app.label:
        changes["label"] = {"old": app.label, "new": label}
        app.label = label
    if connector is not None and connector_kind(app.connector) != "scim":
        public, sealed = _updated_connector(app, vault, connector)
        _note_connector_changes(changes, app, vault, public, sealed)
        app.connector, app.credentials = public, sealed
        if changes:
            app.last_test = None
    elif connector is not None:
        given_auth = connector.get("auth")
        if given_auth is not None and not isinstance(given_auth, dict):
            raise Invalid(
                "connector.auth: must be an object with a type (bearer, basic, none, ...)",
                field="connector.auth",
            )
        current = settings_of(app, vault)
        assert isinstance(current, ScimConnectorSettings)
        merged_auth = dict(given_auth or {})
        if merged_auth.get("type", current.auth.type) == current.auth.type:
            # The kept secrets stay SecretStr: a validation error about this dict (a missing
            # field) must not be able to show the stored token.
            merged_auth = {**dict(current.auth), **merged_auth}
        new = ScimConnectorSettings.model_validate(
            {**current.model_dump(mode="json", exclude={"auth"}), **connector, "auth": merged_auth}
        )
        public, sealed = _seal(new, vault)
        kept = set(vault.open(sealed)) - set(connector.get("auth") or {})
        if kept and _destinations(new) != _destinations(current):
            # A kept secret must not follow the app to another host: whoever may edit the URL
            # could otherwise collect a token they are never shown. Nor may it move from https
            # to http, where anyone on the path reads it.
            raise Invalid(
                "the stored credentials are only kept while the scheme and host stay the same: "
                "send connector.auth with its secret (or type none) to change where the app is",
                field="connector.auth",
            )
        _note_connector_changes(changes, app, vault, public, sealed)
        app.connector, app.credentials = public, sealed
        if changes:
            app.last_test = None  # a changed connector must be tested again
    if changes:
        app.updated_at = utcnow()
        activity.record(
            session,
            actor,
            "app.lifecycle.update",
            f"updated app {app.name}",
            app_id=app.id,
            targets={"app": app.name},
            details={"changes": changes},
        )
    return app


def _note_connector_changes(
    changes: dict[str, Any], app: App, vault: Vault, public: dict[str, Any], sealed: str | None
) -> None:
    for key in sorted(set(public) | set(app.connector)):
        if public.get(key) != app.connector.get(key):
            changes[f"connector.{key}"] = {"old": app.connector.get(key), "new": public.get(key)}
    if vault.open(sealed) != vault.open(app.credentials):
        changes["connector.credentials"] = "changed"  # never the values


def _updated_connector(
    app: App, vault: Vault, given: dict[str, Any]
) -> tuple[dict[str, Any], str | None]:
    """A non-SCIM connector with ``given`` fields changed: a secret left out is kept while the
    server it goes to stays the same (as update_app does for SCIM)."""
    current = settings_of(app, vault)
    if connector_kind(given) != current.kind and "kind" in given:
        raise Invalid(
            f"an app's connector kind cannot change ({current.kind}): add another app",
            field="connector.kind",
        )
    # The kept secrets stay SecretStr: a validation error cannot show them.
    new = parse_connector({**dict(current), **given})
    public, sealed = _seal(new, vault)
    kept = set(vault.open(sealed)) - set(given)
    if kept and _destinations(new) != _destinations(current):
        raise Invalid(
            "the stored credentials are only kept while the server and its TLS settings stay "
            f"the same: send the {', '.join(sorted(kept))} too to change where or how the app "
            "is reached",
            field="connector",
        )
    return public, sealed


def _destinations(settings: AnyConnectorSettings) -> tuple[object, ...]:
    """Where credentials are sent, as origins (scheme, host, port): the SCIM service's and,
    for OAuth, the token endpoint's; a database's or a directory's server with how it is
    reached (sslmode; StartTLS and the certificate check), which, like https to http, decides
    who on the path may read the password."""
    if not isinstance(settings, ScimConnectorSettings):
        if settings.kind == "postgresql":
            return (f"postgresql://{settings.host.lower()}:{settings.port}", settings.sslmode)
        tls = (settings.start_tls, settings.tls_verify, settings.ca_file)
        return (_origin(settings.url), *tls)
    token_url = getattr(settings.auth, "token_url", None)
    return (_origin(settings.base_url), _origin(str(token_url)) if token_url else None)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    # The port is part of it: another port of the host may be another service.
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def delete_app(session: Session, actor: Actor, app_id: str) -> None:
    app = get_app(session, app_id)
    session.delete(app)
    activity.record(
        session,
        actor,
        "app.lifecycle.delete",
        f"deleted app {app.name}; its accounts in the application were left as they are",
        app_id=app.id,
        targets={"app": app.name},
    )


def set_provisioning(
    session: Session, actor: Actor, app: App, settings: ProvisioningSettings
) -> tuple[bool, bool]:
    """Store new settings; returns (was_enabled, is_enabled). Enabling is checked by the caller."""
    before = provisioning_of(app)
    after = settings.model_dump(mode="json")
    old = before.model_dump(mode="json")
    changes = {
        key: {"old": old[key], "new": after[key]} for key in sorted(after) if old[key] != after[key]
    }
    if not changes:
        return before.enabled, settings.enabled
    app.provisioning = after
    app.updated_at = utcnow()
    session.flush()
    if before.enabled != settings.enabled:
        action = "app.provisioning.enable" if settings.enabled else "app.provisioning.disable"
        verb = "enabled" if settings.enabled else "disabled"
        activity.record(
            session,
            actor,
            action,
            f"{verb} provisioning for {app.name}",
            app_id=app.id,
            targets={"app": app.name},
        )
    rest = {key: value for key, value in changes.items() if key != "enabled"}
    if rest:
        activity.record(
            session,
            actor,
            "app.provisioning.update",
            f"updated provisioning settings of {app.name}",
            app_id=app.id,
            targets={"app": app.name},
            details={"changes": rest},
        )
    return before.enabled, settings.enabled


def summarised_test(report: dict[str, Any]) -> dict[str, Any]:
    """A connection test's report with each step's summary in place of its detail. The details
    quote what the app's URL answered, which would make the test a way to probe which ports of
    which hosts answer what; the summaries do not tell those apart (authz.shown_test)."""
    steps = [
        {**step, "detail": step.get("summary") or ("ok" if step.get("ok") else "failed")}
        for step in report.get("steps", [])
    ]
    failed = next((step for step in steps if not step.get("ok")), None)
    reason = f"{failed['name']}: {failed['detail']}" if failed else report.get("reason")
    # The dialect notes read the peer's ServiceProviderConfig: shown once it is known to be SCIM.
    notes = report.get("notes", []) if report.get("ok") else []
    return {**report, "steps": steps, "reason": reason, "notes": notes}


def record_test(session: Session, actor: Actor, app: App, report: dict[str, Any]) -> None:
    """Keep the report on the app (its details shown to super admins only) and log the test.
    Every role reads the log, so the event holds the summaries only."""
    app.last_test = {**report, "at": utcnow().isoformat()}
    logged = summarised_test(report)
    activity.record(
        session,
        actor,
        "app.provisioning.test",
        f"connection test of {app.name}: {'passed' if logged['ok'] else 'failed: ' + str(logged['reason'])}",
        outcome="success" if logged["ok"] else "failure",
        app_id=app.id,
        targets={"app": app.name},
        details=logged,
    )
