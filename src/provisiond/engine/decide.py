"""What to do with each claimed account task, decided purely from what was read.

``snapshot`` evaluates the policy for one key (scope, mappings, roles) and plans from the
records; ``decide`` turns the snapshot into one of: apply an operation (or look at the app,
which may turn out to need none), skip (provisioning disabled), defer (a held run keeps the
deprovisioning back), drop (it belongs to a cancelled run), or fail (the policy fails for
this user). No I/O: the worker, provisioning on demand and tests all call the same code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

from provisiond.domain.apps import DeprovisionAction
from provisiond.domain.directory import UserStatus
from provisiond.engine.context import AppContext
from provisiond.engine.desired import DesiredAccount, DirectoryUser, evaluate
from provisiond.engine.fingerprint import fingerprint
from provisiond.engine.planner import (
    DEPROVISIONS,
    AccountStatus,
    ActualAccount,
    Operation,
    plan,
)
from provisiond.engine.reader import AccountInputs, AccountRecord, Hold, holding
from provisiond.expressions import EvaluationError


@dataclass(frozen=True)
class Snapshot:
    """One key's inputs, evaluated: the desired account, the recorded one, and why."""

    ctx: AppContext
    user_id: str
    user_label: str
    desired: DesiredAccount | None
    record: AccountRecord | None
    reason: str  # why the user has (or has not) an account, for the trace
    error: str | None = None  # the policy failed for this user
    fingerprint: str | None = None  # of the inputs, kept on the account once reconciled
    pending: Operation | None = None  # what the records say must happen (before any read)
    # A held run that defers this user's deprovisioning, or a cancelled one that drops it.
    held_by: tuple[str, str] | None = None

    @property
    def actual(self) -> ActualAccount | None:
        return None if self.record is None else self.record.actual()


def snapshot(
    ctx: AppContext,
    inputs: AccountInputs,
    holds: list[Hold] | None,
    *,
    queued_at: datetime | None,
    now: datetime,
) -> Snapshot:
    user = inputs.user
    desired, reason, error, inputs_hash = None, "removed from the directory", None, None
    if user is not None:
        inputs_hash = fingerprint(ctx.policy_key, user.id, user.status, user.profile, inputs.sources)
        directory_user = DirectoryUser(user.id, UserStatus(user.status), user.profile)
        try:
            evaluation = evaluate(directory_user, inputs.sources, ctx.policy, ctx.roles)
            desired, reason = evaluation.desired, evaluation.reason
        except EvaluationError as exc:
            reason, error = "the policy failed for this user", exc.detail
    record = inputs.account
    pending = None
    if error is None:
        actual = None if record is None else record.actual()
        pending = plan(desired, actual, ctx.provisioning, ctx.deprovision, now=now)
    snap = Snapshot(
        ctx=ctx,
        user_id=inputs.user_id,
        user_label=user.login if user else inputs.user_id,
        desired=desired,
        record=record,
        reason=reason,
        error=error,
        fingerprint=inputs_hash,
        pending=pending,
    )
    return snap if holds is None else with_holds(snap, holds, queued_at)


def with_holds(snap: Snapshot, holds: list[Hold], queued_at: datetime | None) -> Snapshot:
    """The snapshot with the run that holds its deprovisioning back, if any."""
    if snap.pending is None or snap.pending.kind not in DEPROVISIONS:  # only these are held
        return snap
    return replace(snap, held_by=holding(holds, snap.user_id, queued_at))


class Verdict(enum.StrEnum):
    APPLY = "apply"  # reconcile through the connector (may find nothing to send)
    SKIP = "skip"  # provisioning is disabled: logged, not applied
    DEFER = "defer"  # a held run keeps the deprovisioning back until approved or cancelled
    DROP = "drop"  # queued before a run that was then cancelled: it goes with that change
    FAIL = "fail"  # the policy fails for this user: dead, with the message


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    run_id: str | None = None  # the held or cancelled run

    @property
    def applies(self) -> bool:
        return self.verdict is Verdict.APPLY


def decide(snap: Snapshot) -> Decision:
    if snap.error is not None:
        return Decision(Verdict.FAIL)
    if snap.held_by is not None:
        state, run_id = snap.held_by
        return Decision(Verdict.DEFER if state == "held" else Verdict.DROP, run_id)
    if not snap.ctx.provisioning.enabled:
        return Decision(Verdict.SKIP)
    return Decision(Verdict.APPLY)


def blocked_deprovision(snap: Snapshot) -> str | None:
    """Why an account that should go is kept, when the settings, not the planner, keep it."""
    actual = snap.actual
    if snap.desired is not None or actual is None or not actual.exists:
        return None
    if actual.status is not AccountStatus.ACTIVE:
        return None
    if not snap.ctx.provisioning.features.deactivate_users:
        return "the app's deactivate_users feature is off"
    if snap.ctx.deprovision.action is DeprovisionAction.NONE:
        return "the deprovisioning action is none"
    return None
