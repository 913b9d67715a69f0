"""The planner: properties (hypothesis) first, then one example per rule."""

from __future__ import annotations

import copy
import itertools
import random
import string
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from provisiond.domain.apps import DeprovisionAction, Features, ProvisioningSettings
from provisiond.domain.directory import UserStatus
from provisiond.engine.desired import DesiredAccount, DirectoryUser, desired_account
from provisiond.engine.planner import (
    AccountStatus,
    ActualAccount,
    Change,
    Operation,
    OperationKind,
    applied,
    diff,
    plan,
)

# -- strategies -------------------------------------------------------------------------------

_fresh_ids = (f"fresh-{n}" for n in itertools.count())

words = st.text(alphabet=string.ascii_letters, min_size=1, max_size=8)
logins = st.builds(lambda user, host: f"{user}@{host}.example", words, words)
remote_ids = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8)

# What the directory accepts (domain.directory.Profile): login, email and both names are required.
profiles = st.fixed_dictionaries(
    {"login": logins, "email": logins, "firstName": words, "lastName": words},
    optional={
        "displayName": st.one_of(st.just(""), words),
        "department": words,
        "title": words,
    },
)

users = st.builds(
    DirectoryUser,
    id=st.uuids().map(str),
    # Active users twice as often: they are the ones with the most to plan.
    status=st.sampled_from([UserStatus.ACTIVE, *UserStatus]),
    profile=profiles,
)


@st.composite
def desireds(draw: st.DrawFn) -> DesiredAccount | None:
    """None for an unassigned (or staged / deprovisioned) user, else the mapped account."""
    if draw(st.integers(0, 4)) == 0:
        return None
    sources = st.sampled_from(["engineering", "everyone", "direct"])
    return desired_account(draw(users), draw(st.lists(sources, min_size=1, max_size=3)))


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.text(alphabet="abAB@ .", max_size=5)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["value", "Value", "type", "primary", "x"]), inner,
                        max_size=3),
    ),
    max_leaves=6,
)
_NAMES = ["userName", "externalId", "name", "displayName", "emails", "active", "title",
          "id", "meta", "schemas", "password", "groups"]
# Attribute names as an app may spell them: SCIM attribute names are case-insensitive.
attribute_names = st.one_of(
    st.sampled_from(_NAMES),
    st.sampled_from(_NAMES).map(str.upper),
    st.sampled_from(_NAMES).map(str.capitalize),
)

# An app's attributes: each attribute once, in whatever case the app spells it.
app_attributes = st.lists(
    st.tuples(attribute_names, json_values), max_size=6, unique_by=lambda item: item[0].lower()
).map(dict)

statuses = st.sampled_from([AccountStatus.ACTIVE, *AccountStatus])

all_settings = st.builds(
    ProvisioningSettings,
    features=st.builds(
        Features,
        create_users=st.booleans(),
        update_users=st.booleans(),
        deactivate_users=st.booleans(),
    ),
    deprovision_action=st.sampled_from(DeprovisionAction),
)


def _recased(value: Any, rnd: random.Random) -> Any:
    """``value`` with attribute names in random case (SCIM names are case-insensitive)."""
    if isinstance(value, Mapping):
        return {
            (k.swapcase() if rnd.random() < 0.5 else k): _recased(v, rnd) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_recased(item, rnd) for item in value]
    return value


def _lookup(attributes: Mapping[str, Any], name: str) -> Any:
    """``attributes[name]`` matched case-insensitively, or None."""
    return next((v for k, v in attributes.items() if k.lower() == name.lower()), None)


def _is_on(account: ActualAccount | None) -> bool:
    """Whether the app's account exists and is active, reading ``active`` in any case."""
    return (
        account is not None
        and account.exists
        and account.status is AccountStatus.ACTIVE
        and _lookup(account.attributes, "active") is not False
    )


