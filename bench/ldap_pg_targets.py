"""Provisioning throughput into slapd and into PostgreSQL roles, beside a bare client.

    .venv/bin/python bench/ldap_pg_targets.py [--users 500] [--concurrency 4]

Set-up (not timed): N active users in one group, on a fresh SQLite store; a throwaway slapd
(tests/support/slapd.py) and a scratch database on the local PostgreSQL (roles prefixed and
dropped afterwards, tests/support/pg_roles.py).

Timed, provisiond: from assigning the group to an LDAP app (then to a PostgreSQL app) until
``Worker.drain()`` finds nothing left, the worker in this process at the app's concurrency C.
Timed, bare clients at the same concurrency C, same entries / roles:
  * LDAP: C threads, each with one bound ldap3 connection, ``add`` of the same inetOrgPerson
    entries provisiond writes (connectors/ldap_entries.person_attributes);
  * PostgreSQL: C async psycopg connections, ``CREATE ROLE ... LOGIN`` one after another.
Each target is checked to hold N accounts afterwards. Ratios (provisiond / bare) are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from _support import banner, create_directory, load_average, make_runtime, workdir  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def provision(runtime: Any, group_id: str, connector: Any, concurrency: int, name: str) -> float:
    from provisiond.domain.apps import ProvisioningSettings
    from provisiond.engine.worker import Worker
    from provisiond.services import apps, assignments
    from provisiond.services.context import SYSTEM

    settings = ProvisioningSettings(concurrency=concurrency)
    with runtime.db.session() as session:
        app = apps.create_app(session, SYSTEM, runtime.vault, name=name, label=name,
                              connector=connector, provisioning=settings)
        apps.set_provisioning(session, SYSTEM, app, settings.model_copy(update={"enabled": True}))
        app_id = app.id
    worker = Worker(runtime.db, runtime.settings, runtime.vault)
    started = time.perf_counter()
    with runtime.db.session() as session:
        assignments.create_assignment(session, SYSTEM, app_id, principal_type="group",
                                      principal_id=group_id, role=None, priority=None)
    asyncio.run(worker.drain(timeout=1800))
    return time.perf_counter() - started


def bare_ldap(server: Any, parent: str, users: list[Any], concurrency: int) -> float:
    import ldap3
    from tests.support.slapd import ADMIN_DN, ADMIN_PASSWORD

    from provisiond.connectors.ldap_entries import PERSON_CLASSES, person_attributes

    payloads = [person_attributes(user.scim_payload()) for user in users]
    lanes = [payloads[i::concurrency] for i in range(concurrency)]

    def lane(items: list[dict[str, list[str]]]) -> None:
        conn = ldap3.Connection(ldap3.Server(server.host, port=server.port), ADMIN_DN,
                                ADMIN_PASSWORD, auto_bind=True)
        for entry in items:
            assert conn.add(f"uid={entry['uid'][0]},{parent}", list(PERSON_CLASSES), entry), conn.result
        conn.unbind()

    threads = [threading.Thread(target=lane, args=(items,)) for items in lanes]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


async def bare_pg(database: str, prefix: str, users: list[Any], concurrency: int) -> float:
    import psycopg
    from psycopg import sql

    names = [f"{prefix}bare_{user.login}" for user in users]
    lanes = [names[i::concurrency] for i in range(concurrency)]

    async def lane(items: list[str]) -> None:
        conn = await psycopg.AsyncConnection.connect(
            f"postgresql://postgres@127.0.0.1:5432/{database}", autocommit=True
        )
        for name in items:
            await conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(lane(items) for items in lanes))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    banner("LDAP and PostgreSQL targets", users=args.users, concurrency=args.concurrency)
    from tests.support.pg_roles import scratch
    from tests.support.slapd import ADMIN_DN, ADMIN_PASSWORD, add_ous, read, slapd

    from provisiond.domain.connector_kinds import LdapConnectorSettings, PostgresConnectorSettings

    n, c = args.users, args.concurrency
    with workdir() as wd, slapd() as server, scratch(PG_ADMIN) as db:
        runtime = make_runtime(f"sqlite:///{wd / 'bench.db'}", wd)
        # The prefix makes every login a role name of this run's (dropped afterwards).
        group_id, users = create_directory(runtime, n, "bench-targets", prefix=db.prefix)
        ous = add_ous(server, "bench", "people", "bare")
        ldap = LdapConnectorSettings(url=server.url, bind_dn=ADMIN_DN, bind_password=ADMIN_PASSWORD,
                                     users_dn=ous["people"])
        pg = PostgresConnectorSettings(host="127.0.0.1", database=db.database, username="postgres")
        load = load_average()
        ldap_time = provision(runtime, group_id, ldap, c, "bench-ldap")
        bare_ldap_time = bare_ldap(server, ous["bare"], users, c)
        pg_time = provision(runtime, group_id, pg, c, "bench-pg")
        bare_pg_time = asyncio.run(bare_pg(db.database, db.prefix, users, c))
        held = len(read(server, ous["people"], "(uid=*)")), len(read(server, ous["bare"], "(uid=*)"))
        with db.connect() as conn:
            roles = conn.execute(
                "SELECT count(*) FROM pg_roles WHERE starts_with(rolname, %s)", (db.prefix,)
            ).fetchone()
        runtime.stop()
    assert held == (n, n), held
    assert roles is not None and int(str(roles[0])) == 2 * n, roles
    print(f"# load average before: {load}; after: {load_average()}")
    for label, ours, bare in (("LDAP (slapd)", ldap_time, bare_ldap_time),
                              ("PostgreSQL roles", pg_time, bare_pg_time)):
        print(f"{label:18} provisiond {n / ours:8.1f} users/s ({ours:.2f} s)   bare "
              f"{n / bare:8.1f} users/s ({bare:.2f} s)   ratio provisiond/bare {bare / ours:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
