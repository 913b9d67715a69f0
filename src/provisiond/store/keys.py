"""The credentials key ring: where the keys come from, which one the database expects, rotation.

Keys come from ``PROVISIOND_SECRET_KEY`` or, without it, from the key file
``<data_dir>/secret.key`` (made, 0600, only for a database that holds nothing sealed yet).
The first key seals; every key decrypts (Fernet's ``MultiFernet``), so a rotation can run while
values sealed with the previous key are still stored:

- the key file holds one key a line, the current one first, older ones after it;
- ``PROVISIOND_OLD_SECRET_KEYS`` (comma separated) adds older keys to an environment key.

An environment value is key material, not a key: 32 random bytes (base64 or hex) go through
HKDF-SHA256, anything else is a passphrase and goes through scrypt, both with the project's
fixed salt. Values sealed with the SHA-256 digest earlier versions used are still opened (that
key is tried last) until ``provisiond keys rotate`` seals them again.

A **fingerprint** names a key in messages and events: a hash of it, never the key. The
database keeps a sealed canary with the fingerprint of the key that sealed it, so a start with
another key is refused at once with a message naming the key expected, instead of every
connector call failing later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from sqlalchemy import Connection, Engine, inspect, select, update
from sqlalchemy.orm import Session

from provisiond.config import Settings
from provisiond.errors import ProvisiondError
from provisiond.store.secrets import Vault
from provisiond.store.tables import App, KeyCanary, LdapSourceRow, SigningKey, utcnow

ENV_KEY = "PROVISIOND_SECRET_KEY"
ENV_OLD_KEYS = "PROVISIOND_OLD_SECRET_KEYS"
KEY_FILE = "secret.key"
# Fixed, public and specific to provisiond: a salt here only keeps provisiond's keys apart
# from any other use of the same material (RFC 5869 §3.1); it is not a secret.
SALT = b"provisiond/credentials-key/v1"
# scrypt at RFC 7914's interactive figure (N=2^15, r=8: 32 MiB, ~0.1 s): a passphrase
# guessed offline against a stolen database costs as much.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
CANARY_ID = 1
CANARY_TEXT = "provisiond key canary"


class KeyMismatch(ProvisiondError):
    """The key ring cannot open what the database holds: refusing to start."""

    title = "Wrong credentials key"


@dataclass(frozen=True)
class KeyRing:
    """The keys, the sealing one first, and a description of where they came from."""

    keys: tuple[bytes, ...]
    source: str  # "PROVISIOND_SECRET_KEY" or "the key file /path/secret.key"
    legacy: bytes | None = None  # the old SHA-256 derivation of an environment key

    def __repr__(self) -> str:
        return f"KeyRing({self.source}, {', '.join(self.fingerprints)})"

    @property
    def primary(self) -> bytes:
        return self.keys[0]

    @property
    def decrypting(self) -> tuple[bytes, ...]:
        return self.keys + ((self.legacy,) if self.legacy else ())

    @property
    def fingerprints(self) -> list[str]:
        return [fingerprint(key) for key in self.keys]

    def vault(self) -> Vault:
        return Vault(self.decrypting)


def fingerprint(key: bytes) -> str:
    """16 hex digits that name a key; a one-way hash of it, safe to print and log."""
    return hashlib.sha256(b"provisiond key fingerprint\0" + key).hexdigest()[:16]


def new_key() -> bytes:
    return base64.urlsafe_b64encode(secrets.token_bytes(32))


def derive(material: str) -> bytes:
    """The Fernet key for an environment value: HKDF for 32 random bytes, scrypt for a passphrase."""
    return _derive(material)


@lru_cache(maxsize=16)  # scrypt costs 0.1 s; tests and the CLI derive the same value repeatedly
def _derive(material: str) -> bytes:
    raw = _random_bytes(material.strip())
    if raw is not None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT, info=b"fernet").derive(raw)
    else:
        key = Scrypt(salt=SALT, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(
            material.encode()
        )
    return base64.urlsafe_b64encode(key)


def _random_bytes(material: str) -> bytes | None:
    """The 32 bytes a base64 or hex value holds, or None for anything else (a passphrase)."""
    if len(material) == 64:
        try:
            return bytes.fromhex(material)
        except ValueError:
            pass
    for decode in (base64.urlsafe_b64decode, base64.standard_b64decode):
        try:
            raw = decode(material.encode())
        except (binascii.Error, ValueError):
            continue
        if len(raw) == 32:
            return raw
    return None


def _legacy(material: str) -> bytes:
    # What provisiond before 0012 sealed with: accepted for opening only, never for sealing.
    return base64.urlsafe_b64encode(hashlib.sha256(material.encode()).digest())


def key_file(settings: Settings) -> Path:
    return settings.data_dir / KEY_FILE


def load(settings: Settings, *, may_create: Callable[[], bool] = lambda: True) -> KeyRing:
    """The key ring the settings name; a key file is made only if ``may_create()`` says so."""
    old = _old_keys(settings)
    if settings.secret_key is not None:
        material = settings.secret_key.get_secret_value()
        keys = (derive(material), *(derive(value) for value in old))
        return KeyRing(keys, ENV_KEY, legacy=_legacy(material))
    path = key_file(settings)
    if not path.exists():
        if not may_create():
            raise KeyMismatch(
                f"no credentials key: the database holds credentials sealed with a key, but "
                f"{ENV_KEY} is not set and there is no key file {path}. Restore that key file "
                f"(or set {ENV_KEY} to the value the database was sealed with)"
            )
        write_key_file(path, [new_key()])
    keys = tuple(read_key_file(path)) + tuple(derive(value) for value in old)
    if not keys:
        raise KeyMismatch(f"the key file {path} holds no key")
    return KeyRing(keys, f"the key file {path}")


def _old_keys(settings: Settings) -> list[str]:
    if settings.old_secret_keys is None:
        return []
    values = settings.old_secret_keys.get_secret_value().split(",")
    return [value.strip() for value in values if value.strip()]


def read_key_file(path: Path) -> list[bytes]:
    lines = path.read_bytes().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith(b"#")]


def write_key_file(path: Path, keys: Sequence[bytes]) -> None:
    """Write the keys (sealing key first) to a new 0600 file, then move it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".new")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(b"".join(key + b"\n" for key in keys))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


