"""Applications: the list, Add application, and an app's Provisioning tab (connector settings,
Test connection, the enable toggle, feature toggles, deprovision action, sync, delete)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError
from starlette.responses import Response

from provisiond.authz import Action, shown_test, shown_test_failure
from provisiond.domain.apps import (
    AnyConnectorSettings,
    ProvisioningSettings,
    ScimConnectorSettings,
    app_name_pattern,
    connector_kind,
    redacted_url,
    shown_connector,
)
from provisiond.domain.dialects import ScimProfile
from provisiond.errors import Conflict, Invalid, ProvisiondError
from provisiond.services import apps, connection, runs
from provisiond.store.tables import App
from provisiond.web import kind_forms
from provisiond.web.context import Console, ConsoleDep, PostDep, redirect, render
from provisiond.web.forms import FieldErrors, checked, service_errors, validation_errors

router = APIRouter()
FEATURES = ("create_users", "update_users", "deactivate_users", "push_groups", "password_on_create")
AUTH_TYPES = ("bearer", "basic", "oauth2_client_credentials", "none")
OAUTH2 = "oauth2_client_credentials"
# The form's fields for each kind's settings, secrets apart (never shown, never echoed).
SHOWN_AUTH_FIELDS = ("username", "token_url", "client_id", "scope", "token_endpoint_auth_method")
# Each kind's secret field: its hint says "Set" only for the kind the app has.
SECRET_FIELDS = {"bearer": "token", "basic": "password", OAUTH2: "client_secret"}
CONNECTOR_FIELDS = {
    "profile": "profile",
    "profile.name": "profile",
    "connector.auth": "auth_type",
    "base_url": "base_url",
    "auth.bearer.token": "token",
    "auth.basic.username": "username",
    "auth.basic.password": "password",
    "token": "token",
    "username": "username",
    "password": "password",
    "timeout_seconds": "timeout_seconds",
    "request_deadline_seconds": "request_deadline_seconds",
    "name": "name",
    "label": "label",
}


def load(console: Console, app_id: str, action: Action = Action.APP_READ) -> App:
    with console.rt.db.session() as session:
        app = apps.get_app(session, app_id)
    console.authorize(action, app.id)
    return app


@router.get("/apps")
def list_apps(console: ConsoleDep) -> Response:
    console.authorize(Action.APP_READ)
    with console.rt.db.session() as session:
        rows = [app for app in apps.list_apps(session) if console.may(Action.APP_READ, app.id)]
    return render(console.request, "apps/list.html", apps=rows)


@router.get("/apps/new")
def new_app(console: ConsoleDep, kind: str = "scim") -> Response:
    """Add application; ``?kind=`` picks the connector's form (a link: no script under CSP)."""
    console.authorize(Action.APP_CREATE)
    if kind not in kind_forms.KINDS:
        raise Invalid(f"choose one of {', '.join(kind_forms.KINDS)}", field="kind")
    values: dict[str, Any] = {"auth_type": "bearer"}
    if kind != "scim":
        values = kind_forms.shown(shown_connector({"kind": kind}), kind)
    return _new_page(console, kind, values, {})


def _new_page(console: Console, kind: str, values: dict[str, Any], errors: FieldErrors) -> Response:
    return render(
        console.request,
        "apps/new.html",
        status_code=422 if errors else 200,
        kind=kind,
        values=values,
        errors=errors,
        pattern=app_name_pattern(),
        secret_hints=_secret_hints(None, new=True),
        secret_hint=kind_forms.secret_hint(kind, False, new=True),
    )


def _add(console: Console, name: str, label: str, connector: AnyConnectorSettings) -> str:
    """Add the app (any kind), provisioning off until its connection test passes; its id."""
    if not name or not label:
        raise Invalid("a name and a label are needed", field="name" if not name else "label")
    if not re.match(app_name_pattern(), name):
        raise Invalid(
            "lower-case letters, digits and '-', starting with a letter or digit", field="name"
        )
    with console.rt.db.session() as session:
        return apps.create_app(
            session,
            console.actor,
            console.rt.vault,
            name=name,
            label=label,
            connector=connector,
            provisioning=ProvisioningSettings(),
        ).id


