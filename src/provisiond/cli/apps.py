"""``apps`` and ``provisioning``: connected applications and what provisiond may do in them.

An app's secret is never an argument (a command line is visible to every user of the machine in
``ps``): it is read from stdin (``--token-stdin``, a hidden prompt on a terminal) or from an
environment variable (``--token-env VAR``).
"""

from __future__ import annotations

import enum
import functools
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from provisiond.cli import app_kinds, secret_input
from provisiond.cli.client import State, path, state
from provisiond.cli.output import Column, when
from provisiond.cli.runs import follow_run, summary

apps = typer.Typer(help="Connected applications (SCIM 2.0).", no_args_is_help=True)
provisioning = typer.Typer(
    help="What provisiond may do in an app: settings, connection test, on/off.",
    no_args_is_help=True,
)

AppArg = Annotated[str, typer.Argument(metavar="APP", help="The app's id or name.")]
Opt = Annotated[str | None, typer.Option(show_default=False)]
ProfileOpt = Annotated[
    str | None,
    typer.Option(
        metavar="NAME|@FILE",
        show_default=False,
        help="How the app speaks SCIM: rfc, entra-compatible, okta-compatible, or @FILE, a "
        "profile document in JSON (docs/connectors.md); the server checks it.",
    ),
]


def profile_value(given: str) -> Any:
    """A profile's name as given, or the JSON document of ``@FILE``."""
    if not given.startswith("@"):
        return given
    try:
        return json.loads(Path(given[1:]).read_text())
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"cannot read the profile {given[1:]}: {exc}") from exc


def profile_label(profile: Any) -> str:
    if not isinstance(profile, dict):
        return str(profile or "rfc")
    return str(profile.get("name", "rfc"))


class Auth(enum.StrEnum):
    bearer = "bearer"
    basic = "basic"
    oauth2 = "oauth2"
    none = "none"


class TokenEndpointAuth(enum.StrEnum):
    """RFC 6749 §2.3.1, named as in RFC 7591."""

    basic = "client_secret_basic"
    post = "client_secret_post"


class DeprovisionAction(enum.StrEnum):
    deactivate = "deactivate"
    delete = "delete"
    none = "none"


class RoleMode(enum.StrEnum):
    priority = "priority"
    combine = "combine"


class Matching(enum.StrEnum):
    user_name = "userName"
    external_id = "externalId"
    email = "emails.value"


def auth_label(app: dict[str, Any]) -> str:
    kind = str(app.get("connector", {}).get("auth", {}).get("type", "none"))
    return "oauth2" if kind.startswith("oauth2") else kind


def last_test(report: dict[str, Any] | None) -> Text:
    if not report:
        return Text("never", style="dim")
    at = when(report.get("at"))
    if report.get("ok"):
        return Text(f"✓ passed {at}", style="green")
    return Text(f"✗ failed {at}: {report.get('reason')}", style="red")


APP_COLUMNS = (
    Column("ID", "id"),
    Column("NAME", "name"),
    Column("LABEL", "label"),
    Column("BASE URL", lambda a: app_kinds.where(a.get("connector", {}))),
    Column("AUTH", auth_label),
    Column("PROVISIONING", lambda a: "enabled" if a["provisioning"].get("enabled") else "disabled"),
    Column("LAST TEST", lambda a: last_test(a.get("last_test")), wrap=True),
)


def render_app(app: dict[str, Any]) -> list[tuple[str, Any]]:
    connector, auth = app.get("connector", {}), app.get("connector", {}).get("auth", {})
    if connector.get("kind", "scim") != "scim":
        return app_kinds.render(app, [
            ("provisioning", "enabled" if app["provisioning"].get("enabled") else "disabled"),
            ("last test", last_test(app.get("last_test"))),
            ("created", when(app.get("created_at"))), ("updated", when(app.get("updated_at"))),
        ])
    rows: list[tuple[str, Any]] = [
        ("id", app["id"]), ("name", app["name"]), ("label", app["label"]),
        ("base url", connector.get("base_url")), ("auth", auth_label(app)),
        ("profile", profile_label(connector.get("profile"))),
    ]
    rows += [
        (key.replace("_", " "), auth[key])
        for key in ("username", "token_url", "client_id", "scope", "token_endpoint_auth_method")
        if auth.get(key)
    ]
    rows += [
        ("secret set", auth.get("secret_set")),
        ("provisioning", "enabled" if app["provisioning"].get("enabled") else "disabled"),
        ("last test", last_test(app.get("last_test"))),
        ("created", when(app.get("created_at"))), ("updated", when(app.get("updated_at"))),
    ]
    return rows