# -- what the database holds -------------------------------------------------------------------


def _sealed_values(connection: Connection) -> list[tuple[str, str]]:
    """(what, sealed value) for the canary and every stored credential, if their tables exist."""
    tables = set(inspect(connection).get_table_names())
    values: list[tuple[str, str]] = []
    if KeyCanary.__tablename__ in tables:
        for sealed in connection.scalars(select(KeyCanary.sealed)):
            values.append(("the key canary", sealed))
    if App.__tablename__ in tables:
        rows = connection.execute(
            select(App.name, App.credentials).where(App.credentials.is_not(None))
        )
        values.extend((f"the credentials of app {name!r}", sealed) for name, sealed in rows if sealed)
    if SigningKey.__tablename__ in tables:
        keys = connection.execute(select(SigningKey.id, SigningKey.private_key))
        values.extend((f"the receipt signing key {kid}", sealed) for kid, sealed in keys)
    if LdapSourceRow.__tablename__ in tables:
        rows = connection.execute(
            select(LdapSourceRow.name, LdapSourceRow.credentials).where(
                LdapSourceRow.credentials.is_not(None)
            )
        )
        values.extend(
            (f"the bind password of LDAP source {name!r}", sealed) for name, sealed in rows if sealed
        )
    return values


def holds_sealed(engine: Engine) -> bool:
    """Whether the database holds anything sealed (False when it cannot be read yet)."""
    try:
        with engine.connect() as connection:
            return bool(_sealed_values(connection))
    except Exception:  # unreachable or not migrated: the start fails later with its own reason
        return False


