"""Source ownership: a user a SCIM client created is that client's to describe.

Okta or Entra sends the user's attributes again on its next update and overwrites an admin's
edit, silently; so an admin edit of an attribute the source owns (the standard profile
attributes SCIM writes) is warned of or refused, by ``PROVISIOND_SCIM_SOURCE_EDITS``
(``warn``, the default, or ``refuse``). Custom attributes are the directory's own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from provisiond.errors import Conflict
from provisiond.services.inbound.users import STANDARD
from provisiond.store.tables import Group, ScimClient, User


def source_name(session: Session, row: User | Group) -> str | None:
    """The name of the SCIM client that owns the user or group, if one does."""
    if row.source is None:
        return None
    client = session.get(ScimClient, row.source)
    return client.name if client is not None else row.source


def check_admin_edit(
    session: Session, user: User, changes: dict[str, Any], mode: str
) -> str | None:
    """A warning if ``changes`` edits attributes the user's source owns (``Conflict`` when
    ``mode`` is ``refuse``); None if it edits none."""
    name = source_name(session, user)
    if name is None:
        return None
    owned = sorted(
        key for key, value in changes.items()
        if key in STANDARD and user.profile.get(key) != value
    )
    if not owned:
        return None
    message = (
        f"{', '.join(owned)} of {user.login} belong to the SCIM client {name}: "
        f"its next update overwrites them; change them there"
    )
    if mode == "refuse":
        raise Conflict(message, field=f"profile.{owned[0]}", source=name)
    return message
