"""Who an app's roles are granted to: the users reached by the assignments that grant them.

Read-only. Used by roles (a re-expressed role re-plans its holders), pushes (a ``group`` role's
holders are members of the pushed group) and connection (who can get roles at all).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from provisiond.services import reach
from provisiond.store.tables import Assignment, AssignmentRole


def holders(session: Session, role_id: str) -> list[str]:
    """The users reached by the assignments that grant ``role_id``."""
    return _reached(session, AssignmentRole.role_id == role_id)


def granted_users(session: Session, app_id: str) -> list[str]:
    """The users reached by any assignment of the app that grants a role."""
    return _reached(session, Assignment.app_id == app_id)


def _reached(session: Session, where: ColumnElement[bool]) -> list[str]:
    rows = session.execute(
        select(Assignment.principal_type, Assignment.principal_id)
        .join(AssignmentRole, AssignmentRole.assignment_id == Assignment.id)
        .where(where)
        .distinct()
    ).all()
    users = {pid for kind, pid in rows if kind == "user"}
    users |= reach.group_member_ids(session, [pid for kind, pid in rows if kind == "group"])
    return sorted(users)
