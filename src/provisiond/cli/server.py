"""Server commands: they work on the database directly, with the ``PROVISIOND_*`` settings.

The server's modules (SQLAlchemy, Alembic, the engine) are imported by these commands only, so
that the admin commands start fast.
"""

from __future__ import annotations

import enum
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from provisiond.cli.client import CliError, state
from provisiond.cli.output import Output
from provisiond.cli.tokens import list_tokens, parse_duration, revoke_token
from provisiond.services.context import Actor, Role

if TYPE_CHECKING:
    from provisiond.config import Settings
    from provisiond.runtime import Runtime
    from provisiond.store.db import Database

log = logging.getLogger("provisiond.cli")
PANEL = "Server"
WORKER_THREAD = "provisiond-worker"  # the name WorkerThread gives its thread


class LogLevel(enum.StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


LogLevelOption = Annotated[LogLevel, typer.Option("--log-level", help="How much to log.")]


def load_settings() -> Settings:
    from pydantic import ValidationError

    from provisiond.config import Settings

    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            "PROVISIOND_" + "_".join(map(str, error["loc"])).upper() + f": {error['msg']}"
            for error in exc.errors()
        )
        raise CliError(f"invalid settings: {problems}", 2) from None


def describe(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=True)


@contextmanager
def database(settings: Settings) -> Iterator[Database]:
    """The configured database; failing to reach it is exit code 2, a migration error 1."""
    from alembic.util import CommandError
    from sqlalchemy.exc import OperationalError

    from provisiond.store.db import Database

    db = Database(settings.effective_database_url)
    try:
        yield db
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise CliError(f"cannot use the database {describe(db)}: {reason}", 2) from None
    except CommandError as exc:
        raise CliError(f"cannot migrate the database {describe(db)}: {exc}", 1) from None
    finally:
        db.dispose()


def require_schema(db: Database, out: Output, *, empty: str = "refuse") -> None:
    """The schema must be at the code's revision; an empty one is refused, allowed or migrated."""
    from provisiond.store import migrate

    if migrate.is_empty(db.engine):
        if empty == "allow":
            return
        if empty == "migrate":
            migrate.upgrade(db.engine)
            head = migrate.revisions(db.engine)[1]
            out.note(f"migrated the empty database {describe(db)} to revision {head}")
            return
        raise CliError(
            f"the database {describe(db)} is not migrated: run `provisiond migrate` first", 1
        )
    current, head = migrate.revisions(db.engine)
    if current != head:
        raise CliError(
            f"the database {describe(db)} is at revision {current}, this provisiond needs {head}: "
            "run `provisiond migrate`",
            1,
        )


InitOption = Annotated[
    bool,
    typer.Option(
        "--init",
        help="Create and migrate the database if it does not exist yet (a first install).",
    ),
]


