"""The key ring: environment keys through a real KDF, older keys accepted, private SQLite files."""

from __future__ import annotations

import base64
import hashlib
import secrets
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy import text

from provisiond.config import Settings
from provisiond.runtime import Runtime
from provisiond.services import ldap_sources
from provisiond.services.context import SYSTEM
from provisiond.services.ldap_sources import LdapSource, SourceSchedule
from provisiond.store import keys
from provisiond.store.db import Database
from provisiond.store.secrets import Vault


def test_random_key_material_goes_through_hkdf() -> None:
    raw = secrets.token_bytes(32)
    expected = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=keys.SALT, info=b"fernet"
    ).derive(raw)
    for spelling in (raw.hex(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        assert keys.derive(spelling) == base64.urlsafe_b64encode(expected)


def test_a_passphrase_goes_through_scrypt() -> None:
    expected = Scrypt(salt=keys.SALT, length=32, n=2**15, r=8, p=1).derive(b"correct horse")
    assert keys.derive("correct horse") == base64.urlsafe_b64encode(expected)
    legacy = base64.urlsafe_b64encode(hashlib.sha256(b"correct horse").digest())
    assert keys.derive("correct horse") != legacy


def test_the_fingerprint_names_a_key_without_showing_it() -> None:
    key = keys.new_key()
    printed = keys.fingerprint(key)
    assert len(printed) == 16 and printed not in key.decode() and key.decode() not in printed
    assert printed != keys.fingerprint(keys.new_key())
    ring = keys.KeyRing((key,), "the key file x")
    assert key.decode() not in repr(ring) and printed in repr(ring)


def test_values_sealed_by_the_old_sha256_derivation_still_open_and_warn(tmp_path: Path) -> None:
    """A database from before this version opens, and says to rotate."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    settings = Settings(data_dir=tmp_path, database_url=url, secret_key="old deployment")
    rt = Runtime(settings)
    rt.migrate()
    legacy = base64.urlsafe_b64encode(hashlib.sha256(b"old deployment").digest())
    with rt.db.engine.begin() as connection:
        connection.execute(text("DELETE FROM key_canary"))
        connection.execute(
            text(
                "INSERT INTO apps (id, name, label, connector_type, connector, provisioning, "
                "credentials, created_at, updated_at) VALUES ('a', 'wiki', 'Wiki', "
                "'scim2', '{}', '{}', :sealed, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"sealed": Vault(legacy).seal({"token": "t"})},
        )
    rt.db.dispose()
    assert keys.check(Database(url).engine, keys.load(settings)) == [
        "1 sealed value(s) open only with an older key (the credentials of app 'wiki', ...): "
        "run `provisiond keys rotate` to seal them with the current key"
    ]
    with pytest.raises(keys.KeyMismatch, match="sealed before provisiond recorded its fingerprint"):
        Runtime(Settings(data_dir=tmp_path, database_url=url, secret_key="another"))


def test_the_sqlite_file_and_its_wal_are_private(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    rt = Runtime(Settings(data_dir=tmp_path, database_url=url))
    rt.migrate()
    with rt.db.session() as session:  # a write: the -wal and -shm files exist from here
        session.execute(text("SELECT 1"))
        files = [tmp_path / "p.db", tmp_path / "p.db-wal", tmp_path / "p.db-shm"]
        for file in [*files, tmp_path / "secret.key"]:
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    rt.db.dispose()


def test_an_older_world_readable_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    Database(f"sqlite:///{path}").dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_makes_no_file(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Database(url).dispose()
    assert list(tmp_path.iterdir()) == []


@examples(max_examples=50, deadline=None)
@given(raw=st.binary(min_size=32, max_size=32))
def test_every_spelling_of_32_random_bytes_derives_one_key(raw: bytes) -> None:
    spellings = {raw.hex(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    derived = {keys.derive(spelling) for spelling in spellings}
    assert len(derived) == 1
    assert Vault(derived.pop()).open(Vault(keys.derive(raw.hex())).seal({"a": "b"})) == {"a": "b"}


def test_a_stored_ldap_sources_password_is_checked_at_start_and_rotated(
    runtime: Runtime, settings: Settings
) -> None:
    """Stored LDAP sources (issue 16) seal their bind password with the same key: a start with
    another key must be refused for it, and a rotation must seal it again, or the source's
    next run cannot open it once the old key is gone."""
    source = LdapSource(
        name="hr", url="ldap://127.0.0.1:1", bind_dn="cn=reader", bind_password="bind-s3cret",
        base_dn="ou=people,dc=example,dc=org",
    )
    with runtime.db.session() as session:
        ldap_sources.create(session, SYSTEM, runtime.vault, source, SourceSchedule())
    new, old_ring, engine = keys.new_key(), keys.load(settings), runtime.db.engine
    with pytest.raises(keys.KeyMismatch, match=r"\(the key canary and 1 more\)"):
        keys.check(engine, keys.KeyRing((new,), "a new key"))

    both = keys.KeyRing((new, *old_ring.decrypting), "the new key, the old one after it")
    with runtime.db.session() as session:
        assert keys.reseal_all(session, both) == 2  # the source and the canary
    only_new = keys.KeyRing((new,), "the new key alone")
    assert keys.check(engine, only_new) == []
    with runtime.db.session() as session:
        row = ldap_sources.listing(session)[0]
        opened = ldap_sources.source_of(row, only_new.vault())
    assert opened.bind_password.get_secret_value() == "bind-s3cret"
