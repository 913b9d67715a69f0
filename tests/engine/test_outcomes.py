"""What a reconcile leaves behind (engine.outcomes), as properties of pure functions.

Retry-or-dead with backoff, the outcome of each verdict that sends nothing, and the record an
applied reconcile keeps: no database, values built directly.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from provisiond.config import Settings
from provisiond.domain.apps import (
    DeprovisionAction,
    Features,
    ProvisioningSettings,
    ScimConnectorSettings,
)
from provisiond.engine import outcomes, queue
from provisiond.engine.context import AppContext
from provisiond.engine.decide import Decision, Snapshot, Verdict
from provisiond.engine.desired import DesiredAccount
from provisiond.engine.executor import Result
from provisiond.engine.mapping import default_policy
from provisiond.engine.outcomes import (
    EVENT_ACTION,
    HELD_RECHECK,
    AccountWrite,
    RetryPolicy,
    Transition,
)
from provisiond.engine.planner import (
    DEPROVISIONS,
    AccountStatus,
    ActualAccount,
    Operation,
    OperationKind,
)
from provisiond.engine.queue import Claimed
from provisiond.engine.reader import AccountRecord
from provisiond.engine.roles import RoleSettings

# -- values -----------------------------------------------------------------------------------

MICROSECOND = timedelta(microseconds=1)  # timedelta(seconds=float) rounds to microseconds


def context(name: str = "crm", provisioning: ProvisioningSettings | None = None) -> AppContext:
    return AppContext(
        app_id="app-1",
        name=name,
        version="2024-01-01T00:00:00+00:00",
        connector=ScimConnectorSettings(
            base_url="http://127.0.0.1:9/v2", auth={"type": "bearer", "token": "t"}
        ),
        provisioning=provisioning or ProvisioningSettings(enabled=True),
        policy=default_policy(),
        roles=RoleSettings(),
        policy_key=b"k" * 16,
    )


# -- strategies -------------------------------------------------------------------------------

words = st.text(alphabet=string.ascii_letters, min_size=1, max_size=10)
# Error texts as connectors word them: anything printable, spaces and punctuation included.
errors = st.text(alphabet=string.ascii_letters + string.digits + " :;,.'()-/", min_size=1,
                 max_size=40).filter(str.strip)
times = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)
ids = st.uuids().map(str)


@st.composite
def claimeds(draw: st.DrawFn, attempts: st.SearchStrategy[int] | None = None) -> Claimed:
    created = draw(times)
    claimed_at = created + timedelta(seconds=draw(st.integers(0, 3600)))
    return Claimed(
        id=draw(ids),
        app_id="app-1",
        kind="user",
        subject_id=draw(ids),
        run_id=draw(st.none() | ids),
        reason=draw(st.sampled_from(["app.sync", "user.lifecycle.suspend", "app.assignment"])),
        priority=draw(st.integers(0, 2)),
        attempts=draw(attempts if attempts is not None else st.integers(1, 8)),
        verify_remote=draw(st.booleans()),
        correlation_id=draw(ids),
        created_at=created,
        updated_at=created,
        claimed_by="w1",
        claimed_at=claimed_at,
    )


@st.composite
def retry_policies(draw: st.DrawFn) -> RetryPolicy:
    base = draw(st.floats(0.01, 60.0))
    ceiling = draw(st.floats(base, 3600.0))
    return RetryPolicy(draw(st.integers(1, 6)), base, ceiling)


retry_afters = st.none() | st.floats(0.0, 7200.0)
operations = st.builds(
    Operation,
    kind=st.sampled_from(list(OperationKind)),
    attributes=st.just({"userName": "alice", "active": True}),
    remote_id=st.none() | words,
)
deprovisions = st.builds(
    Operation, kind=st.sampled_from(sorted(DEPROVISIONS)), remote_id=words
)
records = st.none() | st.builds(
    AccountRecord,
    remote_id=st.none() | words,
    applied=st.just({"userName": "alice"}),
    status=st.sampled_from([s.value for s in AccountStatus]),
    deactivated_at=st.none() | times,
    fingerprint=st.none() | st.just("f" * 40),
)
attribute_values = st.dictionaries(
    st.sampled_from(["userName", "active", "meta", "schemas", "password", "title", "emails"]),
    st.one_of(st.booleans(), words, st.just({"created": "2024"})),
    max_size=6,
)
accounts = st.none() | st.builds(
    ActualAccount,
    remote_id=st.none() | words,
    attributes=attribute_values,
    status=st.sampled_from(list(AccountStatus)),
)
provisionings = st.builds(
    ProvisioningSettings,
    enabled=st.booleans(),
    features=st.builds(Features, deactivate_users=st.booleans()),
    deprovision_action=st.sampled_from(list(DeprovisionAction)),
)


def snap(
    *,
    ctx: AppContext | None = None,
    error: str | None = None,
    pending: Operation | None = None,
    record: AccountRecord | None = None,
    desired: DesiredAccount | None = None,
    held_by: tuple[str, str] | None = None,
) -> Snapshot:
    return Snapshot(
        ctx=ctx or context(),
        user_id="user-1",
        user_label="alice",
        desired=desired,
        record=record,
        reason="assigned via user",
        error=error,
        fingerprint="f" * 40,
        pending=pending,
        held_by=held_by,
    )


def fail(task: Claimed, error: str, *, dead: bool, retry_after: float | None,
         policy: RetryPolicy, app_name: str, now: datetime, **more: Any) -> Any:
    return outcomes.failure(
        task, error, dead=dead, retry_after=retry_after, policy=policy,
        action="app.user.provision", doing="create of alice", subject="alice",
        app_name=app_name, user_id=task.subject_id, targets={"app": app_name, "user": "alice"},
        operation="create", now=now, **more,
    )


def check_event_rows(events: list[dict[str, Any]], task: Claimed, now: datetime) -> None:
    for row in events:
        assert row["actor"] == outcomes.ENGINE_ACTOR
        assert row["app_id"] == task.app_id
        assert row["correlation_id"] == task.correlation_id
        assert row["time"] == now


# -- failure: retry or dead -------------------------------------------------------------------


@given(
    task=claimeds(),
    dead=st.booleans(),
    policy=retry_policies(),
    retry_after=retry_afters,
    seconds=st.floats(0.0, 1e5),
    error=errors,
    app_name=words,
    now=times,
    app_quarantined=st.booleans(),
)
def test_a_failure_is_dead_iff_terminal_or_out_of_attempts(
    task: Claimed, dead: bool, policy: RetryPolicy, retry_after: float | None, seconds: float,
    error: str, app_name: str, now: datetime, app_quarantined: bool,
) -> None:
    calls: list[tuple[int, float, float, float | None]] = []

    def delay(attempts: int, base: float, ceiling: float, after: float | None) -> float:
        calls.append((attempts, base, ceiling, after))
        return seconds

    write, events = fail(task, error, dead=dead, retry_after=retry_after, policy=policy,
                         app_name=app_name, now=now, delay=delay,
                         app_quarantined=app_quarantined)
    assert write.error == error and write.operation == "create"
    check_event_rows(events, task, now)
    for row in events:  # every text names the app and the error
        assert app_name in row["message"] and error in row["message"]
    # A failure that quarantined the app is the app's, not the task's: the task waits with
    # the app's backlog even on its last attempt; only a terminal error buries it.
    if dead or (task.attempts >= policy.max_attempts and not app_quarantined):
        assert write.transition is Transition.DEAD
        assert write.outcome == "failed"  # counted on the run
        assert write.at is None
        assert calls == []  # no backoff for the dead
        assert [row["action"] for row in events] == ["app.user.provision", "task.dead"]
        assert all(row["outcome"] == "failure" for row in events)
        assert task.id in events[1]["message"]
        assert events[1]["details"]["terminal"] is dead
        assert events[1]["targets"]["task_id"] == task.id
    else:
        assert write.transition is Transition.RETRY
        assert write.outcome is None  # a retry counts nothing on the run
        assert calls == [(task.attempts, policy.base_seconds, policy.ceiling_seconds, retry_after)]
        assert write.at is not None
        assert abs(write.at - (now + timedelta(seconds=seconds))) <= MICROSECOND
        assert write.at >= now
        (row,) = events
        assert row["outcome"] == "retry"
        assert row["details"]["retry_in_seconds"] == round(seconds, 3)
        assert row["details"]["attempt"] == task.attempts


@given(
    task=claimeds(),
    policy=retry_policies(),
    retry_after=retry_afters,
    error=errors,
    now=times,
)
def test_a_retry_waits_the_real_backoff_with_retry_after_as_a_floor(
    task: Claimed, policy: RetryPolicy, retry_after: float | None, error: str, now: datetime
) -> None:
    policy = RetryPolicy(task.attempts + 1, policy.base_seconds, policy.ceiling_seconds)
    write, (row,) = fail(task, error, dead=False, retry_after=retry_after, policy=policy,
                         app_name="crm", now=now)  # delay: queue.backoff, the default
    assert write.transition is Transition.RETRY and write.at is not None
    waited = write.at - now
    assert waited >= -MICROSECOND + timedelta(seconds=policy.base_seconds / 2)
    assert waited <= timedelta(seconds=policy.ceiling_seconds) + MICROSECOND
    if retry_after is not None:
        floor = min(retry_after, policy.ceiling_seconds)
        assert waited >= timedelta(seconds=floor) - MICROSECOND
    assert abs(row["details"]["retry_in_seconds"] - waited.total_seconds()) <= 1e-3


@given(policy=retry_policies(), retry_after=st.floats(0.0, 7200.0), attempts=st.integers(1, 20))
def test_backoff_never_goes_below_retry_after_nor_above_the_ceiling(
    policy: RetryPolicy, retry_after: float, attempts: int
) -> None:
    seconds = queue.backoff(attempts, policy.base_seconds, policy.ceiling_seconds, retry_after)
    assert min(retry_after, policy.ceiling_seconds) <= seconds <= policy.ceiling_seconds


# -- not applied: fail, defer, drop, skip -----------------------------------------------------


@given(task=claimeds(), error=errors, policy=retry_policies(), now=times, name=words)
def test_a_policy_failure_is_dead_at_once_with_the_policy_error(
    task: Claimed, error: str, policy: RetryPolicy, now: datetime, name: str
) -> None:
    s = snap(ctx=context(name), error=error)
    out = outcomes.not_applied(task, s, Decision(Verdict.FAIL), policy, now)
    assert out.write.transition is Transition.DEAD  # whatever the attempts left
    assert out.write.outcome == "failed"
    assert out.write.error == error and out.account_error == error
    assert out.account is None and out.events == [] and not out.state_changed
    assert [row["action"] for row in out.owned_events] == ["app.user.sync", "task.dead"]
    assert all(error in row["message"] and name in row["message"] for row in out.owned_events)
    assert out.result is not None and out.result.outcome == "failed"
    assert out.result.trace[-1] == {"step": "error", "detail": error}


@given(task=claimeds(), pending=deprovisions, run_id=ids, policy=retry_policies(), now=times)
def test_a_held_deprovisioning_is_deferred_to_its_run(
    task: Claimed, pending: Operation, run_id: str, policy: RetryPolicy, now: datetime
) -> None:
    s = snap(pending=pending, held_by=("held", run_id))
    out = outcomes.not_applied(task, s, Decision(Verdict.DEFER, run_id), policy, now)
    write = out.write
    assert write.transition is Transition.DEFER
    assert write.outcome == "skipped"
    assert write.held_run == run_id and write.release_run
    assert write.at == now + HELD_RECHECK
    assert out.account is None and out.account_error is None and out.events == []
    (row,) = out.owned_events
    assert row["action"] == EVENT_ACTION[pending.kind] == "app.user.deprovision"
    assert row["outcome"] == "skipped" and run_id in row["message"]
    assert row["targets"]["run_id"] == run_id
    assert not out.deprovision  # nothing was sent: no reason to flush at once


@given(task=claimeds(), pending=deprovisions, run_id=ids, policy=retry_policies(), now=times)
def test_a_deprovisioning_of_a_cancelled_run_is_dismissed(
    task: Claimed, pending: Operation, run_id: str, policy: RetryPolicy, now: datetime
) -> None:
    s = snap(pending=pending, held_by=("cancelled", run_id))
    out = outcomes.not_applied(task, s, Decision(Verdict.DROP, run_id), policy, now)
    write = out.write
    assert write.transition is Transition.DISMISS
    assert write.outcome == "skipped" and write.release_run
    assert write.held_run is None and write.at is None
    assert write.error is not None and run_id in write.error
    assert out.account is None and out.events == []
    (row,) = out.owned_events
    assert row["outcome"] == "skipped" and run_id in row["message"]


@given(task=claimeds(), pending=st.none() | operations, policy=retry_policies(), now=times,
       name=words)
def test_a_disabled_app_closes_as_skipped_and_says_so_only_when_something_was_due(
    task: Claimed, pending: Operation | None, policy: RetryPolicy, now: datetime, name: str
) -> None:
    ctx = context(name, ProvisioningSettings(enabled=False))
    out = outcomes.not_applied(task, snap(ctx=ctx, pending=pending), Decision(Verdict.SKIP),
                               policy, now)
    assert out.write == outcomes.TaskWrite(Transition.CLOSE, "skipped")
    assert out.account is None and out.events == []
    if pending is None:
        assert out.owned_events == []
    else:
        (row,) = out.owned_events
        assert row["action"] == EVENT_ACTION[pending.kind]
        assert row["outcome"] == "skipped"
        assert "provisioning is disabled" in row["message"] and name in row["message"]
    assert out.result is not None and out.result.outcome == "skipped"


# -- applied ----------------------------------------------------------------------------------


def _state(account: ActualAccount | None) -> tuple[str | None, str | None]:
    return (None, None) if account is None else (account.remote_id, account.status.value)


@given(
    task=claimeds(),
    record=records,
    account=accounts,
    operation=st.none() | operations,
    outcome=st.sampled_from(["created", "updated", "deactivated", "deleted", "unchanged"]),
    provisioning=provisionings,
    assigned=st.booleans(),
    now=times,
)
def test_an_applied_reconcile_keeps_the_account_as_it_now_is(
    task: Claimed, record: AccountRecord | None, account: ActualAccount | None,
    operation: Operation | None, outcome: str, provisioning: ProvisioningSettings,
    assigned: bool, now: datetime,
) -> None:
    desired = DesiredAccount({"userName": "alice", "active": True}) if assigned else None
    s = snap(ctx=context(provisioning=provisioning), record=record, desired=desired)
    result = Result(outcome=outcome, operation=operation, account=account)
    out = outcomes.applied(task, s, result, now)

    assert out.write.transition is Transition.CLOSE
    assert out.write.outcome == outcome
    assert out.write.operation == (operation.kind.value if operation else None)
    assert out.result is result and out.account_error is None and out.owned_events == []
    if account is None:
        assert out.account is None
    else:
        assert isinstance(out.account, AccountWrite)
        assert out.account.remote_id == account.remote_id
        assert out.account.status == account.status.value
        assert out.account.fingerprint == s.fingerprint
        assert out.account.applied == {
            k: v for k, v in account.attributes.items() if k not in ("meta", "schemas", "password")
        }
        deactivated = account.status is AccountStatus.DEACTIVATED
        if deactivated and (record is None or record.status != "deactivated"):
            assert out.account.deactivated_at == now  # it became deactivated now
        elif deactivated:
            assert record is not None
            assert out.account.deactivated_at == record.deactivated_at  # the clock keeps running
        else:
            assert out.account.deactivated_at is None
    before = None if record is None else record.actual()
    assert out.state_changed == (_state(before) != _state(account))
    assert out.deprovision == (
        operation is not None and operation.kind in (OperationKind.DEACTIVATE, OperationKind.DELETE)
    )
    if operation is not None:
        (row,) = out.events
        assert row["action"] == EVENT_ACTION[operation.kind]
        assert row["outcome"] == "success" and "succeeded" in row["message"]
        assert row["details"]["attempt"] == task.attempts
        check_event_rows(out.events, task, now)
    else:
        blocked = (
            desired is None
            and before is not None
            and before.exists
            and before.status is AccountStatus.ACTIVE
            and (
                not provisioning.features.deactivate_users
                or provisioning.deprovision_action is DeprovisionAction.NONE
            )
        )
        if blocked:
            (row,) = out.events
            assert row["action"] == "app.user.deprovision" and row["outcome"] == "skipped"
        else:
            assert out.events == []


def test_a_retry_never_waits_longer_than_the_configured_maximum() -> None:
    configured = Settings(secret_key="k", retry_base_seconds=10.0, retry_max_seconds=1.0)
    policy = RetryPolicy(6, configured.retry_base_seconds, configured.retry_max_seconds)
    task = Claimed(
        id="t", app_id="app-1", kind="user", subject_id="u", run_id=None, reason="r",
        priority=1, attempts=1, verify_remote=False, correlation_id="c",
        created_at=datetime(2025, 1, 1, tzinfo=UTC), updated_at=datetime(2025, 1, 1, tzinfo=UTC),
        claimed_by="w", claimed_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    now = datetime(2025, 1, 1, tzinfo=UTC)
    write, _ = fail(task, "HTTP 503", dead=False, retry_after=None, policy=policy,
                    app_name="crm", now=now)
    assert write.at is not None
    assert write.at - now <= timedelta(seconds=configured.retry_max_seconds)  # 5 s > 1 s
