"""Managing the directory: users, their lifecycle, groups and memberships.

Each change reconciles the accounts it affects, in the same transaction (engine.queue).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from provisiond.domain.directory import Lifecycle, Profile, UserStatus, next_status
from provisiond.errors import Conflict, Invalid, NotFound
from provisiond.services import activity, group_rules, membership, pushes, reach, runs
from provisiond.services.context import Actor
from provisiond.store.tables import App, Assignment, Group, GroupMember, User, utcnow


def login_key(login: str) -> str:
    return login.casefold()


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id!r}")
    return user


def list_users(
    session: Session, *, status: str | None, q: str | None, limit: int, after: str | None
) -> tuple[Sequence[User], str | None]:
    statement = select(User)
    if status:
        statement = statement.where(User.status == status)
    if q:
        like = "%" + q.casefold().replace("%", "").replace("_", "") + "%"
        statement = statement.where(User.login_key.like(like))
    if after:
        statement = statement.where(User.login_key > after)
    rows = session.scalars(statement.order_by(User.login_key).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].login_key if more and rows else None)


def _ensure_login_free(session: Session, login: str, except_id: str | None = None) -> None:
    clash = session.scalar(select(User).where(User.login_key == login_key(login)))
    if clash is not None and clash.id != except_id:
        raise Conflict(f"login {login!r} is already taken", field="profile.login")


def create_user(session: Session, actor: Actor, profile: Profile, *, activate: bool) -> User:
    _ensure_login_free(session, profile.login)
    status = UserStatus.ACTIVE if activate else UserStatus.STAGED
    user = User(
        login=profile.login,
        login_key=login_key(profile.login),
        status=status.value,
        profile=profile.as_dict(),
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create won the race
        raise Conflict(f"login {profile.login!r} is already taken", field="profile.login") from exc
    activity.record(
        session,
        actor,
        "user.lifecycle.create",
        f"created user {user.login} ({status.value})",
        user_id=user.id,
        targets={"user": user.login},
    )
    changed = group_rules.apply_to_user(session, actor, user)
    if changed:
        _reconcile_user(session, actor, user.id, "group.rule", changed)
    return user


def update_user(session: Session, actor: Actor, user_id: str, changes: dict[str, Any]) -> User:
    """Merge ``changes`` into the profile (``null`` removes an optional or custom attribute)."""
    user = get_user(session, user_id)
    merged = {**user.profile, **changes}
    merged = {key: value for key, value in merged.items() if value is not None}
    try:
        profile = Profile.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "profile"
        raise Invalid(f"profile.{where}: {first['msg']}", field=f"profile.{where}") from exc
    if "login" in changes:
        _ensure_login_free(session, profile.login, except_id=user.id)
    new_profile = profile.as_dict()
    diff = {
        key: {"old": user.profile.get(key), "new": new_profile.get(key)}
        for key in sorted(set(user.profile) | set(new_profile))
        if user.profile.get(key) != new_profile.get(key)
    }
    if not diff:
        return user
    user.profile = new_profile
    user.login = profile.login
    user.login_key = login_key(profile.login)
    user.updated_at = utcnow()
    activity.record(
        session,
        actor,
        "user.account.update_profile",
        f"updated profile of {user.login}",
        user_id=user.id,
        targets={"user": user.login},
        details={"changes": diff},
    )
    changed = group_rules.apply_to_user(session, actor, user)
    _reconcile_user(session, actor, user.id, "user.profile", changed)
    return user


_PAST = {
    Lifecycle.ACTIVATE: "activated",
    Lifecycle.SUSPEND: "suspended",
    Lifecycle.UNSUSPEND: "unsuspended",
    Lifecycle.DEACTIVATE: "deactivated",
}


def change_lifecycle(session: Session, actor: Actor, user_id: str, action: Lifecycle) -> User:
    user = get_user(session, user_id)
    before = UserStatus(user.status)
    after = next_status(before, action)
    user.status = after.value
    user.status_changed_at = user.updated_at = utcnow()
    activity.record(
        session,
        actor,
        f"user.lifecycle.{action.value}",
        f"{_PAST[action]} user {user.login}: {before.value} -> {after.value}",
        user_id=user.id,
        targets={"user": user.login},
        details={"from": before.value, "to": after.value},
    )
    changed = group_rules.apply_to_user(session, actor, user)
    _reconcile_user(session, actor, user.id, f"user.lifecycle.{action.value}", changed)
    return user


def delete_user(session: Session, actor: Actor, user_id: str) -> None:
    """Remove a user; only once deprovisioned, so that every account was deprovisioned first."""
    user = get_user(session, user_id)
    if user.status != UserStatus.DEPROVISIONED.value:
        raise Conflict(
            f"deactivate user {user.login} before deleting it (status is {user.status})",
            current_status=user.status,
        )
    apps = reach.apps_of_user(session, user.id)
    groups = reach.effective_groups_of(session, user.id)
    session.delete(user)
    activity.record(
        session,
        actor,
        "user.lifecycle.delete",
        f"deleted user {user.login}",
        user_id=user_id,
        targets={"user": user.login},
    )
    # Any account still held is deprovisioned from the account record.
    _reconcile(session, actor, apps, [user_id], "user.delete")
    pushes.groups_changed(session, actor, groups, "user.delete")


def _reconcile_user(
    session: Session, actor: Actor, user_id: str, reason: str, groups_changed: Iterable[str] = ()
) -> None:
    """Reconcile the user in their apps, and in those of groups they just joined or left."""
    session.flush()
    apps = reach.apps_of_user(session, user_id)
    if groups_changed:
        apps |= reach.apps_of_groups(session, reach.ancestors_of(session, groups_changed))
    _reconcile(session, actor, apps, [user_id], reason)
    pushes.groups_changed(session, actor, groups_changed, reason)


GATHERED = "gathered_reconciles"


def gather_reconciles(session: Session) -> dict[str, set[str]]:
    """From now on, the reconciles this session's changes cause are gathered (app id -> user
    ids) instead of queued, until :func:`queue_gathered`: a batch of changes (a CSV import's
    chunk) is then one change per app, under its safety limit, rather than many of one user
    each that no limit would ever stop."""
    gathered: dict[str, set[str]] = {}
    session.info[GATHERED] = gathered
    return gathered


def queue_gathered(
    session: Session, actor: Actor, gathered: dict[str, set[str]], reason: str
) -> None:
    """Queue what was gathered, one ``runs.reconcile_users`` per app, and stop gathering."""
    session.info.pop(GATHERED, None)
    session.flush()
    for app_id in sorted(gathered):
        app = session.get(App, app_id)
        if app is not None:
            runs.reconcile_users(session, actor, app, sorted(gathered[app_id]), reason=reason)


def _reconcile(
    session: Session, actor: Actor, app_ids: Iterable[str], user_ids: list[str], reason: str
) -> None:
    """Reconcile these users in these apps, held back by each app's safety limit."""
    gathered: dict[str, set[str]] | None = session.info.get(GATHERED)
    if gathered is not None:
        for app_id in app_ids:
            gathered.setdefault(app_id, set()).update(user_ids)
        return
    runs.reconcile_in_apps(session, actor, app_ids, user_ids, reason=reason)