def _auth(form: Console, keep_secrets: bool) -> dict[str, Any]:
    kind = form.field("auth_type") or "none"
    if kind not in AUTH_TYPES:
        raise Invalid("choose a bearer token, HTTP basic, OAuth 2.0 or none", field="auth_type")
    auth: dict[str, Any] = {"type": kind}
    if kind == "basic":
        auth["username"] = form.field("username")
    if kind == OAUTH2:
        auth["token_url"] = form.field("token_url")
        auth["client_id"] = form.field("client_id")
        auth["scope"] = form.field("scope") or None
        auth["token_endpoint_auth_method"] = (
            form.field("token_endpoint_auth_method") or "client_secret_basic"
        )
    secret = SECRET_FIELDS.get(kind)
    # An empty secret field on the Provisioning tab means "keep the stored one".
    if secret and (form.field(secret) or not keep_secrets):
        auth[secret] = form.field(secret)
    return auth


def _shown_auth(console: Console) -> dict[str, str]:
    """What was typed in the form's auth fields, to show again (secrets never)."""
    return {name: console.field(name) for name in SHOWN_AUTH_FIELDS}


def _secret_hints(stored_kind: str | None, *, new: bool = False) -> dict[str, str]:
    if new:
        return {field: "Stored encrypted; never shown again." for field in SECRET_FIELDS.values()}
    return {
        field: "Set — leave empty to keep it." if kind == stored_kind else "Not set."
        for kind, field in SECRET_FIELDS.items()
    }