def check(engine: Engine, ring: KeyRing) -> list[str]:
    """Refuse (``KeyMismatch``) a key ring that cannot open what the database holds.

    Returns warnings: values that only an older key opens (a rotation to finish).
    """
    vault = ring.vault()
    with engine.connect() as connection:
        values = _sealed_values(connection)
        expected = _canary_fingerprint(connection)
    closed = [what for what, sealed in values if not vault.opens(sealed)]
    if closed:
        sealed_with = (
            f"the key with fingerprint {expected}"
            if expected
            else "another key (sealed before provisiond recorded its fingerprint)"
        )
        given = ", ".join(ring.fingerprints)
        raise KeyMismatch(
            f"the credentials key does not open what this database holds ({closed[0]}"
            + (f" and {len(closed) - 1} more" if len(closed) > 1 else "")
            + f"): it was sealed with {sealed_with}, and {ring.source} gives {given}. "
            f"Start with the key it was sealed with ({ENV_KEY}, or the key file "
            f"{KEY_FILE} in the data dir); to change keys, list the old one in {ENV_OLD_KEYS} "
            "(or after the new one in the key file) and run `provisiond keys rotate`"
        )
    primary = Vault((ring.primary,))
    older = [what for what, sealed in values if not primary.opens(sealed)]
    if older:
        return [
            f"{len(older)} sealed value(s) open only with an older key ({older[0]}, ...): "
            "run `provisiond keys rotate` to seal them with the current key"
        ]
    return []


def _canary_fingerprint(connection: Connection) -> str | None:
    if KeyCanary.__tablename__ not in inspect(connection).get_table_names():
        return None
    return connection.scalar(select(KeyCanary.fingerprint).where(KeyCanary.id == CANARY_ID))


def seal_canary(session: Session, ring: KeyRing) -> None:
    """Record the sealing key's canary, if the database has none yet."""
    if session.get(KeyCanary, CANARY_ID) is None:
        session.add(_canary(ring))


def _canary(ring: KeyRing) -> KeyCanary:
    sealed = Vault((ring.primary,)).seal({"canary": CANARY_TEXT})
    return KeyCanary(id=CANARY_ID, fingerprint=fingerprint(ring.primary), sealed=sealed)


def reseal_all(session: Session, ring: KeyRing) -> int:
    """Seal every stored value (credentials, receipt signing keys, LDAP sources' bind
    passwords) again with the ring's first
    key, in the caller's transaction.

    A value no key of the ring opens aborts the whole rotation (``KeyMismatch``): nothing is
    half rotated. Returns how many values were sealed again (the canary included).
    """
    vault = ring.vault()
    count = 0
    apps = session.execute(
        select(App.id, App.name, App.credentials).where(App.credentials.is_not(None))
    ).all()
    signing = session.execute(select(SigningKey.id, SigningKey.id, SigningKey.private_key)).all()
    sources = session.execute(
        select(LdapSourceRow.id, LdapSourceRow.name, LdapSourceRow.credentials).where(
            LdapSourceRow.credentials.is_not(None)
        )
    ).all()
    for table, column, rows, what in (
        (App, App.credentials, apps, "the credentials of app {!r}"),
        (SigningKey, SigningKey.private_key, signing, "the receipt signing key {}"),
        (LdapSourceRow, LdapSourceRow.credentials, sources, "the bind password of LDAP source {!r}"),
    ):
        for row_id, name, sealed in rows:
            if not sealed:
                continue
            if not vault.opens(sealed):
                raise KeyMismatch(
                    f"{what.format(name)} opens with none of the keys given: nothing was rotated"
                )
            session.execute(
                update(table).where(table.id == row_id).values({column: vault.reseal(sealed)})
            )
            count += 1
    canary = session.get(KeyCanary, CANARY_ID)
    fresh = _canary(ring)
    if canary is None:
        session.add(fresh)
    else:
        canary.fingerprint, canary.sealed, canary.sealed_at = (
            fresh.fingerprint, fresh.sealed, utcnow(),
        )
    return count + 1
