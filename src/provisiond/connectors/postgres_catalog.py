"""Statements on PostgreSQL's role catalog for the role connector (connectors.postgres).

Roles are cluster-wide: provisiond marks the ones it manages with a role comment (``MARKS``)
and never lists, revokes or drops a role without its mark. Every name is ``sql.Identifier``
-quoted, every value a parameter or ``sql.Literal``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from provisiond.connectors.base import RemoteGroup, RemoteUser
from provisiond.domain.connector_kinds import check_role_name
from provisiond.errors import RemoteNotFound, TerminalError

# The role comment that marks what provisiond manages, by what the role is to it.
MARKS = {
    "account": "provisiond: account",
    "app_role": "provisiond: app role",
    "group": "provisiond: pushed group",
}
# Roles whose attributes make them an administrator of the cluster: never touched.
PRIVILEGED = ("rolsuper", "rolcreaterole", "rolreplication", "rolbypassrls")


Cursor = psycopg.AsyncCursor[TupleRow]
ROLE_COLUMNS = (
    "SELECT oid, rolname, rolcanlogin, shobj_description(oid, 'pg_authid'), "
    "rolsuper, rolcreaterole, rolreplication, rolbypassrls FROM pg_roles WHERE "
)


def role_row(values: tuple[Any, ...]) -> dict[str, Any]:
    oid, name, login, mark, *privileged = values
    return {
        "oid": int(oid),
        "name": str(name),
        "login": bool(login),
        "mark": mark,
        "privileged": [flag for flag, on in zip(PRIVILEGED, privileged, strict=True) if on],
    }


async def role_by(cur: Cursor, where: str, value: Any) -> dict[str, Any] | None:
    await cur.execute(sql.SQL(ROLE_COLUMNS + where), (value,))
    found = await cur.fetchone()
    return None if found is None else role_row(found)


async def marked(cur: Cursor, what: str, start_index: int, count: int) -> list[dict[str, Any]]:
    await cur.execute(
        sql.SQL(ROLE_COLUMNS + "shobj_description(oid, 'pg_authid') = %s ORDER BY oid "
                "OFFSET %s LIMIT %s"),
        (MARKS[what], max(start_index - 1, 0), max(count, 0)),
    )
    return [role_row(values) for values in await cur.fetchall()]


async def count_marked(cur: Cursor, what: str) -> int:
    await cur.execute(
        "SELECT count(*) FROM pg_roles WHERE shobj_description(oid, 'pg_authid') = %s",
        (MARKS[what],),
    )
    return int(one(await cur.fetchone())[0])


async def renamed(cur: Cursor, name: str, wanted: Any) -> str:
    """The role's name after renaming it to ``wanted`` (a rename keeps its OID and grants)."""
    new_name = role_name(wanted)
    if new_name != name:
        await cur.execute(
            sql.SQL("ALTER ROLE {} RENAME TO {}").format(
                sql.Identifier(name), sql.Identifier(new_name)
            )
        )
    return new_name


async def mark(cur: Cursor, name: str, what: str) -> None:
    await cur.execute(
        sql.SQL("COMMENT ON ROLE {} IS {}").format(sql.Identifier(name), sql.Literal(MARKS[what]))
    )


async def account_name(cur: Cursor, remote_id: str) -> str:
    row = await role_by(cur, "oid = %s", int(remote_id)) if remote_id.isdigit() else None
    if row is None:
        raise RemoteNotFound(f"no role with OID {remote_id}")
    refuse_privileged(row)
    if row["mark"] is None:
        # An existing role adopted by the matching rule: provisiond's from now on.
        await mark(cur, row["name"], "account")
    return str(row["name"])


async def group_name(cur: Cursor, remote_id: str) -> str:
    row = await role_by(cur, "oid = %s", int(remote_id)) if remote_id.isdigit() else None
    if row is None or row["mark"] != MARKS["group"]:
        raise RemoteNotFound(f"no group role with OID {remote_id}")
    return str(row["name"])


