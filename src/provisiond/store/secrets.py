"""Credentials encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256) and split from settings.

Connector settings are stored as two halves: the public half (URL, auth type, user name) in
plain JSON and every ``SecretStr`` field encrypted. Nothing here ever returns a secret to an
interface: the API shows ``"secret_set": true`` instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from provisiond.errors import ProvisiondError


class Vault:
    """Seals with the first key; opens with any of them (a rotation in progress, store/keys.py)."""

    def __init__(self, keys: bytes | Sequence[bytes]) -> None:
        ring = [keys] if isinstance(keys, bytes) else list(keys)
        self._fernet = MultiFernet([Fernet(key) for key in ring])

    def __repr__(self) -> str:
        return "Vault(<key hidden>)"

    def seal(self, secrets: dict[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(secrets, sort_keys=True).encode()).decode()

    def open(self, sealed: str | None) -> dict[str, str]:
        if not sealed:
            return {}
        try:
            data: dict[str, str] = json.loads(self._fernet.decrypt(sealed.encode()))
        except InvalidToken as exc:
            raise ProvisiondError(
                "stored credentials cannot be decrypted: PROVISIOND_SECRET_KEY changed?"
            ) from exc
        return data

    def opens(self, sealed: str) -> bool:
        try:
            self._fernet.decrypt(sealed.encode())
        except InvalidToken:
            return False
        return True

    def reseal(self, sealed: str) -> str:
        """The same value sealed with the first key (``InvalidToken`` if no key opens it)."""
        return self._fernet.rotate(sealed.encode()).decode()


def split_secrets(auth: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """``auth`` (python-mode dump) -> (public fields, secret fields as plain strings)."""
    public: dict[str, Any] = {}
    secret: dict[str, str] = {}
    for name, value in auth.items():
        if isinstance(value, SecretStr):
            secret[name] = value.get_secret_value()
        else:
            public[name] = value
    return public, secret
