"""CSV export of users and their group memberships, streamed a page of users at a time.

The columns are domain/user_csv.py's (``export_header``), so the file imports back unchanged:
login, status, the standard profile attributes, every custom attribute any user has, and
``groups`` (the user's direct, hand-made memberships; a rule's members are the rule's).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.domain.user_csv import STANDARD, export_header, export_row
from provisiond.services.imports import manual_groups
from provisiond.store.db import Database
from provisiond.store.tables import Group, User

PAGE = 1000


def custom_attributes(session: Session) -> list[str]:
    """Every custom profile attribute some user has (one pass over the profiles)."""
    names: set[str] = set()
    statement = select(User.profile).execution_options(yield_per=PAGE)
    for (profile,) in session.execute(statement):
        names.update(key for key in profile if key not in STANDARD)
    return sorted(names)


def export_csv(db: Database) -> Iterator[str]:
    """The CSV text, a page of users at a time, each page read in its own short transaction."""
    with db.session() as session:
        header = export_header(custom_attributes(session))
        group_names = {gid: name for gid, name in session.execute(select(Group.id, Group.name))}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180 line ends
    writer.writerow(header)
    after = ""
    while True:
        with db.session() as session:
            users = session.execute(
                select(User.id, User.login_key, User.status, User.profile)
                .where(User.login_key > after)
                .order_by(User.login_key)
                .limit(PAGE)
            ).all()
            groups = manual_groups(session, [user.id for user in users])
        for user in users:
            names = [group_names.get(g, g) for g in groups.get(user.id, ())]
            writer.writerow(export_row(header, user.status, user.profile, names))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(users) < PAGE:
            return
        after = users[-1].login_key
