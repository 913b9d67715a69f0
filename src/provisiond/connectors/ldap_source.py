"""Reading an LDAP directory as a source of people and groups (for services.ldap_import).

Entries are read with the simple paged results control (RFC 2696) so a large directory comes
in pages rather than one answer the server may cut at its size limit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import ldap3

from provisiond.connectors.destinations import DestinationPolicy
from provisiond.connectors.ldap_link import LdapLink, check
from provisiond.domain.ldap_import import LdapSource, SourceEntry
from provisiond.errors import TerminalError

PAGE_SIZE = 500
# The operational attribute (RFC 4512) incremental reads resume from; asked for by name.
MODIFIED = "modifyTimestamp"
GENERALIZED_TIME = re.compile(r"[0-9]{14}(\.[0-9]{1,6})?Z")  # ASCII digits only


async def read_source(
    source: LdapSource, policy: DestinationPolicy, *, since: str | None = None
) -> tuple[list[SourceEntry], dict[str, list[str]]]:
    """The user entries the source's filter selects, and its groups (name -> member DNs).

    ``since`` (a GeneralizedTime): only the entries modified since then, and no groups — a
    membership change touches the group's entry, not the user's, so only a full read sees it."""
    link = LdapLink(source, concurrency=1, policy=policy)
    try:
        return await link.run(lambda conn: _read(conn, source, since))
    finally:
        await link.aclose()


def high_water(entries: Sequence[SourceEntry]) -> str | None:
    """The highest modifyTimestamp among the entries (None if the server gives none).
    GeneralizedTime in UTC ("20261201155700Z") orders as text."""
    stamps = [
        str(value)
        for entry in entries
        for name, values in entry.attributes.items()
        if name.lower() == MODIFIED.lower()
        for value in values
    ]
    # Only a well-formed stamp goes into the next filter: nothing the server sent is spliced in.
    return max((s for s in stamps if GENERALIZED_TIME.fullmatch(s)), default=None)


def _read(
    conn: ldap3.Connection, source: LdapSource, since: str | None
) -> tuple[list[SourceEntry], dict[str, list[str]]]:
    wanted = sorted(set(source.mapping.values()) | {MODIFIED})
    if source.disabled_attribute:
        wanted.append(source.disabled_attribute)
    query = source.filter if since is None else f"(&{source.filter}({MODIFIED}>={since}))"
    users = [
        SourceEntry(dn, attributes)
        for dn, attributes in _paged(conn, source.base_dn, query, wanted)
    ]
    groups: dict[str, list[str]] = {}
    if source.group_base_dn and since is None:
        for _, attributes in _paged(conn, source.group_base_dn, source.group_filter, ["cn", "member"]):
            names = attributes.get("cn") or []
            if names:
                groups[str(names[0])] = [str(m) for m in attributes.get("member") or [] if m]
    return users, groups


def _paged(
    conn: ldap3.Connection, base: str, query: str, attributes: Sequence[str]
) -> list[tuple[str, dict[str, list[Any]]]]:
    out: list[tuple[str, dict[str, list[Any]]]] = []
    cookie: Any = None
    while True:
        ok = conn.search(
            base, query, search_scope=ldap3.SUBTREE, attributes=list(attributes),
            paged_size=PAGE_SIZE, paged_cookie=cookie,
        )
        code = conn.result.get("result")
        if code == 32:
            raise TerminalError(f"LDAP search {base}: the base DN does not exist")
        if code == 87:
            raise TerminalError(f"LDAP search {base}: the server refused the filter {query}")
        if not ok and code != 0:
            check(conn, ok, f"search {base}")
        for entry in conn.response or []:
            if entry.get("type") == "searchResEntry":
                values = {
                    name: value if isinstance(value, list) else [value]
                    for name, value in dict(entry["attributes"]).items()
                }
                out.append((entry["dn"], values))
        controls = conn.result.get("controls") or {}
        cookie = controls.get("1.2.840.113556.1.4.319", {}).get("value", {}).get("cookie")
        if not cookie:
            return out
