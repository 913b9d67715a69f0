"""Importing people and groups from an LDAP directory: the source's settings and the plan (pure).

An import reads the users a filter selects under a base DN and the groups under another, maps
attributes to profile fields, and plans what makes the directory match: create, update,
suspend (the source's disabled flag), reactivate, deactivate (gone from the source), and
group memberships. Users an import creates or adopts carry ``ldapSource`` (the source's name)
in their profile: only those are deactivated when they leave the source, and only their
memberships of imported groups are kept exact; anyone else in the directory is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, ValidationError, field_validator

from provisiond.domain.connector_kinds import LdapConnection, check_dn
from provisiond.domain.directory import Profile, UserStatus

SOURCE_ATTRIBUTE = "ldapSource"
# profile field <- LDAP attribute (inetOrgPerson, RFC 2798).
DEFAULT_MAPPING = {
    "login": "uid",
    "email": "mail",
    "firstName": "givenName",
    "lastName": "sn",
    "displayName": "displayName",
    "title": "title",
    "employeeNumber": "employeeNumber",
    "department": "departmentNumber",
}
SHOWN = 100  # items of each kind a plan lists; the counts are always complete


class LdapSource(LdapConnection):
    """Where to import from and how its entries become profiles."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="Tags imported users.")
    base_dn: str
    filter: str = Field(default="(objectClass=inetOrgPerson)", max_length=4096)
    group_base_dn: str | None = None
    group_filter: str = Field(default="(objectClass=groupOfNames)", max_length=4096)
    mapping: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_MAPPING))
    # The deactivation rule: an entry whose disabled_attribute holds disabled_value is suspended
    # (its apps' accounts deactivated); an entry gone from the filter is deactivated.
    disabled_attribute: str | None = None
    disabled_value: str = "disabled"
    deactivate_missing: bool = True

    @field_validator("base_dn", "group_base_dn")
    @classmethod
    def _dn(cls, value: str | None, info: Any) -> str | None:
        return None if value is None else check_dn(value, info.field_name)

    @field_validator("filter", "group_filter")
    @classmethod
    def _filter(cls, value: str) -> str:
        value = value.strip()
        if not (value.startswith("(") and value.endswith(")")) or value.count("(") != value.count(")"):
            raise ValueError("must be an LDAP filter in parentheses, e.g. (objectClass=person)")
        return value

    @field_validator("mapping")
    @classmethod
    def _maps_the_required(cls, mapping: dict[str, str]) -> dict[str, str]:
        missing = [name for name in ("login", "email", "firstName", "lastName") if name not in mapping]
        if missing:
            raise ValueError(f"mapping must map {', '.join(missing)} (every profile has them)")
        return mapping


@dataclass(frozen=True)
class SourceEntry:
    """A user entry as read: its DN and its attributes (each a list of values)."""

    dn: str
    attributes: Mapping[str, Sequence[Any]]


@dataclass(frozen=True)
class DirectoryUser:
    id: str
    login: str
    status: str
    profile: Mapping[str, Any]


@dataclass
class ImportPlan:
    creates: list[dict[str, Any]] = field(default_factory=list)  # {"profile", "disabled"}
    updates: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    suspends: list[tuple[str, str]] = field(default_factory=list)  # (user id, login)
    reactivates: list[tuple[str, str, str]] = field(default_factory=list)  # + current status
    deactivates: list[tuple[str, str]] = field(default_factory=list)
    group_creates: list[str] = field(default_factory=list)
    member_adds: list[tuple[str, str]] = field(default_factory=list)  # (group name, login)
    member_removes: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "create": len(self.creates),
            "update": len(self.updates),
            "suspend": len(self.suspends),
            "reactivate": len(self.reactivates),
            "deactivate": len(self.deactivates),
            "create_group": len(self.group_creates),
            "add_member": len(self.member_adds),
            "remove_member": len(self.member_removes),
            "error": len(self.errors),
        }

    def describe(self) -> dict[str, Any]:
        """The plan as a preview shows it: counts, and the first items of each kind."""
        return {
            "counts": self.counts(),
            "create": [c["profile"]["login"] for c in self.creates[:SHOWN]],
            "update": [{"login": login, "changes": changes} for _, login, changes in self.updates[:SHOWN]],
            "suspend": [login for _, login in self.suspends[:SHOWN]],
            "reactivate": [login for _, login, _ in self.reactivates[:SHOWN]],
            "deactivate": [login for _, login in self.deactivates[:SHOWN]],
            "create_group": self.group_creates[:SHOWN],
            "add_member": [{"group": g, "login": u} for g, u in self.member_adds[:SHOWN]],
            "remove_member": [{"group": g, "login": u} for g, u in self.member_removes[:SHOWN]],
            "errors": self.errors[:SHOWN],
        }


