"""The assignments reaching a user, as engine Sources carrying the roles they grant.

``reach`` and ``planning`` say *how* a user is assigned (``user``, ``group:<id>`` labels; group
membership, nested or not, is theirs to work out). This module adds *what* each assignment
grants: only assignments that grant a role need their priority and creation time, since one
that grants none never takes part in role resolution (engine.roles), so only those are read.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from provisiond.domain.apps import ProvisioningSettings
from provisiond.engine.context import role_settings_of
from provisiond.engine.roles import RoleSettings, Source
from provisiond.engine.sources import SourceIndex, engine_role, index
from provisiond.services import reach

__all__ = ["SourceIndex", "engine_role", "index", "role_settings", "sources_of_user"]

def sources_of_user(
    session: Session, app_id: str, user_id: str, *, with_roles: bool = True
) -> list[Source]:
    """How ``user_id`` is assigned to ``app_id``, with roles: what the worker evaluates
    (``with_roles=False``: the app defines no role, so no assignment grants one)."""
    labels = reach.assignment_sources(session, app_id, user_id)
    if not with_roles:
        return [Source(label) for label in labels]
    principals = [
        ("user", user_id) if label == "user" else ("group", label.partition(":")[2])
        for label in labels
    ]
    return index(session, app_id, principals).of(user_id, labels)


def role_settings(session: Session, app_id: str, settings: ProvisioningSettings) -> RoleSettings:
    """The app-wide role inputs of the engine: the mode and the kinds the app defines."""
    return role_settings_of(session, app_id, settings)
