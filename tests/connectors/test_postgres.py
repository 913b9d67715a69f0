"""The PostgreSQL role connector against the real server on 127.0.0.1, in a scratch database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from provisiond.connectors.destinations import DestinationPolicy
from provisiond.connectors.postgres import PostgresRoleConnector
from provisiond.domain.connector_kinds import PostgresConnectorSettings
from provisiond.errors import RemoteConflict, TerminalError
from tests.support.aio import synchronously
from tests.support.pg_roles import Scratch, scratch

LOOPBACK = DestinationPolicy(allow_loopback=True)




@pytest.fixture
def db(pg_server: str) -> Iterator[Scratch]:
    with scratch(pg_server) as made:
        yield made


def connector(db: Scratch, **settings: Any) -> PostgresRoleConnector:
    values = {"host": "127.0.0.1", "database": db.database, "username": "postgres", **settings}
    return PostgresRoleConnector(PostgresConnectorSettings(**values), policy=LOOPBACK)


@synchronously
async def test_accounts_roles_deactivation_and_deletion(db: Scratch) -> None:
    c, ada = connector(db), f"{db.prefix}ada"
    reader, writer = f"{db.prefix}reader", f"{db.prefix}writer"
    try:
        assert (await c.test_connection()).ok
        created = await c.create_user({"userName": ada, "active": True, "roles": [{"value": reader}]})
        assert db.role(ada) == {"login": True, "granted": [reader]}
        assert await c.find_user("userName", ada) == created
        assert not await c.holds_no_users()
        with pytest.raises(RemoteConflict):
            await c.create_user({"userName": ada})

        # The roles are kept exact; a rename keeps the remote id (the OID).
        renamed = f"{db.prefix}ada_l"
        await c.update_user(created.remote_id, [], {"userName": renamed, "roles": [{"value": writer}]})
        assert db.role(ada) is None and db.role(renamed) == {"login": True, "granted": [writer]}

        # Deactivating ends the role's open sessions.
        with db.connect(user=renamed):
            assert db.sessions(renamed) == 1
            await c.update_user(created.remote_id, [], {"userName": renamed, "active": False})
            assert db.role(renamed) == {"login": False, "granted": [writer]}
            assert db.sessions(renamed) == 0
        remote = await c.get_user(created.remote_id)
        assert remote is not None and not remote.active

        # Deleting reassigns what the role owns, then drops it.
        await c.update_user(created.remote_id, [], {"userName": renamed, "active": True})
        with db.connect() as conn:
            conn.execute(f'CREATE SCHEMA owned_by_ada AUTHORIZATION "{renamed}"')
        await c.delete_user(created.remote_id)
        assert db.role(renamed) is None and await c.get_user(created.remote_id) is None
        await c.delete_user(created.remote_id)  # already gone: nothing to do
        with db.connect() as conn:
            owner = conn.execute(
                "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'owned_by_ada'"
            ).fetchone()
        assert owner == ("postgres",)
    finally:
        await c.aclose()


@synchronously
async def test_pushed_groups_are_group_roles_with_exact_members(db: Scratch) -> None:
    c = connector(db)
    try:
        a = await c.create_user({"userName": f"{db.prefix}a"})
        b = await c.create_user({"userName": f"{db.prefix}b"})
        group = await c.create_group(f"{db.prefix}team", [a.remote_id])
        assert group.members == {a.remote_id}
        await c.update_group(group.remote_id, add=[b.remote_id], remove=[a.remote_id])
        found = await c.find_group(f"{db.prefix}team")
        assert found is not None and found.members == {b.remote_id}
        await c.replace_group(group.remote_id, f"{db.prefix}team2", [a.remote_id, b.remote_id])
        assert db.role(f"{db.prefix}a") == {"login": True, "granted": [f"{db.prefix}team2"]}
        # Roles are cluster-wide: other test processes' groups may be listed too.
        page = await c.list_groups(1, 1000)
        assert [g.display_name for g in page.items if g.display_name.startswith(db.prefix)] == [
            f"{db.prefix}team2"
        ]
        await c.delete_group(group.remote_id)
        assert await c.get_group(group.remote_id) is None
    finally:
        await c.aclose()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("o'hara\"; DROP ROLE postgres; --", "must not contain quotes"),
        ("pg_monitor_me", "PostgreSQL's own"),
        ("x" * 64, "longer than PostgreSQL's 63 bytes"),
    ],
)
@synchronously
async def test_a_bad_role_name_is_refused_with_the_reason(db: Scratch, name: str, why: str) -> None:
    c = connector(db)
    try:
        with pytest.raises(TerminalError, match=why):
            await c.create_user({"userName": name})
    finally:
        await c.aclose()


@synchronously
async def test_a_privileged_role_is_never_adopted_nor_an_unmarked_one_granted(db: Scratch) -> None:
    c = connector(db)
    try:
        with pytest.raises(TerminalError, match=r"privileged \(SUPER"):
            await c.find_user("userName", "postgres")
        with db.connect() as conn:
            conn.execute(f'CREATE ROLE "{db.prefix}dba_role" NOLOGIN')
            conn.execute(f'CREATE ROLE "{db.prefix}old" LOGIN')
        with pytest.raises(TerminalError, match="is not an app role provisiond manages"):
            await c.create_user({"userName": f"{db.prefix}x", "roles": [{"value": f"{db.prefix}dba_role"}]})
        assert db.role(f"{db.prefix}x") is None  # one transaction: nothing half-made
        adopted = await c.find_user("userName", f"{db.prefix}old")
        assert adopted is not None
        await c.update_user(adopted.remote_id, [], {"userName": f"{db.prefix}old", "active": False})
        listed = await c.list_users(1, 1000)
        assert adopted.remote_id in {u.remote_id for u in listed.items}
    finally:
        await c.aclose()


@synchronously
async def test_the_connection_test_says_what_failed(db: Scratch) -> None:
    missing = connector(db, database=f"{db.database}_missing")
    report = await missing.test_connection()
    assert not report.ok and report.reason == (
        f"connect: database {db.database}_missing does not exist at 127.0.0.1:5432"
    )
    with db.connect() as conn:
        conn.execute(f'CREATE ROLE "{db.prefix}weak" LOGIN')
    weak = connector(db, username=f"{db.prefix}weak")
    report = await weak.test_connection()
    assert report.reason == f"privileges: role {db.prefix}weak lacks CREATEROLE: it cannot create or alter roles"
    refused = PostgresRoleConnector(
        PostgresConnectorSettings(host="127.0.0.1", username="postgres"), policy=DestinationPolicy()
    )
    report = await refused.test_connection()
    assert "loopback" in (report.reason or "")
    assert report.as_dict()["steps"][0]["summary"] == "refused by the connector destination policy"
    for c in (missing, weak, refused):
        await c.aclose()
