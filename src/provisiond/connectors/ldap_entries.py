"""SCIM attributes as LDAP entries and back (pure): inetOrgPerson (RFC 2798) for accounts.

The policy's mappings produce SCIM User attributes for every kind of app; this is the one
table that says where each lands in an inetOrgPerson entry. The entry's RDN comes from the
app's ``user_rdn`` template, its values escaped (RFC 4514 §2.4), so any user name gives a
valid DN.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from ldap3.utils.dn import escape_rdn

from provisiond.errors import TerminalError

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PERSON_CLASSES = ("top", "person", "organizationalPerson", "inetOrgPerson")
# The inetOrgPerson attributes provisiond writes (and so clears when the policy stops
# giving a value); any other attribute of the entry is the directory's own and kept.
MANAGED = (
    "uid",
    "cn",
    "sn",
    "givenName",
    "displayName",
    "mail",
    "title",
    "telephoneNumber",
    "preferredLanguage",
    "employeeNumber",
    "departmentNumber",
)


def scim_value(attributes: Mapping[str, Any], path: str) -> Any:
    """The value at ``path`` (``userName``, ``name.familyName``, ``emails``: the primary
    value) of a SCIM resource, or None."""
    head, _, sub = path.partition(".")
    value = _get(attributes, head)
    if value is None:
        value = _get(attributes.get(ENTERPRISE) or {}, head)
    if isinstance(value, list):
        value = _primary(value)
    if sub:
        return _get(value, sub) if isinstance(value, Mapping) else None
    if isinstance(value, Mapping):
        return value.get("value")
    return value


def _get(document: Mapping[str, Any], name: str) -> Any:
    # RFC 7643 §2.1: attribute names are case-insensitive.
    return next((v for k, v in document.items() if k.lower() == name.lower()), None)


def _primary(values: list[Any]) -> Any:
    if not values:
        return None
    chosen = next((v for v in values if isinstance(v, Mapping) and v.get("primary")), values[0])
    return chosen


def person_attributes(attributes: Mapping[str, Any]) -> dict[str, list[str]]:
    """The inetOrgPerson attributes a SCIM User gives (each as a list of values)."""
    user_name = _text(scim_value(attributes, "userName"))
    if not user_name:
        raise TerminalError("the account has no userName: an LDAP entry needs a uid")
    given, family = _text(scim_value(attributes, "name.givenName")), _text(
        scim_value(attributes, "name.familyName")
    )
    display = _text(scim_value(attributes, "displayName"))
    full = " ".join(part for part in (given, family) if part)
    values = {
        "uid": user_name,
        # cn and sn are required by person (RFC 4519): the best name there is, then the login.
        "cn": display or _text(scim_value(attributes, "name.formatted")) or full or user_name,
        "sn": family or user_name,
        "givenName": given,
        "displayName": display,
        "mail": _text(scim_value(attributes, "emails")),
        "title": _text(scim_value(attributes, "title")),
        "telephoneNumber": _text(scim_value(attributes, "phoneNumbers")),
        "preferredLanguage": _text(scim_value(attributes, "preferredLanguage")),
        "employeeNumber": _text(scim_value(attributes, "employeeNumber")),
        "departmentNumber": _text(scim_value(attributes, "department")),
    }
    return {name: [value] for name, value in values.items() if value}


def scim_attributes(entry: Mapping[str, Any], active: bool) -> dict[str, Any]:
    """An entry read back, in the SCIM shape the engine compares with what it applied."""

    def first(name: str) -> str | None:
        value = entry.get(name)
        if isinstance(value, list):
            return str(value[0]) if value else None
        return None if value is None else str(value)

    out: dict[str, Any] = {"userName": first("uid"), "active": active}
    name = {k: v for k, v in (("givenName", first("givenName")), ("familyName", first("sn"))) if v}
    if name:
        out["name"] = name
    if first("displayName"):
        out["displayName"] = first("displayName")
    if first("mail"):
        out["emails"] = [{"value": first("mail"), "type": "work", "primary": True}]
    if first("title"):
        out["title"] = first("title")
    return out


def render_rdn(template: str, attributes: Mapping[str, Any]) -> str:
    """``user_rdn`` (``uid={userName}``) with the account's values, each escaped; a
    TerminalError names the attribute the account lacks."""
    attribute, _, value_template = template.partition("=")
    out = [f"{attribute.strip()}="]
    for literal, field, _, _ in string.Formatter().parse(value_template):
        out.append(escape_rdn(literal) if literal else "")
        if field is None:
            continue
        value = _text(scim_value(attributes, field))
        if not value:
            raise TerminalError(
                f"the DN template {template} gives no DN: the account has no {field}"
            )
        out.append(escape_rdn(value))
    return "".join(out)


def parent_of(dn: str) -> str:
    """The DN an entry is under (its first RDN cut off, escaped commas kept)."""
    escaped = False
    for index, ch in enumerate(dn):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            return dn[index + 1 :]
    return ""


def rdn_of(dn: str) -> str:
    parent = parent_of(dn)
    return dn[: len(dn) - len(parent) - 1] if parent else dn


def same_dn(a: str, b: str) -> bool:
    """DNs compared as LDAP does for the attribute types used here (case-insensitive), however
    each escapes a value: a server answers ``cn=Ada\\2C B`` for the ``cn=Ada\\, B`` it was sent."""
    return dn_key(a) == dn_key(b)


def dn_key(dn: str) -> tuple[tuple[str, str], ...]:
    key = []
    rest = dn
    while rest:
        parent = parent_of(rest)
        rdn = rest[: len(rest) - len(parent) - 1] if parent else rest
        attribute, _, value = rdn.partition("=")
        key.append((attribute.strip().lower(), unescape(value.strip()).lower()))
        rest = parent
    return tuple(key)


def unescape(value: str) -> str:
    """An RDN value without its RFC 4514 escapes (``\\,`` and ``\\2C`` alike)."""
    out = bytearray()
    index = 0
    while index < len(value):
        ch = value[index]
        pair = value[index + 1 : index + 3]
        if ch == "\\" and len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
            out += bytes.fromhex(pair)
            index += 3
        elif ch == "\\" and index + 1 < len(value):
            out += value[index + 1].encode()
            index += 2
        else:
            out += ch.encode()
            index += 1
    return out.decode(errors="replace")


def _text(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, Mapping | list):
        return None
    return str(value)