def render_provisioning(settings: dict[str, Any]) -> list[tuple[str, Any]]:
    features = settings.get("features", {})
    rate = settings.get("rate_limit_per_second")
    return [
        ("enabled", settings.get("enabled")),
        ("create users", features.get("create_users")),
        ("update users", features.get("update_users")),
        ("deactivate users", features.get("deactivate_users")),
        ("password on create", features.get("password_on_create")),
        ("push groups", features.get("push_groups")),
        ("deprovision action", settings.get("deprovision_action")),
        ("matching", settings.get("matching")),
        ("role mode", settings.get("role_mode")),
        ("concurrency", settings.get("concurrency")),
        ("rate limit", f"{rate:g}/s" if rate else "unlimited"),
        ("full sync", f"every {every:g} h" if (every := settings.get("full_sync_every_hours"))
         else "on demand only"),
        ("last test", last_test(settings.get("last_test"))),
    ]


# -- apps -------------------------------------------------------------------------------------


@apps.command("list")
def list_apps(ctx: typer.Context) -> None:
    """List apps, by name."""
    st = state(ctx)
    st.out.page(st.api.get("/apps"), APP_COLUMNS, empty="no apps")


@apps.command("get")
def get_app(ctx: typer.Context, app: AppArg) -> None:
    """Show an app's connector (never its secret) and state."""
    st = state(ctx)
    found = st.api.get(path("apps", app))
    st.out.show(found, render_app(found))


def read_secret(what: str, flag: str, *, from_stdin: bool, env: str | None, auth: Auth) -> str:
    return secret_input.read_secret(
        what, flag, from_stdin=from_stdin, env=env, needed_by=f"--auth {auth.value}"
    )


# The options that each kind of authentication takes.
AUTH_OPTIONS = {
    Auth.bearer: {"token_stdin", "token_env"},
    Auth.basic: {"username", "password_stdin", "password_env"},
    Auth.oauth2: {
        "token_url", "client_id", "client_secret_stdin", "client_secret_env", "scope",
        "token_endpoint_auth_method",
    },
    Auth.none: set(),
}


def check_applies(auth: Auth, given: dict[str, Any]) -> None:
    """Refuse the options of another kind of authentication (--password-stdin with bearer)."""
    stray = sorted(
        name for names in AUTH_OPTIONS.values() for name in names
        if given.get(name) not in (None, False) and name not in AUTH_OPTIONS[auth]
    )
    if stray:
        flags = ", ".join("--" + name.replace("_", "-") for name in stray)
        raise typer.BadParameter(
            f"{flags} do not apply to --auth {auth.value}", param_hint="--auth"
        )


def connector_auth(auth: Auth, given: dict[str, Any]) -> dict[str, Any]:
    check_applies(auth, given)

    def need(name: str) -> str:
        value = given.get(name)
        if not value:
            flag = "--" + name.replace("_", "-")
            raise typer.BadParameter(f"--auth {auth.value} needs {flag}", param_hint=flag)
        return str(value)

    if auth is Auth.bearer:
        token = read_secret(
            "token", "token", from_stdin=given["token_stdin"], env=given["token_env"], auth=auth
        )
        return {"type": "bearer", "token": token}
    if auth is Auth.basic:
        username = need("username")
        password = read_secret(
            "password", "password", from_stdin=given["password_stdin"], env=given["password_env"],
            auth=auth,
        )
        return {"type": "basic", "username": username, "password": password}
    if auth is Auth.oauth2:
        token_url, client_id = need("token_url"), need("client_id")
        secret = read_secret(
            "client secret", "client-secret", from_stdin=given["client_secret_stdin"],
            env=given["client_secret_env"], auth=auth,
        )
        return {
            "type": "oauth2_client_credentials", "token_url": token_url, "client_id": client_id,
            "client_secret": secret, "scope": given["scope"],
            "token_endpoint_auth_method": (
                given["token_endpoint_auth_method"] or TokenEndpointAuth.basic
            ).value,
        }
    return {"type": "none"}


def _auth_option(text: str, *names: str, metavar: str | None = None) -> Any:
    return typer.Option(
        *names, help=text, metavar=metavar, show_default=False, rich_help_panel="Authentication"
    )


STDIN = _auth_option  # a flag: give its one name, else Typer adds a --no-... twin
ENV = functools.partial(_auth_option, metavar="VAR")


