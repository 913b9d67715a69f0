"""What account a user should have in an app: a pure function of directory and configuration."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from provisiond.domain.directory import UserStatus
from provisiond.engine.mapping import CompiledPolicy, default_policy
from provisiond.engine.roles import RoleSettings, Source, apply_roles, as_source, resolve


@dataclass(frozen=True)
class DirectoryUser:
    """The slice of a directory user the engine needs."""

    id: str
    status: UserStatus
    profile: Mapping[str, Any]

    def expression_input(self) -> dict[str, Any]:
        """What ``user`` is in a policy expression: the profile plus id and status."""
        return {**self.profile, "id": self.id, "status": self.status.value}


@dataclass(frozen=True)
class DesiredAccount:
    """The account a user should have: its SCIM attributes (``active`` included)."""

    attributes: dict[str, Any]
    assigned_by: tuple[str, ...] = field(default=())

    @property
    def active(self) -> bool:
        return bool(self.attributes.get("active", True))


def default_mapping(user: DirectoryUser) -> dict[str, Any]:
    """The SCIM core User the default policy gives a directory user (RFC 7643 §4.1)."""
    return _mapped(user, default_policy())


def _mapped(
    user: DirectoryUser, policy: CompiledPolicy, values: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    attributes = policy.attributes(user.expression_input() if values is None else values)
    attributes["active"] = user.status is UserStatus.ACTIVE
    return attributes


@dataclass(frozen=True)
class Evaluation:
    """The desired account and the reasoning behind it, for traces and previews."""

    desired: DesiredAccount | None
    reason: str


def evaluate(
    user: DirectoryUser,
    assigned_by: Iterable[Source | str],
    policy: CompiledPolicy | None = None,
    roles: RoleSettings | None = None,
) -> Evaluation:
    """Decide whether ``user`` gets an account and with what; EvaluationError for this user.

    Staged users are not provisioned until activated; deprovisioned users have no account;
    suspended users keep theirs, deactivated (``active: false``); assigned users outside the
    policy's scope have none. The roles the assignments grant (engine.roles) are added after
    the mappings; where the policy maps ``roles`` or ``entitlements`` itself, the policy wins.
    """
    policy = policy or default_policy()
    grants = [as_source(source) for source in assigned_by]
    sources = tuple(sorted(source.label for source in grants))
    if not sources:
        return Evaluation(None, "not assigned to the app")
    if user.status in (UserStatus.STAGED, UserStatus.DEPROVISIONED):
        return Evaluation(None, f"user is {user.status.value}")
    values = user.expression_input()  # once for the scope and the mappings alike
    if not policy.in_scope(values):
        return Evaluation(None, f"outside the policy scope ({policy.document.scope})")
    reason = f"assigned via {', '.join(sources)}" + (
        f"; in scope ({policy.document.scope})" if policy.scope is not None else ""
    )
    attributes = _mapped(user, policy, values)
    if roles is not None:
        attributes = apply_roles(attributes, grants, roles)
        granted = resolve(grants, roles.mode)
        if granted:
            reason += f"; roles {', '.join(role.name for role in granted)} ({roles.mode})"
    return Evaluation(DesiredAccount(attributes, sources), reason)


def desired_account(
    user: DirectoryUser,
    assigned_by: Iterable[Source | str],
    policy: CompiledPolicy | None = None,
    roles: RoleSettings | None = None,
) -> DesiredAccount | None:
    """The account ``user`` should have given the assignments that reach them, or None."""
    return evaluate(user, assigned_by, policy, roles).desired