@contextmanager
def existing_database(settings: Settings, out: Output, *, init: bool) -> Iterator[Database]:
    """The configured database, said on stderr, refused when missing or empty unless ``init``:
    run from another directory, the default SQLite file is a different, empty one, and an
    admin or a token made there is made for no server at all."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    from provisiond.store import migrate

    url = make_url(settings.effective_database_url)
    where = url.render_as_string(hide_password=True)
    out.note(f"using database {where}")
    # Looked at before the engine is made: making it creates the SQLite file.
    missing = url.get_backend_name() == "sqlite" and (
        not url.database or url.database == ":memory:" or not Path(url.database).exists()
    )
    fix = (
        ": point PROVISIOND_DATABASE_URL (or PROVISIOND_DATA_DIR) at the server's database, "
        "or pass --init to create it"
    )
    if missing and not init:
        raise CliError(f"the database {where} does not exist{fix}", 2)
    with database(settings) as db:
        if not init and migrate.is_empty(db.engine):
            raise CliError(f"the database {where} has no schema{fix}", 2)
        require_schema(db, out, empty="migrate" if init else "refuse")
        yield db


def configure_logging(level: LogLevel) -> None:
    logging.basicConfig(
        level=level.value.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    worker: Annotated[
        bool | None,
        typer.Option(
            "--worker/--no-worker", show_default=False,
            help="Run the provisioning worker in-process (default: PROVISIOND_RUN_WORKER, true).",
        ),
    ] = None,
    log_level: LogLevelOption = LogLevel.info,
) -> None:
    """Run the API server (it migrates an empty database itself)."""
    import uvicorn

    from provisiond.api.app import create_app

    settings = load_settings()
    with database(settings) as db:
        require_schema(db, state(ctx).out, empty="allow")
    configure_logging(log_level)
    rt = runtime_of(settings)
    uvicorn.run(
        create_app(runtime=rt, start_worker=worker), host=host, port=port,
        log_level=log_level.value, server_header=False,
    )


def runtime_of(settings: Settings, db: Database | None = None) -> Runtime:
    """The runtime; a credentials key that opens nothing stored is refused (exit code 1)."""
    from provisiond.runtime import Runtime
    from provisiond.store.keys import KeyMismatch

    try:
        return Runtime(settings, db=db)
    except KeyMismatch as exc:
        raise CliError(exc.detail, 1) from None


def worker(ctx: typer.Context, log_level: LogLevelOption = LogLevel.info) -> None:
    """Run a standalone provisioning worker until SIGINT or SIGTERM.

    On PostgreSQL it wakes the moment any process queues a task (LISTEN/NOTIFY), and any number
    of workers may run. It needs the server's key: the same PROVISIOND_SECRET_KEY or data dir.
    """
    settings = load_settings()
    out = state(ctx).out
    key_file = settings.data_dir / "secret.key"
    new_key = settings.secret_key is None and not key_file.exists()
    with database(settings) as db:
        require_schema(db, out)
        configure_logging(log_level)
        rt = runtime_of(settings, db)
        if new_key:
            log.warning(
                "made a new credentials key at %s: the server must use the same key "
                "(the same data dir, or PROVISIOND_SECRET_KEY for both)", key_file,
            )
        stop = threading.Event()

        def on_signal(signum: int, _: Any) -> None:
            log.info("%s: finishing the tasks in flight", signal.Signals(signum).name)
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        from provisiond.services.schedules import Scheduler

        scheduler = Scheduler(db, settings.scheduler_tick_seconds, rt)
        try:
            rt.start_worker()
            scheduler.start()
            assert rt.worker is not None
            wake = "LISTEN/NOTIFY" if db.is_postgres else "polling (SQLite has no NOTIFY)"
            log.info("worker %s started on %s, woken by %s", rt.worker.id, describe(db), wake)
            while not stop.wait(1.0):
                if not _worker_alive():
                    raise CliError("the worker stopped unexpectedly; see the log above", 1)
        finally:
            scheduler.stop()
            rt.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("worker stopped")


def _worker_alive() -> bool:
    return any(t.name == WORKER_THREAD and t.is_alive() for t in threading.enumerate())


def migrate_command(ctx: typer.Context) -> None:
    """Upgrade the database schema to the newest revision."""
    from provisiond.store import migrate

    out = state(ctx).out
    settings = load_settings()
    with database(settings) as db:
        before, _ = migrate.revisions(db.engine)
        migrate.upgrade(db.engine)
        after, _ = migrate.revisions(db.engine)
        where = describe(db)
    if out.json:
        out.print_json({"database": where, "from": before, "to": after})
    elif before == after:
        out.line(f"{where}: already at revision {after} (the newest)")
    else:
        out.line(f"{where}: {before or 'empty'} -> {after}")


token_app = typer.Typer(
    help="API tokens for the admin commands: made on the server, listed and revoked over the API.",
    no_args_is_help=True,
)


@token_app.command("create")
def create_token(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Option(help="What the token is for; shown in the activity log.")
    ] = "admin",
    role: Annotated[Role, typer.Option(help="What the token may do.")] = Role.SUPER_ADMIN,
    apps: Annotated[
        list[str] | None,
        typer.Option("--app", metavar="APP", help="app_admin: an app it manages (repeatable)."),
    ] = None,
    expires_in: Annotated[
        str | None,
        typer.Option(
            "--expires-in", metavar="DURATION", help="It stops working after 90m, 12h, 30d, ...",
        ),
    ] = None,
    init: InitOption = False,
) -> None:
    """Create an API token and print it: only the token, on one line, shown this once.

    The database used is said on stderr; a missing or empty one is refused unless --init."""
    from provisiond.errors import ProvisiondError
    from provisiond.services import tokens

    lifetime = parse_duration(expires_in) if expires_in is not None else None
    settings = load_settings()
    with existing_database(settings, state(ctx).out, init=init) as db:
        try:
            with db.session() as session:
                secret = tokens.create_token(
                    session, Actor("cli"), name, role.value, apps or (), expires_in=lifetime
                )
        except ProvisiondError as exc:
            raise CliError(exc.detail, 1) from None
    typer.echo(secret)


# list and revoke talk to the API (a super_admin token); create is the server's.
token_app.command("list")(list_tokens)
token_app.command("revoke")(revoke_token)