def _number(console: Console, name: str, default: float | None) -> float | None:
    raw = console.field(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise Invalid("enter a number", field=name) from None


@router.post("/apps/new")
def create_app(console: PostDep) -> Response:
    console.authorize(Action.APP_CREATE)
    kind = console.field("kind") or "scim"
    if kind not in kind_forms.KINDS:
        raise Invalid(f"choose one of {', '.join(kind_forms.KINDS)}", field="kind")
    if kind in kind_forms.MODELS:
        return _create_of_kind(console, kind)
    values = {key: console.field(key) for key in ("name", "label", "base_url", "auth_type")}
    values |= _shown_auth(console)
    values["profile_choice"] = console.field("profile") or "rfc"
    errors: FieldErrors = {}
    try:
        connector = ScimConnectorSettings.model_validate(
            {
                "base_url": values["base_url"],
                "auth": _auth(console, keep_secrets=False),
                "profile": values["profile_choice"],
            }
        )
        app_id = _add(console, values["name"], values["label"], connector)
    except ValidationError as exc:
        errors = validation_errors(exc, CONNECTOR_FIELDS)
    except (Invalid, Conflict) as exc:
        errors = service_errors(exc, "name")
    if errors:
        return _new_page(
            console, "scim", {**values, "base_url": redacted_url(values["base_url"])}, errors
        )
    console.flash(f"Added {values['name']}. Test the connection, then enable provisioning.")
    return redirect(console.request, f"/apps/{app_id}/provisioning")


def _create_of_kind(console: Console, kind: str) -> Response:
    """Add an LDAP or PostgreSQL app: its settings validated by the model the API uses."""
    values = {"name": console.field("name"), "label": console.field("label")}
    values |= kind_forms.typed(console, kind)
    try:
        connector = kind_forms.MODELS[kind].model_validate(
            kind_forms.settings_from(console, kind, keep_secret=False)
        )
        app_id = _add(console, values["name"], values["label"], connector)
    except ValidationError as exc:
        errors = kind_forms.placed(validation_errors(exc), kind)
    except (Invalid, Conflict) as exc:
        errors = service_errors(exc, "name")
    else:
        console.flash(f"Added {values['name']}. Test the connection, then enable provisioning.")
        return redirect(console.request, f"/apps/{app_id}/provisioning")
    return _new_page(console, kind, values, errors)


def _provisioning_page(
    console: Console,
    app: App,
    *,
    status_code: int = 200,
    errors: FieldErrors | None = None,
    settings: ProvisioningSettings | None = None,
    test: dict[str, Any] | None = None,
    connector_values: dict[str, Any] | None = None,
) -> Response:
    kind = connector_kind(app.connector)
    if kind != "scim" and connector_values is None:
        connector_values = kind_forms.shown(shown_connector(app.connector), kind)
    return render(
        console.request,
        "apps/provisioning.html",
        status_code=status_code,
        app=app,
        tab="provisioning",
        kind=kind,
        secret_hint=kind_forms.secret_hint(kind, app.credentials is not None)
        if kind != "scim"
        else "",
        connector=connector_values
        or {
            **shown_connector(app.connector),
            **{name: app.connector["auth"].get(name) or "" for name in SHOWN_AUTH_FIELDS},
            "auth_type": app.connector["auth"]["type"],
            **_profile_choice(app.connector.get("profile")),
        },
        secret_hints=_secret_hints(
            app.connector.get("auth", {}).get("type") if app.credentials else None
        ),
        settings=settings or apps.provisioning_of(app),
        last_test=shown_test(console.actor, test or app.last_test),
        features=FEATURES,
        errors=errors or {},
        can_manage=console.may(Action.APP_MANAGE, app.id),
        can_delete=console.may(Action.APP_DELETE, app.id),
    )


def _profile_choice(stored: Any) -> dict[str, str]:
    """The dialect select's state: a shipped profile's name, or an edited one kept as it is."""
    profile = ScimProfile.model_validate(stored or "rfc")
    if profile.differs_from_shipped():
        return {"profile_choice": "", "profile_edited": profile.name}
    return {"profile_choice": profile.name}


@router.get("/apps/{app_id}")
def app_home(app_id: str, console: ConsoleDep) -> Response:
    app = load(console, app_id)
    return redirect(console.request, f"/apps/{app.id}/provisioning")


@router.get("/apps/{app_id}/provisioning")
def provisioning(app_id: str, console: ConsoleDep) -> Response:
    return _provisioning_page(console, load(console, app_id))


@router.post("/apps/{app_id}/connector")
def save_connector(app_id: str, console: PostDep) -> Response:
    app = load(console, app_id, Action.APP_MANAGE)
    kind = connector_kind(app.connector)
    if kind != "scim":
        return _save_of_kind(console, app, kind)
    values = {
        "base_url": console.field("base_url"),
        "auth_type": console.field("auth_type"),
        **_shown_auth(console),
        "timeout_seconds": console.field("timeout_seconds"),
        "request_deadline_seconds": console.field("request_deadline_seconds"),
        **_profile_choice(app.connector.get("profile")),
    }
    if console.field("profile"):
        values |= {"profile_choice": console.field("profile"), "profile_edited": ""}
    try:
        changes: dict[str, Any] = {"base_url": values["base_url"], "auth": _auth(console, True)}
        if console.field("profile"):  # empty: keep an edited profile as it is
            changes["profile"] = console.field("profile")
        for name in ("timeout_seconds", "request_deadline_seconds"):
            seconds = _number(console, name, None)
            if seconds is not None:
                changes[name] = seconds
        with console.rt.db.session() as session:
            apps.update_app(
                session, console.actor, console.rt.vault, app.id, label=None, connector=changes
            )
    except ValidationError as exc:
        errors = validation_errors(exc, CONNECTOR_FIELDS)
    except ProvisiondError as exc:
        errors = service_errors(exc, "base_url", CONNECTOR_FIELDS)
    else:
        console.flash("Connector settings saved. Test the connection again.")
        return redirect(console.request, f"/apps/{app.id}/provisioning")
    values["base_url"] = redacted_url(values["base_url"])  # never echo a pasted secret
    return _provisioning_page(console, app, status_code=422, errors=errors, connector_values=values)


def _save_of_kind(console: Console, app: App, kind: str) -> Response:
    """Edit an LDAP or PostgreSQL connector through the API's merge: an empty secret keeps the
    stored one while the server stays the same."""
    values = kind_forms.typed(console, kind)
    try:
        if console.field("kind") not in ("", kind):
            raise Invalid(f"this app's connector is {kind}: add another app", field="form")
        with console.rt.db.session() as session:
            apps.update_app(
                session,
                console.actor,
                console.rt.vault,
                app.id,
                label=None,
                connector=kind_forms.settings_from(console, kind, keep_secret=True),
            )
    except ValidationError as exc:
        errors = kind_forms.placed(validation_errors(exc), kind)
    except ProvisiondError as exc:
        errors = kind_forms.placed(service_errors(exc, "form"), kind)
    else:
        console.flash("Connector settings saved. Test the connection again.")
        return redirect(console.request, f"/apps/{app.id}/provisioning")
    return _provisioning_page(console, app, status_code=422, errors=errors, connector_values=values)


@router.post("/apps/{app_id}/test")
async def test_connection(app_id: str, console: PostDep) -> Response:
    app = load(console, app_id, Action.APP_MANAGE)
    report = shown_test(console.actor, await connection.test_app(console.rt, console.actor, app.id))
    assert report is not None
    message = "passed" if report["ok"] else f"failed: {report['reason']}"
    console.flash(f"Connection test {message}")
    return redirect(console.request, f"/apps/{app.id}/provisioning#connection-test")


def _settings_from(console: Console, current: ProvisioningSettings) -> dict[str, Any]:
    return {
        "enabled": checked(console.field("enabled")),
        "features": {name: checked(console.field(f"feature_{name}")) for name in FEATURES},
        "deprovision_action": console.field("deprovision_action") or "deactivate",
        "matching": console.field("matching") or current.matching,
        # A form without the field (an older page) keeps the setting rather than resetting it.
        "role_mode": console.field("role_mode") or current.role_mode,
        "concurrency": console.field("concurrency") or current.concurrency,
        "rate_limit_per_second": console.field("rate_limit_per_second") or None,
        "full_sync_every_hours": console.field("full_sync_every_hours") or None,
        # Set through the API or the Accounts tab, never by this form: kept as it is.
        "imports": current.imports.model_dump(),
    }


@router.post("/apps/{app_id}/provisioning")
async def save_provisioning(app_id: str, console: PostDep) -> Response:
    app = load(console, app_id, Action.APP_MANAGE)
    current = apps.provisioning_of(app)
    wanted_raw = _settings_from(console, current)
    try:
        wanted = ProvisioningSettings.model_validate(wanted_raw)
    except ValidationError as exc:
        return _provisioning_page(
            console,
            app,
            status_code=422,
            errors=validation_errors(exc),
            settings=current.model_copy(update={"enabled": current.enabled}),
        )
    try:
        _, _, run = await connection.put_provisioning(console.rt, console.actor, app.id, wanted)
    except Conflict as refused:
        # The connection test failed: nothing was saved, the toggle stays off, the reason shows.
        shown = shown_test_failure(console.actor, refused)
        with console.rt.db.session() as session:
            fresh = apps.get_app(session, app.id)
        return _provisioning_page(
            console,
            fresh,
            status_code=409,
            errors={"enabled": shown.detail},
            settings=wanted.model_copy(update={"enabled": False}),
            test=shown.extra.get("test"),
        )
    console.flash(
        "Provisioning settings saved."
        + (f" A full sync started ({run.total} users)." if run is not None else "")
    )
    return redirect(console.request, f"/apps/{app.id}/provisioning")


@router.post("/apps/{app_id}/sync")
def start_sync(app_id: str, console: PostDep) -> Response:
    app = load(console, app_id, Action.APP_MANAGE)
    try:
        with console.rt.db.session() as session:
            run = runs.start_full_sync(session, console.actor, apps.get_app(session, app.id))
            console.flash(f"Full sync started: {run.total} users.")
    except Conflict as exc:
        console.flash(f"No sync: {exc.detail}")
    return redirect(console.request, f"/apps/{app.id}/accounts")


@router.post("/apps/{app_id}/delete")
def delete_app(app_id: str, console: PostDep) -> Response:
    app = load(console, app_id, Action.APP_DELETE)
    if console.field("confirm") != app.name:
        return _provisioning_page(
            console,
            app,
            status_code=422,
            errors={"confirm": f"type {app.name} to confirm the deletion"},
        )
    with console.rt.db.session() as session:
        apps.delete_app(session, console.actor, app.id)
    console.flash(f"Deleted {app.name}; its accounts in the application were left as they are.")
    return redirect(console.request, "/apps")
