"""What to do with a claimed task (engine.decide) and which run holds it (reader.holding). Pure."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta

from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from provisiond.domain.apps import Features, ProvisioningSettings, ScimConnectorSettings
from provisiond.domain.directory import UserStatus
from provisiond.engine.context import AppContext
from provisiond.engine.decide import Snapshot, Verdict, decide, snapshot, with_holds
from provisiond.engine.mapping import default_policy
from provisiond.engine.planner import DEPROVISIONS, AccountStatus, Operation, OperationKind
from provisiond.engine.reader import AccountInputs, AccountRecord, Hold, UserRecord, holding
from provisiond.engine.roles import RoleSettings, Source

# -- values and strategies --------------------------------------------------------------------


def context(provisioning: ProvisioningSettings) -> AppContext:
    return AppContext(
        app_id="app-1",
        name="crm",
        version="v1",
        connector=ScimConnectorSettings(
            base_url="http://127.0.0.1:9/v2", auth={"type": "bearer", "token": "t"}
        ),
        provisioning=provisioning,
        policy=default_policy(),
        roles=RoleSettings(),
        policy_key=b"k" * 16,
    )


USERS = [f"user-{n}" for n in range(6)]
RUNS = [f"run-{n}" for n in range(4)]
BASE = datetime(2025, 6, 1, tzinfo=UTC)
words = st.text(alphabet=string.ascii_letters, min_size=1, max_size=8)
# Times within a few minutes of each other, so that "queued before the hold" goes both ways
# and ties (queued exactly when the run was held) come up often.
times = st.integers(-5, 5).map(lambda minutes: BASE + timedelta(minutes=minutes))
queued_ats = st.none() | times
user_ids = st.sampled_from(USERS)
held_bys = st.none() | st.tuples(st.sampled_from(["held", "cancelled"]), st.sampled_from(RUNS))
pendings = st.none() | st.builds(Operation, kind=st.sampled_from(list(OperationKind)))
provisionings = st.builds(
    ProvisioningSettings,
    enabled=st.booleans(),
    features=st.builds(Features, create_users=st.booleans(), deactivate_users=st.booleans()),
)


@st.composite
def holds(draw: st.DrawFn) -> list[Hold]:
    runs = draw(st.lists(st.sampled_from(RUNS), unique=True, max_size=4))
    return [
        Hold(
            run_id,
            draw(st.sampled_from(["held", "cancelled"])),
            draw(times),
            frozenset(draw(st.lists(user_ids, min_size=1, max_size=5))),
        )
        for run_id in runs
    ]


snapshots = st.builds(
    Snapshot,
    ctx=provisionings.map(context),
    user_id=user_ids,
    user_label=words,
    desired=st.none(),
    record=st.none(),
    reason=st.just("assigned via user"),
    error=st.none() | words,
    fingerprint=st.none(),
    pending=pendings,
    held_by=held_bys,
)


# -- decide -----------------------------------------------------------------------------------


@given(snapshots)
def test_a_decision_follows_error_then_hold_then_the_apps_switch(snap: Snapshot) -> None:
    decision = decide(snap)
    enabled = snap.ctx.provisioning.enabled
    assert (decision.verdict is Verdict.FAIL) == (snap.error is not None)
    if decision.verdict in (Verdict.DEFER, Verdict.DROP):
        assert snap.held_by is not None and snap.error is None
        state, run_id = snap.held_by
        assert decision.run_id == run_id
        assert (decision.verdict is Verdict.DEFER) == (state == "held")
    else:
        assert decision.run_id is None
        assert snap.held_by is None or snap.error is not None
    assert (decision.verdict is Verdict.SKIP) == (
        not enabled and snap.held_by is None and snap.error is None
    )
    assert decision.applies == (decision.verdict is Verdict.APPLY)
    assert decision.applies == (enabled and snap.held_by is None and snap.error is None)


profiles = st.fixed_dictionaries(
    {
        "login": words.map(lambda w: f"{w}@example.org"),
        "email": words.map(lambda w: f"{w}@example.org"),
        "firstName": words,
        "lastName": words,
    }
)
# Mostly an account that exists and is active: the ones a deprovisioning takes away.
records = st.none() | st.builds(
    AccountRecord,
    remote_id=words,
    applied=st.just({"userName": "x", "active": True}),
    status=st.sampled_from(["active", "active", *(s.value for s in AccountStatus)]),
    deactivated_at=st.none(),
    fingerprint=st.none(),
)


@st.composite
def inputs(draw: st.DrawFn) -> AccountInputs:
    user_id = draw(user_ids)
    user = draw(
        st.none()  # removed from the directory
        | st.builds(
            UserRecord,
            id=st.just(user_id),
            login=words,
            status=st.sampled_from([s.value for s in UserStatus]),
            profile=profiles,
        )
    )
    labels = draw(st.lists(st.sampled_from(["user", "group:g1", "group:g2"]), unique=True))
    return AccountInputs(user_id, user, tuple(Source(label) for label in labels), draw(records))


LEAVER = AccountInputs(  # removed from the directory, with an active account
    "user-0", None, (), AccountRecord("r-0", {"userName": "x", "active": True}, "active", None, None)
)


@settings(max_examples=300)
@given(
    inputs=inputs(),
    provisioning=provisionings,
    found=holds(),
    queued_at=queued_ats,
)
@example(LEAVER, ProvisioningSettings(), [Hold("run-0", "held", BASE, frozenset({"user-0"}))],
         BASE + timedelta(minutes=1))
@example(LEAVER, ProvisioningSettings(), [Hold("run-0", "cancelled", BASE, frozenset({"user-0"}))],
         BASE)
def test_only_a_deprovisioning_of_a_user_in_a_run_is_held_back(
    inputs: AccountInputs, provisioning: ProvisioningSettings, found: list[Hold],
    queued_at: datetime | None,
) -> None:
    ctx = context(provisioning)
    snap = snapshot(ctx, inputs, found, queued_at=queued_at, now=BASE)
    assert snap.error is None  # the default policy never fails
    decision = decide(snap)
    event(decision.verdict.value)
    deprovisioning = snap.pending is not None and snap.pending.kind in DEPROVISIONS
    if not deprovisioning:
        assert snap.held_by is None
    else:
        assert snap.held_by == holding(found, inputs.user_id, queued_at)
    if decision.verdict in (Verdict.DEFER, Verdict.DROP):
        assert deprovisioning
        assert any(inputs.user_id in hold.user_ids for hold in found)
    # Reading the holds afterwards (as the worker does, only when needed) is the same.
    unheld = snapshot(ctx, inputs, None, queued_at=queued_at, now=BASE)
    assert unheld.held_by is None
    assert with_holds(unheld, found, queued_at) == snap


# -- holding ----------------------------------------------------------------------------------


@given(run_id=st.sampled_from(RUNS), started=times, members=st.frozensets(user_ids),
       user_id=user_ids, queued_at=queued_ats)
def test_a_held_run_holds_any_of_its_users_whatever_the_queue_time(
    run_id: str, started: datetime, members: frozenset[str], user_id: str,
    queued_at: datetime | None,
) -> None:
    found = holding([Hold(run_id, "held", started, members)], user_id, queued_at)
    assert found == (("held", run_id) if user_id in members else None)


@given(run_id=st.sampled_from(RUNS), started=times, members=st.frozensets(user_ids),
       user_id=user_ids, queued_at=queued_ats)
def test_a_cancelled_run_drops_only_tasks_queued_at_or_before_it_was_held(
    run_id: str, started: datetime, members: frozenset[str], user_id: str,
    queued_at: datetime | None,
) -> None:
    found = holding([Hold(run_id, "cancelled", started, members)], user_id, queued_at)
    drops = user_id in members and queued_at is not None and queued_at <= started
    assert found == (("cancelled", run_id) if drops else None)


@given(found=holds(), user_id=user_ids, queued_at=queued_ats)
def test_holding_names_a_run_that_applies_and_none_when_no_run_does(
    found: list[Hold], user_id: str, queued_at: datetime | None
) -> None:
    def applies(hold: Hold) -> bool:
        if user_id not in hold.user_ids:
            return False
        return hold.status == "held" or (queued_at is not None and queued_at <= hold.started_at)

    result = holding(found, user_id, queued_at)
    if not any(applies(hold) for hold in found):
        assert result is None
        return
    assert result is not None
    status, run_id = result
    (named,) = [hold for hold in found if hold.run_id == run_id]
    assert applies(named) and named.status == status


@given(found=holds(), queued_at=queued_ats)
def test_users_in_no_run_are_never_held(found: list[Hold], queued_at: datetime | None) -> None:
    assert holding(found, "someone-else", queued_at) is None
    for user_id in USERS:
        if not any(user_id in hold.user_ids for hold in found):
            assert holding(found, user_id, queued_at) is None


def test_a_leaver_in_a_held_run_is_deferred_and_in_a_cancelled_one_dropped() -> None:
    ctx = context(ProvisioningSettings(enabled=False))  # a hold goes before the app's switch
    for status, queued_at, verdict in [
        ("held", BASE + timedelta(minutes=1), Verdict.DEFER),
        ("cancelled", BASE, Verdict.DROP),  # queued exactly when the run was held: its own
        ("cancelled", BASE + timedelta(seconds=1), Verdict.SKIP),  # a later change: not dropped
    ]:
        hold = Hold("run-0", status, BASE, frozenset({"user-0"}))
        snap = snapshot(ctx, LEAVER, [hold], queued_at=queued_at, now=BASE)
        assert snap.pending is not None and snap.pending.kind is OperationKind.DEACTIVATE
        assert decide(snap).verdict is verdict