@st.composite
def actuals(draw: st.DrawFn, desired: DesiredAccount | None) -> ActualAccount | None:
    """None, an unrelated random account, or a perturbed copy of ``desired``'s attributes."""
    kind = draw(st.sampled_from(["none", "random", "near", "near", "near"]))
    if kind == "none":
        return None
    remote_id = None if draw(st.integers(0, 7)) == 0 else draw(remote_ids)
    status = draw(statuses)
    if kind == "random" or desired is None:
        attributes = draw(app_attributes)
        return ActualAccount(remote_id, attributes, status)
    rnd = draw(st.randoms(use_true_random=False))
    attributes = {}
    for name, value in desired.attributes.items():
        if name == "active" or draw(st.integers(0, 9)) == 0:
            continue  # the app lost it (``active`` is drawn on its own below)
        spelling = name.swapcase() if draw(st.integers(0, 3)) == 0 else name  # the app's own
        attributes[spelling] = (
            draw(json_values) if draw(st.integers(0, 5)) == 0 else _recased(value, rnd)
        )
    # The app's idea of ``active``, possibly at odds with ``status``, in the app's spelling.
    active = draw(st.sampled_from([None, True, False]))
    if active is not None:
        attributes[draw(st.sampled_from(["active", "active", "Active", "ACTIVE"]))] = active
    # What an app sends back but provisiond does not manage.
    attributes.update(draw(st.fixed_dictionaries({}, optional={
        "id": remote_ids,
        "meta": st.just({"resourceType": "User"}),
        "schemas": st.just(["urn:ietf:params:scim:schemas:core:2.0:User"]),
        "title": words,
    })))
    return ActualAccount(remote_id, attributes, status)


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[DesiredAccount | None, ActualAccount | None, ProvisioningSettings]:
    desired = draw(desireds())
    return desired, draw(actuals(desired)), draw(all_settings)


def _after(operation: Operation, before: ActualAccount | None) -> ActualAccount:
    """``applied`` with the remote id an executor would pass: fresh on CREATE."""
    remote_id = next(_fresh_ids) if operation.kind is OperationKind.CREATE else operation.remote_id
    return applied(operation, before, remote_id)


def _patched(operation: Operation, before: ActualAccount | None) -> ActualAccount:
    """What the app holds after the SCIM connector PATCHed ``operation.changes`` and we read back.

    Independent of ``applied``: only the changes reach the app (``new is None`` removes), the app
    matches a PATCH path to its own spelling of the attribute, and a remote read derives the
    status from ``active``.
    """
    if operation.kind is OperationKind.DELETE:
        return ActualAccount(None, {}, AccountStatus.DELETED)
    if operation.kind is OperationKind.CREATE:
        attributes = dict(operation.attributes)
        remote_id: str | None = next(_fresh_ids)
    else:
        assert before is not None
        attributes = dict(before.attributes)
        remote_id = before.remote_id
        for change in operation.changes:
            for name in [k for k in attributes if k.lower() == change.attribute.lower()]:
                del attributes[name]
            if change.new is not None:
                attributes[change.attribute] = change.new
    active = _lookup(attributes, "active") is not False
    return ActualAccount(
        remote_id, attributes, AccountStatus.ACTIVE if active else AccountStatus.DEACTIVATED
    )


def _folded(value: Any) -> Any:
    """``value`` with every attribute name in lower case."""
    if isinstance(value, Mapping):
        return {k.lower(): _folded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_folded(item) for item in value]
    return value


def _shape(operation: Operation | None) -> Any:
    """``operation`` up to the app's spelling: without the ``old`` side of its changes, and
    its attributes (which may echo the app's account) case-folded."""
    if operation is None:
        return None
    changes = [(change.attribute, change.new) for change in operation.changes]
    return operation.kind, operation.remote_id, _folded(operation.attributes), changes


def _settings(
    *,
    create: bool = True,
    update: bool = True,
    deactivate: bool = True,
    action: DeprovisionAction = DeprovisionAction.DEACTIVATE,
) -> ProvisioningSettings:
    return ProvisioningSettings(
        features=Features(create_users=create, update_users=update, deactivate_users=deactivate),
        deprovision_action=action,
    )


