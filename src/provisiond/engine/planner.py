"""The planner: desired account + actual account + settings -> at most one operation. Pure.

Applying the operation and planning again yields nothing (tests/engine/test_planner.py proves it
with hypothesis), which is what makes retries, dry runs and full reconciles safe.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from provisiond.domain.apps import Deprovision, DeprovisionAction, ProvisioningSettings
from provisiond.engine.desired import DesiredAccount


class AccountStatus(enum.StrEnum):
    ACTIVE = "active"
    DEACTIVATED = "deactivated"
    DELETED = "deleted"


class OperationKind(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DEACTIVATE = "deactivate"
    REACTIVATE = "reactivate"
    DELETE = "delete"


DEPROVISIONS = frozenset({OperationKind.DEACTIVATE, OperationKind.DELETE})


@dataclass(frozen=True)
class ActualAccount:
    """What the app holds (or, without a remote read, what provisiond last applied)."""

    remote_id: str | None
    attributes: Mapping[str, Any]
    status: AccountStatus
    deactivated_at: datetime | None = None

    @property
    def exists(self) -> bool:
        return self.status is not AccountStatus.DELETED and self.remote_id is not None


@dataclass(frozen=True)
class Change:
    attribute: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Operation:
    kind: OperationKind
    attributes: Mapping[str, Any] = field(default_factory=dict)
    changes: tuple[Change, ...] = ()
    remote_id: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "operation": self.kind.value,
            "remote_id": self.remote_id,
            "changes": [
                {"attribute": c.attribute, "old": c.old, "new": c.new} for c in self.changes
            ],
        }


# Attributes an app sends back but provisiond never compares: they are the app's.
_IGNORED = frozenset({"id", "meta", "schemas", "password", "groups"})


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[Change, ...]:
    """Top-level attribute changes from ``old`` to ``new``, sorted by attribute name.

    An attribute that ``new`` does not manage is left alone: provisiond only owns what it maps.
    """
    changes = []
    for name, value in new.items():
        if name.lower() in _IGNORED:
            continue
        before = _get(old, name)
        # Normalising is most of the planner's time, and most values are either equal as they
        # are (an update that changes nothing) or new (a create): neither needs it.
        if before is None:
            if _unset(value):
                continue
        elif before == value or _normalise(before) == _normalise(value):
            continue
        changes.append(Change(name, before, value))
    changes.sort(key=_attribute)
    return tuple(changes)


def _attribute(change: Change) -> str:
    return change.attribute


def _unset(value: Any) -> bool:
    """Whether ``value`` normalises to None (what an unassigned attribute normalises to)."""
    return value is None or (isinstance(value, list) and not value)


def _get(attributes: Mapping[str, Any], name: str) -> Any:
    """``attributes[name]``, the name matched case-insensitively (RFC 7643 §2.1), or None."""
    if name in attributes:
        return attributes[name]
    lowered = name.lower()
    return next((v for k, v in attributes.items() if k.lower() == lowered), None)


_SCALARS = frozenset({str, int, bool, float, type(None)})


def _normalise(value: Any) -> Any:
    """Compare the way SCIM does: attribute names are case-insensitive (RFC 7643 §2.1), and
    an empty multi-valued attribute is the same state as an unassigned one (§2.5)."""
    if type(value) in _SCALARS:  # before the Mapping check, an ABC's (slow) isinstance
        return value
    if isinstance(value, dict | Mapping):
        return {
            k.lower(): _normalise(v) for k, v in value.items() if v is not None and v != []
        }
    if isinstance(value, list):
        return [_normalise(item) for item in value] or None
    return value


def plan(
    desired: DesiredAccount | None,
    actual: ActualAccount | None,
    settings: ProvisioningSettings,
    deprovision: Deprovision | None = None,
    *,
    now: datetime | None = None,
) -> Operation | None:
    """The one operation that moves ``actual`` towards ``desired``, or None when in sync.

    ``deprovision`` defaults to the app's ``deprovision_action``; ``now`` is only needed for
    "delete after N days deactivated".
    """
    features = settings.features
    exists = actual is not None and actual.exists
    rule = deprovision or Deprovision(settings.deprovision_action)
    if desired is None:
        if not exists or not features.deactivate_users:
            return None
        assert actual is not None
        if rule.action is DeprovisionAction.DELETE or _expired(actual, rule, now):
            return Operation(OperationKind.DELETE, remote_id=actual.remote_id)
        if rule.action is DeprovisionAction.DEACTIVATE and _is_active(actual):
            return Operation(
                OperationKind.DEACTIVATE,
                attributes=_deactivated(actual),
                changes=(Change("active", True, False),),
                remote_id=actual.remote_id,
            )
        return None

    if not exists:
        if not features.create_users or not desired.active:
            return None
        return Operation(
            OperationKind.CREATE,
            attributes=desired.attributes,
            changes=diff({}, desired.attributes),
        )
    assert actual is not None

    if not desired.active:
        if _is_active(actual) and features.deactivate_users:
            return Operation(
                OperationKind.DEACTIVATE,
                attributes=_deactivated(actual),
                changes=(Change("active", True, False),),
                remote_id=actual.remote_id,
            )
        return None

    changes = diff(actual.attributes, desired.attributes)
    if not _is_active(actual):
        if not features.deactivate_users:
            return None
        # A reactivation also carries whatever changed while the account was off; it always
        # carries ``active`` itself, since a PATCH sends only the changes.
        carried = changes if features.update_users else ()
        if not any(change.attribute == "active" for change in carried):
            carried = tuple(
                sorted((*carried, Change("active", False, True)), key=lambda c: c.attribute)
            )
        return Operation(
            OperationKind.REACTIVATE,
            attributes=desired.attributes,
            changes=carried,
            remote_id=actual.remote_id,
        )
    if not changes or not features.update_users:
        return None
    return Operation(
        OperationKind.UPDATE,
        attributes=desired.attributes,
        changes=changes,
        remote_id=actual.remote_id,
    )


def _expired(actual: ActualAccount, rule: Deprovision, now: datetime | None) -> bool:
    """A deactivated account whose grace period (delete_after) has run out."""
    if rule.action is not DeprovisionAction.DEACTIVATE or rule.delete_after is None or now is None:
        return False
    since = actual.deactivated_at
    return not _is_active(actual) and since is not None and now - since >= rule.delete_after


def _deactivated(actual: ActualAccount) -> dict[str, Any]:
    """The whole account with ``active: false``: what a PUT-only app must be sent.

    RFC 7644 §3.5.1; names compared case-insensitively, so no other spelling of ``active`` or
    of what the app owns slips through (RFC 7643 §2.1).
    """
    return {
        **{
            k: v
            for k, v in actual.attributes.items()
            if k.lower() not in _IGNORED and k.lower() != "active"
        },
        "active": False,
    }


def _is_active(actual: ActualAccount) -> bool:
    return actual.status is AccountStatus.ACTIVE and _get(actual.attributes, "active") is not False


def applied(
    operation: Operation, before: ActualAccount | None, remote_id: str | None
) -> ActualAccount:
    """The actual account after ``operation`` succeeded: what the planner will compare next."""
    base = dict(before.attributes) if before is not None else {}
    if operation.kind is OperationKind.DELETE:
        return ActualAccount(remote_id=None, attributes={}, status=AccountStatus.DELETED)
    if operation.kind is OperationKind.CREATE:
        return ActualAccount(remote_id, dict(operation.attributes), AccountStatus.ACTIVE)
    for change in operation.changes:
        for name in [k for k in base if k.lower() == change.attribute.lower()]:
            del base[name]  # the app's spelling of the same attribute
        base[change.attribute] = change.new
    if operation.kind is OperationKind.DEACTIVATE:
        base["active"] = False
        return ActualAccount(remote_id, base, AccountStatus.DEACTIVATED)
    reactivated = operation.kind is OperationKind.REACTIVATE
    base["active"] = True if reactivated else base.get("active", True)
    return ActualAccount(remote_id, base, AccountStatus.ACTIVE)
