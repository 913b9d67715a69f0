"""``provisiond keys rotate``: seal every stored credential again with a new key, on the server.

With a key file, it makes the new key, writes it first in the file with the old ones after it
(so a crash at any point leaves a file that opens everything), then seals every value again in
one transaction; ``--drop-old`` then leaves the new key alone in the file. With
``PROVISIOND_SECRET_KEY``, the new key is that variable and the old ones are
``PROVISIOND_OLD_SECRET_KEYS``; remove those once this has run. Either way the running servers
and workers still hold the old key: restart them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from provisiond.cli.client import CliError, state
from provisiond.cli.server import database, load_settings, require_schema
from provisiond.errors import ProvisiondError
from provisiond.services.context import Actor

if TYPE_CHECKING:  # the server's modules load when a command runs, not at every start
    from provisiond.config import Settings
    from provisiond.store.db import Database
    from provisiond.store.keys import KeyRing

app = typer.Typer(
    help="The keys on the server: the one that seals credentials, the one that signs receipts.",
    no_args_is_help=True,
)


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    drop_old: Annotated[
        bool,
        typer.Option(
            "--drop-old", help="Key file: keep only the new key (once no process uses the old)."
        ),
    ] = False,
) -> None:
    """Seal every stored credential again with a new key, in one transaction."""
    # Imported here: the server's modules must not slow down every other command's start.
    from provisiond.services import activity
    from provisiond.store import keys

    out = state(ctx).out
    settings = load_settings()
    with database(settings) as db:
        require_schema(db, out)
        try:
            ring = _ring(settings, db)
            env = settings.secret_key is not None
            path = keys.key_file(settings)
            if not env:
                ring = keys.KeyRing((keys.new_key(), *ring.keys), ring.source)
                keys.write_key_file(path, ring.keys)
            with db.session() as session:
                count = keys.reseal_all(session, ring)
                activity.record(
                    session,
                    Actor("cli"),
                    "system.key.rotate",
                    f"sealed {count} value(s) again with the key {ring.fingerprints[0]}",
                    targets={"key": ring.fingerprints[0]},
                    details={"previous_keys": ring.fingerprints[1:], "values": count},
                )
            if not env and drop_old:
                keys.write_key_file(path, ring.keys[:1])
        except ProvisiondError as exc:
            raise CliError(exc.detail, 1) from None
    new = ring.fingerprints[0]
    if out.json:
        out.print_json({"key": new, "source": ring.source, "sealed": count})
        return
    out.line(f"sealed {count} value(s) again with the key {new} ({ring.source})")
    if env:
        out.note(f"remove {keys.ENV_OLD_KEYS} from the environment now")
    out.note("restart every `provisiond serve` and `provisiond worker`: they still hold the old key")


@app.command("rotate-signing")
def rotate_signing(ctx: typer.Context) -> None:
    """Retire the key that signs receipts and make a new one; receipts signed before still
    verify (retired keys stay published at GET /api/v1/receipts/keys)."""
    from provisiond.services import activity, signing

    out = state(ctx).out
    settings = load_settings()
    with database(settings) as db:
        require_schema(db, out)
        try:
            ring = _ring(settings, db)
            with db.session() as session:
                retired = [k.id for k in signing.published(session) if k.retired_at is None]
                new = signing.rotate(session, ring.vault())
                activity.record(
                    session, Actor("cli"), "system.signing_key.rotate",
                    f"receipts are now signed with the key {new}",
                    targets={"key": new}, details={"retired": retired},
                )
        except ProvisiondError as exc:
            raise CliError(exc.detail, 1) from None
    if out.json:
        out.print_json({"key": new, "retired": retired})
        return
    out.line(f"receipts are now signed with the key {new}"
             + (f"; retired {', '.join(retired)}" if retired else ""))


def _ring(settings: Settings, db: Database) -> KeyRing:
    """The configured key ring, refused (``KeyMismatch``) if it cannot open the database."""
    from provisiond.store import keys

    ring = keys.load(settings, may_create=lambda: not keys.holds_sealed(db.engine))
    keys.check(db.engine, ring)
    return ring