# -- groups ---------------------------------------------------------------------------------------


def get_group(session: Session, group_id: str) -> Group:
    group = session.get(Group, group_id)
    if group is None:
        raise NotFound(f"no group with id {group_id!r}")
    return group


def list_groups(session: Session, q: str | None) -> Sequence[Group]:
    statement = select(Group)
    if q:
        statement = statement.where(Group.name_key.like("%" + q.casefold() + "%"))
    return session.scalars(statement.order_by(Group.name_key)).all()


def member_count(session: Session, group_id: str) -> int:
    """The group's effective members: direct ones and those of the groups nested in it."""
    return member_counts(session, [group_id])[group_id]


def member_counts(session: Session, group_ids: Sequence[str]) -> dict[str, int]:
    return {g: len(users) for g, users in reach.effective_members(session, group_ids).items()}


def members(session: Session, group_id: str, *, effective: bool = False) -> Sequence[User]:
    """The group's direct members, or (``effective``) everyone in it or a group nested in it."""
    get_group(session, group_id)
    if effective:
        ids = sorted(reach.effective_members(session, [group_id])[group_id])
        return sorted(find_users_by_ids(session, ids).values(), key=lambda u: u.login_key)
    return session.scalars(
        select(User)
        .join(GroupMember, GroupMember.user_id == User.id)
        .where(GroupMember.group_id == group_id)
        .order_by(User.login_key)
    ).all()


