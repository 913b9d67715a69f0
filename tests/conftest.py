"""Fixtures shared by every test: a database on SQLite and on PostgreSQL, real servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from provisiond.config import Settings
from provisiond.runtime import Runtime
from provisiond.store.db import Database
from tests.support.slapd import Slapd, slapd

# pytest-xdist's workers start with COLUMNS=80 and LINES=24 (execnet): the CLI would then cut
# its tables to 80 columns, which a plain `pytest` run (and a pipe) never does.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

# httpx's default timeout (5 s) is what a test's own client waits for a test server; with three
# test processes on two cores a server can take longer than that to answer. Tests wait on
# conditions with generous deadlines, never on a short timeout (the connector's own timeouts
# are set per app and not affected).
_HTTPX_DEFAULT = httpx._config.DEFAULT_TIMEOUT_CONFIG
_HTTPX_DEFAULT.connect = _HTTPX_DEFAULT.read = _HTTPX_DEFAULT.write = _HTTPX_DEFAULT.pool = 60.0

PG_ADMIN_URL = os.environ.get("PROVISIOND_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The PostgreSQL server CI starts; a test run fails loudly if it is not there."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SELECT 1")
    return PG_ADMIN_URL


def _fresh_pg_database(admin_url: str) -> tuple[str, str]:
    name = f"provisiond_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return name, f"{base}/{name}"


def _drop_pg_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def ldap_server() -> Iterator[Slapd]:
    """One slapd per test process (xdist worker); each test works under an OU of its own."""
    with slapd() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'provisiond.db'}"
        return
    admin_url = request.getfixturevalue("pg_server")
    name, url = _fresh_pg_database(admin_url)
    try:
        yield url
    finally:
        _drop_pg_database(admin_url, name)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key="test-secret-key",
        retry_base_seconds=0.05,
        retry_max_seconds=0.5,
        task_max_attempts=3,
        # The test targets listen on 127.0.0.1, which the destination policy refuses by default.
        connector_allow_loopback=True,
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime(settings, db=Database(settings.effective_database_url))
    rt.migrate()
    try:
        yield rt
    finally:
        rt.stop()
        rt.db.dispose()
