"""The PostgreSQL role connector: an app that is a database server, whose roles are its accounts.

* an account is a LOGIN role named after the user's ``userName``; its remote id is the role's
  OID, which a rename (``ALTER ROLE ... RENAME``) keeps;
* app roles (the SCIM ``roles`` values) are group roles (NOLOGIN) granted to the account, kept
  exact; pushed groups are group roles too, their members the accounts granted them;
* deactivating is NOLOGIN and the end of the role's open sessions (pg_terminate_backend): a
  revoked login must not stay connected; deleting is REASSIGN OWNED, DROP OWNED, DROP ROLE.

Roles are cluster-wide, so provisiond marks the ones it manages with a role comment
(``postgres_catalog.MARKS``, where the statements on the catalog are) and never lists, revokes
or drops a role without its mark. It never adopts or
grants a privileged role (SUPERUSER, CREATEROLE, REPLICATION, BYPASSRLS). Every name in SQL is
``sql.Identifier``-quoted and every value a parameter or ``sql.Literal``: nothing a user's
profile holds is spliced into a statement.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from provisiond.connectors.base import (
    Change,
    ConnectionReport,
    ConnectionStep,
    Page,
    Quirks,
    RemoteGroup,
    RemoteUser,
)
from provisiond.connectors.destinations import (
    DestinationPolicy,
    DestinationRefused,
    Resolver,
    checked_address,
    system_resolver,
)
from provisiond.connectors.postgres_catalog import (
    MARKS,
    ROLE_COLUMNS,
    account_name,
    count_marked,
    group_name,
    is_active,
    mark,
    marked,
    member_ids,
    one,
    refuse_privileged,
    remote_group,
    remote_user,
    renamed,
    role_by,
    role_name,
    role_row,
    set_app_roles,
    set_members,
    wanted_roles,
)
from provisiond.domain.connector_kinds import PostgresConnectorSettings
from provisiond.errors import (
    ConnectorError,
    RemoteConflict,
    RemoteNotFound,
    TerminalError,
    TransientError,
)

STATEMENT_TIMEOUT_MS = 30_000

Connection = psycopg.AsyncConnection[TupleRow]


class PostgresRoleConnector:
    """Connections are opened on demand, at most ``concurrency`` at once, and kept idle for the
    next operation; each operation is one transaction."""

    def __init__(
        self,
        settings: PostgresConnectorSettings,
        *,
        concurrency: int = 4,
        policy: DestinationPolicy | None = None,
        resolve: Resolver = system_resolver,
    ) -> None:
        self._settings = settings
        self._policy = policy or DestinationPolicy()
        self._resolve = resolve
        self._slots = asyncio.Semaphore(concurrency)
        self._idle: list[Connection] = []

    # -- connections ------------------------------------------------------------------------

    async def _connect(self) -> Connection:
        s = self._settings
        address = await checked_address(self._policy, s.host, s.port, self._resolve)
        try:
            return await psycopg.AsyncConnection.connect(
                host=s.host,
                hostaddr=address,  # the checked address; TLS still verifies ``host``
                port=s.port,
                dbname=s.database,
                user=s.username,
                password=s.password.get_secret_value() if s.password else None,
                sslmode=s.sslmode,
                connect_timeout=s.connect_timeout_seconds,
                application_name="provisiond",
                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                autocommit=True,
            )
        except psycopg.Error as exc:
            raise connection_error(exc, s) from exc

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[psycopg.AsyncCursor[TupleRow]]:
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                async with conn.transaction(), conn.cursor() as cursor:
                    yield cursor
            except psycopg.Error as exc:
                await conn.close()
                raise statement_error(exc) from exc
            except ConnectorError:
                self._idle.append(conn)  # rolled back; the connection is sound
                raise
            except BaseException:
                await conn.close()  # cancelled mid-statement, say: its state is unknown
                raise
            if conn.closed or conn.broken:
                return
            self._idle.append(conn)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()

    # -- connection test --------------------------------------------------------------------

    async def test_connection(self) -> ConnectionReport:
        s = self._settings
        report = ConnectionReport(quirks=await self.quirks())
        try:
            async with self._transaction() as cur:
                await cur.execute("SELECT current_setting('server_version'), current_user")
                version, user = one(await cur.fetchone())
                await cur.execute(
                    "SELECT rolsuper, rolcreaterole, pg_has_role(current_user, "
                    "'pg_signal_backend', 'MEMBER') FROM pg_roles WHERE rolname = current_user"
                )
                superuser, createrole, signal = one(await cur.fetchone())
        except ConnectorError as exc:
            report.steps.append(_failed_connect(exc, s))
            return report
        report.steps.append(
            ConnectionStep(
                "connect", True, f"connected to {s.database} on {s.host}:{s.port} as {user} "
                f"(PostgreSQL {version})",
            )
        )
        if not (superuser or createrole):
            report.steps.append(_privilege_step(f"role {user} lacks CREATEROLE: it cannot create or alter roles"))
        elif not (superuser or signal):
            report.steps.append(
                _privilege_step(
                    f"role {user} cannot end a deactivated role's sessions: "
                    f"GRANT pg_signal_backend TO {user}"
                )
            )
        else:
            what = "SUPERUSER" if superuser else "CREATEROLE and pg_signal_backend"
            report.steps.append(ConnectionStep("privileges", True, f"role {user} has {what}"))
        return report

    async def quirks(self) -> Quirks:
        return Quirks(patch=True, filter=True, max_results=1000, etag=False)

    # -- accounts ---------------------------------------------------------------------------

    async def find_user(self, attribute: str, value: str) -> RemoteUser | None:
        if attribute != "userName":
            raise TerminalError(
                f"a PostgreSQL app matches accounts by userName (the role name), not {attribute}"
            )
        async with self._transaction() as cur:
            row = await role_by(cur, "rolname = %s", value)
            if row is None:
                return None
            refuse_privileged(row)
            return await remote_user(cur, row)

    async def holds_no_users(self) -> bool:
        async with self._transaction() as cur:
            await cur.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM pg_roles r WHERE "
                "shobj_description(r.oid, 'pg_authid') = %s)",
                (MARKS["account"],),
            )
            return bool(one(await cur.fetchone())[0])

    async def get_user(self, remote_id: str) -> RemoteUser | None:
        async with self._transaction() as cur:  # connects first: a down server is not "gone"
            if not remote_id.isdigit():
                return None
            row = await role_by(cur, "oid = %s", int(remote_id))
            return None if row is None else await remote_user(cur, row)

    async def list_users(self, start_index: int, count: int) -> Page:
        async with self._transaction() as cur:
            rows = await marked(cur, "account", start_index, count)
            items = [await remote_user(cur, row) for row in rows]
            total = await count_marked(cur, "account")
        return Page(items=items, total=total, start_index=start_index)

    async def create_user(self, attributes: Mapping[str, Any]) -> RemoteUser:
        name = role_name(attributes.get("userName"))
        active = is_active(attributes)
        statement = sql.SQL("CREATE ROLE {} {}").format(
            sql.Identifier(name), sql.SQL("LOGIN" if active else "NOLOGIN")
        )
        if attributes.get("password"):
            # DDL takes no bind parameters: a Literal is psycopg's quoting of the value.
            statement += sql.SQL(" PASSWORD {}").format(sql.Literal(str(attributes["password"])))
        async with self._transaction() as cur:
            await cur.execute(statement)
            await mark(cur, name, "account")
            wanted = wanted_roles(attributes)
            if wanted is not None:
                await set_app_roles(cur, name, wanted)
            row = await role_by(cur, "rolname = %s", name)
            assert row is not None
            return await remote_user(cur, row)

    async def update_user(
        self, remote_id: str, changes: Sequence[Change], attributes: Mapping[str, Any]
    ) -> None:
        active = is_active(attributes)
        async with self._transaction() as cur:
            name = await account_name(cur, remote_id)
            name = await renamed(cur, name, attributes.get("userName", name))
            await cur.execute(
                sql.SQL("ALTER ROLE {} {}").format(
                    sql.Identifier(name), sql.SQL("LOGIN" if active else "NOLOGIN")
                )
            )
            wanted = wanted_roles(attributes)
            if wanted is not None:
                await set_app_roles(cur, name, wanted)
        if not active:
            # After the commit: a session that reconnects in between is refused (NOLOGIN).
            await self._end_sessions(name)

    async def delete_user(self, remote_id: str) -> None:
        owner = self._settings.reassign_owned_to
        async with self._transaction() as cur:
            try:
                name = await account_name(cur, remote_id)
            except RemoteNotFound:
                return  # already gone: the goal is reached
            await cur.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(name)))
        await self._end_sessions(name)
        async with self._transaction() as cur:
            # REASSIGN/DROP OWNED reach the connected database only (and the shared objects).
            await cur.execute(
                sql.SQL("REASSIGN OWNED BY {} TO {}").format(
                    sql.Identifier(name),
                    sql.Identifier(owner) if owner else sql.SQL("CURRENT_USER"),
                )
            )
            await cur.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            await cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))

    async def _end_sessions(self, name: str) -> None:
        async with self._transaction() as cur:
            await cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (name,),
            )

    # -- pushed groups ----------------------------------------------------------------------

    async def find_group(self, display_name: str) -> RemoteGroup | None:
        """The pushed group of that name, in any case (RFC 7643 §4.1.1: displayName is not
        case-exact), though role names are."""
        async with self._transaction() as cur:
            row = await role_by(cur, "rolname = %s", display_name)
            if row is None:
                await cur.execute(
                    sql.SQL(ROLE_COLUMNS + "lower(rolname) = lower(%s) AND "
                            "shobj_description(oid, 'pg_authid') = %s ORDER BY oid LIMIT 1"),
                    (display_name, MARKS["group"]),
                )
                found = await cur.fetchone()
                row = None if found is None else role_row(found)
            if row is None:
                return None
            if row["mark"] != MARKS["group"]:
                raise RemoteConflict(
                    f"a role named {display_name!r} exists and is not a group provisiond pushed"
                )
            return await remote_group(cur, row)

    async def get_group(self, remote_id: str) -> RemoteGroup | None:
        async with self._transaction() as cur:
            if not remote_id.isdigit():
                return None
            row = await role_by(cur, "oid = %s", int(remote_id))
            if row is None or row["mark"] != MARKS["group"]:
                return None
            return await remote_group(cur, row)

    async def list_groups(self, start_index: int, count: int) -> Page:
        async with self._transaction() as cur:
            rows = await marked(cur, "group", start_index, count)
            items = [await remote_group(cur, row) for row in rows]
            total = await count_marked(cur, "group")
        return Page(items=items, total=total, start_index=start_index)

    async def create_group(self, display_name: str, members: Sequence[str]) -> RemoteGroup:
        name = role_name(display_name)
        async with self._transaction() as cur:
            await cur.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
            await mark(cur, name, "group")
            await set_members(cur, name, members)
            row = await role_by(cur, "rolname = %s", name)
            assert row is not None
            return await remote_group(cur, row)

    async def update_group(
        self,
        remote_id: str,
        *,
        display_name: str | None = None,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        members: Sequence[str] | None = None,
    ) -> int:
        async with self._transaction() as cur:
            name = await group_name(cur, remote_id)
            if display_name is not None:
                name = await renamed(cur, name, display_name)
            if members is None:
                current = await member_ids(cur, name)
                members = sorted((current | set(add)) - set(remove))
            await set_members(cur, name, members)
        return 1

    async def replace_group(
        self, remote_id: str, display_name: str, members: Sequence[str]
    ) -> None:
        await self.update_group(remote_id, display_name=display_name, members=members)

    async def delete_group(self, remote_id: str) -> None:
        async with self._transaction() as cur:
            try:
                name = await group_name(cur, remote_id)
            except RemoteNotFound:
                return
            await cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


# -- errors -------------------------------------------------------------------------------------

# SQLSTATE classes (PostgreSQL appendix A) that another attempt may get past.
_TRANSIENT_CLASSES = ("08", "40", "53", "57")


def statement_error(exc: psycopg.Error) -> ConnectorError:
    state = exc.sqlstate or ""
    message = exc.diag.message_primary or str(exc).strip() or type(exc).__name__
    text = f"PostgreSQL {state}: {message}" if state else f"PostgreSQL: {message}"
    if isinstance(exc, psycopg.OperationalError) and not state:
        return TransientError(text)
    if state[:2] in _TRANSIENT_CLASSES:
        return TransientError(text)
    if state == "XX000" and "concurrently" in message:
        # Two GRANTs on one role at once race on its catalog row: the next attempt passes.
        return TransientError(text)
    if state == "42710":  # duplicate_object: the role exists (the lookup missed it)
        return RemoteConflict(text)
    return TerminalError(text)


def connection_error(exc: psycopg.Error, s: PostgresConnectorSettings) -> ConnectorError:
    """A failed connection, said precisely: which of address, credentials, database failed.
    libpq reports a refused login without a SQLSTATE: its FATAL message tells them apart."""
    state, text = exc.sqlstate or "", str(exc)
    where = f"{s.host}:{s.port}"
    if state == "28P01" or "password authentication failed" in text:
        return TerminalError(f"authentication failed for user {s.username} at {where}")
    if f'role "{s.username}" does not exist' in text:
        return TerminalError(f"authentication failed for user {s.username} at {where}: no such role")
    if state == "28000" or "no pg_hba.conf entry" in text:
        return TerminalError(
            f"the server at {where} refused user {s.username} for database {s.database} "
            "(no pg_hba.conf entry allows it)"
        )
    if state == "3D000" or f'database "{s.database}" does not exist' in text:
        return TerminalError(f"database {s.database} does not exist at {where}")
    if state:
        return statement_error(exc)
    last = text.strip().splitlines()[-1] if text.strip() else type(exc).__name__
    return TransientError(f"cannot connect to {where}: {last}")


def _failed_connect(exc: ConnectorError, s: PostgresConnectorSettings) -> ConnectionStep:
    if isinstance(exc, DestinationRefused):
        summary = "refused by the connector destination policy"
    elif "authentication failed" in exc.detail or "refused user" in exc.detail:
        summary = "the server rejected the credentials"
    elif "does not exist" in exc.detail:
        summary = f"database {s.database} does not exist"
    else:
        summary = "no PostgreSQL answer: the server is unreachable (a super admin sees the details)"
    return ConnectionStep("connect", False, exc.detail, summary)


def _privilege_step(detail: str) -> ConnectionStep:
    return ConnectionStep("privileges", False, detail)