async def granted(cur: Cursor, member: str, what: str) -> set[str]:
    """The roles of kind ``what`` granted to ``member``."""
    await cur.execute(
        "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "JOIN pg_roles u ON u.oid = m.member "
        "WHERE u.rolname = %s AND shobj_description(g.oid, 'pg_authid') = %s",
        (member, MARKS[what]),
    )
    return {str(values[0]) for values in await cur.fetchall()}


async def set_app_roles(cur: Cursor, name: str, wanted: set[str]) -> None:
    """Grant exactly ``wanted`` of the app-role group roles (created when missing)."""
    current = await granted(cur, name, "app_role")
    for role in sorted(wanted - current):
        row = await role_by(cur, "rolname = %s", role)
        if row is None:
            await cur.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
            await mark(cur, role, "app_role")
        elif row["mark"] != MARKS["app_role"]:
            # A role made by someone else is granted only once marked as provisiond's: else
            # provisiond could grant it but never see it to revoke it.
            refuse_privileged(row)
            raise TerminalError(
                f"role {role!r} exists and is not an app role provisiond manages: to let it "
                f"grant the role, COMMENT ON ROLE it IS '{MARKS['app_role']}'"
            )
        await cur.execute(
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(name))
        )
    for role in sorted(current - wanted):
        await cur.execute(
            sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(role), sql.Identifier(name))
        )


async def member_ids(cur: Cursor, group: str) -> set[str]:
    await cur.execute(
        "SELECT m.member FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "WHERE g.rolname = %s",
        (group,),
    )
    return {str(values[0]) for values in await cur.fetchall()}


async def set_members(cur: Cursor, group: str, members: Sequence[str]) -> None:
    wanted = {m for m in members if m.isdigit()}
    current = await member_ids(cur, group)
    for oid in sorted(wanted - current):
        member = await account_name(cur, oid)
        await cur.execute(
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(member))
        )
    for oid in sorted(current - wanted):
        row = await role_by(cur, "oid = %s", int(oid))
        if row is not None:
            await cur.execute(
                sql.SQL("REVOKE {} FROM {}").format(
                    sql.Identifier(group), sql.Identifier(row["name"])
                )
            )


async def remote_user(cur: Cursor, row: Mapping[str, Any]) -> RemoteUser:
    roles = sorted(await granted(cur, row["name"], "app_role"))
    return RemoteUser(
        remote_id=str(row["oid"]),
        attributes={
            "userName": row["name"],
            "active": row["login"],
            "roles": [{"value": role} for role in roles],
        },
    )


async def remote_group(cur: Cursor, row: Mapping[str, Any]) -> RemoteGroup:
    return RemoteGroup(
        remote_id=str(row["oid"]),
        display_name=row["name"],
        members=frozenset(await member_ids(cur, row["name"])),
    )


# -- values -------------------------------------------------------------------------------------


def role_name(value: Any) -> str:
    """The role name a userName (or group name) gives, or a TerminalError saying why none."""
    if not isinstance(value, str):
        raise TerminalError("the account has no userName: a PostgreSQL role needs a name")
    try:
        return check_role_name(value)
    except ValueError as exc:
        raise TerminalError(str(exc)) from None


def is_active(attributes: Mapping[str, Any]) -> bool:
    value = attributes.get("active", True)
    return value is not False and str(value).lower() != "false"


def wanted_roles(attributes: Mapping[str, Any]) -> set[str] | None:
    """The app roles an account should hold, None when the attributes do not say (an app
    without SCIM roles keeps whatever grants a DBA made)."""
    roles = attributes.get("roles")
    if roles is None:
        return None
    names = {str(item.get("value")) if isinstance(item, Mapping) else str(item) for item in roles}
    return {role_name(name) for name in names}


def refuse_privileged(row: Mapping[str, Any]) -> None:
    if row["privileged"]:
        flags = ", ".join(flag.removeprefix("rol").upper() for flag in row["privileged"])
        raise TerminalError(
            f"role {row['name']!r} exists and is privileged ({flags}): provisiond never "
            "manages or grants such a role"
        )


def one(row: tuple[Any, ...] | None) -> tuple[Any, ...]:
    assert row is not None
    return row