@apps.command("create")
def create_app(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Unique, lower-case, URL-safe name, e.g. wiki.")],
    base_url: Annotated[str, typer.Option(help="The app's SCIM 2.0 root, e.g. https://wiki/scim/v2.")],
    auth: Annotated[Auth, typer.Option(help="How provisiond authenticates to the app.")],
    label: Annotated[str | None, typer.Option(help="Display name; NAME if not given.")] = None,
    token_stdin: Annotated[bool, STDIN("bearer: the token, from stdin.", "--token-stdin")] = False,
    token_env: Annotated[str | None, ENV("bearer: the token, from $VAR.")] = None,
    username: Annotated[str | None, _auth_option("basic: the user name.")] = None,
    password_stdin: Annotated[
        bool, STDIN("basic: the password, from stdin.", "--password-stdin")
    ] = False,
    password_env: Annotated[str | None, ENV("basic: the password, from $VAR.")] = None,
    token_url: Annotated[str | None, _auth_option("oauth2: the token endpoint.")] = None,
    client_id: Annotated[str | None, _auth_option("oauth2: the client id.")] = None,
    client_secret_stdin: Annotated[
        bool, STDIN("oauth2: the secret, from stdin.", "--client-secret-stdin")
    ] = False,
    client_secret_env: Annotated[str | None, ENV("oauth2: the secret, from $VAR.")] = None,
    scope: Annotated[str | None, _auth_option("oauth2: the scope to ask for.")] = None,
    token_endpoint_auth_method: Annotated[
        TokenEndpointAuth | None,
        _auth_option("oauth2: how the client authenticates (default client_secret_basic)."),
    ] = None,
    profile: ProfileOpt = None,
) -> None:
    """Connect an app (provisioning starts disabled: test it, then enable it)."""
    given = dict(locals())
    st = state(ctx)
    connector = {"type": "scim2", "base_url": base_url, "auth": connector_auth(auth, given)}
    if profile is not None:
        connector["profile"] = profile_value(profile)
    created = st.api.post("/apps", {"name": name, "label": label or name, "connector": connector})
    st.out.done(created, f"created app {created['name']}: {created['id']}")


apps.command("create-postgresql")(app_kinds.create_postgresql)
apps.command("create-ldap")(app_kinds.create_ldap)


# The API's auth types, and what each takes that is not a secret.
AUTH_TYPE = {Auth.oauth2: "oauth2_client_credentials"}
SECRETS = {  # option prefix -> (what, flag, the API's field)
    Auth.bearer: ("token", "token", "token"),
    Auth.basic: ("password", "password", "password"),
    Auth.oauth2: ("client secret", "client-secret", "client_secret"),
}
PLAIN = ("username", "token_url", "client_id", "scope")


def auth_changes(auth: Auth, given: dict[str, Any]) -> dict[str, Any]:
    """The auth fields given, for an app that keeps its kind of authentication: the server keeps
    the stored secret unless a new one is given."""
    check_applies(auth, given)
    body: dict[str, Any] = {"type": AUTH_TYPE.get(auth, auth.value)}
    body.update({name: given[name] for name in PLAIN if given.get(name) is not None})
    if given.get("token_endpoint_auth_method") is not None:
        body["token_endpoint_auth_method"] = given["token_endpoint_auth_method"].value
    if auth in SECRETS:
        what, flag, field_name = SECRETS[auth]
        prefix = flag.replace("-", "_")
        if given[f"{prefix}_stdin"] or given[f"{prefix}_env"]:
            body[field_name] = read_secret(
                what, flag, from_stdin=given[f"{prefix}_stdin"], env=given[f"{prefix}_env"],
                auth=auth,
            )
    return body


