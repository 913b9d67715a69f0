"""Signed receipts: canonical JSON, a signed list of field digests, and an offline verifier.

Pure (no database, no network), so ``provisiond receipt verify FILE`` checks a saved receipt
with nothing but the file and, optionally, the published keys.

A receipt is ``{"receipt": {...}, "signature": {...}}``. The signature block holds the SHA-256
digest of every field of ``receipt`` (a leaf, by its path: ``apps[0].read_back.state``) and an
Ed25519 signature over the canonical JSON of ``{"key_id", "fields"}``. Signing the digests
rather than the bare document costs nothing in strength (the digests bind every value) and lets
the verifier say *which* field was altered instead of only "bad signature"; the digest of the
whole receipt is signed too, so no quirk of the paths can hide a change.

Canonical JSON: keys sorted, no insignificant white space, UTF-8, no floats (times are ISO 8601
strings, counts are integers) - the subset where RFC 8785 and ``json.dumps(sort_keys=True)``
agree byte for byte.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALGORITHM = "Ed25519"
KIND = "provisiond.revocation-receipt"


def canonical(value: Any) -> bytes:
    """The one byte string a JSON value signs as (floats refused: they have many spellings)."""
    _no_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _no_floats(value: Any) -> None:
    if isinstance(value, float):
        raise ValueError("a receipt holds no floating point numbers")
    if isinstance(value, Mapping):
        for item in value.values():
            _no_floats(item)
    elif isinstance(value, list):
        for item in value:
            _no_floats(item)


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(path, value) of every scalar (and every empty object or list) under ``value``."""
    if isinstance(value, Mapping) and value:
        for key in sorted(value):
            yield from _leaves(value[key], f"{path}.{_name(key)}" if path else _name(key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def _name(key: str) -> str:
    """A key as a path segment; quoted (JSON) when it could be read as a path itself."""
    plain = key and not any(c in key for c in '.[]"') and key.strip() == key
    return key if plain else json.dumps(key, ensure_ascii=False)


def field_digests(receipt: Mapping[str, Any]) -> dict[str, str]:
    return {
        path: hashlib.sha256(canonical(value)).hexdigest() for path, value in _leaves(receipt, "")
    }


def key_id(public: Ed25519PublicKey) -> str:
    """16 hex digits naming a public key: a hash of its raw bytes."""
    return hashlib.sha256(public_bytes(public)).hexdigest()[:16]


def public_bytes(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_text(public: Ed25519PublicKey) -> str:
    return base64.urlsafe_b64encode(public_bytes(public)).decode()


def load_public(text: str) -> Ed25519PublicKey:
    """A public key from its base64url text; ValueError when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(text.encode())
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the public key is not base64url") from exc
    return Ed25519PublicKey.from_public_bytes(raw)


def _manifest(kid: str, fields: Mapping[str, str], document: str) -> bytes:
    return canonical({"key_id": kid, "fields": dict(fields), "document": document})


def document_digest(receipt: Mapping[str, Any]) -> str:
    """The digest of the whole receipt: binds it even where field paths could not tell."""
    return hashlib.sha256(canonical(receipt)).hexdigest()


def sign(receipt: Mapping[str, Any], private: Ed25519PrivateKey) -> dict[str, Any]:
    """The signed document: ``receipt`` and its signature block."""
    public = private.public_key()
    kid = key_id(public)
    fields = field_digests(receipt)
    whole = document_digest(receipt)
    value = private.sign(_manifest(kid, fields, whole))
    return {
        "receipt": dict(receipt),
        "signature": {
            "algorithm": ALGORITHM,
            "key_id": kid,
            "public_key": public_text(public),
            "fields": fields,
            "document": whole,
            "value": base64.urlsafe_b64encode(value).decode(),
        },
    }


@dataclass(frozen=True)
class Verdict:
    """What the verifier found: ``valid``, or the reasons it is not (first the most basic)."""

    key_id: str | None
    problems: list[str] = field(default_factory=list)
    trusted_key: bool = False  # the key was among the keys given, not only the file's own

    @property
    def valid(self) -> bool:
        return not self.problems


def verify(document: Any, trusted: Mapping[str, str] | None = None) -> Verdict:
    """Check a signed receipt. ``trusted``: key id -> public key text (the published keys);
    without it the file's own public key is used, which proves integrity but not origin."""
    if not isinstance(document, Mapping):
        return Verdict(None, ["not a receipt: the file holds no JSON object"])
    receipt, block = document.get("receipt"), document.get("signature")
    if not isinstance(receipt, Mapping) or not isinstance(block, Mapping):
        return Verdict(None, ["not a receipt: it needs a 'receipt' and a 'signature' object"])
    kid, embedded = block.get("key_id"), block.get("public_key")
    fields, value, whole = block.get("fields"), block.get("value"), block.get("document")
    if block.get("algorithm") != ALGORITHM:
        return Verdict(None, [f"unsupported signature algorithm {block.get('algorithm')!r}"])
    if not (isinstance(kid, str) and isinstance(embedded, str) and isinstance(value, str)
            and isinstance(whole, str) and isinstance(fields, Mapping)):
        return Verdict(
            None, ["the signature block lacks key_id, public_key, fields, document or value"]
        )
    if trusted is not None:
        if kid not in trusted:
            return Verdict(kid, [f"unknown key {kid}: it is not among the published keys given"])
        key_text = trusted[kid]
    else:
        key_text = embedded
    try:
        public = load_public(key_text)
        signature = base64.urlsafe_b64decode(value.encode())
    except (ValueError, binascii.Error):
        return Verdict(kid, ["the public key or the signature value is not valid base64url"])
    if key_id(public) != kid:
        return Verdict(kid, [f"unknown key: the public key in the file is not key {kid}"])
    try:
        public.verify(
            signature, _manifest(kid, {str(k): str(v) for k, v in fields.items()}, whole)
        )
    except (InvalidSignature, ValueError):
        return Verdict(kid, ["bad signature: the signature or its list of field digests was "
                             "altered, or another key signed it"], trusted is not None)
    problems = _field_changes(fields, field_digests(receipt))
    if not problems and document_digest(receipt) != whole:
        problems = ["the receipt was altered (its digest differs), in no field it can name"]
    return Verdict(kid, problems, trusted is not None)


def _field_changes(signed: Mapping[str, Any], found: Mapping[str, str]) -> list[str]:
    changed = [f"field {path} was changed" for path in signed
               if path in found and found[path] != signed[path]]
    removed = [f"field {path} was removed" for path in signed if path not in found]
    added = [f"field {path} was added" for path in found if path not in signed]
    return changed + removed + added