def create_group(
    session: Session, actor: Actor, name: str, description: str | None, rule: str | None = None
) -> Group:
    if session.scalar(select(Group).where(Group.name_key == name.casefold())) is not None:
        raise Conflict(f"group {name!r} already exists", field="name")
    if rule is not None:
        group_rules.check_rule(session, rule)  # refused before anything is written
    group = Group(name=name, name_key=name.casefold(), description=description)
    session.add(group)
    session.flush()
    activity.record(
        session,
        actor,
        "group.lifecycle.create",
        f"created group {name}" + (f" with the rule {rule}" if rule else ""),
        targets={"group": name, "group_id": group.id},
        details={"rule": rule} if rule else {},
    )
    if rule is not None:
        group_rules.set_rule(session, actor, group, rule)
    return group


class _Keep:
    """The rule argument's default: leave the rule as it is."""


KEEP_RULE = _Keep()


def update_group(
    session: Session,
    actor: Actor,
    group_id: str,
    name: str | None,
    description: str | None,
    rule: str | _Keep | None = KEEP_RULE,
) -> Group:
    """Change name and description (``None`` keeps them) and the rule (``None`` removes it)."""
    group = get_group(session, group_id)
    if name is not None and name.casefold() != group.name_key:
        clash = session.scalar(select(Group).where(Group.name_key == name.casefold()))
        if clash is not None:
            raise Conflict(f"group {name!r} already exists", field="name")
    changes: dict[str, dict[str, str | None]] = {}
    if name is not None and name != group.name:
        changes["name"] = {"old": group.name, "new": name}
        group.name, group.name_key = name, name.casefold()
    if description is not None and description != group.description:
        changes["description"] = {"old": group.description, "new": description}
        group.description = description
    rule_changed = not isinstance(rule, _Keep) and rule != group.rule
    if rule_changed:
        assert not isinstance(rule, _Keep)
        if rule is not None:
            group_rules.check_rule(session, rule)  # refused before anything is written
        changes["rule"] = {"old": group.rule, "new": rule}
    if "name" in changes:
        pushes.group_renamed(session, actor, group.id)
    if changes:
        group.updated_at = utcnow()
        activity.record(
            session,
            actor,
            "group.profile.update",
            f"updated group {group.name}",
            targets={"group": group.name, "group_id": group.id},
            details={"changes": changes},
        )
    if rule_changed:
        assert not isinstance(rule, _Keep)
        group_rules.set_rule(session, actor, group, rule)
    return group


def delete_group(session: Session, actor: Actor, group_id: str) -> None:
    """Delete the group, its assignments and nesting; its members lose what it gave them."""
    group = get_group(session, group_id)
    affected = reach.group_member_ids(session, [group_id])
    before = membership.watch(session, [group_id])
    for assignment in session.scalars(
        select(Assignment).where(
            Assignment.principal_type == "group", Assignment.principal_id == group_id
        )
    ):
        session.delete(assignment)
    session.delete(group)
    session.flush()
    activity.record(
        session,
        actor,
        "group.lifecycle.delete",
        f"deleted group {group.name} ({len(affected)} members)",
        targets={"group": group.name, "group_id": group_id},
    )
    membership.reconcile_changes(session, actor, before, "group.delete")
    pushes.groups_changed(session, actor, [group_id], "group.delete")  # even when empty