@apps.command("update")
def update_app(
    ctx: typer.Context,
    app: AppArg,
    label: Annotated[str | None, typer.Option(help="A new display name.")] = None,
    base_url: Annotated[str | None, typer.Option(help="A new SCIM 2.0 root.")] = None,
    auth: Annotated[
        Auth | None,
        typer.Option(help="Another kind of authentication (give its secret too).", show_default=False),
    ] = None,
    token_stdin: Annotated[bool, STDIN("bearer: a new token, from stdin.", "--token-stdin")] = False,
    token_env: Annotated[str | None, ENV("bearer: a new token, from $VAR.")] = None,
    username: Annotated[str | None, _auth_option("basic: the user name.")] = None,
    password_stdin: Annotated[
        bool, STDIN("basic: a new password, from stdin.", "--password-stdin")
    ] = False,
    password_env: Annotated[str | None, ENV("basic: a new password, from $VAR.")] = None,
    token_url: Annotated[str | None, _auth_option("oauth2: the token endpoint.")] = None,
    client_id: Annotated[str | None, _auth_option("oauth2: the client id.")] = None,
    client_secret_stdin: Annotated[
        bool, STDIN("oauth2: a new secret, from stdin.", "--client-secret-stdin")
    ] = False,
    client_secret_env: Annotated[str | None, ENV("oauth2: a new secret, from $VAR.")] = None,
    scope: Annotated[str | None, _auth_option("oauth2: the scope to ask for.")] = None,
    token_endpoint_auth_method: Annotated[
        TokenEndpointAuth | None,
        _auth_option("oauth2: how the client authenticates (client_secret_basic or _post)."),
    ] = None,
    profile: ProfileOpt = None,
) -> None:
    """Change an app's label or connector: base URL, authentication, a new secret, its SCIM
    dialect profile.

    The stored secret is kept unless a new one is given, and only while the host stays the same
    (moving the app to another host takes its secret again). Test it after: `provisioning test`.
    """
    given = dict(locals())
    auth_given = any(
        given[name] not in (None, False) for names in AUTH_OPTIONS.values() for name in names
    )
    if label is None and base_url is None and auth is None and profile is None and not auth_given:
        raise typer.BadParameter(
            "nothing to change: give --label, --base-url, --auth, --profile or a secret"
        )
    st = state(ctx)
    current = st.api.get(path("apps", app))
    kind = Auth(auth_label(current))
    connector: dict[str, Any] = {}
    if base_url is not None:
        connector["base_url"] = base_url
    if profile is not None:
        connector["profile"] = profile_value(profile)
    if auth is not None and auth is not kind:
        connector["auth"] = connector_auth(auth, given)  # a new kind: all of it, secret too
    elif auth is not None or auth_given:
        connector["auth"] = auth_changes(kind, given)
    body: dict[str, Any] = {}
    if label is not None:
        body["label"] = label
    if connector:
        body["connector"] = connector
    updated = st.api.patch(path("apps", current["id"]), body)
    changed = [
        key.replace("_", " ") for key in ("label", "base_url", "profile") if given[key] is not None
    ]
    changed += [
        f"auth {key.replace('_', ' ')}" for key in connector.get("auth", {})
        if key != "type" or auth not in (None, kind)
    ]
    st.out.done(updated, f"updated app {updated['name']}: {', '.join(changed)}")


@apps.command("delete")
def delete_app(ctx: typer.Context, app: AppArg) -> None:
    """Delete an app and everything provisiond knows of it (the accounts in the app stay)."""
    st = state(ctx)
    st.api.delete(path("apps", app))
    st.out.done(None, f"deleted app {app}")


# -- provisioning -----------------------------------------------------------------------------

FEATURES = {
    "create": "create_users",
    "update": "update_users",
    "deactivate": "deactivate_users",
    "password_on_create": "password_on_create",
    "push_groups": "push_groups",
}


def _settings(st: State, app: str) -> dict[str, Any]:
    """The app's provisioning settings as they can be PUT back."""
    current = st.api.get(path("apps", app, "provisioning"))
    return {key: value for key, value in current.items() if key != "last_test"}


def _flag(name: str, help_text: str) -> Any:
    return typer.Option(f"--{name}/--no-{name}", show_default=False, help=help_text)


@provisioning.command("show")
def show(ctx: typer.Context, app: AppArg) -> None:
    """Show an app's provisioning settings and last connection test."""
    st = state(ctx)
    settings = st.api.get(path("apps", app, "provisioning"))
    st.out.show(settings, render_provisioning(settings))


