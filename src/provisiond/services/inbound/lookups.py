"""One user by userName, for the short path of the ``userName eq`` lookup (api/scim/lookups.py).

The same representation as ``users.render_all``'s, read by Core statements compiled once
(store/reads.py) rather than through a session and the ORM: those were a fifth of a lookup's
time (bench/RESULTS.md §10b), the SELECTs themselves a few percent.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import bindparam, select

from provisiond.services.inbound.users import group_refs, render
from provisiond.store.reads import Reads
from provisiond.store.tables import Group, GroupChild, GroupMember, User

_users, _members = User.__table__, GroupMember.__table__
_BY_LOGIN = select(_users).where(_users.c.login_key == bindparam("key"))
_DIRECT = select(_members.c.group_id).where(_members.c.user_id == bindparam("user_id"))
# Every group above a direct one (UNION, not UNION ALL: it ends even on a cycle), as
# engine/reader.effective_groups reads them for a page of users.
_up = (
    select(_members.c.group_id.label("id"))
    .where(_members.c.user_id == bindparam("user_id"))
    .cte("up", recursive=True)
)
_up = _up.union(
    select(GroupChild.__table__.c.parent_id).where(GroupChild.__table__.c.child_id == _up.c.id)
)
_GROUPS = select(Group.__table__.c.id, Group.__table__.c.name).where(
    Group.__table__.c.id.in_(select(_up.c.id))
)


def rendered_by_login(reads: Reads, login: str, base: str) -> list[dict[str, Any]]:
    """The users ``userName eq login`` selects (none or one: ``login_key`` is unique),
    rendered as ``users.render_all`` renders them, ``groups`` included."""
    rows = reads.all(_BY_LOGIN, key=login.casefold())
    if not rows:
        return []
    user = rows[0]
    direct = {row.group_id for row in reads.all(_DIRECT, user_id=user.id)}
    groups = None
    if direct:
        names = {row.id: row.name for row in reads.all(_GROUPS, user_id=user.id)}
        groups = group_refs(direct, names, base)
    # The row has the ORM row's columns, as attributes of the same names and values.
    return [render(cast("User", user), base, groups)]
