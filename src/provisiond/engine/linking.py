"""Linking what an import found: match the app's accounts to directory users (pure, in
engine.matching) and write the links, reading and writing a chunk at a time.

Linking writes the ``accounts`` row with the attributes as read as "last applied": the next
reconcile plans from them as usual, so nothing is changed in the app until then (and a
preview shows it first).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from provisiond.engine.context import AppContext
from provisiond.engine.matching import AppSideAccount, Match, MatchState, Person, match_accounts
from provisiond.store.tables import Account, AppAccount, User, new_id

CHUNK = 900  # rows per statement: below SQLite's bound-parameter limit


def _people(session: Session, attributes: set[str]) -> Iterator[Person]:
    """Every directory user with the values the rules name, as text. Profile attributes are
    read out of the JSON by the database (``json_extract`` / ``->>``): decoding 100,000
    profiles in Python was most of an import's matching time."""
    extra = sorted(attributes - {"id", "login"})
    columns = [User.profile[name].as_string() for name in extra]
    statement = select(User.id, User.login, *columns).execution_options(yield_per=2000)
    for user_id, login, *found in session.execute(statement):
        values = {"id": user_id, "login": login}
        values.update({name: str(v) for name, v in zip(extra, found, strict=True) if v})
        yield Person(user_id, {name: values[name] for name in attributes if values.get(name)})


def link_matches(
    session: Session, ctx: AppContext, import_id: str, now: datetime
) -> dict[str, int]:
    """Match the app's accounts to directory users and link (or propose) each exact match.

    Accounts an admin rejected a match of stay as they are; a pending match is matched again
    (the directory may have changed). Linking writes the ``accounts`` row with the attributes
    as read as "last applied": the next reconcile plans from them as usual, so nothing is
    changed in the app until then (and a preview shows it first)."""
    settings = ctx.provisioning.imports
    linked: dict[str, str] = {
        remote_id: user_id
        for remote_id, user_id in session.execute(
            select(Account.remote_id, Account.user_id).where(
                Account.app_id == ctx.app_id,
                Account.remote_id.is_not(None),
                Account.status != "deleted",
            )
        )
        if remote_id is not None
    }
    current: dict[str, tuple[str, str, str | None]] = {}
    accounts: list[AppSideAccount] = []
    for row in session.execute(
        select(
            AppAccount.id,
            AppAccount.remote_id,
            AppAccount.user_name,
            AppAccount.external_id,
            AppAccount.primary_email,
            AppAccount.match,
            AppAccount.user_id,
        ).where(
            AppAccount.app_id == ctx.app_id,
            AppAccount.gone_at.is_(None),
            AppAccount.match != "rejected",
        )
    ):
        current[row.remote_id] = (row.id, row.match, row.user_id)
        accounts.append(
            AppSideAccount(row.remote_id, row.user_name, row.external_id, row.primary_email)
        )
    wanted = {rule.user_attribute for rule in settings.match_rules}
    matches = match_accounts(accounts, _people(session, wanted), settings.match_rules, linked)
    counts = {"linked": 0, "pending": 0, "conflict": 0, "unmatched": 0, "newly_linked": 0}
    changes: list[dict[str, Any]] = []
    links: list[Match] = []
    connection = session.connection()
    for remote_id, match in matches.items():
        row_id, was, was_user = current[remote_id]
        state = _stored_state(match, settings.auto_link)
        if match.state is MatchState.MATCHED and settings.auto_link:
            links.append(match)
        counts["linked" if state == "linked" else state] += 1
        # A conflict is written every time: its candidates may have changed.
        if (state, match.user_id) != (was, was_user) or state == "conflict":
            changes.append(
                {
                    "row_id": row_id,
                    "match": state,
                    "user_id": match.user_id,
                    "rule": match.rule,
                    "candidates": list(match.candidates),
                    "now": now,
                }
            )
            if len(changes) >= CHUNK:  # written as they come: never 100,000 dicts at once
                connection.execute(_MATCHED, changes)
                changes = []
    if changes:
        connection.execute(_MATCHED, changes)
    counts["newly_linked"] = len(links)
    write_links(session, ctx.app_id, links, now)
    return counts


_MATCHED = (
    update(AppAccount)
    .where(AppAccount.id == bindparam("row_id"))
    .values(
        match=bindparam("match"),
        user_id=bindparam("user_id"),
        rule=bindparam("rule"),
        candidates=bindparam("candidates"),
        updated_at=bindparam("now"),
    )
)


def _stored_state(match: Match, auto_link: bool) -> str:
    if match.state is MatchState.MATCHED:
        return "linked" if auto_link else "pending"
    return "linked" if match.state is MatchState.LINKED else match.state.value


def write_links(session: Session, app_id: str, links: list[Match], now: datetime) -> None:
    """Write the ``accounts`` rows of new links: the remote id, and what the app holds as the
    attributes last applied. A user's row without a remote id (a create that failed, an
    account deleted) takes the link; a user already linked elsewhere never reaches here
    (matching made that a conflict). Core statements, a chunk at a time: 100,000 links never
    become 100,000 ORM objects."""
    connection = session.connection()
    for start in range(0, len(links), CHUNK):
        chunk = links[start : start + CHUNK]
        remote = {
            row.remote_id: row
            for row in connection.execute(
                select(AppAccount.remote_id, AppAccount.attributes, AppAccount.active).where(
                    AppAccount.app_id == app_id,
                    AppAccount.remote_id.in_([m.remote_id for m in chunk]),
                )
            )
        }
        existing = {
            row.user_id: row.id
            for row in connection.execute(
                select(Account.id, Account.user_id).where(
                    Account.app_id == app_id,
                    Account.user_id.in_([m.user_id for m in chunk if m.user_id]),
                )
            )
        }
        inserts, updates = [], []
        for match in chunk:
            assert match.user_id is not None
            read = remote[match.remote_id]
            row = {
                "remote_id": match.remote_id,
                "status": "active" if read.active else "deactivated",
                "applied": {**read.attributes, "active": bool(read.active)},
                "last_synced_at": now,
                "deactivated_at": None if read.active else now,
            }
            row_id = existing.get(match.user_id)
            if row_id is None:
                inserts.append(
                    row
                    | {
                        "id": new_id(),
                        "app_id": app_id,
                        "user_id": match.user_id,
                        "created_at": now,
                    }
                )
            else:
                updates.append(row | {"row_id": row_id})
        if inserts:
            connection.execute(insert(Account), inserts)
        if updates:
            connection.execute(_RELINK, updates)


_RELINK = (
    update(Account)
    .where(Account.id == bindparam("row_id"))
    .values(
        remote_id=bindparam("remote_id"),
        status=bindparam("status"),
        applied=bindparam("applied"),
        last_synced_at=bindparam("last_synced_at"),
        deactivated_at=bindparam("deactivated_at"),
        last_error=None,
        fingerprint=None,
    )
)