@provisioning.command("set")
def set_settings(
    ctx: typer.Context,
    app: AppArg,
    create: Annotated[bool | None, _flag("create", "Create accounts for assigned users.")] = None,
    update: Annotated[bool | None, _flag("update", "Push profile changes.")] = None,
    deactivate: Annotated[
        bool | None, _flag("deactivate", "Deprovision users who lose access.")
    ] = None,
    password_on_create: Annotated[
        bool | None, _flag("password-on-create", "Send a random password on create.")
    ] = None,
    push_groups: Annotated[
        bool | None, _flag("push-groups", "Allow pushing directory groups (`push-groups`).")
    ] = None,
    deprovision_action: Annotated[
        DeprovisionAction | None, typer.Option(help="What deprovisioning does in the app.")
    ] = None,
    matching: Annotated[
        Matching | None, typer.Option(help="How existing accounts are matched.")
    ] = None,
    role_mode: Annotated[
        RoleMode | None,
        typer.Option(
            help="Roles from several group assignments: the lowest priority wins, or combine all."
        ),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=64, help="Requests in flight at once.")
    ] = None,
    rate_limit: Annotated[
        float | None, typer.Option(min=0, help="Requests per second; 0 for unlimited.")
    ] = None,
    full_sync_every: Annotated[
        float | None,
        typer.Option(min=0, help="Hours between scheduled full syncs; 0 for on demand only."),
    ] = None,
) -> None:
    """Change provisioning settings (the others stay as they are)."""
    given = dict(locals())
    st = state(ctx)
    changes: dict[str, Any] = {}
    features = {FEATURES[name]: given[name] for name in FEATURES if given[name] is not None}
    if deprovision_action is not None:
        changes["deprovision_action"] = deprovision_action.value
    if matching is not None:
        changes["matching"] = matching.value
    if role_mode is not None:
        changes["role_mode"] = role_mode.value
    if concurrency is not None:
        changes["concurrency"] = concurrency
    if rate_limit is not None:
        changes["rate_limit_per_second"] = rate_limit or None
    if full_sync_every is not None:
        changes["full_sync_every_hours"] = full_sync_every or None
    if not changes and not features:
        raise typer.BadParameter("give at least one setting to change (see --help)")
    wanted = _settings(st, app)
    wanted.update(changes)
    wanted["features"] = {**wanted.get("features", {}), **features}
    updated = st.api.put(path("apps", app, "provisioning"), wanted)
    st.out.show(updated, render_provisioning(updated))


@provisioning.command("status")
def status(ctx: typer.Context, app: AppArg) -> None:
    """Is provisioning flowing, paused (the app answered 429) or quarantined, and what waits."""
    st = state(ctx)
    now = st.api.get(path("apps", app, "provisioning", "state"))
    rows: list[tuple[str, Any]] = [("state", now["state"])]
    if now["state"] != "flowing":
        rows += [
            ("since", when(now["since"])),
            ("reason", now["reason"]),
            ("next probe" if now["state"] == "quarantined" else "until", when(now["until"])),
        ]
        if now["state"] == "quarantined":
            rows.append(("probes failed", now["probes_failed"]))
    rows += [("queued tasks", now["queued"]), ("queued deprovisionings", now["queued_deprovisions"])]
    st.out.show(now, rows)


@provisioning.command("resume")
def resume(ctx: typer.Context, app: AppArg) -> None:
    """End an app's quarantine now, without waiting for its next probe."""
    st = state(ctx)
    now = st.api.post(path("apps", app, "provisioning", "resume"))
    st.out.done(now, f"{app} resumes: {now['queued']} queued task(s) are due now")


@provisioning.command("test")
def test_connection(ctx: typer.Context, app: AppArg) -> None:
    """Test the connection: SCIM discovery, then an authenticated read (exit 1 if it fails)."""
    st = state(ctx)
    report = st.api.post(path("apps", app, "provisioning", "test"))
    if st.json:
        st.out.print_json(report)
    else:
        for step in report.get("steps", []):
            mark = Text("✓ ", style="green") if step["ok"] else Text("✗ ", style="red")
            st.out.line(mark + Text(f"{step['name']}: {step['detail']}"))
        for note in report.get("notes", []):
            st.out.line(Text(f"  note: {note}", style="yellow"))
        ok = report["ok"]
        st.out.line("connection OK" if ok else f"connection test failed: {report['reason']}")
    if not report["ok"]:
        raise typer.Exit(1)


@provisioning.command("enable")
def enable(
    ctx: typer.Context,
    app: AppArg,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the initial full sync, with progress.")
    ] = False,
) -> None:
    """Enable provisioning: a connection test must pass, then a full sync starts."""
    st = state(ctx)
    wanted = _settings(st, app)
    if wanted.get("enabled"):
        st.out.done(wanted, f"provisioning of {app} is already enabled")
        return
    result = st.api.put(path("apps", app, "provisioning"), {**wanted, "enabled": True})
    run = result.get("initial_run")
    if not (wait and run and st.json):
        message = f"provisioning of {app} enabled"
        if run:
            message += f"; {summary(run)}"
        st.out.done(result, message)
    if wait and run:
        follow_run(st, run, app)


@provisioning.command("disable")
def disable(ctx: typer.Context, app: AppArg) -> None:
    """Disable provisioning: changes are no longer pushed to the app."""
    st = state(ctx)
    wanted = _settings(st, app)
    result = st.api.put(path("apps", app, "provisioning"), {**wanted, "enabled": False})
    st.out.done(result, f"provisioning of {app} disabled")
