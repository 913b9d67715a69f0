"""CSV import of users, first half: read a file, check every row, plan what applying would do.

The file is read once, as a stream, a chunk of rows at a time (``CHUNK``); each chunk's rows
are checked against the directory (one read of the users they name) and stored as planned
changes (``user_import_rows``), so 100,000 rows never sit in memory as rows or users. Only the
logins seen are kept (to find duplicate rows and, by option, the users missing from the file).

An import with a bad row is ``invalid`` and cannot be applied, unless it was read with
``skip_invalid`` (then the good rows are). services/import_apply.py applies a ``ready`` one.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from pydantic import ValidationError
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from provisiond.domain.directory import Profile, UserStatus
from provisiond.domain.user_csv import (
    ColumnMap,
    HeaderError,
    RowError,
    RowValues,
    map_row,
    read_header,
)
from provisiond.errors import Conflict, NotFound
from provisiond.services import activity
from provisiond.services.context import Actor
from provisiond.store.tables import Group, GroupMember, ImportRow, User, UserImport, utcnow

CHUNK = 500
MAX_ERRORS_KEPT = 1000  # every error is counted; the first ones are kept, with their lines
ACTIONS = ("create", "update", "unchanged", "deactivate")


@dataclass(frozen=True)
class Options:
    mapping: dict[str, str]
    deactivate_missing: bool = False
    skip_invalid: bool = False


def get_import(session: Session, import_id: str) -> UserImport:
    found = session.get(UserImport, import_id)
    if found is None:
        raise NotFound(f"no import with id {import_id!r}")
    return found


def discard(session: Session, import_id: str) -> None:
    """Forget an import that is not being applied (its rows go with it)."""
    found = get_import(session, import_id)
    if found.status == "applying":
        raise Conflict("the import is being applied", current_status=found.status)
    session.delete(found)


def group_index(session: Session) -> dict[str, tuple[str, str | None]]:
    """Every group by its name's key: (id, rule)."""
    return {key: (gid, rule) for gid, key, rule in session.execute(
        select(Group.id, Group.name_key, Group.rule)
    )}


def read_file(
    session: Session, actor: Actor, stream: TextIO, options: Options, *, filename: str | None
) -> UserImport:
    """Read ``stream`` (text, ``newline=""``) into a planned import; nothing is changed yet."""
    imported = UserImport(
        status="reading",
        actor=actor.name,
        filename=(filename or "")[:256] or None,
        options={
            "mapping": options.mapping,
            "deactivate_missing": options.deactivate_missing,
            "skip_invalid": options.skip_invalid,
        },
        rows=0,
        planned={action: 0 for action in (*ACTIONS, "invalid")},
        done={action: 0 for action in (*ACTIONS, "failed")},
        errors={"items": []},
        error_count=0,
    )
    session.add(imported)
    session.flush()
    reading = _Reading(session, imported, group_index(session))
    try:
        reading.read(stream, options.mapping)
    except UnicodeDecodeError:
        reading.error(reading.line, "the file is not UTF-8 text")
    except csv.Error as exc:
        reading.error(reading.line, f"not a CSV file here: {exc}")
    if options.deactivate_missing and not reading.fatal:
        # Never after a header or file error: no row read would mean everyone is missing.
        reading.plan_deactivations()
    imported.planned = dict(reading.planned)
    imported.errors = {"items": sorted(reading.errors, key=lambda e: e["line"])}
    refused = imported.error_count and not options.skip_invalid
    imported.status = "invalid" if refused or reading.fatal else "ready"
    activity.record(
        session,
        actor,
        "user.import.read",
        f"read {imported.rows} rows of {imported.filename or 'a CSV file'}: "
        + ", ".join(f"{n} to {a}" for a, n in imported.planned.items() if n and a != "invalid")
        + (f"; {imported.error_count} bad rows" if imported.error_count else ""),
        targets={"import_id": imported.id},
        details={"planned": imported.planned, "errors": imported.error_count},
    )
    return imported


