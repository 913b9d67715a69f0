"""The LDAP target connector: accounts as inetOrgPerson entries, groups as groupOfNames.

* an account is an entry under ``users_dn`` (its RDN from ``user_rdn``); its remote id is the
  entry's ``entryUUID`` (RFC 4530), which a rename or a move keeps;
* app roles (the SCIM ``roles`` values) and pushed groups are groupOfNames under ``groups_dn``,
  their ``member`` values kept exact; provisiond tells its own groups apart by ``description``
  (``MARKS``) and never changes another group;
* deactivating sets ``disabled_attribute`` to ``disabled_value``, or moves the entry to
  ``inactive_dn`` (by setting); deleting removes the entry and its memberships.

ldap3 is synchronous: each operation runs in a worker thread on a connection of its own, at
most ``concurrency`` at once, connections kept bound for the next operation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import ldap3
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from provisiond.connectors.base import (
    Change,
    ConnectionReport,
    ConnectionStep,
    Page,
    Quirks,
    RemoteGroup,
    RemoteUser,
)
from provisiond.connectors.destinations import (
    DestinationPolicy,
    Resolver,
    system_resolver,
)
from provisiond.connectors.ldap_entries import (
    MANAGED,
    PERSON_CLASSES,
    parent_of,
    person_attributes,
    rdn_of,
    render_rdn,
    same_dn,
    scim_attributes,
    unescape,
)
from provisiond.connectors.ldap_link import (
    LdapLink,
    check,
    failed_step,
    first_value,
    search,
)
from provisiond.domain.connector_kinds import LdapConnectorSettings
from provisiond.errors import (
    ConnectorError,
    RemoteConflict,
    RemoteNotFound,
    TerminalError,
    TransientError,
)

MARKS = {"app_role": "provisiond: app role", "group": "provisiond: pushed group"}
# groupOfNames must have a member (RFC 4519): an empty group holds the empty DN.
NO_MEMBER = ""
_READ = ["entryUUID", "objectClass", *MANAGED, "description", "member"]

T = TypeVar("T")


class LdapConnector:
    def __init__(
        self,
        settings: LdapConnectorSettings,
        *,
        concurrency: int = 4,
        policy: DestinationPolicy | None = None,
        resolve: Resolver = system_resolver,
    ) -> None:
        self._s = settings
        self._link = LdapLink(settings, concurrency=concurrency, policy=policy, resolve=resolve)

    async def _run(self, work: Callable[[ldap3.Connection], T]) -> T:
        return await self._link.run(work)

    async def aclose(self) -> None:
        await self._link.aclose()

    # -- connection test --------------------------------------------------------------------

    async def test_connection(self) -> ConnectionReport:
        s = self._s
        report = ConnectionReport(quirks=await self.quirks())
        try:
            await self._run(lambda conn: None)
        except ConnectorError as exc:
            report.steps.append(failed_step("bind", exc))
            return report
        report.steps.append(ConnectionStep("bind", True, f"bound as {s.bind_dn} to {self._link}"))
        bases = [("users_dn", s.users_dn), ("groups_dn", s.groups_dn), ("inactive_dn", s.inactive_dn)]
        for name, dn in bases:
            if dn is None:
                continue
            exists = await self._run(functools.partial(_exists, dn=dn))
            if not exists:
                report.steps.append(ConnectionStep("base DNs", False, f"{name} {dn} does not exist"))
                return report
        report.steps.append(ConnectionStep("base DNs", True, "every base DN exists"))
        missing = await self._run(_missing_classes)
        if missing:
            report.steps.append(
                ConnectionStep(
                    "schema", False, f"the server's schema lacks objectClass {', '.join(missing)}"
                )
            )
        else:
            report.steps.append(ConnectionStep("schema", True, "inetOrgPerson and groupOfNames known"))
        return report

    async def quirks(self) -> Quirks:
        return Quirks(patch=True, filter=True, max_results=500, etag=False)

    # -- accounts ---------------------------------------------------------------------------

    def _user_bases(self) -> list[str]:
        return [self._s.users_dn] + ([self._s.inactive_dn] if self._s.inactive_dn else [])

    def _user(self, entry: Mapping[str, Any]) -> RemoteUser:
        return RemoteUser(
            remote_id=first_value(entry["attributes"], "entryUUID") or "",
            attributes=scim_attributes(entry["attributes"], self._active(entry)),
        )

    def _active(self, entry: Mapping[str, Any]) -> bool:
        s = self._s
        if s.deactivation == "move":
            return not (s.inactive_dn and same_dn(parent_of(entry["dn"]), s.inactive_dn))
        values = entry["attributes"].get(s.disabled_attribute) or []
        return s.disabled_value not in [str(v) for v in values]

    def _search_users(self, conn: ldap3.Connection, condition: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for base in self._user_bases():
            found += search(conn, base, f"(&(objectClass=inetOrgPerson){condition})",
                             [*_READ, self._s.disabled_attribute])
        return found

    async def find_user(self, attribute: str, value: str) -> RemoteUser | None:
        ldap_attribute = {"userName": "uid", "emails.value": "mail"}.get(attribute)
        if ldap_attribute is None:
            raise TerminalError(f"an LDAP app matches accounts by userName or emails.value, not {attribute}")
        condition = f"({ldap_attribute}={escape_filter_chars(value)})"
        found = await self._run(lambda conn: self._search_users(conn, condition))
        return self._user(found[0]) if found else None

    async def get_user(self, remote_id: str) -> RemoteUser | None:
        entry = await self._run(lambda conn: self._by_uuid(conn, remote_id))
        return None if entry is None else self._user(entry)

    def _by_uuid(self, conn: ldap3.Connection, remote_id: str) -> dict[str, Any] | None:
        found = self._search_users(conn, f"(entryUUID={escape_filter_chars(remote_id)})")
        return found[0] if found else None

    async def holds_no_users(self) -> bool:
        def any_user(conn: ldap3.Connection) -> bool:
            for base in self._user_bases():
                # One entry is enough to know (sizeLimitExceeded, code 4, then says "more").
                conn.search(base, "(objectClass=inetOrgPerson)", attributes=["1.1"], size_limit=1)
                if any(e.get("type") == "searchResEntry" for e in conn.response or []):
                    return True
            return False

        return not await self._run(any_user)

    async def list_users(self, start_index: int, count: int) -> Page:
        found = await self._run(lambda conn: self._search_users(conn, ""))
        found.sort(key=lambda entry: entry["dn"].lower())
        items = [self._user(e) for e in found[max(start_index - 1, 0) : start_index - 1 + count]]
        return Page(items=items, total=len(found), start_index=start_index)

    async def create_user(self, attributes: Mapping[str, Any]) -> RemoteUser:
        s = self._s
        values: dict[str, list[str]] = person_attributes(attributes)
        rdn = render_rdn(s.user_rdn, attributes)
        active = _active(attributes)
        parent = s.users_dn
        if not active:
            if s.deactivation == "move":
                assert s.inactive_dn is not None
                parent = s.inactive_dn
            else:
                values[s.disabled_attribute] = [s.disabled_value]
        if attributes.get("password"):
            values["userPassword"] = [str(attributes["password"])]
        dn = f"{rdn},{parent}"

        def create(conn: ldap3.Connection) -> RemoteUser:
            rdn_attribute, _, rdn_value = rdn.partition("=")
            entry = dict(values)
            entry.setdefault(rdn_attribute, [])  # the RDN's value must be a value of the entry
            if not any(v == unescape(rdn_value) for v in entry[rdn_attribute]):
                entry[rdn_attribute] = [*entry[rdn_attribute], unescape(rdn_value)]
            if attributes.get("roles") is not None:
                self._check_roles(conn, _wanted_roles(attributes))
            check(conn, conn.add(dn, list(PERSON_CLASSES), entry), f"add {dn}")
            read = search(conn, dn, "(objectClass=*)", [*_READ, s.disabled_attribute], ldap3.BASE)
            if not read:
                raise TransientError(f"LDAP: the entry {dn} just added cannot be read back")
            match = read[0]
            if attributes.get("roles") is not None:
                self._set_roles(conn, dn, _wanted_roles(attributes))
            return self._user(match)

        return await self._run(create)

    async def update_user(
        self, remote_id: str, changes: Sequence[Change], attributes: Mapping[str, Any]
    ) -> None:
        s = self._s
        wanted = person_attributes(attributes)
        active = _active(attributes)
        rdn = render_rdn(s.user_rdn, attributes)

        def update(conn: ldap3.Connection) -> None:
            entry = self._by_uuid(conn, remote_id)
            if entry is None:
                raise RemoteNotFound(f"no entry with entryUUID {remote_id}")
            if attributes.get("roles") is not None:
                self._check_roles(conn, _wanted_roles(attributes))
            dn, current = entry["dn"], entry["attributes"]
            rdn_attribute = rdn.partition("=")[0]
            modify: dict[str, list[tuple[str, list[str]]]] = {}
            for name in MANAGED:
                new = wanted.get(name, [])
                if name.lower() == rdn_attribute.lower():
                    continue  # set by the rename below
                if sorted(str(v) for v in current.get(name) or []) != sorted(new):
                    modify[name] = [(ldap3.MODIFY_REPLACE, new)]
            if s.deactivation == "attribute" and active != self._active(entry):
                values = [str(v) for v in current.get(s.disabled_attribute) or []]
                values = [*values, s.disabled_value] if not active else [
                    v for v in values if v != s.disabled_value
                ]
                modify[s.disabled_attribute] = [(ldap3.MODIFY_REPLACE, values)]
            if modify:
                check(conn, conn.modify(dn, modify), f"modify {dn}")
            parent = parent_of(dn)
            if s.deactivation == "move" and s.inactive_dn:
                parent = s.users_dn if active else s.inactive_dn
            if not same_dn(rdn_of(dn), rdn) or not same_dn(parent, parent_of(dn)):
                moved = conn.modify_dn(dn, rdn, delete_old_dn=True, new_superior=parent)
                check(conn, moved, f"rename {dn} to {rdn},{parent}")
                self._rename_member(conn, dn, f"{rdn},{parent}")
                dn = f"{rdn},{parent}"
            if attributes.get("roles") is not None:
                self._set_roles(conn, dn, _wanted_roles(attributes))

        await self._run(update)

    async def delete_user(self, remote_id: str) -> None:
        def delete(conn: ldap3.Connection) -> None:
            entry = self._by_uuid(conn, remote_id)
            if entry is None:
                return  # already gone: the goal is reached
            # Without the refint overlay the directory keeps dangling members: drop them first.
            self._rename_member(conn, entry["dn"], None)
            check(conn, conn.delete(entry["dn"]), f"delete {entry['dn']}")

        await self._run(delete)

    def _rename_member(self, conn: ldap3.Connection, old: str, new: str | None) -> None:
        """Every provisiond group that holds ``old`` as a member holds ``new`` instead."""
        if self._s.groups_dn is None:
            return
        for group in self._groups(conn, f"(member={escape_filter_chars(old)})", "any"):
            members = [m for m in group["attributes"].get("member") or [] if not same_dn(m, old)]
            _put_members(conn, group["dn"], [*members, *([new] if new else [])])

    # -- groups -----------------------------------------------------------------------------

    def _groups_dn(self) -> str:
        if self._s.groups_dn is None:
            raise TerminalError("this LDAP app has no groups_dn: set it to push groups or roles")
        return self._s.groups_dn

    def _groups(self, conn: ldap3.Connection, condition: str, mark: str = "group") -> list[dict[str, Any]]:
        marks = "".join(f"(description={escape_filter_chars(m)})" for m in MARKS.values())
        which = f"(description={escape_filter_chars(MARKS[mark])})" if mark != "any" else f"(|{marks})"
        query = f"(&(objectClass=groupOfNames){which}{condition})"
        return search(conn, self._groups_dn(), query, _READ)

    def _check_roles(self, conn: ldap3.Connection, wanted: set[str]) -> None:
        """Refuse, before anything is written, a role whose group exists and is not provisiond's
        (LDAP has no transactions: an account must not be left made without its roles)."""
        for name in sorted(wanted):
            group_dn = f"cn={escape_rdn(name)},{self._groups_dn()}"
            found = search(conn, group_dn, "(objectClass=*)", ["description"], scope=ldap3.BASE)
            if found and MARKS["app_role"] not in (found[0]["attributes"].get("description") or []):
                raise TerminalError(
                    f"{group_dn} exists and is not an app-role group provisiond manages: "
                    f"give it description: {MARKS['app_role']} to let provisiond use it"
                )

    def _set_roles(self, conn: ldap3.Connection, dn: str, wanted: set[str]) -> None:
        """``dn`` a member of exactly the app-role groups named ``wanted`` (created if missing)."""
        held = self._groups(conn, f"(member={escape_filter_chars(dn)})", "app_role")
        held_names = {first_value(g["attributes"], "cn") or "": g for g in held}
        for name in sorted(wanted - set(held_names)):
            found = self._groups(conn, f"(cn={escape_filter_chars(name)})", "app_role")
            if found:
                members = [*(found[0]["attributes"].get("member") or []), dn]
                _put_members(conn, found[0]["dn"], members)
            else:
                group_dn = f"cn={escape_rdn(name)},{self._groups_dn()}"
                added = conn.add(group_dn, ["groupOfNames"], {"cn": name, "member": [dn],
                                                               "description": MARKS["app_role"]})
                check(conn, added, f"add {group_dn}")
        for name, group in held_names.items():
            if name not in wanted:
                members = [m for m in group["attributes"].get("member") or [] if not same_dn(m, dn)]
                _put_members(conn, group["dn"], members)

    def _remote_group(self, conn: ldap3.Connection, group: Mapping[str, Any]) -> RemoteGroup:
        members = [m for m in group["attributes"].get("member") or [] if m != NO_MEMBER]
        ids = set()
        for member in members:
            found = search(conn, member, "(objectClass=*)", ["entryUUID"], scope=ldap3.BASE)
            if found and first_value(found[0]["attributes"], "entryUUID"):
                ids.add(str(first_value(found[0]["attributes"], "entryUUID")))
        return RemoteGroup(
            remote_id=first_value(group["attributes"], "entryUUID") or "",
            display_name=first_value(group["attributes"], "cn") or "",
            members=frozenset(ids),
        )

    def _member_dns(self, conn: ldap3.Connection, remote_ids: Sequence[str]) -> list[str]:
        dns = []
        for remote_id in remote_ids:
            entry = self._by_uuid(conn, remote_id)
            if entry is None:
                raise RemoteNotFound(f"no account with entryUUID {remote_id} to make a member")
            dns.append(entry["dn"])
        return dns

    async def find_group(self, display_name: str) -> RemoteGroup | None:
        def find(conn: ldap3.Connection) -> RemoteGroup | None:
            condition = f"(cn={escape_filter_chars(display_name)})"
            found = self._groups(conn, condition)
            if found:
                return self._remote_group(conn, found[0])
            others = search(conn, self._groups_dn(), f"(&(objectClass=groupOfNames){condition})", ["cn"])
            if others:
                raise RemoteConflict(f"a group named {display_name!r} exists and is not one provisiond pushed")
            return None

        return await self._run(find)

    async def get_group(self, remote_id: str) -> RemoteGroup | None:
        def get(conn: ldap3.Connection) -> RemoteGroup | None:
            found = self._groups(conn, f"(entryUUID={escape_filter_chars(remote_id)})")
            return self._remote_group(conn, found[0]) if found else None

        return await self._run(get)

    async def list_groups(self, start_index: int, count: int) -> Page:
        def listing(conn: ldap3.Connection) -> Page:
            found = sorted(self._groups(conn, ""), key=lambda g: g["dn"].lower())
            chosen = found[max(start_index - 1, 0) : start_index - 1 + count]
            return Page([self._remote_group(conn, g) for g in chosen], len(found), start_index)

        return await self._run(listing)

    async def create_group(self, display_name: str, members: Sequence[str]) -> RemoteGroup:
        def create(conn: ldap3.Connection) -> RemoteGroup:
            dn = f"cn={escape_rdn(display_name)},{self._groups_dn()}"
            member_dns = self._member_dns(conn, members) or [NO_MEMBER]
            added = conn.add(dn, ["groupOfNames"], {"cn": display_name, "member": member_dns,
                                                     "description": MARKS["group"]})
            check(conn, added, f"add {dn}")
            found = self._groups(conn, f"(cn={escape_filter_chars(display_name)})")
            return self._remote_group(conn, found[0])

        return await self._run(create)

    async def update_group(
        self,
        remote_id: str,
        *,
        display_name: str | None = None,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        members: Sequence[str] | None = None,
    ) -> int:
        def update(conn: ldap3.Connection) -> int:
            found = self._groups(conn, f"(entryUUID={escape_filter_chars(remote_id)})")
            if not found:
                raise RemoteNotFound(f"no group with entryUUID {remote_id}")
            group = found[0]
            dn = group["dn"]
            current = self._remote_group(conn, group).members
            wanted = set(members) if members is not None else (set(current) | set(add)) - set(remove)
            if wanted != current:
                _put_members(conn, dn, self._member_dns(conn, sorted(wanted)))
            if display_name is not None and display_name != first_value(group["attributes"], "cn"):
                new_rdn = f"cn={escape_rdn(display_name)}"
                check(conn, conn.modify_dn(dn, new_rdn, delete_old_dn=True), f"rename {dn}")
            return 1

        return await self._run(update)

    async def replace_group(self, remote_id: str, display_name: str, members: Sequence[str]) -> None:
        await self.update_group(remote_id, display_name=display_name, members=members)

    async def delete_group(self, remote_id: str) -> None:
        def delete(conn: ldap3.Connection) -> None:
            found = self._groups(conn, f"(entryUUID={escape_filter_chars(remote_id)})")
            if found:
                check(conn, conn.delete(found[0]["dn"]), f"delete {found[0]['dn']}")

        await self._run(delete)


# -- operations ---------------------------------------------------------------------------------


def _put_members(conn: ldap3.Connection, dn: str, members: Sequence[str]) -> None:
    unique = list(dict.fromkeys(m for m in members if m != NO_MEMBER)) or [NO_MEMBER]
    check(conn, conn.modify(dn, {"member": [(ldap3.MODIFY_REPLACE, unique)]}), f"modify {dn}")


def _exists(conn: ldap3.Connection, *, dn: str) -> bool:
    return bool(search(conn, dn, "(objectClass=*)", ["objectClass"], scope=ldap3.BASE))


def _missing_classes(conn: ldap3.Connection) -> list[str]:
    """The object classes provisiond writes that the server's subschema (RFC 4512 §4.2) lacks."""
    root = search(conn, "", "(objectClass=*)", ["subschemaSubentry"], scope=ldap3.BASE)
    subschema = first_value(root[0]["attributes"], "subschemaSubentry") if root else None
    found = search(conn, subschema or "cn=Subschema", "(objectClass=subschema)", ["objectClasses"],
                    scope=ldap3.BASE)
    known = " ".join(str(v) for v in (found[0]["attributes"].get("objectClasses") or [])) if found else ""
    return [name for name in ("inetOrgPerson", "groupOfNames") if f"'{name}'" not in known]


def _active(attributes: Mapping[str, Any]) -> bool:
    value = attributes.get("active", True)
    return value is not False and str(value).lower() != "false"


def _wanted_roles(attributes: Mapping[str, Any]) -> set[str]:
    roles = attributes.get("roles") or []
    return {str(r.get("value")) if isinstance(r, Mapping) else str(r) for r in roles}


