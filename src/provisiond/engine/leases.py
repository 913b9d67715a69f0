"""The check a task makes before sending what it planned a while ago, for many tasks at once.

A task that waited long at its app's gate (``RECHECK_AFTER``) must still be this worker's
(its lease is then renewed from now) and no newer change may be queued for its key (then it
folds into that task and sends nothing: its plan is stale). On a deep backlog nearly every
task waits that long, and one transaction each made the check a good part of the database
thread's work; ``renew`` checks any number in one statement, and ``Renewals`` gathers into
one check the tasks that ask while another runs and those still at a gate that will ask next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.orm import Session

from provisiond.engine import queue
from provisiond.store.tables import Task, utcnow


@lru_cache(maxsize=4)
def _statements(dialect: str) -> tuple[Any, Any]:
    """The renewal and the look for newer changes, built once per dialect. Both find their
    rows by the ids and subjects they are given (primary key, ``ix_tasks_subject_id``), the
    status and the whole lease or key being checked on those rows only."""
    status = queue.status_off_index(dialect)
    # Owned (same claimer, same lease) and still running: the lease is renewed from ``now``.
    renewal = (
        update(Task)
        .where(
            Task.id.in_(bindparam("ids", expanding=True)),
            tuple_(Task.id, Task.claimed_by, Task.claimed_at).in_(
                bindparam("leases", expanding=True)
            ),
            status == queue.RUNNING,
        )
        .values(claimed_at=bindparam("now"))
        .returning(Task.id, Task.app_id, Task.subject_id)
    )
    queued_keys = select(Task.app_id, Task.subject_id).where(
        Task.subject_id.in_(bindparam("subjects", expanding=True)),
        tuple_(Task.app_id, Task.subject_id).in_(bindparam("keys", expanding=True)),
        status == queue.QUEUED,
    )
    return renewal, queued_keys


_CHUNK = 200  # tasks per statement: four bound values each, well under any driver's limit


def renew(
    session: Session, tasks: Sequence[queue.Claimed], now: datetime | None = None
) -> dict[tuple[str, datetime], queue.Claimed]:
    """The tasks of these that may still send, with their lease renewed from ``now``, by
    (id, the lease they were given with).

    A task missing from the answer sends nothing: its lease ran out and another claimer has
    it (or it was closed meanwhile), which is left as it is; or a newer change is queued for
    its key, and the task was superseded by it here."""
    now = now or utcnow()
    connection = session.connection()
    renewal, queued_keys = _statements(connection.dialect.name)
    owned: dict[str, tuple[str, str]] = {}
    for start in range(0, len(tasks), _CHUNK):
        chunk = tasks[start : start + _CHUNK]
        leases = [(t.id, t.claimed_by, t.claimed_at) for t in chunk]
        rows = connection.execute(renewal, {"ids": [t.id for t in chunk], "leases": leases,
                                            "now": now})
        owned.update((row.id, (row.app_id, row.subject_id)) for row in rows)
    keys = sorted(set(owned.values()))
    newer: set[tuple[str, str]] = set()
    for start in range(0, len(keys), _CHUNK):
        chunk_keys = keys[start : start + _CHUNK]
        rows = connection.execute(queued_keys, {
            "subjects": sorted({subject for _, subject in chunk_keys}), "keys": chunk_keys,
        })
        newer.update((row.app_id, row.subject_id) for row in rows)
    # The same task held twice (its lease ran out and it was claimed again): a lease only
    # moves forward, so only the newest of them can be the row's.
    newest: dict[str, datetime] = {}
    for task in tasks:
        newest[task.id] = max(task.claimed_at, newest.get(task.id, task.claimed_at))
    renewed: dict[tuple[str, datetime], queue.Claimed] = {}
    for task in tasks:
        key = owned.get(task.id)
        if key is None or task.claimed_at != newest[task.id]:
            continue
        if key in newer:  # rare: row by row, through the queue's own fold
            queue.requeue(session, task.id, at=now, error=None)
            session.info["tasks_enqueued"] = True
            continue
        renewed[(task.id, task.claimed_at)] = replace(task, claimed_at=now)
    return renewed


# A task that waited this long for its app's gate checks its lease and its key before sending.
RECHECK_AFTER = timedelta(seconds=1)
_Key = tuple[str, datetime]  # a task as claimed: its id and the lease it was claimed with


class Renewals:
    """The checks of one worker's tasks, through ``renew`` on its database thread.

    The first task to ask is checked at once; those that ask while its check runs share the
    next one (as the writer's outcomes share a transaction), so nothing waits for a batch to
    fill. Each check also takes the tasks still waiting at a gate that have waited half of
    ``RECHECK_AFTER``: in a deep backlog they are the next to ask, one by one, as the app's
    answers free their gate's slots; checked now, they send without a check of their own if
    their slot comes within ``RECHECK_AFTER`` (every send still follows a check by at most
    that), and a task found taken over or superseded meanwhile sends nothing when it is its
    turn. Once a check has renewed a task, every write of it must carry the renewed lease
    (engine.writer), so a task at its gate takes its latest state (``latest``) before
    anything else."""

    def __init__(
        self, check: Callable[[list[queue.Claimed]], Awaitable[dict[_Key, queue.Claimed]]]
    ) -> None:
        self._check = check
        self._waiting: dict[_Key, queue.Claimed] = {}  # at a gate, as last renewed
        # The tasks of the next check and of the one in flight, and the answers not taken up
        # yet: (the task, its answer, whether it asked or was taken from its gate).
        self._checks: dict[_Key, tuple[queue.Claimed, asyncio.Future[queue.Claimed | None], bool]] = {}
        self._round: asyncio.Task[None] | None = None
        self.rounds = 0  # checks made, and the tasks they covered (bench, tests)
        self.checked = 0

    def waiting(self, task: queue.Claimed) -> None:
        """The task waits for its gate (``latest`` once it has its slot; ``forget`` always)."""
        self._waiting[(task.id, task.claimed_at)] = task

    def forget(self, task: queue.Claimed) -> None:
        """The task is done with its gate (``task`` as it was when it began to wait)."""
        key = (task.id, task.claimed_at)
        self._waiting.pop(key, None)
        self._checks.pop(key, None)

    async def latest(self, task: queue.Claimed) -> queue.Claimed | None:
        """The task as the checks made while it waited left it (``task`` as it was when it
        began to wait): renewed, unchanged, or None, it sends nothing."""
        key = (task.id, task.claimed_at)
        current = self._waiting.pop(key, task)  # no check takes it from now on
        entry = self._checks.get(key)
        if entry is None:
            return current
        try:
            return await asyncio.shield(entry[1])
        finally:
            self._checks.pop(key, None)

    async def renew(
        self, task: queue.Claimed, waited_as: queue.Claimed | None = None
    ) -> queue.Claimed | None:
        """The task with its lease renewed from now, or None: it sends nothing.
        ``waited_as``: the task as it began to wait, when a check renewed it since."""
        first = waited_as or task
        key = (first.id, first.claimed_at)
        entry = self._checks.get(key)
        if entry is None or entry[1].done():
            entry = self._checks[key] = (task, asyncio.get_running_loop().create_future(), True)
            if self._round is None or self._round.done():
                self._round = asyncio.create_task(self._rounds())
        try:
            return await asyncio.shield(entry[1])
        finally:
            self._checks.pop(key, None)

    async def _rounds(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # A task that asked and was stopped meanwhile (the drain ran out) is not checked.
            asked = {key: entry for key, entry in self._checks.items()
                     if entry[2] and not entry[1].done()}
            if not asked:
                return
            half = utcnow() - RECHECK_AFTER / 2
            taken = {
                key: (task, loop.create_future(), False)
                for key, task in self._waiting.items()
                if key not in asked and task.claimed_at < half
                and (key not in self._checks or self._checks[key][1].done())
            }
            self._checks.update(taken)
            round_ = asked | taken
            self.rounds += 1
            self.checked += len(round_)
            try:
                renewed = await self._check([task for task, _, _ in round_.values()])
            except Exception as exc:
                for task, future, asker in round_.values():
                    if future.done():
                        continue
                    if asker:  # each handles it as its own check would have
                        future.set_exception(exc)
                    else:  # taken from its gate: it checks again itself if it must
                        future.set_result(task)
                continue
            for key, (task, future, _) in round_.items():
                result = renewed.get((task.id, task.claimed_at))
                if key in self._waiting:
                    if result is None:
                        del self._waiting[key]
                    else:
                        self._waiting[key] = result
                if not future.done():
                    future.set_result(result)