class _Reading:
    """One file being read: its counters, its kept errors, the logins seen."""

    def __init__(
        self, session: Session, imported: UserImport, groups: dict[str, tuple[str, str | None]]
    ) -> None:
        self.session = session
        self.imported = imported
        self.groups = groups
        self.planned = dict(imported.planned)
        self.errors: list[dict[str, Any]] = []
        self.seen: dict[str, int] = {}  # login key -> the line that named it
        self.line = 1
        self.seq = 0
        self.fatal = False  # the header or the file itself, not one row

    def error(self, line: int, message: str, *, fatal: bool = True) -> None:
        self.imported.error_count += 1
        self.fatal = self.fatal or fatal
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append({"line": line, "message": message})

    def read(self, stream: TextIO, mapping: dict[str, str]) -> None:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None:
            self.error(1, "the file is empty: it needs a header row (login,email,...)")
            return
        try:
            columns = read_header(header, mapping)
        except HeaderError as exc:
            self.error(1, str(exc))
            return
        for chunk in _chunks(self._rows(reader), CHUNK):
            self._plan_chunk(columns, chunk)

    def _rows(self, reader: Any) -> Iterator[tuple[int, list[str]]]:
        while True:
            self.line = reader.line_num + 1  # where the next record starts
            cells = next(reader, None)
            if cells is None:
                return
            if not any(cell.strip() for cell in cells):
                continue  # a blank line
            self.imported.rows += 1
            yield self.line, cells

    def _plan_chunk(self, columns: ColumnMap, chunk: list[tuple[int, list[str]]]) -> None:
        rows: list[tuple[int, RowValues]] = []
        for line, cells in chunk:
            try:
                values = map_row(columns, cells)
            except RowError as exc:
                self._bad(line, str(exc))
                continue
            key = values.login.casefold()
            if key in self.seen:
                self._bad(line, f"login {values.login!r} is on line {self.seen[key]} already")
                continue
            self.seen[key] = line
            rows.append((line, values))
        keys = [values.login.casefold() for _, values in rows]
        users = {
            user.login_key: user
            for user in self.session.scalars(select(User).where(User.login_key.in_(keys)))
        }
        memberships = manual_groups(self.session, [u.id for u in users.values()])
        stored: list[dict[str, Any]] = []
        for line, values in rows:
            user = users.get(values.login.casefold())
            try:
                action = self._plan_row(values, user, memberships)
            except RowError as exc:
                self._bad(line, str(exc))
                continue
            self.planned[action] += 1
            self.seq = line
            stored.append({
                "import_id": self.imported.id, "seq": line, "line": line, "action": action,
                "user_id": user.id if user else None, "state": "pending",
                "values": {"login": values.login, "profile": values.profile,
                           "groups": list(values.groups) if values.groups is not None else None},
            })
        if stored:
            self.session.execute(insert(ImportRow), stored)

    def _bad(self, line: int, message: str) -> None:
        self.planned["invalid"] += 1
        self.error(line, message, fatal=False)

    def _plan_row(
        self, values: RowValues, user: User | None, memberships: dict[str, set[str]]
    ) -> str:
        """``create``, ``update`` or ``unchanged``; ``RowError`` when the row cannot apply."""
        if user is None:
            profile = {k: v for k, v in values.profile.items() if v is not None}
        else:
            changes = {k: v for k, v in values.profile.items() if k != "login"}
            merged = {**user.profile, **changes}
            profile = {k: v for k, v in merged.items() if v is not None}
        try:
            checked = Profile.model_validate(profile).as_dict()
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "profile"
            raise RowError(f"{where}: {first['msg']}") from None
        group_ids = self._group_ids(values.groups)
        if user is None:
            return "create"
        same_groups = group_ids is None or set(group_ids) == memberships.get(user.id, set())
        return "unchanged" if checked == user.profile and same_groups else "update"

    def _group_ids(self, names: Sequence[str] | None) -> list[str] | None:
        if names is None:
            return None
        ids = []
        for name in names:
            found = self.groups.get(name.casefold())
            if found is None:
                raise RowError(f"groups: no group named {name!r}")
            if found[1] is not None:
                raise RowError(f"groups: the members of {name!r} are set by its rule")
            ids.append(found[0])
        return ids

    def plan_deactivations(self) -> None:
        """Every user not deprovisioned whom the file does not name, as a planned deactivation."""
        seq = max(self.seq, self.line) + 1
        batch: list[dict[str, Any]] = []
        statement = (
            select(User.id, User.login_key)
            .where(User.status != UserStatus.DEPROVISIONED.value)
            .order_by(User.login_key)
            .execution_options(yield_per=2000)
        )
        for user_id, key in self.session.execute(statement):
            if key in self.seen:
                continue
            batch.append({"import_id": self.imported.id, "seq": seq, "line": None,
                          "action": "deactivate", "user_id": user_id, "state": "pending"})
            seq += 1
            self.planned["deactivate"] += 1
            if len(batch) >= 2000:
                self.session.execute(insert(ImportRow), batch)
                batch = []
        if batch:
            self.session.execute(insert(ImportRow), batch)


def manual_groups(session: Session, user_ids: Sequence[str]) -> dict[str, set[str]]:
    """Each user's direct, hand-made group memberships (rule-made ones are the rule's)."""
    found: dict[str, set[str]] = {}
    if not user_ids:
        return found
    for user_id, group_id in session.execute(
        select(GroupMember.user_id, GroupMember.group_id).where(
            GroupMember.user_id.in_(user_ids), GroupMember.source == "manual"
        )
    ):
        found.setdefault(user_id, set()).add(group_id)
    return found


def _chunks(
    rows: Iterator[tuple[int, list[str]]], size: int
) -> Iterator[list[tuple[int, list[str]]]]:
    chunk: list[tuple[int, list[str]]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def drop_rows(session: Session, import_id: str) -> None:
    """The planned rows, once applied: the import keeps its counts and errors."""
    session.execute(delete(ImportRow).where(ImportRow.import_id == import_id))


def finish(imported: UserImport, status: str) -> None:
    imported.status = status
    imported.finished_at = utcnow()
    imported.lease_until = None
