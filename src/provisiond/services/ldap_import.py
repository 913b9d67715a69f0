"""Importing people and groups from an LDAP directory into provisiond's, on demand.

Read (connectors.ldap_source), plan (domain.ldap_import, pure), and, when asked, apply in one
transaction through the directory services: every change is validated, logged and causes the
apps' tasks as if an admin had made it, so it flows downstream. A plan with errors (an entry
without a mail, two entries with one login) is shown and not applied: nothing half-imported.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.connectors.ldap_source import high_water, read_source
from provisiond.connectors.registry import destination_policy
from provisiond.domain.directory import Lifecycle, Profile, UserStatus
from provisiond.domain.ldap_import import DirectoryUser, ImportPlan, LdapSource, plan_import
from provisiond.errors import Conflict
from provisiond.runtime import Runtime
from provisiond.services import activity, directory
from provisiond.services.context import Actor
from provisiond.store.tables import Group, GroupMember, User


async def import_from_ldap(
    rt: Runtime, actor: Actor, source: LdapSource, *, apply: bool, since: str | None = None
) -> dict[str, Any]:
    """The plan (``describe()``) and whether it was applied, with how many entries were read
    and the highest modifyTimestamp among them.

    ``since``: an incremental import, of the entries modified since then only. It deactivates
    no one and leaves groups alone: who left the filter, and membership changes, only a full
    read can see (services.ldap_sources runs one every so often)."""
    entries, groups = await read_source(source, destination_policy(rt.settings), since=since)
    if since is not None:
        source = source.model_copy(update={"deactivate_missing": False})
    with rt.db.session() as session:
        plan = plan_import(
            source, entries, groups, _directory_users(session), _directory_groups(session, groups)
        )
        if apply:
            if plan.errors:
                raise Conflict(
                    f"nothing imported: {len(plan.errors)} entries cannot be imported "
                    f"(the first: {plan.errors[0]})",
                    plan=plan.describe(),
                )
            _apply(session, actor, plan)
            activity.record(
                session, actor, "directory.import.ldap",
                f"imported from LDAP source {source.name}",
                targets={"source": source.name}, details=plan.counts(),
            )
        return {
            "applied": apply, "source": source.name, "read": len(entries),
            "high_water": high_water(entries), **plan.describe(),
        }


def _directory_users(session: Session) -> dict[str, DirectoryUser]:
    # Every user: the source's are found by their tag, the others by login. Bounded by the
    # directory's size (one row of four columns each); a stored source could narrow it later.
    rows = session.execute(select(User.id, User.login_key, User.login, User.status, User.profile))
    return {row.login_key: DirectoryUser(row.id, row.login, row.status, row.profile) for row in rows}


def _directory_groups(session: Session, names: dict[str, list[str]]) -> dict[str, tuple[str, set[str]]]:
    keys = [name.casefold() for name in names]
    found: dict[str, tuple[str, set[str]]] = {}
    if not keys:
        return found
    for group in session.scalars(select(Group).where(Group.name_key.in_(keys))):
        members = session.scalars(
            select(User.login_key).join(GroupMember, GroupMember.user_id == User.id)
            .where(GroupMember.group_id == group.id)
        )
        found[group.name_key] = (group.name, set(members))
    return found


def _apply(session: Session, actor: Actor, plan: ImportPlan) -> None:
    for create in plan.creates:
        # A disabled entry arrives staged: not provisioned until it is enabled at the source.
        profile = Profile.model_validate(create["profile"])
        directory.create_user(session, actor, profile, activate=not create["disabled"])
    for user_id, _, changes in plan.updates:
        directory.update_user(session, actor, user_id, changes)
    for user_id, _ in plan.suspends:
        directory.change_lifecycle(session, actor, user_id, Lifecycle.SUSPEND)
    for user_id, _, status in plan.reactivates:
        action = Lifecycle.UNSUSPEND if status == UserStatus.SUSPENDED.value else Lifecycle.ACTIVATE
        directory.change_lifecycle(session, actor, user_id, action)
    for user_id, _ in plan.deactivates:
        directory.change_lifecycle(session, actor, user_id, Lifecycle.DEACTIVATE)
    for name in plan.group_creates:
        directory.create_group(session, actor, name, "imported from LDAP")
    session.flush()
    groups = {g.name_key: g.id for g in session.scalars(select(Group))}
    users = {key: user_id for key, user_id in session.execute(select(User.login_key, User.id))}
    for name, login in plan.member_adds:
        directory.add_member(session, actor, groups[name.casefold()], users[directory.login_key(login)])
    for name, login in plan.member_removes:
        directory.remove_member(session, actor, groups[name.casefold()], users[directory.login_key(login)])
