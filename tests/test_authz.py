"""The role policy, pinned: what each admin role may do (provisiond.authz)."""

from __future__ import annotations

import pytest

from provisiond import authz
from provisiond.authz import Action
from provisiond.errors import Forbidden
from provisiond.services.context import ROLES, Actor

S, A, H, R = "super_admin", "app_admin", "help_desk", "read_only"
POLICY = {
    Action.DIRECTORY_READ: {S, A, H, R},
    Action.DIRECTORY_WRITE: {S},
    Action.USER_LIFECYCLE: {S, H},
    Action.APP_READ: {S, A, H, R},
    Action.APP_CREATE: {S},
    Action.APP_DELETE: {S},
    Action.APP_MANAGE: {S, A},
    Action.TASK_READ: {S, A, H, R},
    Action.TASK_RETRY: {S, A, H},
    Action.TASK_DISMISS: {S, A},
    Action.LOG_READ: {S, A, H, R},
    Action.METRICS_READ: {S, A, H, R},
    Action.ADMIN_MANAGE: {S},
}


def test_the_policy_table() -> None:
    assert set(POLICY) == set(Action)
    for action, roles in POLICY.items():
        for role in ROLES:
            assert authz.may(Actor("t", role=role), action) is (role in roles), (role, action)


def test_an_app_admin_acts_only_on_granted_apps() -> None:
    admin = Actor("t", role=A, grants=frozenset({"app-1"}))
    assert authz.may(admin, Action.APP_MANAGE, "app-1")
    assert not authz.may(admin, Action.APP_MANAGE, "app-2")
    assert not authz.may(admin, Action.APP_READ, "app-2")
    assert authz.visible_apps(admin, ["app-1", "app-2"]) == ["app-1"]
    # Other roles are not scoped: grants mean nothing to them.
    assert authz.may(Actor("t", role=H), Action.TASK_RETRY, "app-2")


def test_unknown_roles_may_do_nothing_and_refusals_are_403() -> None:
    stranger = Actor("t", role="root")
    assert not any(authz.may(stranger, action) for action in Action)
    with pytest.raises(Forbidden) as refused:
        authz.authorize(Actor("t", role=R), Action.APP_MANAGE, "app-1")
    assert refused.value.status == 403 and "read_only" in refused.value.detail