def _refuse_if_rule(group: Group) -> None:
    if group.rule is not None:
        raise Conflict(
            f"the members of {group.name} are set by its rule ({group.rule}); "
            "change the rule or remove it to manage members by hand",
            rule=group.rule,
        )


def add_member(session: Session, actor: Actor, group_id: str, user_id: str) -> bool:
    """Add the user to the group; False when they were in it already."""
    get_group(session, group_id)
    get_user(session, user_id)  # 404 for an unknown user before the rule's 409
    return add_members(session, actor, group_id, [user_id]) == 1


def add_members(session: Session, actor: Actor, group_id: str, user_ids: Sequence[str]) -> int:
    """Add many users to one group (those already in it are left): one event each, but one
    reconcile of the group's apps and one pushed-group check for all (a CSV import's chunk).
    The users must exist; how many were added."""
    group = get_group(session, group_id)
    _refuse_if_rule(group)
    present = set(
        session.scalars(
            select(GroupMember.user_id).where(
                GroupMember.group_id == group_id, GroupMember.user_id.in_(user_ids)
            )
        )
    )
    users = find_users_by_ids(session, [u for u in dict.fromkeys(user_ids) if u not in present])
    if not users:
        return 0
    session.add_all(GroupMember(group_id=group_id, user_id=user_id) for user_id in users)
    session.flush()
    for user in users.values():
        activity.record(
            session,
            actor,
            "group.user_membership.add",
            f"added {user.login} to {group.name}",
            user_id=user.id,
            targets={"group": group.name, "group_id": group_id, "user": user.login},
        )
    _reconcile(
        session, actor, reach.apps_of_group(session, group_id), sorted(users), "group.membership"
    )
    pushes.groups_changed(session, actor, [group_id], "group.membership")
    return len(users)


def remove_member(session: Session, actor: Actor, group_id: str, user_id: str) -> None:
    group = get_group(session, group_id)
    user = get_user(session, user_id)
    _refuse_if_rule(group)
    row = session.get(GroupMember, (group_id, user_id))
    if row is None:
        raise NotFound(f"{user.login} is not a member of {group.name}")
    apps = reach.apps_of_group(session, group_id)
    session.delete(row)
    session.flush()
    activity.record(
        session,
        actor,
        "group.user_membership.remove",
        f"removed {user.login} from {group.name}",
        user_id=user_id,
        targets={"group": group.name, "group_id": group_id, "user": user.login},
    )
    _reconcile(session, actor, apps, [user_id], "group.membership")
    pushes.groups_changed(session, actor, [group_id], "group.membership")


def find_users_by_ids(session: Session, ids: Sequence[str]) -> dict[str, User]:
    if not ids:
        return {}
    return {user.id: user for user in session.scalars(select(User).where(or_(User.id.in_(ids))))}


def find_users(session: Session, text: str, limit: int = 50) -> Sequence[User]:
    """Users whose id is ``text``, or whose login or name (first, last, both, or display
    name) contains it, whatever the case: how an admin who knows a person finds them."""
    needle = text.strip().casefold()
    if not needle:
        return []
    like = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    first = func.coalesce(User.profile["firstName"].as_string(), "")
    last = func.coalesce(User.profile["lastName"].as_string(), "")
    display = func.coalesce(User.profile["displayName"].as_string(), "")
    statement = select(User).where(
        or_(
            User.id == text.strip(),
            User.login_key.like(like, escape="\\"),
            func.lower(first + " " + last).like(like, escape="\\"),
            func.lower(display).like(like, escape="\\"),
        )
    )
    return session.scalars(statement.order_by(User.login_key).limit(limit)).all()
