"""The receipts' signing key: sealed like credentials, resealed by a rotation of the credentials
key, rotated itself with old receipts still verifying."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provisiond.config import Settings
from provisiond.domain import receipts
from provisiond.runtime import Runtime
from provisiond.services import signing
from provisiond.store import keys
from provisiond.store.tables import SigningKey
from tests.cli.conftest import invoke, ok


# The store does not matter here (tests/e2e run both): SQLite only, for the suite's budget.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_signing_key_is_sealed_rotated_and_resealed(
    runtime: Runtime, settings: Settings, database_url: str, tmp_path: Path
) -> None:
    with runtime.db.session() as session:
        first = signing.signing_key(session, runtime.vault)
        old_receipt = receipts.sign({"user": {"login": "ada"}}, first)
    with runtime.db.session() as session:
        again = signing.signing_key(session, runtime.vault)  # opened, not made again
        sealed = session.get_one(SigningKey, receipts.key_id(first.public_key())).private_key
    assert receipts.key_id(again.public_key()) == receipts.key_id(first.public_key())
    assert receipts.public_text(first.public_key()) not in sealed and runtime.vault.opens(sealed)

    # Rotated by the server-side command: a new key signs, the old one stays published.
    env = {"PROVISIOND_DATABASE_URL": database_url, "PROVISIOND_DATA_DIR": str(tmp_path),
           "PROVISIOND_SECRET_KEY": "test-secret-key"}
    rotated = json.loads(ok(invoke("--json", "keys", "rotate-signing", env=env)).stdout)
    assert rotated["retired"] == [old_receipt["signature"]["key_id"]]
    with runtime.db.session() as session:
        published = {k.id: k.public_key for k in signing.published(session)}
        new = signing.signing_key(session, runtime.vault)
    assert set(published) == {rotated["key"], old_receipt["signature"]["key_id"]}
    assert receipts.key_id(new.public_key()) == rotated["key"]
    assert receipts.verify(old_receipt, published).valid

    # A rotation of the credentials key seals the signing keys again too.
    ring = keys.KeyRing((keys.new_key(), *runtime.keys.keys), "test")
    with runtime.db.session() as session:
        assert keys.reseal_all(session, ring) == 3  # two signing keys + the canary
    alone = keys.KeyRing(ring.keys[:1], "test")
    assert keys.check(runtime.db.engine, alone) == []
