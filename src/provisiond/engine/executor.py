"""The executor: reconcile one (app, user) key through the app's connector, with a trace.

Level-based: it reads the desired state and the account record when it runs, plans with the
pure planner, and reads the app first where the record may not be the truth (a create, or a
full sync). Every step goes into the trace that the activity log and on-demand runs show.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from provisiond.connectors.base import Connector, RemoteUser
from provisiond.domain.apps import Deprovision, ProvisioningSettings
from provisiond.engine.desired import DesiredAccount
from provisiond.engine.drift import as_applied, drift_of, last_modified
from provisiond.engine.planner import (
    AccountStatus,
    ActualAccount,
    Operation,
    OperationKind,
    applied,
)
from provisiond.engine.planner import plan as plan_one
from provisiond.errors import NotRevoked, RemoteConflict, RemoteNotFound

OUTCOME_OF = {
    OperationKind.CREATE: "created",
    OperationKind.UPDATE: "updated",
    OperationKind.DEACTIVATE: "deactivated",
    OperationKind.REACTIVATE: "reactivated",
    OperationKind.DELETE: "deleted",
}


DEPROVISIONS = (OperationKind.DEACTIVATE, OperationKind.DELETE)


@dataclass(frozen=True)
class ReadBack:
    """What the app showed when the account was read back after a deprovisioning."""

    action: str  # deactivate | delete
    remote_id: str
    applied_at: datetime  # when the app answered the deprovisioning
    state: str  # inactive (active false) | absent (404) | active
    at: datetime

    @property
    def confirmed(self) -> bool:
        # A delete is proven by a 404 only; a deactivation by active false, or by a 404.
        return self.state == "absent" or (self.action == "deactivate" and self.state == "inactive")


@dataclass
class Result:
    """What one reconcile did: the outcome, the operation, the account after it, and the trace."""

    outcome: str = "unchanged"
    operation: Operation | None = None
    account: ActualAccount | None = None
    trace: list[dict[str, Any]] = field(default_factory=list)
    readback: ReadBack | None = None  # after a deprovisioning
    # What changed in the app since last applied (engine.drift); None: it was not read back.
    drift: list[dict[str, Any]] | None = None

    def step(self, name: str, detail: str, **data: Any) -> None:
        self.trace.append({"step": name, "detail": detail, **data})


def _matching_value(desired: DesiredAccount, attribute: str) -> str | None:
    if attribute == "emails.value":
        emails = desired.attributes.get("emails") or []
        return next((e.get("value") for e in emails if e.get("primary")), None) or (
            emails[0].get("value") if emails else None
        )
    value = desired.attributes.get(attribute)
    return value if isinstance(value, str) else None


def _from_remote(remote: RemoteUser) -> ActualAccount:
    status = AccountStatus.ACTIVE if remote.active else AccountStatus.DEACTIVATED
    return ActualAccount(remote.remote_id, dict(remote.attributes), status)


def _checked_for_drift(
    result: Result,
    settings: ProvisioningSettings,
    desired: DesiredAccount | None,
    applied: ActualAccount,
    remote: RemoteUser,
) -> ActualAccount:
    """The account as the planner is to see it, with the drift since it was applied recorded
    on ``result`` (engine.drift): as the app holds it, or in ``report`` mode as applied."""
    found = _from_remote(remote)
    if not applied.attributes:  # nothing applied yet (a record without attributes)
        result.drift = []
        return found
    drift = drift_of(
        applied.attributes, found.attributes, desired.attributes if desired else None,
        modified=last_modified(found.attributes),
    )
    result.drift = drift
    if not drift:
        return found
    names = ", ".join(entry["attribute"] for entry in drift)
    if settings.imports.drift == "report":
        result.step("drift", f"changed in the app since last applied: {names}; reported only")
        return replace(found, attributes=as_applied(found.attributes, drift))
    result.step("drift", f"changed in the app since last applied: {names}; corrected")
    return found


def strong_password(length: int = 24) -> str:
    """A random password meeting common complexity rules; sent once, never stored."""
    alphabet = string.ascii_letters + string.digits + "!#$%&*+-=?@^_"
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(length))
        if (
            any(c.islower() for c in candidate)
            and any(c.isupper() for c in candidate)
            and any(c.isdigit() for c in candidate)
            and any(not c.isalnum() for c in candidate)
        ):
            return candidate


async def reconcile(
    connector: Connector,
    settings: ProvisioningSettings,
    desired: DesiredAccount | None,
    actual: ActualAccount | None,
    *,
    verify_remote: bool,
    deprovision: Deprovision | None = None,
    now: datetime | None = None,
    result: Result | None = None,
    skip_lookup: bool = False,
) -> Result:
    """Plan and apply the one operation that brings the account in line. Raises ConnectorError;
    the steps taken until then are in ``result`` when the caller passes one.

    ``skip_lookup``: the app was seen empty when this run began, so a create is sent without
    first looking for an existing account; userName is unique in the app (RFC 7643 §4.1.1)
    and a duplicate is answered 409 (RFC 7644 §3.3), which links the existing account.
    """
    result = result if result is not None else Result()
    result.account = actual

    def plan(current: ActualAccount | None) -> Operation | None:
        return plan_one(desired, current, settings, deprovision, now=now)

    result.step(
        "desired",
        "no account wanted"
        if desired is None
        else f"account wanted, active={desired.active}",
        **({"attributes": desired.attributes} if desired is not None else {}),
    )
    if verify_remote and actual is not None and actual.remote_id:
        remote = await connector.get_user(actual.remote_id)
        if remote is None:
            result.step("read", f"account {actual.remote_id} no longer exists in the app")
            actual = ActualAccount(None, {}, AccountStatus.DELETED)
        else:
            result.step("read", f"read account {actual.remote_id} from the app")
            actual = _checked_for_drift(result, settings, desired, actual, remote)
        result.account = actual

    operation = plan(actual)
    if operation is not None and operation.kind is OperationKind.CREATE and skip_lookup:
        result.step("match", "not looked up: the app held no accounts when this run began")
    elif operation is not None and operation.kind is OperationKind.CREATE:
        assert desired is not None
        value = _matching_value(desired, settings.matching)
        found = await connector.find_user(settings.matching, value) if value else None
        if found is not None:
            result.step(
                "match",
                f"found an existing account by {settings.matching} = {value!r}: linked",
                remote_id=found.remote_id,
            )
            actual = _from_remote(found)
            result.account = actual
            operation = plan(actual)
        else:
            result.step("match", f"no existing account with {settings.matching} = {value!r}")

    if operation is None:
        result.step("plan", "in sync: nothing to send")
        return result
    result.operation = operation
    result.step("plan", f"{operation.kind.value}", **operation.describe())
    try:
        remote_id, answer = await _apply(connector, settings, operation)
    except RemoteConflict:
        # RFC 7644 §3.3: 409 means the account exists already (the lookup missed it): adopt it.
        assert desired is not None
        value = _matching_value(desired, settings.matching) or ""
        found = await connector.find_user(settings.matching, value)
        if found is None:
            raise
        result.step("adopt", f"the app answered 409; linked the existing account {found.remote_id}")
        actual = _from_remote(found)
        operation = plan(actual)
        result.operation = operation
        if operation is None:
            result.account, result.outcome = actual, "unchanged"
            return result
        remote_id, answer = await _apply(connector, settings, operation)
    except RemoteNotFound:
        # Removed behind our back: forget it and, if it is still wanted, create it again.
        result.step("gone", "the account was removed in the app")
        gone = operation
        actual = ActualAccount(None, {}, AccountStatus.DELETED)
        operation = plan(actual)
        result.operation = operation
        if operation is None:
            if gone.kind in DEPROVISIONS and gone.remote_id:
                # The app's own 404 to the deprovisioning is the read-back: the account is gone.
                moment = datetime.now(UTC)
                result.readback = ReadBack(gone.kind.value, gone.remote_id, moment, "absent", moment)
            result.account, result.outcome = actual, "deleted"
            return result
        remote_id, answer = await _apply(connector, settings, operation)
    result.account = applied(operation, actual, remote_id)
    result.outcome = OUTCOME_OF[operation.kind]
    result.step("apply", f"{operation.kind.value} succeeded", remote_id=remote_id)
    if operation.kind in DEPROVISIONS and operation.remote_id:
        await read_back(connector, operation, result, answer=answer)
    return result


async def read_back(
    connector: Connector, operation: Operation, result: Result, *, answer: RemoteUser | None = None
) -> None:
    """Read the account back after a deprovisioning (one GET) and keep what the app showed;
    raises ``NotRevoked`` when it still shows access, so the task is retried.

    ``answer``: the account as the app's answer to the deactivation showed it. When that
    answer shows ``active`` false it is the read-back (the app's own word on the account,
    after the change, as a GET would give it) and no GET is sent; any other answer (none,
    active, or silent on ``active``) is checked by the GET as before.
    """
    assert operation.remote_id is not None
    applied_at = datetime.now(UTC)
    if operation.kind is OperationKind.DEACTIVATE and answer is not None and _shows_inactive(answer):
        result.readback = ReadBack(
            operation.kind.value, operation.remote_id, applied_at, "inactive", applied_at
        )
        result.step(
            "read back",
            f"the app's answer to the deactivation of {operation.remote_id} shows active is false",
            state="inactive", confirmed=True, source="answer",
        )
        return
    remote = await connector.get_user(operation.remote_id)
    state = "absent" if remote is None else ("active" if remote.active else "inactive")
    seen = ReadBack(operation.kind.value, operation.remote_id, applied_at, state, datetime.now(UTC))
    result.readback = seen
    shown = {"absent": "404: the account is gone", "inactive": "active is false",
             "active": "the account is still active"}[state]
    if seen.confirmed:
        result.step("read back", f"read account {operation.remote_id} back: {shown}",
                    state=state, confirmed=True)
        return
    if state == "inactive":
        shown = "the account is still there (inactive) after the delete"
    result.step("read back", f"read account {operation.remote_id} back: {shown}",
                state=state, confirmed=False)
    raise NotRevoked(
        f"the app accepted the {operation.kind.value} of account {operation.remote_id}, "
        f"but reading it back shows {shown}"
    )


def _shows_inactive(answer: RemoteUser) -> bool:
    # Present and false: an answer silent on "active" says nothing (RemoteUser.active is True).
    return any(name.lower() == "active" for name in answer.attributes) and not answer.active


async def _apply(
    connector: Connector, settings: ProvisioningSettings, operation: Operation
) -> tuple[str | None, RemoteUser | None]:
    """Send the operation; the remote id after it, and the account as the app's answer
    showed it (an update's 200 with the resource), if it did."""
    if operation.kind is OperationKind.CREATE:
        attributes = dict(operation.attributes)
        if settings.features.password_on_create:
            attributes["password"] = strong_password()
        created = await connector.create_user(attributes)
        return created.remote_id, None
    assert operation.remote_id is not None
    if operation.kind is OperationKind.DELETE:
        await connector.delete_user(operation.remote_id)
        return None, None
    answer = await connector.update_user(operation.remote_id, operation.changes, operation.attributes)
    return operation.remote_id, answer
