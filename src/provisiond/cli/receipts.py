"""``receipt USER`` (a leaver's signed revocation receipt), ``receipt verify FILE`` (offline:
no server, only the file and, with ``--keys``, the published keys) and ``receipt keys``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from provisiond.cli.client import CliError, path, state
from provisiond.cli.names import user_id as find_user
from provisiond.cli.output import Column, when
from provisiond.domain import receipts


class ReceiptGroup(TyperGroup):
    """``receipt USER`` is ``receipt show USER``: any first word that is not a subcommand."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


receipt = typer.Typer(
    cls=ReceiptGroup,
    help="A leaver's signed revocation receipt: every app, what was done, what was read back.",
    no_args_is_help=True,
)

LINE_COLUMNS = (
    Column("APP", "app"),
    Column("ACTION", "action"),
    Column("REMOTE ID", "remote_id"),
    Column("READ BACK", lambda line: (line.get("read_back") or {}).get("state")),
    Column("READ AT", lambda line: when((line.get("read_back") or {}).get("at"))),
    Column("STATUS", "status"),
)


@receipt.command("show")
def show(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(metavar="USER", help="Login or id of the user.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Save the signed receipt (JSON) to this file."),
    ] = None,
) -> None:
    """Fetch USER's signed receipt; print it, or save it with --output."""
    st = state(ctx)
    document: dict[str, Any] = st.api.get(path("users", find_user(st.api, user), "receipt"))
    if output is not None:
        output.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    if st.json:
        st.out.print_json(document)
        return
    body = document["receipt"]
    st.out.table(body["apps"], LINE_COLUMNS, empty="the user has no account in any app")
    st.out.line(
        f"receipt for {body['user']['login']} ({body['user']['status']}): {body['status']}, "
        f"signed by key {document['signature']['key_id']}"
    )
    if output is not None:
        st.out.note(f"saved to {output}; check it with `provisiond receipt verify {output}`")


@receipt.command("verify")
def verify(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A saved receipt.")],
    keys: Annotated[
        Path | None,
        typer.Option(
            "--keys",
            help="The published keys (`provisiond receipt keys -o FILE`) to trust; without it "
            "the key inside the receipt is used, which proves integrity, not origin.",
        ),
    ] = None,
) -> None:
    """Check a saved receipt offline; exit 1 and say why when it was altered."""
    st = state(ctx)
    try:
        document = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CliError(f"cannot read {file}: {exc}", 1) from None
    trusted = _trusted(keys) if keys is not None else None
    verdict = receipts.verify(document, trusted)
    if st.json:
        st.out.print_json({"valid": verdict.valid, "key_id": verdict.key_id,
                           "trusted_key": verdict.trusted_key, "problems": verdict.problems})
    if not verdict.valid:
        if not st.json:
            for problem in verdict.problems:
                st.out.line(f"INVALID: {problem}")
        raise typer.Exit(1)
    if st.json:
        return
    body = document["receipt"]
    st.out.line(
        f"valid: receipt for {body['user']['login']} issued {body['issued_at']}, "
        f"{body['status']}, signed by key {verdict.key_id}"
    )
    if not verdict.trusted_key:
        st.out.note("the key is the one inside the file: pass --keys with the published keys "
                    "to check it is your server's")


def _trusted(keys: Path) -> dict[str, str]:
    try:
        published = json.loads(keys.read_text())
        items = published["items"] if isinstance(published, dict) else published
        return {str(key["id"]): str(key["public_key"]) for key in items}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CliError(f"cannot read the keys in {keys}: {exc!r}", 1) from None


@receipt.command("keys")
def list_keys(
    ctx: typer.Context,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Save them (JSON) to this file.")
    ] = None,
) -> None:
    """The public keys that sign receipts, for ``receipt verify --keys``."""
    st = state(ctx)
    page: dict[str, Any] = st.api.get("/receipts/keys")
    if output is not None:
        output.write_text(json.dumps(page, indent=2) + "\n")
    st.out.page(page, (Column("ID", "id"), Column("CREATED", lambda k: when(k.get("created_at"))),
                       Column("RETIRED", lambda k: when(k.get("retired_at")))),
                empty="no key yet: the first receipt makes one")