# -- properties: convergence ------------------------------------------------------------------


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_applying_the_plan_then_planning_again_yields_nothing(
    scenario: tuple[DesiredAccount | None, ActualAccount | None, ProvisioningSettings],
) -> None:
    desired, actual, config = scenario
    operation = plan(desired, actual, config)
    if operation is not None:
        assert plan(desired, _after(operation, actual), config) is None


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_two_steps_always_reach_a_fixpoint(
    scenario: tuple[DesiredAccount | None, ActualAccount | None, ProvisioningSettings],
) -> None:
    desired, actual, config = scenario
    state = actual
    for _ in range(2):
        operation = plan(desired, state, config)
        if operation is None:
            break
        state = _after(operation, state)
    assert plan(desired, state, config) is None


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_app_converges_when_only_the_changes_are_patched(
    scenario: tuple[DesiredAccount | None, ActualAccount | None, ProvisioningSettings],
) -> None:
    """The connector PATCHes ``changes`` only, so they alone must carry the app to the goal."""
    desired, actual, config = scenario
    operation = plan(desired, actual, config)
    if operation is not None:
        assert plan(desired, _patched(operation, actual), config) is None


@given(scenarios())
# Found by this property: a deactivated account whose last-known ``active`` was still true got a
# REACTIVATE without an ``active`` change, i.e. an empty PATCH that reactivates nothing.
@example((
    DesiredAccount({"userName": "ada", "active": True}),
    ActualAccount("r-1", {"userName": "ada", "active": True}, AccountStatus.DEACTIVATED),
    _settings(),
))
def test_reactivate_and_deactivate_always_carry_the_active_change(
    scenario: tuple[DesiredAccount | None, ActualAccount | None, ProvisioningSettings],
) -> None:
    desired, actual, config = scenario
    operation = plan(desired, actual, config)
    if operation is not None and operation.kind is OperationKind.REACTIVATE:
        assert [c.new for c in operation.changes if c.attribute == "active"] == [True]
    if operation is not None and operation.kind is OperationKind.DEACTIVATE:
        assert [c.new for c in operation.changes if c.attribute == "active"] == [False]


@given(scenarios())
# Was a PUT body with both the app's ``"ACTIVE": true`` and ``"active": false``.
@example((
    None,
    ActualAccount("r-1", {"userName": "ada", "ACTIVE": True, "Meta": {}}, AccountStatus.ACTIVE),
    _settings(),
))
def test_a_deactivation_sends_the_whole_account_switched_off(
    scenario: tuple[DesiredAccount | None, ActualAccount | None, ProvisioningSettings],
) -> None:
    """A PUT-only app gets ``attributes``: the account as it is, but inactive, and nothing the
    app owns (RFC 7644 §3.5.1)."""
    desired, actual, config = scenario
    operation = plan(desired, actual, config)
    if operation is not None and operation.kind is OperationKind.DEACTIVATE:
        assert actual is not None
        body = {name.lower(): value for name, value in operation.attributes.items()}
        assert [v for k, v in operation.attributes.items() if k.lower() == "active"] == [False]
        assert not set(body) & {"id", "meta", "schemas", "password", "groups"}
        assert set(body) == {
            name.lower() for name in actual.attributes
            if name.lower() not in {"id", "meta", "schemas", "password", "groups"}
        } | {"active"}


# -- properties: determinism ------------------------------------------------------------------


@given(scenarios())
def test_plan_is_deterministic(
    scenario: tuple[DesiredAccount | None, ActualAccount | None, ProvisioningSettings],
) -> None:
    desired, actual, config = scenario
    assert plan(desired, actual, config) == plan(
        copy.deepcopy(desired), copy.deepcopy(actual), config.model_copy(deep=True)
    )


