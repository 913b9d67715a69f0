"""SCIM Groups over the directory's groups: ``displayName`` is the name, ``members`` the direct
members, users (type "User") and nested groups (type "Group")."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    exists,
    literal,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from provisiond.errors import Conflict, Invalid
from provisiond.services import directory, nesting
from provisiond.services.context import Actor
from provisiond.services.inbound import GROUP, ScimError, invalid_value
from provisiond.services.inbound.filters import (
    Attribute,
    InvalidFilter,
    MultiValued,
    Scope,
    compile_filter,
)
from provisiond.services.inbound.patching import normalise
from provisiond.services.inbound.resources import Searchable, meta
from provisiond.store.tables import Group, GroupChild, GroupMember, ScimClient, User, utcnow

# Every direct member of every group, as SCIM sees one: (group, value, type).
_MEMBERS = union_all(
    select(
        GroupMember.group_id.label("group_id"),
        GroupMember.user_id.label("value"),
        literal("User").label("type"),
    ),
    select(
        GroupChild.parent_id.label("group_id"),
        GroupChild.child_id.label("value"),
        literal("Group").label("type"),
    ),
).subquery("scim_members")


def _any_member(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(_MEMBERS.c.group_id == Group.id, condition)


MEMBER_SCOPE = {
    "value": Attribute(_MEMBERS.c.value, case_exact=True),
    "type": Attribute(_MEMBERS.c.type, case_exact=True),
}


@lru_cache(maxsize=1)
def scope() -> Scope:
    return Scope(
        attributes={
            "id": Attribute(Group.id, case_exact=True),
            "externalid": Attribute(Group.external_id, case_exact=True),
            "displayname": Attribute(Group.name_key, folded=True),
            "meta.created": Attribute(Group.created_at, kind="dateTime"),
            "meta.lastmodified": Attribute(Group.updated_at, kind="dateTime"),
        },
        multi_valued={"members": MultiValued(scope=MEMBER_SCOPE, any_value=_any_member)},
        schemas=(GROUP.lower(),),
    )


def render(session: Session, group: Group, base: str, *, with_members: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [GROUP], "id": group.id, "displayName": group.name}
    if group.external_id is not None:
        body["externalId"] = group.external_id
    if with_members:
        rows = session.execute(
            select(_MEMBERS.c.value, _MEMBERS.c.type)
            .where(_MEMBERS.c.group_id == group.id)
            .order_by(_MEMBERS.c.type.desc(), _MEMBERS.c.value)  # users first, stable
        ).all()
        members = [
            {"value": value, "type": kind, "$ref": f"{base}/{kind}s/{value}"}
            for value, kind in rows
        ]
        if members:
            body["members"] = members
    body["meta"] = meta("Group", f"{base}/Groups/{group.id}", group.created_at, group.updated_at,
                        body)
    return body


def _read(body: Any) -> tuple[str, str | None, list[tuple[str, str | None]]]:
    """(displayName, externalId, members as (value, type)) of a Group body."""
    if not isinstance(body, dict):
        raise ScimError(400, "invalidSyntax", "the body must be a JSON object")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or GROUP not in schemas:
        raise ScimError(400, "invalidSyntax", f"schemas must list {GROUP}")
    name = body.get("displayName")
    if not isinstance(name, str) or not name.strip() or len(name) > 256:
        raise invalid_value("displayName is required: 1-256 characters")
    external_id = body.get("externalId")
    if external_id is not None and not isinstance(external_id, str):
        raise invalid_value("externalId must be a string")
    return name.strip(), external_id, _members(body.get("members") or [])


def _members(value: Any) -> list[tuple[str, str | None]]:
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise invalid_value("members must be a list of {value, type}")
    out: list[tuple[str, str | None]] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise invalid_value("each member has a value: the id of a user or a group")
        kind = item.get("type")
        if kind is not None and kind not in ("User", "Group"):
            raise invalid_value(f"a member's type is User or Group, not {kind!r}")
        out.append((item["value"], kind))
    return out


def _current(session: Session, group_id: str) -> set[tuple[str, str]]:
    rows = session.execute(
        select(_MEMBERS.c.value, _MEMBERS.c.type).where(_MEMBERS.c.group_id == group_id)
    ).all()
    return {(value, kind) for value, kind in rows}


def _resolve(session: Session, members: Iterable[tuple[str, str | None]]) -> set[tuple[str, str]]:
    """Each member as (id, "User" | "Group"); an id that names neither is refused."""
    out: set[tuple[str, str]] = set()
    for value, kind in members:
        if kind != "Group" and session.get(User, value) is not None:
            out.add((value, "User"))
        elif kind != "User" and session.get(Group, value) is not None:
            out.add((value, "Group"))
        else:
            raise invalid_value(f"no {kind or 'user or group'} with id {value!r} to be a member")
    return out


def _add(session: Session, actor: Actor, group: Group, members: set[tuple[str, str]]) -> None:
    try:
        for value, kind in sorted(members):
            if kind == "User":
                directory.add_member(session, actor, group.id, value)
            else:
                nesting.add_child(session, actor, group.id, value)
    except (Conflict, Invalid) as exc:  # a rule group, a cycle
        raise ScimError(400, "invalidValue", exc.detail) from None


def _remove(session: Session, actor: Actor, group: Group, members: set[tuple[str, str]]) -> None:
    for value, kind in sorted(members):
        if kind == "User":
            directory.remove_member(session, actor, group.id, value)
        else:
            nesting.remove_child(session, actor, group.id, value)


def _set_members(session: Session, actor: Actor, group: Group, wanted: set[tuple[str, str]]) -> None:
    current = _current(session, group.id)
    _remove(session, actor, group, current - wanted)
    _add(session, actor, group, wanted - current)


def create(session: Session, actor: Actor, client: ScimClient, body: Any) -> Group:
    name, external_id, members = _read(body)
    wanted = _resolve(session, members)
    try:
        group = directory.create_group(session, actor, name, None)
    except Conflict as exc:
        raise ScimError(409, "uniqueness", exc.detail) from None
    group.source, group.external_id = client.id, external_id
    _add(session, actor, group, wanted)
    return group


def _rename(session: Session, actor: Actor, group: Group, name: str) -> None:
    try:
        directory.update_group(session, actor, group.id, name, None)
    except Conflict as exc:
        raise ScimError(409, "uniqueness", exc.detail) from None


def replace(session: Session, actor: Actor, group: Group, body: Any) -> Group:
    name, external_id, members = _read(body)
    wanted = _resolve(session, members)
    _rename(session, actor, group, name)
    group.external_id = external_id
    _set_members(session, actor, group, wanted)
    _touch(group)
    return group


def _touch(group: Group) -> None:
    # Membership is part of the resource: meta.lastModified moves with it.
    group.updated_at = utcnow()


def patch(session: Session, actor: Actor, group: Group, body: Any, dialect: str) -> Group:
    """add / replace / remove on displayName, externalId and members, with value filters
    (``members[value eq "…"]``), as Okta and Entra send them."""
    for operation in normalise(body):
        op, path, value = operation["op"], operation.get("path"), operation.get("value")
        if op not in ("add", "replace", "remove"):
            raise invalid_value(f"{op!r} is not a PATCH operation: add, remove or replace")
        if path is None:
            if op == "remove" or not isinstance(value, dict):
                raise ScimError(400, "noTarget" if op == "remove" else "invalidValue",
                                "an operation without a path adds or replaces an object")
            for key, item in value.items():
                _patch_attribute(session, actor, group, op, key, None, item, dialect)
            continue
        _patch_path(session, actor, group, op, path, value, dialect)
    _touch(group)
    return group


def _patch_path(
    session: Session, actor: Actor, group: Group, op: str, path: str, value: Any, dialect: str
) -> None:
    text = path.strip()
    if text.lower().startswith(GROUP.lower() + ":"):
        text = text[len(GROUP) + 1 :]
    if "[" in text:
        attribute, _, rest = text.partition("[")
        condition, _, tail = rest.rpartition("]")
        if attribute.strip().lower() != "members" or tail:
            raise ScimError(400, "invalidPath", f"cannot patch {path}")
        _patch_attribute(session, actor, group, op, "members", condition, value, dialect)
        return
    _patch_attribute(session, actor, group, op, text, None, value, dialect)


def _patch_attribute(
    session: Session, actor: Actor, group: Group, op: str, name: str, condition: str | None,
    value: Any, dialect: str,
) -> None:
    key = name.lower()
    if key == "displayname":
        if op == "remove":
            raise invalid_value("displayName is required")
        if not isinstance(value, str) or not value.strip():
            raise invalid_value("displayName is a non-empty string")
        _rename(session, actor, group, value.strip())
    elif key == "externalid":
        if op != "remove" and value is not None and not isinstance(value, str):
            raise invalid_value("externalId must be a string")
        group.external_id = None if op == "remove" else value
    elif key in ("members", "members.value"):
        _patch_members(session, actor, group, op, condition, value, dialect)
    elif key in ("id", "meta", "schemas"):
        raise ScimError(400, "mutability", f"{name} is read-only")
    else:
        raise ScimError(400, "invalidPath", f"Groups have no attribute {name}")


def _patch_members(
    session: Session, actor: Actor, group: Group, op: str, condition: str | None, value: Any,
    dialect: str,
) -> None:
    if condition is not None:
        if op != "remove":
            raise ScimError(400, "invalidPath", "a members[...] filter selects members to remove")
        _remove(session, actor, group, _matching(session, group, condition, dialect))
        return
    if op == "remove":
        if value is None:
            _remove(session, actor, group, _current(session, group.id))
            return
        asked = {v for v, _ in _members(value)}
        _remove(session, actor, group, {m for m in _current(session, group.id) if m[0] in asked})
        return
    wanted = _resolve(session, _members(value if value is not None else []))
    if op == "replace":
        _set_members(session, actor, group, wanted)
    else:
        _add(session, actor, group, wanted - _current(session, group.id))


def _matching(session: Session, group: Group, condition: str, dialect: str) -> set[tuple[str, str]]:
    try:
        where = compile_filter(condition, Scope(MEMBER_SCOPE), dialect)
    except InvalidFilter as exc:
        raise ScimError(400, "invalidFilter", str(exc)) from None
    rows = session.execute(
        select(_MEMBERS.c.value, _MEMBERS.c.type).where(_MEMBERS.c.group_id == group.id, where)
    ).all()
    return {(value, kind) for value, kind in rows}


def delete(session: Session, actor: Actor, group: Group) -> None:
    directory.delete_group(session, actor, group.id)


SEARCHABLE = Searchable(
    model=Group,
    scope=lambda _session: scope(),
    default_order=Attribute(Group.name_key, folded=True),
    sort_attribute=lambda group_scope, name: group_scope.attributes.get(
        name.lower().removeprefix(GROUP.lower() + ":")
    ),
)
