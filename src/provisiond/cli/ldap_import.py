"""``import-ldap``: import people and groups from an LDAP directory (a preview unless --apply)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from provisiond.cli.client import state
from provisiond.cli.secret_input import (
    BindPasswordEnv,
    BindPasswordStdin,
    LdapUrl,
    StartTls,
    bind_password,
)

# The plan's kinds of change, as the preview lists them.
KINDS = (
    ("create", "create"), ("update", "update"), ("suspend", "suspend"),
    ("reactivate", "reactivate"), ("deactivate", "deactivate"),
    ("create_group", "create group"), ("add_member", "add member"),
    ("remove_member", "remove member"), ("error", "error"),
)


def import_ldap(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="The source's name; imported users carry it.")],
    url: LdapUrl,
    bind_dn: Annotated[str, typer.Option(help="The DN to bind as.")],
    base_dn: Annotated[str, typer.Option(help="Where the users are.")],
    bind_password_stdin: BindPasswordStdin = False,
    bind_password_env: BindPasswordEnv = None,
    filter: Annotated[str, typer.Option(help="Which entries are users.")] = "(objectClass=inetOrgPerson)",
    group_base_dn: Annotated[str | None, typer.Option(help="Where the groups are.")] = None,
    start_tls: StartTls = False,
    ca_file: Annotated[str | None, typer.Option(help="CA certificates (PEM), on the server.")] = None,
    disabled_attribute: Annotated[
        str | None, typer.Option(help="An entry with --disabled-value here is suspended.")
    ] = None,
    disabled_value: Annotated[str, typer.Option()] = "disabled",
    keep_missing: Annotated[
        bool, typer.Option(help="Do not deactivate users gone from the source.")
    ] = False,
    apply: Annotated[bool, typer.Option(help="Make the changes (else only show them).")] = False,
) -> None:
    """Import users and groups from LDAP: shows the plan; --apply makes it so."""
    password = bind_password(bind_password_stdin, bind_password_env)
    source: dict[str, Any] = {
        "name": name, "url": url, "bind_dn": bind_dn, "bind_password": password,
        "base_dn": base_dn, "filter": filter, "start_tls": start_tls,
        "disabled_value": disabled_value, "deactivate_missing": not keep_missing,
    }
    optional = {"group_base_dn": group_base_dn, "ca_file": ca_file,
                "disabled_attribute": disabled_attribute}
    source.update({key: value for key, value in optional.items() if value})
    st = state(ctx)
    plan = st.api.post("/ldap-imports", {"source": source, "apply": apply})
    if st.out.json:
        st.out.print_json(plan)
        return
    counts = plan["counts"]
    st.out.line(", ".join(f"{counts[key]} {label}" for key, label in KINDS if counts.get(key)) or "nothing to change")
    for error in plan["errors"]:
        st.out.line(f"error: {error}")
    st.out.line("applied" if plan["applied"] else "preview only: --apply makes these changes")
