"""A scratch database and uniquely prefixed roles on the test PostgreSQL server.

Roles are cluster-wide: every test's role names start with its own prefix, and every role with
that prefix is dropped afterwards, so test processes running at once never see each other's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class Scratch:
    admin_url: str
    database: str
    prefix: str

    def connect(self, user: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
        """A connection to the scratch database, as the admin or as ``user`` (trust auth)."""
        base = self.admin_url.rsplit("/", 1)[0]
        if user is not None:
            return psycopg.connect(
                f"{base.replace('postgres@', '', 1)}/{self.database}", user=user, autocommit=True
            )
        return psycopg.connect(f"{base}/{self.database}", autocommit=True)

    def role(self, name: str) -> dict[str, object] | None:
        """A role's LOGIN flag and the roles granted to it, or None when there is none."""
        with self.connect() as conn:
            row = conn.execute(
                "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (name,)
            ).fetchone()
            if row is None:
                return None
            granted = conn.execute(
                "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
                "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s ORDER BY 1",
                (name,),
            ).fetchall()
        return {"login": row[0], "granted": [str(g[0]) for g in granted]}

    def sessions(self, name: str) -> int:
        with self.connect() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (name,)
            ).fetchone()
        assert row is not None
        return int(str(row[0]))


@contextmanager
def scratch(admin_url: str) -> Iterator[Scratch]:
    token = uuid.uuid4().hex[:8]
    database, prefix = f"provisiond_roles_{token}", f"pv{token}_"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    try:
        yield Scratch(admin_url, database, prefix)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
            names = conn.execute(
                "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (prefix,)
            ).fetchall()
            for (name,) in names:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                    (name,),
                )
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(str(name))))
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(str(name))))


@contextmanager
def scratch_for_provisiond(admin_url: str) -> Iterator[Scratch]:
    """A scratch database and the role provisiond connects as: not a superuser, what a DBA
    would give it (CREATEROLE, and pg_signal_backend to end a deactivated role's sessions)."""
    with scratch(admin_url) as made:
        with made.connect() as conn:
            conn.execute(f'CREATE ROLE "{made.prefix}provisiond" LOGIN CREATEROLE')
            conn.execute(f'GRANT pg_signal_backend TO "{made.prefix}provisiond"')
        yield made
