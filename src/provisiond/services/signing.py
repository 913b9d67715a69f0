"""The Ed25519 key that signs receipts: made on first use, kept sealed, rotated, published.

The private key is sealed with the credentials key ring (store.keys), like connector
credentials, so a stolen database without the credentials key cannot sign. ``rotate`` retires
the signing key and makes a new one; retired keys are still published (and their private half
kept sealed, since ``provisiond keys rotate`` reseals them), so every receipt ever issued keeps
verifying.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from provisiond.domain import receipts
from provisiond.store.secrets import Vault
from provisiond.store.tables import SigningKey, utcnow

SEALED_FIELD = "ed25519"


@dataclass(frozen=True)
class PublishedKey:
    id: str
    algorithm: str
    public_key: str
    created_at: datetime
    retired_at: datetime | None


def signing_key(session: Session, vault: Vault) -> Ed25519PrivateKey:
    """The key that signs now; made (and sealed) in the caller's transaction if there is none."""
    row = session.scalars(
        select(SigningKey)
        .where(SigningKey.retired_at.is_(None))
        .order_by(SigningKey.created_at.desc(), SigningKey.id)
        .limit(1)
    ).first()
    if row is None:
        return _new_key(session, vault)
    raw = base64.urlsafe_b64decode(vault.open(row.private_key)[SEALED_FIELD].encode())
    return Ed25519PrivateKey.from_private_bytes(raw)


def _new_key(session: Session, vault: Vault) -> Ed25519PrivateKey:
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key()
    session.add(
        SigningKey(
            id=receipts.key_id(public),
            public_key=receipts.public_text(public),
            private_key=vault.seal({SEALED_FIELD: base64.urlsafe_b64encode(raw).decode()}),
            created_at=utcnow(),
        )
    )
    session.flush()
    return private


def rotate(session: Session, vault: Vault) -> str:
    """Retire every signing key and make a new one; returns the new key's id."""
    session.execute(
        update(SigningKey).where(SigningKey.retired_at.is_(None)).values(retired_at=utcnow())
    )
    return receipts.key_id(_new_key(session, vault).public_key())


def published(session: Session) -> list[PublishedKey]:
    """Every key that ever signed, newest first: what a verifier trusts."""
    rows = session.scalars(select(SigningKey).order_by(SigningKey.created_at.desc())).all()
    return [
        PublishedKey(row.id, receipts.ALGORITHM, row.public_key, row.created_at, row.retired_at)
        for row in rows
    ]
