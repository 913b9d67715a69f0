"""Signed receipts: any change to any field is found and named; the signature binds the key."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from provisiond.domain import receipts

KEY = Ed25519PrivateKey.generate()
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=8))
documents = st.dictionaries(
    st.text(min_size=1, max_size=6),
    st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.text(min_size=1, max_size=6), inner, max_size=3),
                 max_leaves=12),
    min_size=1, max_size=5,
)


def leaves(document: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(document, dict) and document:
        return [p for k, v in document.items() for p in leaves(v, (*path, k))]
    if isinstance(document, list) and document:
        return [p for i, v in enumerate(document) for p in leaves(v, (*path, i))]
    return [path]


@settings(max_examples=60, deadline=None)
@given(documents, st.data())
def test_a_signed_receipt_verifies_and_any_changed_leaf_is_named(
    document: dict[str, Any], data: st.DataObject
) -> None:
    signed = json.loads(json.dumps(receipts.sign(document, KEY)))  # as saved to a file
    assert receipts.verify(signed).valid
    trusted = {signed["signature"]["key_id"]: signed["signature"]["public_key"]}
    assert receipts.verify(signed, trusted).trusted_key
    path = data.draw(st.sampled_from(leaves(document)))
    tampered = copy.deepcopy(signed)
    holder: Any = tampered["receipt"]
    for step in path[:-1]:
        holder = holder[step]
    old = holder[path[-1]]
    holder[path[-1]] = "tampered" if old != "tampered" else "other"
    verdict = receipts.verify(tampered)
    assert not verdict.valid and verdict.problems


def test_the_reasons_a_receipt_fails() -> None:
    signed = receipts.sign({"user": {"login": "ada"}, "apps": [{"status": "confirmed"}]}, KEY)
    changed = copy.deepcopy(signed)
    changed["receipt"]["apps"][0]["status"] = "not confirmed"
    assert receipts.verify(changed).problems == ["field apps[0].status was changed"]
    added = copy.deepcopy(signed)
    added["receipt"]["apps"].append({"status": "confirmed"})
    assert receipts.verify(added).problems == ["field apps[1].status was added"]
    forged = copy.deepcopy(signed)
    forged["signature"]["fields"]["user.login"] = "0" * 64
    assert receipts.verify(forged).problems[0].startswith("bad signature")
    swapped = copy.deepcopy(signed)
    swapped["signature"]["public_key"] = receipts.public_text(
        Ed25519PrivateKey.generate().public_key())
    assert receipts.verify(swapped).problems[0].startswith("unknown key")
    assert receipts.verify(signed, {}).problems[0].startswith("unknown key")
    assert receipts.verify([]).problems == ["not a receipt: the file holds no JSON object"]


def test_keys_that_look_like_paths_cannot_hide_a_change() -> None:
    signed = receipts.sign({"a": {"b": 1}, "a.b": 1}, KEY)
    assert set(signed["signature"]["fields"]) == {"a.b", '"a.b"'}
    changed = copy.deepcopy(signed)
    changed["receipt"]["a"]["b"] = 2
    assert receipts.verify(changed).problems == ["field a.b was changed"]


def test_floats_are_refused_they_have_many_spellings() -> None:
    with pytest.raises(ValueError, match="floating point"):
        receipts.canonical({"latency": 1.5})
