"""``apps create-postgresql`` and ``apps create-ldap``: apps whose connector is not SCIM.

Registered on the ``apps`` group by cli.apps. Each secret comes from stdin or from an
environment variable (cli.secret_input), never from an argument.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer

from provisiond.cli.client import state
from provisiond.cli.secret_input import (
    BindPasswordEnv,
    BindPasswordStdin,
    LdapUrl,
    StartTls,
    bind_password,
    read_secret,
)

Label = Annotated[str | None, typer.Option(help="Display name; NAME if not given.")]
Name = Annotated[str, typer.Argument(help="Unique, lower-case, URL-safe name, e.g. warehouse.")]


class SslMode(enum.StrEnum):
    disable = "disable"
    prefer = "prefer"
    require = "require"
    verify_ca = "verify-ca"
    verify_full = "verify-full"


class Deactivation(enum.StrEnum):
    attribute = "attribute"
    move = "move"


def create_postgresql(
    ctx: typer.Context,
    name: Name,
    host: Annotated[str, typer.Option(help="The PostgreSQL server's host name or address.")],
    username: Annotated[str, typer.Option(help="The role provisiond connects as (CREATEROLE).")],
    database: Annotated[str, typer.Option(help="The database to connect to.")] = "postgres",
    port: Annotated[int, typer.Option(help="The server's port.")] = 5432,
    sslmode: Annotated[SslMode, typer.Option(help="libpq's sslmode.")] = SslMode.prefer,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="The role's password, from stdin.")
    ] = False,
    password_env: Annotated[
        str | None, typer.Option(metavar="VAR", help="The role's password, from $VAR.")
    ] = None,
    reassign_owned_to: Annotated[
        str | None,
        typer.Option(help="Who gets a deleted account's objects (default: provisiond's role)."),
    ] = None,
    label: Label = None,
) -> None:
    """Connect a PostgreSQL server whose roles are the app's accounts."""
    connector: dict[str, Any] = {
        "kind": "postgresql", "host": host, "port": port, "database": database,
        "username": username, "sslmode": sslmode.value,
    }
    if password_stdin or password_env:
        connector["password"] = read_secret(
            "password", "password", from_stdin=password_stdin, env=password_env,
            needed_by="--password-stdin",
        )
    if reassign_owned_to:
        connector["reassign_owned_to"] = reassign_owned_to
    _create(ctx, name, label, connector)


def create_ldap(
    ctx: typer.Context,
    name: Name,
    url: LdapUrl,
    bind_dn: Annotated[str, typer.Option(help="The DN provisiond binds as.")],
    users_dn: Annotated[str, typer.Option(help="Where accounts are created.")],
    bind_password_stdin: BindPasswordStdin = False,
    bind_password_env: BindPasswordEnv = None,
    groups_dn: Annotated[
        str | None, typer.Option(help="Where role and pushed groups are (groupOfNames).")
    ] = None,
    user_rdn: Annotated[
        str, typer.Option(help="A new entry's RDN from its SCIM attributes.")
    ] = "uid={userName}",
    start_tls: StartTls = False,
    ca_file: Annotated[
        str | None, typer.Option(help="CA certificates (PEM) to verify the server by.")
    ] = None,
    deactivation: Annotated[
        Deactivation, typer.Option(help="Set --disabled-attribute, or move to --inactive-dn.")
    ] = Deactivation.attribute,
    disabled_attribute: Annotated[str, typer.Option()] = "employeeType",
    disabled_value: Annotated[str, typer.Option()] = "disabled",
    inactive_dn: Annotated[
        str | None, typer.Option(help="Where deactivated entries go (with --deactivation move).")
    ] = None,
    label: Label = None,
) -> None:
    """Connect an LDAP directory: accounts as inetOrgPerson, groups as groupOfNames."""
    password = bind_password(bind_password_stdin, bind_password_env)
    connector: dict[str, Any] = {
        "kind": "ldap", "url": url, "bind_dn": bind_dn, "bind_password": password,
        "users_dn": users_dn, "user_rdn": user_rdn, "start_tls": start_tls,
        "deactivation": deactivation.value, "disabled_attribute": disabled_attribute,
        "disabled_value": disabled_value,
    }
    optional = {"groups_dn": groups_dn, "ca_file": ca_file, "inactive_dn": inactive_dn}
    connector.update({key: value for key, value in optional.items() if value})
    _create(ctx, name, label, connector)


def _create(ctx: typer.Context, name: str, label: str | None, connector: dict[str, Any]) -> None:
    st = state(ctx)
    created = st.api.post("/apps", {"name": name, "label": label or name, "connector": connector})
    st.out.done(created, f"created app {created['name']}: {created['id']}")


def where(connector: dict[str, Any]) -> str | None:
    """Where an app is, whatever its kind: a SCIM base URL, an LDAP URL, a database."""
    kind = connector.get("kind", "scim")
    if kind == "postgresql":
        return f"postgresql://{connector.get('host')}:{connector.get('port')}/{connector.get('database')}"
    if kind == "ldap":
        return str(connector.get("url"))
    return connector.get("base_url")


def render(app: dict[str, Any], tail: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """``apps get`` of a non-SCIM app: its connector's fields (never a secret), then ``tail``."""
    connector = dict(app.get("connector", {}))
    rows: list[tuple[str, Any]] = [
        ("id", app["id"]), ("name", app["name"]), ("label", app["label"]),
        ("where", where(connector)), ("kind", connector.pop("kind", None)),
    ]
    secret_set = connector.pop("secret_set", None)
    rows += [(key.replace("_", " "), value) for key, value in connector.items() if value is not None]
    return [*rows, ("secret set", secret_set), *tail]
