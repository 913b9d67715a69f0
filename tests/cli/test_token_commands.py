"""``token list|revoke`` over the API, ``token create --expires-in`` on the server."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from provisiond.cli.tokens import parse_duration
from provisiond.runtime import Runtime
from provisiond.services import tokens
from provisiond.services.context import SYSTEM
from provisiond.store.db import Database
from provisiond.store.tables import ApiToken, utcnow
from tests.cli.conftest import Run, invoke, ok


def test_list_and_revoke_a_token(cli: Run, runtime: Runtime, server: str) -> None:
    with runtime.db.session() as session:
        secret = tokens.create_token(session, SYSTEM, "ci-deploy", "read_only")
    listed = ok(cli("token", "list")).stdout
    assert "ci-deploy" in listed and secret[:10] in listed and secret not in listed

    revoked = ok(cli("token", "revoke", secret[:10]))
    assert revoked.stdout == f"revoked API token ci-deploy ({secret[:10]}…)\n"
    refused = invoke("--server", server, "users", "list", env={"PROVISIOND_TOKEN": secret})
    assert refused.exit_code == 1 and "revoked" in refused.stderr

    assert "ci-deploy" not in ok(cli("token", "list")).stdout
    everything = json.loads(ok(cli("--json", "token", "list", "--all")).stdout)["items"]
    assert {t["name"]: t["status"] for t in everything}["ci-deploy"] == "revoked"
    missing = cli("token", "revoke", "ci-deploy")
    assert missing.exit_code == 1
    assert "no active API token" in missing.stderr


def test_token_create_with_an_expiry(tmp_path: Path) -> None:
    env = {
        "PROVISIOND_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
        "PROVISIOND_DATA_DIR": str(tmp_path),
        "PROVISIOND_SECRET_KEY": "cli-test-key",
    }
    secret = ok(invoke("token", "create", "--name", "temp", "--expires-in", "12h", "--init", env=env))
    assert secret.stdout.strip().startswith("pvd_")
    db = Database(env["PROVISIOND_DATABASE_URL"])
    try:
        with db.session() as session:
            row = session.scalars(select(ApiToken)).one()
            assert row.expires_at is not None
            left = row.expires_at - utcnow()
            assert timedelta(hours=11) < left <= timedelta(hours=12)
    finally:
        db.dispose()
    bad = invoke("token", "create", "--expires-in", "forever", env=env)
    assert bad.exit_code == 2 and "3600s, 90m, 12h or 30d" in bad.output


@given(amount=st.integers(min_value=1, max_value=10**6), unit=st.sampled_from("smhd"))
def test_a_duration_reads_as_its_amount_of_units(amount: int, unit: str) -> None:
    names = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    assert parse_duration(f"{amount}{unit}") == timedelta(**{names[unit]: amount})
