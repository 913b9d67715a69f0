"""The assignments of an app that grant roles, as engine Sources, read in one query.

Only assignments that grant a role need their priority and creation time, since one that
grants none never takes part in role resolution (engine.roles).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.domain.roles import RoleExpression
from provisiond.engine.roles import Role, Source
from provisiond.store.tables import AppRole, Assignment, AssignmentRole

_CHUNK = 900  # below SQLite's bound-parameter limit
_Key = tuple[str, str]  # (principal_type, principal_id)


@dataclass(frozen=True)
class SourceIndex:
    """The role-granting assignments of one app, by principal."""

    granting: dict[_Key, Source]

    def of(self, user_id: str, labels: Iterable[str]) -> list[Source]:
        """The Sources of the user that ``labels`` (``user``, ``group:<id>``) describe."""
        out = []
        for label in labels:
            key = ("user", user_id) if label == "user" else ("group", label.partition(":")[2])
            out.append(self.granting.get(key) or Source(label))
        return out


def index(session: Session, app_id: str, principals: Iterable[_Key] | None = None) -> SourceIndex:
    """The app's role-granting assignments (of ``principals`` only, when given)."""
    statement = (
        select(Assignment, AppRole)
        .join(AssignmentRole, AssignmentRole.assignment_id == Assignment.id)
        .join(AppRole, AppRole.id == AssignmentRole.role_id)
        .where(Assignment.app_id == app_id)
        .order_by(Assignment.id, AppRole.name_key)
    )
    if principals is None:
        rows = list(session.execute(statement).all())
    else:
        # Chunked like every read of the engine: a role holder list may be the whole directory.
        ids = sorted({pid for _, pid in principals})
        rows = []
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            rows += session.execute(statement.where(Assignment.principal_id.in_(chunk))).all()
    granting: dict[_Key, Source] = {}
    for assignment, role in rows:
        key = (assignment.principal_type, assignment.principal_id)
        label = (
            "user" if assignment.principal_type == "user" else f"group:{assignment.principal_id}"
        )
        current = granting.get(key) or Source(
            label, assignment.id, assignment.priority, assignment.created_at
        )
        granting[key] = Source(
            current.label,
            current.assignment_id,
            current.priority,
            current.created_at,
            (*current.roles, engine_role(role)),
        )
    return SourceIndex(granting)


def engine_role(row: AppRole) -> Role:
    expression = RoleExpression.model_validate(row.expression)
    return Role(row.name, expression.kind, expression.value)
