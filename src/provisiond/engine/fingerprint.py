"""Fingerprints of the inputs of one user's plan, so unchanged users can be skipped. Pure.

The planner is a function of (policy, provisioning settings, user profile, status, assignment
sources with the roles they grant, account record). When a reconcile leaves the record in line
with a set of inputs, the record keeps their fingerprint; as long as the inputs hash the same,
planning again would give nothing to do (the convergence property tests/engine/test_planner.py
proves), so a preview of a large directory evaluates only the users whose inputs changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from provisiond.domain.apps import ProvisioningSettings
from provisiond.domain.policy import PolicyDocument
from provisiond.engine.roles import RoleSettings, Source


def policy_key(
    document: PolicyDocument, settings: ProvisioningSettings, roles: RoleSettings | None = None
) -> bytes:
    """The app-wide part: the policy document, the settings the planner reads, role settings."""
    app_wide: dict[str, Any] = {
        "policy": document.model_dump(mode="json"),
        "features": settings.features.model_dump(mode="json"),
        "deprovision_action": settings.deprovision_action.value,
    }
    if roles is not None and roles.kinds:  # apps without roles keep their fingerprints
        app_wide["roles"] = {"mode": roles.mode, "kinds": sorted(roles.kinds)}
    return hashlib.blake2b(_canonical(app_wide), digest_size=16).digest()


def fingerprint(
    key: bytes,
    user_id: str,
    status: str,
    profile: Mapping[str, Any],
    sources: Iterable[Source | str],
) -> str:
    keys = sorted(source if isinstance(source, str) else source.key() for source in sources)
    # One buffer, one hash: the same digest as hashing the parts one after another.
    return hashlib.blake2b(
        b"".join((
            key, user_id.encode(), b"\0", status.encode(), b"\0", _canonical(profile),
            b"\0", "\n".join(keys).encode(),
        )),
        digest_size=20,
    ).hexdigest()


# Built once: json.dumps with any option builds an encoder per call.
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _canonical(value: Any) -> bytes:
    return _ENCODE(value).encode()
