"""Drift: what changed in the app behind provisiond's back since it last applied an account.

Pure. A full reconcile reads each account back (engine.executor); the attributes provisiond
last applied (``accounts.applied``) are compared with what the app now holds, the way the
planner compares (``planner.diff``: names case-insensitive, empty multi-valued = unassigned),
and only for what provisiond applied: what the app adds of its own is not drift.

``correct`` (the default) lets the planner send the policy's values again as usual;
``report`` records the drift and plans as if the app still held what was applied, so nothing
is sent for it. A lifecycle change made in the app (``active``) is always corrected: an
account switched back on behind provisiond's back is a security matter, not a preference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provisiond.engine.planner import _get, diff

LIFECYCLE = "active"


def drift_of(
    applied: Mapping[str, Any],
    found: Mapping[str, Any],
    desired: Mapping[str, Any] | None,
    *,
    modified: str | None = None,
) -> list[dict[str, Any]]:
    """One entry per attribute the app changed: what was applied, what it holds, what the
    policy maps now; ``modified`` is the app's ``meta.lastModified``, as far as it tells.

    Only what provisiond manages counts: the attributes the policy maps and ``active`` (a
    record read back from the app also holds attributes nobody maps)."""
    managed = {name.lower() for name in (desired or {})} | {LIFECYCLE}
    return [
        {
            "attribute": change.attribute,
            "applied": change.new,
            "found": change.old,
            "desired": _get(desired, change.attribute) if desired is not None else None,
            **({"modified": modified} if modified else {}),
        }
        for change in diff(found, applied)
        if change.attribute.lower() in managed
    ]


def as_applied(found: Mapping[str, Any], drift: list[dict[str, Any]]) -> dict[str, Any]:
    """The app's account with each drifted attribute as it was applied (``report`` mode), its
    lifecycle excepted."""
    kept = {entry["attribute"].lower() for entry in drift if entry["attribute"].lower() != LIFECYCLE}
    account = {k: v for k, v in found.items() if k.lower() not in kept}
    for entry in drift:
        if entry["attribute"].lower() in kept:
            account[entry["attribute"]] = entry["applied"]
    return account


def last_modified(found: Mapping[str, Any]) -> str | None:
    meta = _get(found, "meta")
    value = meta.get("lastModified") if isinstance(meta, Mapping) else None
    return value if isinstance(value, str) else None
