"""SCIM Users over the directory's users.

The mapping (docs/scim-server.md has the table): ``userName`` is the login, ``name.givenName``
/ ``familyName`` the first and last name, the one email address is ``emails[0]`` (its type
kept as sent), ``active`` is the status (``active`` <-> true), ``userType`` the employee type;
the enterprise extension carries employeeNumber, department and manager.value; the
provisiond extension carries the custom profile attributes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from pydantic import ValidationError
from scim2_models import Context, EnterpriseUser, PatchOp, User
from scim2_models.exceptions import SCIMException
from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.orm import Session

from provisiond.domain.directory import Lifecycle, Profile, UserStatus
from provisiond.engine.reader import effective_groups
from provisiond.errors import Invalid
from provisiond.services import directory
from provisiond.services.context import Actor
from provisiond.services.inbound import ENTERPRISE, PROFILE, USER, ScimError, invalid_value
from provisiond.services.inbound.filters import (
    Attribute,
    MultiValued,
    Scope,
)
from provisiond.services.inbound.patching import as_boolean, normalise, split_extension
from provisiond.services.inbound.resources import (
    Searchable,
    meta,
    scim_error_of,
    validation_error,
)
from provisiond.store.tables import Group, GroupMember, ScimClient
from provisiond.store.tables import User as UserRow

ScimUser = User[EnterpriseUser]

# The standard profile keys SCIM writes; a PUT clears the ones it does not send.
STANDARD = ("login", "email", "firstName", "lastName", "displayName", "title", "employeeType",
            "employeeNumber", "department", "manager")


def _profile(key: str) -> ColumnElement[Any]:
    return cast("ColumnElement[Any]", UserRow.profile[key].as_string())


def scope(resolve_custom: Any = None) -> Scope:
    """What a Users filter may name (and sortBy sort on)."""
    return dataclasses.replace(_static_scope(), resolve=resolve_custom)


@lru_cache(maxsize=1)
def _static_scope() -> Scope:
    # Built once: making these column expressions costs milliseconds a request.
    enterprise = {
        "employeenumber": Attribute(_profile("employeeNumber")),
        "department": Attribute(_profile("department")),
        "manager.value": Attribute(_profile("manager")),
        "manager": Attribute(_profile("manager")),
    }
    attributes: dict[str, Attribute] = {
        "id": Attribute(UserRow.id, case_exact=True),
        "externalid": Attribute(UserRow.external_id, case_exact=True),
        "username": Attribute(UserRow.login_key, folded=True),
        "name.givenname": Attribute(_profile("firstName")),
        "name.familyname": Attribute(_profile("lastName")),
        "displayname": Attribute(_profile("displayName")),
        "title": Attribute(_profile("title")),
        "usertype": Attribute(_profile("employeeType")),
        "active": Attribute(UserRow.status == UserStatus.ACTIVE.value, kind="boolean"),
        "meta.created": Attribute(UserRow.created_at, kind="dateTime"),
        "meta.lastmodified": Attribute(UserRow.updated_at, kind="dateTime"),
        **enterprise,
        **{f"{ENTERPRISE.lower()}:{name}": attr for name, attr in enterprise.items()},
    }
    email = _profile("email")
    emails = MultiValued(
        scope={
            "value": Attribute(email),
            "type": Attribute(func.coalesce(UserRow.email_type, "work")),
        },
        any_value=lambda condition: and_(email.is_not(None), condition),
    )
    return Scope(
        attributes=attributes,
        multi_valued={"emails": emails},
        schemas=(USER.lower(), ENTERPRISE.lower(), PROFILE.lower()),
    )


def custom_resolver(session: Session) -> Any:
    """Custom profile attributes are filterable once some user has them (as strings)."""

    def resolve(name: str) -> Attribute | None:
        if name in STANDARD or not name.isidentifier():
            return None
        column = _profile(name)
        if not session.scalar(select(exists().where(column.is_not(None)))):
            return None
        return Attribute(column)

    return resolve


def groups_of(session: Session, user_ids: list[str], base: str) -> dict[str, list[dict[str, Any]]]:
    """user id -> its ``groups`` (RFC 7643 §4.1.2): every group it is in, ``direct`` where it
    is a member itself, ``indirect`` through a nested group. One page's users at once."""
    direct = set(session.execute(
        select(GroupMember.user_id, GroupMember.group_id).where(GroupMember.user_id.in_(user_ids))
    ).all())
    if not direct:
        return {}  # the common lookup: no group, one query
    effective = effective_groups(session, user_ids)
    names = dict(session.execute(
        select(Group.id, Group.name).where(Group.id.in_(set().union(*effective.values())))
    ).all())
    return {
        user_id: group_refs(
            {group_id for member, group_id in direct if member == user_id},
            {group_id: names[group_id] for group_id in group_ids if group_id in names},
            base,
        )
        for user_id, group_ids in effective.items()
    }


