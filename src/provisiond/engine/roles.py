"""Which app roles a user gets from the assignments that reach them. Pure.

Each assignment reaching a user is a :class:`Source` (how it reaches them, with the roles it
grants). The app's ``role_mode`` settles how several combine:

* ``priority`` (Okta's rule): only assignments that grant a role compete; a direct user
  assignment wins over every group assignment; among groups the lowest priority number wins,
  an assignment without a priority ranks after all that have one, and ties fall to the earlier
  assignment (``created_at``), then to the smaller assignment id, so the answer never depends
  on the order the rows were read in. The winner's roles (it may grant several) are the user's.
* ``combine``: every role of every assignment, as one set.

An assignment without a role grants access only: it never takes away a role another grants.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from provisiond.domain.roles import ATTRIBUTE_OF, RoleKind, RoleMode

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, order=True)
class Role:
    """A role as the engine sees it: its name and how the app expresses it."""

    name: str
    kind: RoleKind
    value: str


@dataclass(frozen=True)
class Source:
    """One assignment that reaches a user: ``user`` (direct) or ``group:<id>``, with roles."""

    label: str
    assignment_id: str = ""
    priority: int | None = None
    created_at: datetime | None = None
    roles: tuple[Role, ...] = ()

    @property
    def direct(self) -> bool:
        return self.label == "user"

    def key(self) -> str:
        """What the fingerprint hashes: just the label when the assignment grants no role."""
        if not self.roles:
            return self.label
        when = self.created_at.isoformat() if self.created_at else ""
        granted = ";".join(f"{r.name}={r.kind.value}:{r.value}" for r in sorted(self.roles))
        return f"{self.label}|{self.assignment_id}|{self.priority}|{when}|{granted}"


@dataclass(frozen=True)
class RoleSettings:
    """The app-wide part: the mode, and the kinds of role the app defines.

    provisiond manages an attribute (``roles``, ``entitlements``) only in apps that define
    roles of its kind; there it owns the attribute, so a user left without a role gets ``[]``.
    """

    mode: RoleMode = "priority"
    kinds: frozenset[RoleKind] = field(default_factory=frozenset)


def as_source(source: Source | str) -> Source:
    return source if isinstance(source, Source) else Source(source)


def _rank(source: Source) -> tuple[bool, int, datetime, str]:
    return (
        source.priority is None,
        source.priority or 0,
        source.created_at or _EPOCH,
        source.assignment_id,
    )


def resolve(sources: Iterable[Source], mode: RoleMode = "priority") -> tuple[Role, ...]:
    """The roles a user gets, sorted by name, one per name (names are case-insensitive)."""
    granting = [source for source in sources if source.roles]
    if not granting:
        return ()
    if mode == "combine":
        chosen = [role for source in granting for role in source.roles]
    else:
        direct = [source for source in granting if source.direct]
        winner = min(direct or granting, key=_rank)
        chosen = list(winner.roles)
    unique: dict[str, Role] = {}
    for role in sorted(chosen):
        unique.setdefault(role.name.casefold(), role)
    return tuple(sorted(unique.values(), key=lambda role: role.name.casefold()))


def role_attributes(
    roles: Iterable[Role], kinds: Iterable[RoleKind]
) -> dict[str, list[dict[str, Any]]]:
    """``roles``/``entitlements`` as SCIM multi-valued attributes, for the kinds the app uses.

    Group roles are not attributes of the user: their holders are members of the pushed group
    the role names (engine.group_members.role_holders).
    """
    chosen = list(roles)
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in sorted(set(kinds)):
        attribute = ATTRIBUTE_OF.get(kind)
        if attribute is None:
            continue
        values = sorted({role.value for role in chosen if role.kind is kind})
        out[attribute] = [{"value": value} for value in values]
    return out


def apply_roles(
    attributes: Mapping[str, Any], sources: Iterable[Source], settings: RoleSettings
) -> dict[str, Any]:
    """``attributes`` with the resolved roles added; a policy that maps the attribute wins."""
    out = dict(attributes)
    mapped = {name.lower() for name in attributes}
    for name, value in role_attributes(resolve(sources, settings.mode), settings.kinds).items():
        if name.lower() not in mapped:
            out[name] = value
    return out
