"""``import-ldap``: import people and groups from an LDAP directory (a preview unless --apply);
``ldap-source``: the same settings stored, run on demand or on a schedule, incremental."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from provisiond.cli.client import State, path, state
from provisiond.cli.output import Column
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


Name = Annotated[str, typer.Option("--name", help="The source's name; imported users carry it.")]
BindDn = Annotated[str, typer.Option(help="The DN to bind as.")]
BaseDn = Annotated[str, typer.Option(help="Where the users are.")]
Filter = Annotated[str, typer.Option(help="Which entries are users.")]
GroupBaseDn = Annotated[str | None, typer.Option(help="Where the groups are.")]
CaFile = Annotated[str | None, typer.Option(help="CA certificates (PEM), on the server.")]
DisabledAttribute = Annotated[
    str | None, typer.Option(help="An entry with --disabled-value here is suspended.")
]
KeepMissing = Annotated[bool, typer.Option(help="Do not deactivate users gone from the source.")]
Apply = Annotated[bool, typer.Option(help="Make the changes (else only show them).")]
SourceArg = Annotated[str, typer.Argument(metavar="SOURCE", help="The stored source's name or id.")]

ldap_source = typer.Typer(
    help="Stored LDAP sources: run on demand or every so often, incremental between full runs.",
    no_args_is_help=True,
)


def import_ldap(
    ctx: typer.Context,
    name: Name,
    url: LdapUrl,
    bind_dn: BindDn,
    base_dn: BaseDn,
    bind_password_stdin: BindPasswordStdin = False,
    bind_password_env: BindPasswordEnv = None,
    filter: Filter = "(objectClass=inetOrgPerson)",
    group_base_dn: GroupBaseDn = None,
    start_tls: StartTls = False,
    ca_file: CaFile = None,
    disabled_attribute: DisabledAttribute = None,
    disabled_value: Annotated[str, typer.Option()] = "disabled",
    keep_missing: KeepMissing = False,
    apply: Apply = False,
) -> None:
    """Import users and groups from LDAP: shows the plan; --apply makes it so."""
    password = bind_password(bind_password_stdin, bind_password_env)
    source = _source(
        name, url, bind_dn, password, base_dn, filter, group_base_dn, start_tls, ca_file,
        disabled_attribute, disabled_value, keep_missing,
    )
    st = state(ctx)
    _show_plan(st, st.api.post("/ldap-imports", {"source": source, "apply": apply}))


def _source(
    name: str, url: str, bind_dn: str, password: str, base_dn: str, filter: str,
    group_base_dn: str | None, start_tls: bool, ca_file: str | None,
    disabled_attribute: str | None, disabled_value: str, keep_missing: bool,
) -> dict[str, Any]:
    source: dict[str, Any] = {
        "name": name, "url": url, "bind_dn": bind_dn, "bind_password": password,
        "base_dn": base_dn, "filter": filter, "start_tls": start_tls,
        "disabled_value": disabled_value, "deactivate_missing": not keep_missing,
    }
    optional = {"group_base_dn": group_base_dn, "ca_file": ca_file,
                "disabled_attribute": disabled_attribute}
    source.update({key: value for key, value in optional.items() if value})
    return source


def _show_plan(st: State, plan: dict[str, Any], extra: str = "") -> None:
    if st.out.json:
        st.out.print_json(plan)
        return
    counts = plan["counts"]
    st.out.line(", ".join(f"{counts[key]} {label}" for key, label in KINDS if counts.get(key)) or "nothing to change")
    for error in plan["errors"]:
        st.out.line(f"error: {error}")
    st.out.line(extra + ("applied" if plan["applied"] else "preview only: --apply makes these changes"))


SOURCE_COLUMNS = (
    Column("ID", "id"),
    Column("NAME", "name"),
    Column("BASE DN", lambda s: s["source"].get("base_dn")),
    Column("EVERY", lambda s: "on demand" if s["every_hours"] is None else f"{s['every_hours']:g} h"),
    Column("FULL EVERY", lambda s: f"{s['full_every']} runs"),
    Column("LAST RUN", lambda s: s["last_run_at"] or "never"),
)


@ldap_source.command("create")
def create_source(
    ctx: typer.Context,
    name: Name,
    url: LdapUrl,
    bind_dn: BindDn,
    base_dn: BaseDn,
    bind_password_stdin: BindPasswordStdin = False,
    bind_password_env: BindPasswordEnv = None,
    filter: Filter = "(objectClass=inetOrgPerson)",
    group_base_dn: GroupBaseDn = None,
    start_tls: StartTls = False,
    ca_file: CaFile = None,
    disabled_attribute: DisabledAttribute = None,
    disabled_value: Annotated[str, typer.Option()] = "disabled",
    keep_missing: KeepMissing = False,
    every_hours: Annotated[
        float | None, typer.Option(help="Apply it this often (hours); else on demand only.")
    ] = None,
    full_every: Annotated[
        int, typer.Option(help="Every Nth run reads everything and deactivates who left.")
    ] = 6,
) -> None:
    """Store an LDAP source (the bind password sealed), run by the scheduler with --every-hours."""
    password = bind_password(bind_password_stdin, bind_password_env)
    source = _source(
        name, url, bind_dn, password, base_dn, filter, group_base_dn, start_tls, ca_file,
        disabled_attribute, disabled_value, keep_missing,
    )
    st = state(ctx)
    made = st.api.post("/ldap-sources", {"source": source, "every_hours": every_hours,
                                         "full_every": full_every})
    st.out.done(made, f"LDAP source {made['name']} stored ({made['id']})")


@ldap_source.command("list")
def list_sources(ctx: typer.Context) -> None:
    """List the stored LDAP sources, by name."""
    st = state(ctx)
    st.out.page(st.api.get("/ldap-sources"), SOURCE_COLUMNS, empty="no LDAP sources")


@ldap_source.command("run")
def run_source(
    ctx: typer.Context,
    source: SourceArg,
    apply: Apply = False,
    full: Annotated[bool, typer.Option(help="Read everything, not only what changed.")] = False,
) -> None:
    """Run a stored source: shows the plan; --apply makes it so. Incremental unless --full
    (or its every-Nth full run): only a full run deactivates who left the filter."""
    st = state(ctx)
    plan = st.api.post(path("ldap-sources", _source_id(st, source), "run"), {"apply": apply, "full": full})
    kind = "full" if plan["full"] else "incremental"
    _show_plan(st, plan, f"{kind} run, {plan['read']} entries read: ")


@ldap_source.command("delete")
def delete_source(ctx: typer.Context, source: SourceArg) -> None:
    """Forget a stored source; the users it imported stay as they are."""
    st = state(ctx)
    st.api.delete(path("ldap-sources", _source_id(st, source)))
    st.out.done(None, f"LDAP source {source} deleted")


def _source_id(st: State, name_or_id: str) -> str:
    for item in st.api.get("/ldap-sources")["items"]:
        if name_or_id in (item["name"], item["id"]):
            return str(item["id"])
    return name_or_id  # the server answers 404 for what is neither
