"""``migrate``, ``token create``, ``serve`` and ``worker``, on real databases and processes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from provisiond.services import tokens
from provisiond.store import migrate
from provisiond.store.db import Database
from provisiond.store.tables import ApiToken
from tests.cli.conftest import invoke, ok, process, wait_for
from tests.support.servers import free_port, wait_until_up


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    """Settings for a fresh SQLite file, as the server commands read them."""
    return {
        "PROVISIOND_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}",
        "PROVISIOND_DATA_DIR": str(tmp_path),
        "PROVISIOND_SECRET_KEY": "cli-test-key",
    }


def head_revision(url: str) -> str | None:
    db = Database(url)
    try:
        return migrate.revisions(db.engine)[1]
    finally:
        db.dispose()


def test_migrate_a_fresh_sqlite_file(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    url = sqlite_env["PROVISIOND_DATABASE_URL"]
    head = head_revision(url)
    first = ok(invoke("migrate", env=sqlite_env))
    assert first.stdout == f"{url}: empty -> {head}\n"
    assert (tmp_path / "fresh.db").exists()
    again = ok(invoke("migrate", env=sqlite_env))
    assert again.stdout == f"{url}: already at revision {head} (the newest)\n"
    assert ok(invoke("--json", "migrate", env=sqlite_env)).stdout.split() == [
        "{", '"database":', f'"{url}",', '"from":', f'"{head}",', '"to":', f'"{head}"', "}"
    ]


def test_migrate_hides_the_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"postgresql+psycopg://provisiond:hunter2@127.0.0.1:{free_port()}/nowhere"
    result = invoke("migrate", env={"PROVISIOND_DATABASE_URL": url, "PROVISIOND_SECRET_KEY": "k"})
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot use the database postgresql+psycopg://provisiond:***@")
    assert "hunter2" not in result.output


def test_token_create_prints_only_the_token(sqlite_env: dict[str, str]) -> None:
    url = sqlite_env["PROVISIOND_DATABASE_URL"]
    result = ok(invoke("token", "create", "--name", "ci", "--role", "read_only", "--init", env=sqlite_env))
    assert result.stdout.count("\n") == 1
    secret = result.stdout.strip()
    assert secret.startswith(tokens.PREFIX) and len(secret) > 40
    assert result.stderr.startswith(f"using database {url}\n")
    assert "migrated the empty database" in result.stderr  # --init: a fresh database is migrated
    db = Database(sqlite_env["PROVISIOND_DATABASE_URL"])
    try:
        with db.session() as session:
            row = tokens.authenticate(session, secret)
            assert (row.name, row.role) == ("ci", "read_only")
            assert session.scalar(select(ApiToken.token_hash)) != secret  # stored hashed
    finally:
        db.dispose()
    second = ok(invoke("token", "create", env=sqlite_env))
    assert second.stderr == f"using database {url}\n" and second.stdout.strip() != secret
    assert invoke("token", "create", "--role", "root", env=sqlite_env).exit_code == 2
    scoped = invoke("token", "create", "--role", "app_admin", "--app", "wiki", env=sqlite_env)
    assert (scoped.exit_code, scoped.stderr) == (
        1, f"using database {url}\nerror: no app with id or name 'wiki'\n"
    )
    unscoped = invoke("token", "create", "--role", "help_desk", "--app", "wiki", env=sqlite_env)
    assert unscoped.stderr == f"using database {url}\nerror: only an app_admin token is granted apps\n"


def test_worker_refuses_a_database_that_is_not_migrated(sqlite_env: dict[str, str]) -> None:
    result = invoke("worker", env=sqlite_env)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: the database {sqlite_env['PROVISIOND_DATABASE_URL']} is not migrated: "
        "run `provisiond migrate` first\n"
    )


def test_serve_and_a_token_from_token_create(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    server = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with process(["serve", "--port", str(port)], sqlite_env, log) as child:
        wait_until_up(f"{server}/healthz", timeout=90)  # a loaded machine: start-up took 40 s
        secret = ok(invoke("token", "create", "--name", "ops", env=sqlite_env)).stdout.strip()  # serve made it
        listed = invoke("--server", server, "users", "list", env={"PROVISIOND_TOKEN": secret})
        assert listed.exit_code == 0, listed.output
        assert listed.stderr == "no users\n"
        wrong = invoke("--server", server, "users", "list", env={"PROVISIOND_TOKEN": secret + "x"})
        assert (wrong.exit_code, wrong.stderr) == (1, "error: the API token is not valid\n")
        child.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal as its exit status.
        assert child.wait(15) in (0, -signal.SIGTERM), log.read_text()
    assert "Application shutdown complete" in log.read_text()


def test_serve_refuses_an_outdated_database(sqlite_env: dict[str, str]) -> None:
    ok(invoke("migrate", env=sqlite_env))
    db = Database(sqlite_env["PROVISIOND_DATABASE_URL"])
    try:
        with db.engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0000'")
    finally:
        db.dispose()
    result = invoke("serve", "--port", str(free_port()), env=sqlite_env)
    assert result.exit_code == 1
    assert "is at revision 0000" in result.stderr and "run `provisiond migrate`" in result.stderr


def test_worker_runs_until_sigterm(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    ok(invoke("migrate", env=sqlite_env))
    log = tmp_path / "worker.log"
    with process(["worker"], sqlite_env, log) as child:
        wait_for(log, r"worker \S+ started on sqlite:///.*, woken by polling", child)
        child.send_signal(signal.SIGTERM)
        assert child.wait(15) == 0, log.read_text()
    text = log.read_text()
    assert "SIGTERM: finishing the tasks in flight" in text and "worker stopped" in text


@pytest.mark.parametrize("command", [["token", "create"], ["admin", "create", "--username", "ada"]])
def test_server_commands_refuse_a_database_that_does_not_exist(
    command: list[str], tmp_path: Path
) -> None:
    """Run from another directory, the default SQLite file is a new, empty one: refused, and
    not even created, unless --init; the message says which database and how to fix it."""
    elsewhere = tmp_path / "elsewhere"
    env = {"PROVISIOND_DATA_DIR": str(elsewhere), "PROVISIOND_SECRET_KEY": "cli-test-key"}
    url = f"sqlite:///{(elsewhere / 'provisiond.db').resolve()}"
    result = invoke(*command, input="a long enough password\n", env=env)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""  # no token, no admin
    assert result.stderr == (
        f"using database {url}\nerror: the database {url} does not exist: point "
        "PROVISIOND_DATABASE_URL (or PROVISIOND_DATA_DIR) at the server's database, or pass "
        "--init to create it\n"
    )
    assert not (elsewhere / "provisiond.db").exists()
    made = invoke(*command, "--init", input="a long enough password\n", env=env)
    assert made.exit_code == 0, made.output
    assert f"using database {url}" in made.stderr and "migrated the empty database" in made.stderr
    assert ok(invoke(*command[:2], *(["--username", "bob"] if command[0] == "admin" else []),
                     input="a long enough password\n", env=env)).stderr == f"using database {url}\n"


def test_server_commands_refuse_a_database_without_schema(pg_server: str) -> None:
    """An existing PostgreSQL database that was never migrated is refused too (exit 2)."""
    from tests.conftest import _drop_pg_database, _fresh_pg_database

    name, url = _fresh_pg_database(pg_server)
    try:
        env = {"PROVISIOND_DATABASE_URL": url, "PROVISIOND_SECRET_KEY": "k"}
        result = invoke("token", "create", env=env)
        assert result.exit_code == 2, result.output
        assert "has no schema" in result.stderr and "--init" in result.stderr
        assert result.stdout == ""
        assert ok(invoke("token", "create", "--init", env=env)).stdout.startswith(tokens.PREFIX)
    finally:
        _drop_pg_database(pg_server, name)


def test_make_demo_keeps_a_previous_demo_unless_reset(tmp_path: Path) -> None:
    """``make demo`` used to delete the previous demo's database without a word."""
    env = {"PROVISIOND_DATA_DIR": str(tmp_path), "PROVISIOND_SECRET_KEY": "cli-test-key"}
    ok(invoke("token", "create", "--name", "earlier", "--init", env=env))
    db_file = tmp_path / "provisiond.db"
    before = db_file.read_bytes()
    demo = [sys.executable, "-m", "provisiond.demo", "--data-dir", str(tmp_path), "--users", "3",
            "--port", str(free_port()), "--target-port", str(free_port()), "--exit-after-seed"]
    kept = subprocess.run(demo, capture_output=True, text=True, timeout=120)
    assert kept.returncode == 2, kept.stderr
    assert f"A previous demo's database is at {db_file} (0 users, 0 groups, 0 apps" in kept.stderr
    assert "1 API tokens" in kept.stderr and "make demo RESET=1" in kept.stderr
    assert "Nothing was changed." in kept.stderr
    assert db_file.read_bytes() == before
    reset = subprocess.run([*demo, "--reset"], capture_output=True, text=True, timeout=300)
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout.startswith(
        f"--reset: wiping the previous demo at {db_file}: 0 users, 0 groups, 0 apps, 0 accounts, "
        "0 console admins, 1 API tokens,"
    )
    assert "provisiond demo is running." in reset.stdout
