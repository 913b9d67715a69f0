"""Who is acting and under which correlation id: carried from the interface into every event."""

from __future__ import annotations

import enum
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field


class Role(enum.StrEnum):
    """An admin's role (an API token's, a console admin's); what each may do: provisiond.authz."""

    SUPER_ADMIN = "super_admin"
    APP_ADMIN = "app_admin"
    HELP_DESK = "help_desk"
    READ_ONLY = "read_only"


ROLES = tuple(role.value for role in Role)


def new_correlation_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Actor:
    """The admin (API token, console user) or the system process behind a change."""

    name: str
    role: str = "super_admin"
    correlation_id: str = field(default_factory=new_correlation_id)
    # The app ids an app_admin may manage (provisiond.authz); empty for the other roles.
    grants: frozenset[str] = frozenset()


SYSTEM = Actor("system")

current_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