@given(
    st.dictionaries(attribute_names, json_values, max_size=8),
    st.dictionaries(attribute_names, json_values, max_size=8),
)
def test_diff_is_sorted_and_never_touches_what_the_app_owns(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    changes = diff(old, new)
    names = [change.attribute for change in changes]
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    assert not {name.lower() for name in names} & {"id", "meta", "schemas", "password"}
    assert set(names) <= set(new)
    assert diff(old, new) == changes


def _reference_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[Change, ...]:
    """diff as first written: every value normalised, every name looked up on its own."""

    def get(attributes: Mapping[str, Any], name: str) -> Any:
        if name in attributes:
            return attributes[name]
        return next((v for k, v in attributes.items() if k.lower() == name.lower()), None)

    def normalise(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k.lower(): normalise(v) for k, v in value.items() if v is not None and v != []}
        if isinstance(value, list):
            return [normalise(item) for item in value] or None
        return value

    changes = [
        Change(name, get(old, name), value)
        for name, value in new.items()
        if name.lower() not in {"id", "meta", "schemas", "password", "groups"}
        and normalise(get(old, name)) != normalise(value)
    ]
    return tuple(sorted(changes, key=lambda change: change.attribute))


@given(
    st.dictionaries(attribute_names, json_values, max_size=8),
    st.dictionaries(attribute_names, json_values, max_size=8),
    st.randoms(use_true_random=False),
)
@example({"active": {"value": 1, "Value": 2}}, {"active": {"Value": 2, "value": 1}}, None)
def test_diff_finds_what_normalising_every_value_finds(
    old: dict[str, Any], new: dict[str, Any], rnd: random.Random | None
) -> None:
    """The shortcuts (an equal value, a new one, old's names folded once) change nothing but
    this: a value equal to the old one is never a change, even where normalising would fold
    two spellings of one key differently (the example)."""
    if rnd is not None and rnd.random() < 0.5:  # often the same values, as an update that
        old = {**old, **{name: copy.deepcopy(value) for name, value in new.items()}}  # changed little
    if rnd is not None:
        old = _recased(old, rnd)
    expected = tuple(change for change in _reference_diff(old, new) if change.old != change.new)
    assert diff(old, new) == expected


@given(desireds().filter(lambda d: d is not None), st.randoms(use_true_random=False))
def test_diff_ignores_the_case_of_attribute_names(
    desired: DesiredAccount, rnd: random.Random
) -> None:
    assert diff(_recased(desired.attributes, rnd), desired.attributes) == ()


@given(scenarios(), st.randoms(use_true_random=False))
def test_the_plan_does_not_depend_on_how_the_app_spells_attribute_names(
    scenario: tuple[DesiredAccount | None, ActualAccount | None, ProvisioningSettings],
    rnd: random.Random,
) -> None:
    desired, actual, config = scenario
    if actual is not None:
        recased = ActualAccount(actual.remote_id, _recased(actual.attributes, rnd), actual.status)
        # The same operation; only the ``old`` values keep the app's spelling.
        assert _shape(plan(desired, recased, config)) == _shape(plan(desired, actual, config))


# -- properties: safety -----------------------------------------------------------------------


@given(scenarios())
def test_without_deactivate_users_nothing_is_deactivated_or_deleted(
    scenario: tuple[DesiredAccount | None, ActualAccount | None, ProvisioningSettings],
) -> None:
    desired, actual, config = scenario
    config = config.model_copy(
        update={"features": config.features.model_copy(update={"deactivate_users": False})}
    )
    operation = plan(desired, actual, config)
    assert operation is None or operation.kind not in (
        OperationKind.DEACTIVATE,
        OperationKind.DELETE,
    )


@given(scenarios())
# Was an UPDATE setting ``active`` to true: the planner only looked for ``active`` spelt so.
@example((
    DesiredAccount({"userName": "ada", "active": True}),
    ActualAccount("r-1", {"userName": "ada", "Active": False}, AccountStatus.ACTIVE),
    _settings(deactivate=False),
))
def test_without_deactivate_users_an_inactive_account_is_never_turned_on(
    scenario: tuple[DesiredAccount | None, ActualAccount | None, ProvisioningSettings],
) -> None:
    desired, actual, config = scenario
    config = config.model_copy(
        update={"features": config.features.model_copy(update={"deactivate_users": False})}
    )
    operation = plan(desired, actual, config)
    if actual is not None and actual.exists and not _is_on(actual) and operation is not None:
        assert all(change.attribute.lower() != "active" for change in operation.changes)


@given(scenarios())
def test_without_create_users_nothing_is_created(
    scenario: tuple[DesiredAccount | None, ActualAccount | None, ProvisioningSettings],
) -> None:
    desired, actual, config = scenario
    config = config.model_copy(
        update={"features": config.features.model_copy(update={"create_users": False})}
    )
    operation = plan(desired, actual, config)
    assert operation is None or operation.kind is not OperationKind.CREATE


@given(scenarios())
def test_without_update_users_nothing_is_updated(
    scenario: tuple[DesiredAccount | None, ActualAccount | None, ProvisioningSettings],
) -> None:
    desired, actual, config = scenario
    config = config.model_copy(
        update={"features": config.features.model_copy(update={"update_users": False})}
    )
    operation = plan(desired, actual, config)
    assert operation is None or operation.kind is not OperationKind.UPDATE
    if operation is not None and operation.kind is OperationKind.REACTIVATE:
        assert [change.attribute for change in operation.changes] == ["active"]


@given(actuals(None), all_settings)
def test_deprovision_action_none_leaves_unassigned_accounts_alone(
    actual: ActualAccount | None, config: ProvisioningSettings
) -> None:
    config = config.model_copy(update={"deprovision_action": DeprovisionAction.NONE})
    assert plan(None, actual, config) is None


@given(actuals(None), all_settings)
def test_an_unassigned_user_never_gets_an_account_or_changes(
    actual: ActualAccount | None, config: ProvisioningSettings
) -> None:
    operation = plan(None, actual, config)
    assert operation is None or operation.kind in (OperationKind.DEACTIVATE, OperationKind.DELETE)
    if operation is not None:
        assert actual is not None
        assert operation.remote_id == actual.remote_id


# -- properties: suspended users --------------------------------------------------------------


@st.composite
def suspended_scenarios(
    draw: st.DrawFn,
) -> tuple[DesiredAccount, ActualAccount | None, ProvisioningSettings]:
    user = draw(users.map(lambda u: DirectoryUser(u.id, UserStatus.SUSPENDED, u.profile)))
    desired = desired_account(user, ["everyone"])
    assert desired is not None
    return desired, draw(actuals(desired)), draw(all_settings)


@given(suspended_scenarios())
def test_a_suspended_user_is_deactivated_never_deleted(
    scenario: tuple[DesiredAccount, ActualAccount | None, ProvisioningSettings],
) -> None:
    desired, actual, config = scenario
    assert desired.active is False
    assert desired.attributes["active"] is False
    operation = plan(desired, actual, config)
    assert operation is None or operation.kind is OperationKind.DEACTIVATE
    if _is_on(actual) and config.features.deactivate_users:
        assert actual is not None
        assert operation is not None
        assert operation.kind is OperationKind.DEACTIVATE
        assert operation.remote_id == actual.remote_id
    else:
        assert operation is None


# -- examples ---------------------------------------------------------------------------------

ADA = DirectoryUser(
    id="u-ada",
    status=UserStatus.ACTIVE,
    profile={
        "login": "ada@example.com",
        "email": "ada@example.com",
        "firstName": "Ada",
        "lastName": "Lovelace",
    },
)


def _desired(user: DirectoryUser = ADA, **profile: Any) -> DesiredAccount:
    account = desired_account(
        DirectoryUser(user.id, user.status, {**user.profile, **profile}), ["everyone"]
    )
    assert account is not None
    return account


def _account(
    attributes: Mapping[str, Any],
    status: AccountStatus = AccountStatus.ACTIVE,
    remote_id: str | None = "r-1",
) -> ActualAccount:
    return ActualAccount(remote_id, dict(attributes), status)


def test_an_assigned_user_without_an_account_gets_one() -> None:
    desired = _desired()
    operation = plan(desired, None, _settings())
    assert operation is not None
    assert operation.kind is OperationKind.CREATE
    assert operation.remote_id is None
    assert operation.attributes == desired.attributes
    assert operation.changes == tuple(
        Change(name, None, value) for name, value in sorted(desired.attributes.items())
    )


@pytest.mark.parametrize(
    "actual",
    [
        _account({}, AccountStatus.DELETED),
        _account({"userName": "ada@example.com"}, AccountStatus.ACTIVE, remote_id=None),
    ],
    ids=["deleted", "no-remote-id"],
)
def test_an_account_that_does_not_exist_is_created(actual: ActualAccount) -> None:
    operation = plan(_desired(), actual, _settings())
    assert operation is not None
    assert operation.kind is OperationKind.CREATE


def test_no_account_is_created_without_create_users() -> None:
    assert plan(_desired(), None, _settings(create=False)) is None


def test_no_account_is_created_for_a_suspended_user() -> None:
    suspended = DirectoryUser(ADA.id, UserStatus.SUSPENDED, ADA.profile)
    assert plan(_desired(suspended), None, _settings()) is None


def test_an_update_lists_exactly_the_changes_old_to_new() -> None:
    before = _desired().attributes
    desired = _desired(lastName="Byron", email="ada.byron@example.com")
    actual = _account({**before, "id": "r-1", "title": "Countess"})
    operation = plan(desired, actual, _settings())
    assert operation == Operation(
        OperationKind.UPDATE,
        attributes=desired.attributes,
        changes=(
            Change("displayName", "Ada Lovelace", "Ada Byron"),
            Change(
                "emails",
                [{"value": "ada@example.com", "type": "work", "primary": True}],
                [{"value": "ada.byron@example.com", "type": "work", "primary": True}],
            ),
            Change(
                "name",
                {"givenName": "Ada", "familyName": "Lovelace"},
                {"givenName": "Ada", "familyName": "Byron"},
            ),
        ),
        remote_id="r-1",
    )
    assert operation.describe()["changes"][0] == {
        "attribute": "displayName",
        "old": "Ada Lovelace",
        "new": "Ada Byron",
    }


def test_a_missing_attribute_is_added() -> None:
    desired = _desired()
    attributes = {k: v for k, v in desired.attributes.items() if k != "displayName"}
    operation = plan(desired, _account(attributes), _settings())
    assert operation is not None
    assert operation.kind is OperationKind.UPDATE
    assert operation.changes == (Change("displayName", None, "Ada Lovelace"),)


def test_no_update_without_update_users() -> None:
    actual = _account(_desired().attributes)
    assert plan(_desired(lastName="Byron"), actual, _settings(update=False)) is None


def test_nothing_to_do_when_the_app_already_matches() -> None:
    # What an app typically echoes back: its own attributes, other casing, explicit nulls.
    actual = _account(
        {
            "id": "r-1",
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "meta": {"resourceType": "User", "version": 'W/"3"'},
            "password": "never-returned-but-ignored",
            "groups": [{"value": "g-1"}],
            "userName": "ada@example.com",
            "externalId": "u-ada",
            "name": {"GivenName": "Ada", "FAMILYNAME": "Lovelace", "middleName": None},
            "displayName": "Ada Lovelace",
            "emails": [{"Value": "ada@example.com", "TYPE": "work", "primary": True}],
            "active": True,
            "title": "Countess",  # not mapped: not provisiond's to manage
        }
    )
    assert plan(_desired(), actual, _settings()) is None


def test_the_app_may_spell_top_level_attribute_names_in_any_case() -> None:
    desired = _desired()
    actual = _account({name.upper(): value for name, value in desired.attributes.items()})
    assert plan(desired, actual, _settings()) is None

    operation = plan(_desired(lastName="Byron"), actual, _settings())
    assert operation is not None
    assert operation.kind is OperationKind.UPDATE
    assert operation.changes[0] == Change("displayName", "Ada Lovelace", "Ada Byron")
    after = applied(operation, actual, "r-1")
    assert "DISPLAYNAME" not in after.attributes
    assert after.attributes["displayName"] == "Ada Byron"
    assert plan(_desired(lastName="Byron"), after, _settings()) is None


def test_an_account_the_app_spells_inactive_is_inactive() -> None:
    attributes = {k: v for k, v in _desired().attributes.items() if k != "active"}
    actual = _account({**attributes, "Active": False})
    # Not turned back on through an UPDATE when provisiond may not (de)activate...
    assert plan(_desired(), actual, _settings(deactivate=False)) is None
    # ...and reactivated when it may; not deactivated again when the user leaves.
    operation = plan(_desired(), actual, _settings())
    assert operation is not None
    assert operation.kind is OperationKind.REACTIVATE
    assert plan(None, actual, _settings()) is None


def test_a_changed_nested_value_is_not_hidden_by_case_folding() -> None:
    actual = _account({**_desired().attributes, "name": {"GIVENNAME": "Ada", "familyName": "L"}})
    operation = plan(_desired(), actual, _settings())
    assert operation is not None
    assert [change.attribute for change in operation.changes] == ["name"]


@pytest.mark.parametrize("action", [DeprovisionAction.DEACTIVATE, DeprovisionAction.DELETE])
def test_an_already_deleted_account_is_left_alone(action: DeprovisionAction) -> None:
    gone = _account({}, AccountStatus.DELETED, remote_id=None)
    assert plan(None, gone, _settings(action=action)) is None
    assert plan(None, None, _settings(action=action)) is None


def test_an_unassigned_user_is_deactivated() -> None:
    operation = plan(None, _account({**_desired().attributes, "id": "r-1"}), _settings())
    assert operation == Operation(
        OperationKind.DEACTIVATE,
        # The whole account, for apps that only PUT; without what the app owns.
        attributes={**_desired().attributes, "active": False},
        changes=(Change("active", True, False),),
        remote_id="r-1",
    )


def test_a_suspended_user_is_deactivated() -> None:
    suspended = _desired(DirectoryUser(ADA.id, UserStatus.SUSPENDED, ADA.profile))
    operation = plan(suspended, _account(_desired().attributes), _settings())
    assert operation is not None
    assert operation.kind is OperationKind.DEACTIVATE
    assert operation.changes == (Change("active", True, False),)
    assert operation.remote_id == "r-1"
    # Even when the app deletes unassigned users: suspension is not deprovisioning.
    operation = plan(suspended, _account(_desired().attributes), _settings(
        action=DeprovisionAction.DELETE))
    assert operation is not None
    assert operation.kind is OperationKind.DEACTIVATE


@pytest.mark.parametrize(
    "actual",
    [
        _account({**_desired().attributes, "active": False}, AccountStatus.DEACTIVATED),
        _account({**_desired().attributes, "active": False}, AccountStatus.ACTIVE),
    ],
    ids=["status", "attribute"],
)
def test_an_inactive_account_is_not_deactivated_again(actual: ActualAccount) -> None:
    assert plan(None, actual, _settings()) is None
    suspended = _desired(DirectoryUser(ADA.id, UserStatus.SUSPENDED, ADA.profile))
    assert plan(suspended, actual, _settings()) is None


def test_no_deactivation_without_deactivate_users() -> None:
    actual = _account(_desired().attributes)
    assert plan(None, actual, _settings(deactivate=False)) is None
    suspended = _desired(DirectoryUser(ADA.id, UserStatus.SUSPENDED, ADA.profile))
    assert plan(suspended, actual, _settings(deactivate=False)) is None


def test_a_returning_user_is_reactivated_with_what_changed_meanwhile() -> None:
    actual = _account(
        {**_desired().attributes, "active": False, "displayName": "A. Lovelace"},
        AccountStatus.DEACTIVATED,
    )
    desired = _desired()
    operation = plan(desired, actual, _settings())
    assert operation == Operation(
        OperationKind.REACTIVATE,
        attributes=desired.attributes,
        changes=(
            Change("active", False, True),
            Change("displayName", "A. Lovelace", "Ada Lovelace"),
        ),
        remote_id="r-1",
    )


def test_a_reactivation_always_turns_the_account_on() -> None:
    # Deactivated as far as provisiond knows, though the attributes never said so.
    actual = _account(_desired().attributes, AccountStatus.DEACTIVATED)
    operation = plan(_desired(), actual, _settings())
    assert operation is not None
    assert operation.kind is OperationKind.REACTIVATE
    assert operation.changes == (Change("active", False, True),)


def test_a_reactivation_without_update_users_only_turns_the_account_on() -> None:
    actual = _account(
        {**_desired().attributes, "active": False, "displayName": "A. Lovelace"},
        AccountStatus.DEACTIVATED,
    )
    operation = plan(_desired(), actual, _settings(update=False))
    assert operation is not None
    assert operation.kind is OperationKind.REACTIVATE
    assert operation.changes == (Change("active", False, True),)


def test_no_reactivation_without_deactivate_users() -> None:
    actual = _account({**_desired().attributes, "active": False}, AccountStatus.DEACTIVATED)
    assert plan(_desired(), actual, _settings(deactivate=False)) is None


@pytest.mark.parametrize("status", [AccountStatus.ACTIVE, AccountStatus.DEACTIVATED])
def test_deprovision_action_delete_deletes(status: AccountStatus) -> None:
    actual = _account(_desired().attributes, status, remote_id="r-9")
    operation = plan(None, actual, _settings(action=DeprovisionAction.DELETE))
    assert operation == Operation(OperationKind.DELETE, remote_id="r-9")
    assert operation.describe() == {"operation": "delete", "remote_id": "r-9", "changes": []}


def test_deprovision_action_none_keeps_the_account() -> None:
    actual = _account(_desired().attributes)
    assert plan(None, actual, _settings(action=DeprovisionAction.NONE)) is None


def test_a_staged_user_is_not_provisioned() -> None:
    staged = DirectoryUser(ADA.id, UserStatus.STAGED, ADA.profile)
    desired = desired_account(staged, ["everyone"])
    assert desired is None
    assert plan(desired, None, _settings()) is None


def test_applied_reflects_each_operation() -> None:
    desired = _desired()
    created = applied(plan(desired, None, _settings()) or pytest.fail("no plan"), None, "r-1")
    assert created == ActualAccount("r-1", desired.attributes, AccountStatus.ACTIVE)

    off = plan(None, created, _settings())
    assert off is not None
    deactivated = applied(off, created, "r-1")
    assert deactivated.status is AccountStatus.DEACTIVATED
    assert deactivated.attributes == {**desired.attributes, "active": False}

    on = plan(desired, deactivated, _settings())
    assert on is not None
    assert applied(on, deactivated, "r-1") == created

    gone = plan(None, created, _settings(action=DeprovisionAction.DELETE))
    assert gone is not None
    deleted = applied(gone, created, "r-1")
    assert not deleted.exists
    assert deleted.status is AccountStatus.DELETED


# -- delete after N days deactivated ------------------------------------------------------------


def test_a_deactivated_account_is_deleted_once_its_grace_period_is_over() -> None:
    from datetime import UTC, datetime, timedelta

    from provisiond.domain.apps import Deprovision

    now = datetime(2026, 11, 28, tzinfo=UTC)
    rule = Deprovision(DeprovisionAction.DEACTIVATE, delete_after=timedelta(days=30))
    settings = ProvisioningSettings()

    def account(days_ago: int | None, status: AccountStatus = AccountStatus.DEACTIVATED) -> ActualAccount:
        since = None if days_ago is None else now - timedelta(days=days_ago)
        return ActualAccount("r1", {"userName": "x", "active": status is AccountStatus.ACTIVE}, status, since)

    assert plan(None, account(31), settings, rule, now=now) == Operation(OperationKind.DELETE, remote_id="r1")
    assert plan(None, account(29), settings, rule, now=now) is None
    assert plan(None, account(None), settings, rule, now=now) is None  # when is unknown: keep it
    assert plan(None, account(31), settings, rule) is None  # no clock, no deletion
    active = plan(None, account(31, AccountStatus.ACTIVE), settings, rule, now=now)
    assert active is not None
    assert active.kind is OperationKind.DEACTIVATE  # deactivate first, delete later
