"""Previews as the API and console show them: one line per user, attribute by attribute.

The planning itself is the engine's (engine.app_plan): the worker's read and decide over the
whole app, with the executor off.
"""

from __future__ import annotations

from typing import Any

from provisiond.engine.app_plan import AppPlan, PlannedUser, plan_app

__all__ = ["AppPlan", "PlannedUser", "describe", "flatten", "plan_app"]


def describe(planned: PlannedUser) -> dict[str, Any]:
    """One preview line: the operation with its changes flattened attribute by attribute."""
    entry: dict[str, Any] = {
        "user_id": planned.user_id,
        "login": planned.login,
        "reason": planned.reason,
    }
    if planned.error is not None:
        return {**entry, "operation": "error", "error": planned.error, "changes": []}
    operation = planned.operation
    assert operation is not None
    changes = [
        {"attribute": path, "old": old, "new": new}
        for change in operation.changes
        for path, old, new in flatten(change.attribute, change.old, change.new)
    ]
    return {
        **entry,
        "operation": operation.kind.value,
        "remote_id": operation.remote_id,
        "changes": changes,
    }


def flatten(path: str, old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """``name: {a, b} -> {a, c}`` becomes ``name.b: b -> None, name.c: None -> c``."""
    if isinstance(old, dict) or isinstance(new, dict):
        old_map = old if isinstance(old, dict) else {}
        new_map = new if isinstance(new, dict) else {}
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(old_map) | set(new_map)):
            if old_map.get(key) != new_map.get(key):
                out.extend(flatten(f"{path}.{key}", old_map.get(key), new_map.get(key)))
        return out
    return [(path, old, new)]
