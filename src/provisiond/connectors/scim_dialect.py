"""Pure functions that speak one SCIM dialect: request bodies shaped by a ``ScimProfile``, and
the client-side matching an app without filters needs. No I/O: ``connectors/scim.py`` sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from provisiond.connectors.base import Change, RemoteGroup, RemoteUser
from provisiond.domain.dialects import ScimProfile
from provisiond.errors import TerminalError

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
# RFC 7643: only these of the attributes provisiond matches on compare case-sensitively
# (§3.1 id and externalId are caseExact; userName §4.1.1 and emails.value §4.1.2 are not).
_CASE_EXACT = frozenset({"id", "externalid"})


def patch_body(operations: Iterable[Mapping[str, Any]], profile: ScimProfile) -> dict[str, Any]:
    """A PatchOp (RFC 7644 §3.5.2) with the profile's op case and boolean encoding."""
    shaped = []
    for operation in operations:
        op = str(operation["op"]).lower()
        shaped.append(
            {**operation, "op": op.capitalize() if profile.op_case == "capitalised" else op}
        )
    return encoded({"schemas": [PATCH_OP], "Operations": shaped}, profile)


def encoded(body: dict[str, Any], profile: ScimProfile) -> dict[str, Any]:
    """``body`` as the app wants it: booleans as strings where the profile says so, and no
    ``active`` for an app that has none (deactivation deletes there)."""
    if profile.deactivate_by == "delete":
        body = _without_active(body)
    if profile.booleans == "string":
        strings: dict[str, Any] = stringified(body)
        return strings
    return body


def stringified(value: Any) -> Any:
    """``value`` with every boolean as the string ``"True"`` or ``"False"``, as Entra sends them."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        return {k: stringified(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stringified(v) for v in value]
    return value


def _without_active(body: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in body.items() if k.lower() != "active"}
    if isinstance(kept.get("Operations"), list):
        kept["Operations"] = [
            {**o, "value": _without_active(o["value"])} if isinstance(o.get("value"), dict) else o
            for o in kept["Operations"]
            if str(o.get("path", "")).lower() != "active"
        ]
    return kept


def user_operations(
    paths: Sequence[tuple[str, Any]], changes: Sequence[Change], profile: ScimProfile
) -> list[dict[str, Any]]:
    """The operations of a user PATCH: one per attribute path (the RFC's), or, for a no-path
    app, one ``replace`` whose value holds every changed attribute (RFC 7644 §3.5.2.3; a
    removed attribute is replaced by null there, the only removal without a path)."""
    if profile.patch == "no-path":
        return [{"op": "replace", "value": {c.attribute: c.new for c in changes}}]
    return [
        {"op": "remove", "path": path}
        if value is None
        else {"op": "replace", "path": path, "value": value}
        for path, value in paths
    ]


def member_removals(
    remove: Sequence[str], profile: ScimProfile
) -> list[tuple[dict[str, Any], list[str]]]:
    """Removal operations and the members each removes: one ``members[value eq "…"]`` filter
    each (RFC 7644 §3.5.2.2), or batches of values on path ``members`` (Entra's dialect)."""
    if profile.membership == "value-list":
        size = profile.members_per_request
        batches = [list(remove[i : i + size]) for i in range(0, len(remove), size)]
        return [({"op": "remove", "path": "members", "value": refs(b)}, b) for b in batches]
    return [({"op": "remove", "path": f'members[value eq "{quoted(m)}"]'}, [m]) for m in remove]


def refs(members: Sequence[str]) -> list[dict[str, str]]:
    return [{"value": member} for member in members]


def quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def unmet(group: RemoteGroup, add: Iterable[str], remove: Iterable[str]) -> str | None:
    """What the group an app returned after a member change says was not done, if anything."""
    kept = sorted(set(remove) & group.members)
    missing = sorted(set(add) - group.members)
    if kept:
        return f"the group it returned still holds {len(kept)} removed member(s): {kept[:5]}"
    if missing:
        return f"the group it returned lacks {len(missing)} added member(s): {missing[:5]}"
    return None


def matches(user: RemoteUser, attribute: str, value: str) -> bool:
    """Whether ``user`` has ``value`` at ``attribute`` (``userName``, ``emails.value``...), by
    the RFC's rules: names case-insensitive (RFC 7643 §2.1), values by the attribute's caseExact."""
    return match_key(attribute, value) in match_keys(user, attribute)


def match_key(attribute: str, value: str) -> str:
    """``value`` as it compares at ``attribute``: as is where caseExact, else case-folded."""
    return value if attribute.lower() in _CASE_EXACT else value.casefold()


def match_keys(user: RemoteUser, attribute: str) -> set[str]:
    """Every key ``user`` is found by at ``attribute`` (a multi-valued one has several)."""
    return {
        match_key(attribute, found)
        for found in _values(user.attributes, attribute.split("."))
        if isinstance(found, str)
    }


def _values(node: Any, path: list[str]) -> Iterable[Any]:
    if not path:
        yield node
        return
    if isinstance(node, list):
        for item in node:
            yield from _values(item, path)
        return
    if isinstance(node, Mapping):
        name = path[0].lower()
        for key, child in node.items():
            if isinstance(key, str) and key.lower() == name:
                yield from _values(child, path[1:])


def only_match(found: list[RemoteUser], attribute: str, value: str) -> RemoteUser | None:
    if len(found) > 1:
        raise TerminalError(
            f"{len(found)} accounts match {attribute} eq {value!r}: refusing to guess"
        )
    return found[0] if found else None