def group_refs(direct: set[str], names: dict[str, str], base: str) -> list[dict[str, Any]]:
    """A user's ``groups``: ``names`` holds every group it is in (id -> name), ``direct``
    the ids of those it is a member of itself."""
    return sorted(
        ({"value": group_id, "$ref": f"{base}/Groups/{group_id}", "display": name,
          "type": "direct" if group_id in direct else "indirect"}
         for group_id, name in names.items()),
        key=lambda group: (group["display"], group["value"]),
    )


def render_all(session: Session, users: list[UserRow], base: str) -> list[dict[str, Any]]:
    """The SCIM representations of these users, their groups read for all of them at once."""
    groups = groups_of(session, [user.id for user in users], base)
    return [render(user, base, groups.get(user.id)) for user in users]


def render(
    user: UserRow, base: str, groups: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The SCIM representation of a user (every attribute; projection is the caller's).
    ``groups`` is ``groups_of``'s (None: not read, as for a PATCH's starting point)."""
    profile = user.profile
    body: dict[str, Any] = {
        "schemas": [USER],
        "id": user.id,
        "userName": user.login,
        "name": {"givenName": profile.get("firstName"), "familyName": profile.get("lastName")},
        "active": user.status == UserStatus.ACTIVE.value,
        "emails": [
            {"value": profile.get("email"), "type": user.email_type or "work"}
        ],
    }
    if user.external_id is not None:
        body["externalId"] = user.external_id
    for key, attribute in (("displayName", "displayName"), ("title", "title"),
                           ("employeeType", "userType")):
        if profile.get(key) is not None:
            body[attribute] = profile[key]
    enterprise: dict[str, Any] = {
        key: profile[key] for key in ("employeeNumber", "department") if key in profile
    }
    if "manager" in profile:
        enterprise["manager"] = {
            "value": profile["manager"], "$ref": f"{base}/Users/{profile['manager']}"
        }
    if groups:
        body["groups"] = groups
    if enterprise:
        body["schemas"].append(ENTERPRISE)
        body[ENTERPRISE] = enterprise
    custom = {key: value for key, value in profile.items() if key not in STANDARD}
    if custom:
        body["schemas"].append(PROFILE)
        body[PROFILE] = custom
    body["meta"] = meta("User", f"{base}/Users/{user.id}", user.created_at, user.updated_at, body)
    return body


@dataclass(frozen=True)
class UserInput:
    """What a SCIM User body asks of the directory."""

    profile: dict[str, Any]  # the standard keys it sets (absent: cleared on a PUT)
    custom: dict[str, Any] | None  # None: the body did not carry the provisiond extension
    active: bool | None  # None: not sent (a create makes the user active, a PUT keeps it)
    external_id: str | None
    email_type: str | None


def read_input(body: Any, context: Context) -> UserInput:
    """A User body, checked by scim2-models (read-only attributes such as ``id`` and
    ``meta`` dropped, as RFC 7643 §2.2 says), mapped to the directory's fields."""
    if not isinstance(body, dict):
        raise ScimError(400, "invalidSyntax", "the body must be a JSON object")
    body = dict(body)
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or not any(
        isinstance(s, str) and s.lower() == USER.lower() for s in schemas
    ):
        raise ScimError(400, "invalidSyntax", f"schemas must list {USER}")
    custom_key = next((key for key in body if key.lower() == PROFILE.lower()), None)
    custom = body.pop(custom_key) if custom_key else None
    if custom is not None and not isinstance(custom, dict):
        raise invalid_value(f"{PROFILE} must be an object of custom attributes")
    body["schemas"] = [s for s in schemas if not (isinstance(s, str) and s.lower() == PROFILE.lower())]
    if "active" in body:
        body["active"] = as_boolean(body["active"])
    try:
        user = ScimUser.model_validate(body, scim_ctx=context)
    except ValidationError as exc:
        raise validation_error(exc) from None
    except SCIMException as exc:
        raise scim_error_of(exc) from None
    return _input_of(user, custom)


def _input_of(user: ScimUser, custom: dict[str, Any] | None) -> UserInput:
    if not user.user_name:
        raise invalid_value("userName is required")
    emails = [email for email in user.emails or () if email.value]
    email = next((e for e in emails if e.primary), emails[0] if emails else None)
    if email is None:
        raise invalid_value("emails: the directory needs one email address per user")
    name = user.name
    if name is None or not name.given_name or not name.family_name:
        raise invalid_value("name.givenName and name.familyName are required by the directory")
    profile: dict[str, Any] = {
        "login": user.user_name,
        "email": email.value,
        "firstName": name.given_name,
        "lastName": name.family_name,
        "displayName": user.display_name,
        "title": user.title,
        "employeeType": user.user_type,
    }
    enterprise = user[EnterpriseUser]
    if enterprise is not None:
        profile["employeeNumber"] = enterprise.employee_number
        profile["department"] = enterprise.department
        profile["manager"] = enterprise.manager.value if enterprise.manager else None
    # scim2-models may read a canonical type ("work") as an enum member: keep its value.
    email_type = str(getattr(email.type, "value", email.type)) if email.type else None
    return UserInput(
        profile={key: value for key, value in profile.items() if value is not None},
        custom=custom,
        active=user.active,
        external_id=user.external_id,
        email_type=email_type,
    )


def _checked_profile(values: dict[str, Any]) -> Profile:
    try:
        return Profile.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "profile"
        raise invalid_value(f"{where}: {first['msg']}") from None


def create(session: Session, actor: Actor, client: ScimClient, data: UserInput) -> UserRow:
    """A new directory user owned by ``client``; 409 uniqueness if the userName is taken."""
    profile = _checked_profile({**(data.custom or {}), **data.profile})
    user = directory.create_user(session, actor, profile, activate=data.active is not False)
    user.source = client.id
    user.external_id = data.external_id
    user.email_type = data.email_type
    session.flush()
    return user


def replace(session: Session, actor: Actor, user: UserRow, data: UserInput) -> UserRow:
    """Make the user what ``data`` says (PUT; PATCH computes the whole resource first).

    Standard attributes the body leaves out are cleared, as RFC 7644 §3.5.1 says; custom
    attributes only when the body carries the provisiond extension: Okta and Entra never
    send it, and must not wipe what an admin keeps there.
    """
    changes: dict[str, Any] = {key: data.profile.get(key) for key in STANDARD}
    if data.custom is not None:
        current = {key for key in user.profile if key not in STANDARD}
        changes.update({key: None for key in current - set(data.custom)})
        changes.update(data.custom)
    # Only what differs: an unchanged userName is not checked for uniqueness again.
    changes = {key: value for key, value in changes.items() if user.profile.get(key) != value}
    _checked_profile({k: v for k, v in {**user.profile, **changes}.items() if v is not None})
    if changes:
        try:
            directory.update_user(session, actor, user.id, changes)
        except Invalid as exc:
            raise invalid_value(exc.detail) from None
    user.external_id = data.external_id
    user.email_type = data.email_type
    if data.active is not None:
        set_active(session, actor, user, data.active)
    return user


def set_active(session: Session, actor: Actor, user: UserRow, active: bool) -> None:
    """``active: false`` deprovisions the user downstream (Okta's and Entra's deactivate);
    ``active: true`` brings them back."""
    status = UserStatus(user.status)
    action: Lifecycle | None = None
    if active and status in (UserStatus.STAGED, UserStatus.DEPROVISIONED):
        action = Lifecycle.ACTIVATE
    elif active and status == UserStatus.SUSPENDED:
        action = Lifecycle.UNSUSPEND
    elif not active and status == UserStatus.ACTIVE:
        action = Lifecycle.DEACTIVATE
    if action is not None:
        directory.change_lifecycle(session, actor, user.id, action)


def patch(session: Session, actor: Actor, user: UserRow, body: Any, base: str) -> UserRow:
    """Apply a PatchOp (RFC 7644 §3.5.2, with Okta's and Entra's dialects) to the whole
    resource, then write the result as a PUT would: one validation, one transaction."""
    operations = normalise(body)
    current = render(user, base)
    custom = dict(current.pop(PROFILE, {}))
    current["schemas"] = [s for s in current["schemas"] if s != PROFILE]
    operations, custom_changed = split_extension(operations, PROFILE, custom)
    resource = ScimUser.model_validate(current)
    if operations:
        try:
            request = PatchOp[ScimUser].model_validate(
                {"schemas": body["schemas"], "Operations": operations},
                scim_ctx=Context.RESOURCE_PATCH_REQUEST,
            )
            request.patch(resource)
        except ValidationError as exc:
            raise validation_error(exc) from None
        except SCIMException as exc:
            raise scim_error_of(exc) from None
    return replace(session, actor, user, _input_of(resource, custom if custom_changed else None))


def delete(session: Session, actor: Actor, user: UserRow) -> None:
    """Deprovision (if need be) and delete, in one transaction."""
    if user.status != UserStatus.DEPROVISIONED.value:
        directory.change_lifecycle(session, actor, user.id, Lifecycle.DEACTIVATE)
    directory.delete_user(session, actor, user.id)


def _sort_attribute(user_scope: Scope, sort_by: str) -> Attribute | None:
    name = _unqualified(sort_by)
    if name == "emails.value":
        return user_scope.multi_valued["emails"].scope["value"]
    return user_scope.attributes.get(name)


SEARCHABLE = Searchable(
    model=UserRow,
    scope=lambda session: scope(custom_resolver(session)),
    default_order=Attribute(UserRow.login_key, folded=True),
    sort_attribute=_sort_attribute,
)


def _unqualified(name: str) -> str:
    lowered = name.lower()
    if lowered.startswith(USER.lower() + ":"):
        return lowered[len(USER) + 1 :]
    if lowered == "emails" or lowered == "emails.value":
        return "emails.value"
    return lowered
