"""What a destructive change would deprovision, asked before it is made (the console's confirm
pages).

The change is made inside a savepoint, the affected users are planned by the very preview the
API's dry run uses (``planning.plan_app``: the worker's read and decide, executor off), and the
savepoint is rolled back: nothing is written, queued or sent. Only the rows the change touches
are changed in the savepoint (not the service call), so no task is queued and no event recorded
even for the moment the savepoint lives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.orm import Session

from provisiond.domain.directory import UserStatus
from provisiond.services import planning, policies, reach
from provisiond.services.apps import get_app, provisioning_of
from provisiond.services.assignments import get_assignment
from provisiond.services.directory import get_user
from provisiond.store.tables import App, AssignmentRole, utcnow


@dataclass(frozen=True)
class AppImpact:
    """The accounts of one app the change would deactivate or delete."""

    app_id: str
    app_name: str
    enabled: bool  # provisioning off: the deprovisionings wait (skipped) until it is on
    logins: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.logins)


@dataclass(frozen=True)
class Impact:
    apps: tuple[AppImpact, ...]

    @property
    def count(self) -> int:
        return sum(app.count for app in self.apps if app.enabled)


def _planned(
    session: Session, app_ids: Iterable[str], user_ids: list[str], change: Callable[[], None]
) -> Impact:
    found: list[AppImpact] = []
    savepoint = session.begin_nested()
    try:
        change()
        session.flush()
        for app_id in sorted(set(app_ids)):
            app = session.get(App, app_id)
            if app is None:
                continue
            settings = provisioning_of(app)
            policy = policies.compiled(session, app.id)
            plan = planning.plan_app(session, app.id, policy, settings, user_ids, now=utcnow())
            logins = tuple(planned.login for planned in plan.deprovisions)
            found.append(AppImpact(app.id, app.name, settings.enabled, logins))
    finally:
        savepoint.rollback()
    return Impact(tuple(found))


def of_unassign(session: Session, app_id: str, assignment_id: str) -> Impact:
    """The accounts ``DELETE /apps/{id}/assignments/{aid}`` would deprovision in the app."""
    assignment = get_assignment(session, app_id, assignment_id)
    get_app(session, app_id)
    if assignment.principal_type == "user":
        users = [assignment.principal_id]
    else:
        users = sorted(reach.group_member_ids(session, [assignment.principal_id]))

    def change() -> None:
        session.execute(delete(AssignmentRole).where(AssignmentRole.assignment_id == assignment.id))
        session.delete(assignment)

    return _planned(session, [app_id], users, change)


def of_deactivate(session: Session, user_id: str) -> Impact:
    """The accounts deactivating the user would deprovision, app by app."""
    user = get_user(session, user_id)
    apps = reach.apps_of_user(session, user.id)

    def change() -> None:
        user.status = UserStatus.DEPROVISIONED.value

    return _planned(session, apps, [user.id], change)


def of_delete(session: Session, user_id: str) -> Impact:
    """The accounts still to deprovision when a (deprovisioned) user is deleted."""
    user = get_user(session, user_id)
    return _planned(session, reach.apps_of_user(session, user.id), [user.id], lambda: None)
