"""Admin roles: who may do what. The one policy the API, the CLI (through the API) and the
console all ask, so a role means the same thing everywhere.

=============  ===========================================================================
role           may
=============  ===========================================================================
super_admin    everything
app_admin      read everything; change only the apps it is granted (settings, connection
               test, provisioning, assignments, policy, syncs, their tasks)
help_desk      read everything; user lifecycle (activate, suspend, deactivate, ...) and
               retrying dead tasks; nothing else
read_only      read everything; change nothing
=============  ===========================================================================

Reading single app resources (an app, its accounts, runs, tasks) is scoped too for an
app_admin, so it only ever opens the apps it manages; lists are filtered the same way. Its
activity log and /metrics show its apps' events and series only (:func:`app_scope`).
Creating and deleting apps, the directory itself and admin accounts are super_admin's.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from provisiond.errors import Conflict, Forbidden
from provisiond.services.apps import summarised_test
from provisiond.services.context import Actor, Role


class Action(enum.StrEnum):
    DIRECTORY_READ = "directory.read"
    DIRECTORY_WRITE = "directory.write"  # create, edit, delete users and groups; memberships
    USER_LIFECYCLE = "user.lifecycle"
    APP_READ = "app.read"
    APP_CREATE = "app.create"
    APP_DELETE = "app.delete"
    APP_MANAGE = "app.manage"  # connector, provisioning, test, assignments, policy, sync
    TASK_READ = "task.read"
    TASK_RETRY = "task.retry"
    TASK_DISMISS = "task.dismiss"
    LOG_READ = "log.read"
    METRICS_READ = "metrics.read"
    ADMIN_MANAGE = "admin.manage"  # console admin accounts and API tokens


READS = frozenset(
    {
        Action.DIRECTORY_READ,
        Action.APP_READ,
        Action.TASK_READ,
        Action.LOG_READ,
        Action.METRICS_READ,
    }
)

ALLOWED: dict[Role, frozenset[Action]] = {
    Role.SUPER_ADMIN: frozenset(Action),
    Role.APP_ADMIN: READS | {Action.APP_MANAGE, Action.TASK_RETRY, Action.TASK_DISMISS},
    Role.HELP_DESK: READS | {Action.USER_LIFECYCLE, Action.TASK_RETRY},
    Role.READ_ONLY: READS,
}

# Actions on one app: an app_admin may take them only on the apps it is granted.
APP_SCOPED = frozenset(
    {Action.APP_READ, Action.APP_MANAGE, Action.TASK_READ, Action.TASK_RETRY, Action.TASK_DISMISS}
)


def _role(actor: Actor) -> Role | None:
    try:
        return Role(actor.role)
    except ValueError:
        return None  # an unknown role (a newer server's, a typo in the database) may do nothing


def may(actor: Actor, action: Action | str, app_id: str | None = None) -> bool:
    """Whether ``actor`` may take ``action`` (on the app ``app_id``, for app-scoped actions).

    Without ``app_id`` the question is "on some app": a list the caller then filters with
    :func:`visible_apps`.
    """
    role = _role(actor)
    if role is None or Action(action) not in ALLOWED[role]:
        return False
    if role is Role.APP_ADMIN and action in APP_SCOPED and app_id is not None:
        return app_id in actor.grants
    return True


def authorize(actor: Actor, action: Action | str, app_id: str | None = None) -> None:
    """Raise :class:`Forbidden` (403) unless ``actor`` may take ``action``."""
    if not may(actor, action, app_id):
        where = " on this app" if app_id is not None and action in APP_SCOPED else ""
        raise Forbidden(
            f"the {actor.role} role may not {Action(action).value}{where}",
            action=Action(action).value,
            role=actor.role,
        )


def is_scoped(actor: Actor) -> bool:
    """Whether the actor's view of apps is limited to its grants."""
    return _role(actor) is Role.APP_ADMIN


def app_scope(actor: Actor) -> frozenset[str] | None:
    """The apps whose figures and events ``actor`` may see, or None for all of them.

    An app_admin's view of the activity log and of /metrics is its granted apps only: other
    apps' names, counts and events (and the users they name) are not its business.
    """
    return actor.grants if is_scoped(actor) else None


def visible_apps(actor: Actor, app_ids: Iterable[str]) -> list[str]:
    """The app ids among ``app_ids`` that ``actor`` may read."""
    return [app_id for app_id in app_ids if may(actor, Action.APP_READ, app_id)]


def shown_test(actor: Actor, report: dict[str, Any] | None) -> dict[str, Any] | None:
    """A connection test's report as ``actor`` may read it. Its details quote what the app's
    URL answered, so they are a super admin's: to anyone else the test would be a way to probe
    which ports of which hosts answer what. The others read each step's summary."""
    if report is None or _role(actor) is Role.SUPER_ADMIN:
        return report
    return summarised_test(report)


def shown_test_failure(actor: Actor, exc: Conflict) -> Conflict:
    """A refusal to enable provisioning that carries the failed test (``test``), as ``actor``
    may read it: the report and the reason quoted in the detail."""
    report = exc.extra.get("test")
    shown = shown_test(actor, report)
    if report is None or shown is None or shown is report:
        return exc
    detail = exc.detail.replace(str(report.get("reason")), str(shown.get("reason")))
    return Conflict(detail, **{**exc.extra, "test": shown})