def profile_of(source: LdapSource, entry: SourceEntry) -> dict[str, Any]:
    """The profile an entry gives (first value of each mapped attribute), tagged with the source."""
    lowered = {name.lower(): values for name, values in entry.attributes.items()}
    profile: dict[str, Any] = {}
    for field_name, attribute in source.mapping.items():
        values = lowered.get(attribute.lower()) or []
        if values and str(values[0]).strip():
            profile[field_name] = str(values[0]).strip()
    profile[SOURCE_ATTRIBUTE] = source.name
    return profile


def is_disabled(source: LdapSource, entry: SourceEntry) -> bool:
    if source.disabled_attribute is None:
        return False
    lowered = {name.lower(): values for name, values in entry.attributes.items()}
    values = lowered.get(source.disabled_attribute.lower()) or []
    return any(str(v).lower() == source.disabled_value.lower() for v in values)


def plan_import(
    source: LdapSource,
    entries: Sequence[SourceEntry],
    groups: Mapping[str, Sequence[str]],
    directory: Mapping[str, DirectoryUser],
    directory_groups: Mapping[str, tuple[str, set[str]]],
) -> ImportPlan:
    """What makes the directory match the source.

    ``groups``: group name -> its members' DNs, as read. ``directory``: users by login key
    (casefolded login). ``directory_groups``: by name key, (name, member login keys)."""
    plan = ImportPlan()
    by_dn: dict[str, str] = {}  # entry DN (lower) -> login key, for group members
    seen: set[str] = set()
    for entry in entries:
        wanted = profile_of(source, entry)
        try:
            profile = Profile.model_validate(wanted).as_dict()
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "profile"
            plan.errors.append(f"{entry.dn}: {where}: {first['msg']}")
            continue
        key = str(profile["login"]).casefold()
        if key in seen:
            plan.errors.append(f"{entry.dn}: login {profile['login']!r} is given by another entry too")
            continue
        seen.add(key)
        by_dn[entry.dn.lower()] = key
        disabled = is_disabled(source, entry)
        current = directory.get(key)
        if current is None:
            plan.creates.append({"profile": profile, "disabled": disabled})
            continue
        other = current.profile.get(SOURCE_ATTRIBUTE)
        if other not in (None, source.name):
            plan.errors.append(f"{entry.dn}: login {current.login!r} is imported from source {other!r}")
            continue
        changes = {k: v for k, v in profile.items() if current.profile.get(k) != v}
        changes |= {k: None for k in source.mapping if k in current.profile and k not in profile}
        if changes:
            plan.updates.append((current.id, current.login, changes))
        status = UserStatus(current.status)
        if disabled and status is UserStatus.ACTIVE:
            plan.suspends.append((current.id, current.login))
        elif not disabled and status is not UserStatus.ACTIVE:
            plan.reactivates.append((current.id, current.login, status.value))
    if source.deactivate_missing:
        for key, user in sorted(directory.items()):
            gone = key not in seen and user.profile.get(SOURCE_ATTRIBUTE) == source.name
            if gone and UserStatus(user.status) is not UserStatus.DEPROVISIONED:
                plan.deactivates.append((user.id, user.login))
    _plan_groups(plan, source, groups, by_dn, directory, directory_groups)
    return plan


def _plan_groups(
    plan: ImportPlan,
    source: LdapSource,
    groups: Mapping[str, Sequence[str]],
    by_dn: Mapping[str, str],
    directory: Mapping[str, DirectoryUser],
    directory_groups: Mapping[str, tuple[str, set[str]]],
) -> None:
    imported = {key for key, user in directory.items() if user.profile.get(SOURCE_ATTRIBUTE) == source.name}
    imported |= set(by_dn.values())
    for name in sorted(groups):
        wanted = {by_dn[dn.lower()] for dn in groups[name] if dn.lower() in by_dn}
        found = directory_groups.get(name.casefold())
        current = found[1] if found else set()
        if found is None:
            plan.group_creates.append(name)
        group_name = found[0] if found else name
        plan.member_adds += [(group_name, _login(k, directory)) for k in sorted(wanted - current)]
        # Only the source's own users leave a group by an import; others were added by hand.
        leaving = (current & imported) - wanted
        plan.member_removes += [(group_name, _login(k, directory)) for k in sorted(leaving)]


def _login(key: str, directory: Mapping[str, DirectoryUser]) -> str:
    user = directory.get(key)
    return user.login if user else key
