"""The worker: claims due tasks in batches and reconciles them, any number per database.

A pipeline with I/O only at its ends (docs/architecture.md, "The reconcile pipeline"):

1. **claim** a batch in one statement, lifecycle tasks first, fair across apps;
2. **read** the inputs of the whole batch with a handful of Core statements per app
   (engine.reader) and the app's context, cached per version (engine.context);
3. **decide** purely, per key (engine.decide): apply, skip, defer, drop or fail;
4. **apply** concurrently through the connector, under the app's gate;
5. **write** the outcomes of many tasks in one short transaction (engine.writer), flushed
   every few milliseconds, and at once when a deprovisioning is among them.

Reads and writes run on a database thread of their own, so no transaction blocks the event
loop while requests are in flight. ``serve`` runs one worker in a thread beside the API, woken
the moment a transaction that queued tasks commits; ``provisiond worker`` runs one on its own,
woken by PostgreSQL ``NOTIFY``. A short poll remains only as a floor for retries coming due.

**No app holds another's work hostage**: an app gets at most ``share`` of the worker's slots
whatever its concurrency setting, ``reserved`` slots are kept for lifecycle tasks (a leaver's
deprovisionings), and every request has a total deadline (connectors.scim).

Longer than most modules: it is the one place where the stages meet (the stages themselves
are engine.reader, decide, outcomes, writer and connections), plus the batch of one that
provisioning on demand runs and the drain tests use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVar

import httpx
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from provisiond.config import Settings
from provisiond.connectors.base import Connector
from provisiond.engine import leases, queue
from provisiond.engine.connections import ConnectorPool, Gate
from provisiond.engine.context import AppContext, read_contexts
from provisiond.engine.decide import Snapshot, decide, snapshot, with_holds
from provisiond.engine.executor import Result, reconcile
from provisiond.engine.imports import run_import
from provisiond.engine.orphans import run_orphan
from provisiond.engine.outcomes import (
    Outcome,
    RetryPolicy,
    account_failure,
    applied,
    failure,
    not_applied,
    waits_for_pause,
)
from provisiond.engine.planner import DEPROVISIONS, OperationKind
from provisiond.engine.pushed_groups import (
    close_task,
    execute_group,
    fail_group,
    group_snapshot,
)
from provisiond.engine.rate import ClusterRate
from provisiond.engine.reader import has_accounts, read_batch, read_holds_many
from provisiond.engine.upkeep import Upkeep
from provisiond.engine.writer import successors_queued, write_outcomes
from provisiond.errors import ConnectorError, RateLimited
from provisiond.store.db import Database
from provisiond.store.secrets import Vault
from provisiond.store.tables import Task, utcnow

log = logging.getLogger("provisiond.worker")
IDLE_POLL_SECONDS = 5.0
HOUSEKEEPING_SECONDS = 300.0
FLUSH_SECONDS = 0.02  # outcomes wait at most this long to share a write transaction
FLUSH_MAX = 256  # ... or until this many are waiting
DEFAULT_APP_ROOM = 8  # claimed at once for an app whose concurrency is not known yet
# How long an app seen empty is trusted to hold only the accounts this worker creates in it:
# its creates skip the lookup (a duplicate userName is answered 409 and linked, RFC 7644 §3.3).
KNOWN_EMPTY_SECONDS = 300.0
# How long a claim that took every due task it could have had keeps freed slots from waking
# another claim round (engine.worker._release).
EXHAUSTED_SECONDS = 1.0
T = TypeVar("T")
# Task kinds with a reconciler of their own, beside accounts (the default) and pushed groups.
OTHER_KINDS: dict[str, Callable[[Any, queue.Claimed], Awaitable[None]]] = {
    "import": run_import,
    "orphan": run_orphan,
}


@dataclass
class _Prepared:
    """A batch of one app's account tasks, read and decided."""

    ctx: AppContext | None
    apply: list[tuple[queue.Claimed, Snapshot]]
    done: list[Outcome]
    # Creates are planned and provisiond has no account in the app: is the app empty?
    probe_empty: bool = False


# What a claim read and decided with it, or the read's error.
_ReadAhead = dict[str, _Prepared] | BaseException | None


class _Claim(NamedTuple):
    tasks: list[queue.Claimed]
    read_ahead: _ReadAhead = None
    due_read: bool = False  # whether next_due was read with the claim
    next_due: datetime | None = None
    exhausted: bool = False  # it took every task it could have had, whatever its room


def _accounts_by_app(claimed: Sequence[queue.Claimed]) -> dict[str, list[queue.Claimed]]:
    """The account tasks of a claim (not group tasks, not imports or orphans), by app."""
    accounts: dict[str, list[queue.Claimed]] = {}
    for task in claimed:
        if task.kind != "group" and task.kind not in OTHER_KINDS:
            accounts.setdefault(task.app_id, []).append(task)
    return accounts


class Worker:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        vault: Vault,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        capacity: int = 64,
    ) -> None:
        self.db = db
        self.settings = settings
        self.vault = vault
        self.capacity = max(2, capacity)
        # The most one app may hold of this worker, whatever its concurrency setting, and the
        # slots only lifecycle tasks may take: a slow or hostile target cannot delay a leaver.
        self.share = max(1, self.capacity // 2)
        self.reserved = max(1, self.capacity // 4)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        # On PostgreSQL an app's rate limit holds for every worker sharing the database.
        self.pool = ConnectorPool(
            transport, settings,
            rate_gates=(lambda app_id, rate: ClusterRate(db, app_id, rate))
            if db.is_postgres else None,
        )
        self.retry_policy = RetryPolicy(
            settings.task_max_attempts, settings.retry_base_seconds, settings.retry_max_seconds
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._gates: dict[str, Gate] = {}
        self._jobs: set[asyncio.Task[Any]] = set()
        # (task id, lease) -> (app id, urgent): the same task claimed again (its lease ran out)
        # is another slot, released on its own.
        self._slots: dict[tuple[str, datetime], tuple[str, bool]] = {}
        self._per_app: Counter[str] = Counter()
        self._urgent = 0
        self._concurrency: dict[str, int] = {}  # each app's limit, as last read
        self._claim_batch = max(1, self.capacity // 8)
        self._starved = False
        # Until then (monotonic), the last claim's "took every due task it could have had,
        # room or not" holds: a freed slot finds nothing to claim, so it wakes no claim round.
        self._exhausted_until = 0.0
        self._news = False  # wake() was called since the last claim
        self._database: ThreadPoolExecutor | None = None
        self._pending: list[tuple[Outcome, asyncio.Future[bool]]] = []
        # app id -> (monotonic time it expires, the app's settings version it was seen with)
        self._known_empty: dict[str, tuple[float, str]] = {}
        self._probing: set[str] = set()
        # app id -> monotonic time until which its probe's answer "not empty" stands: without
        # it every batch of creates probed again until the first account was written.
        self._not_empty: dict[str, float] = {}
        self._flush_now: asyncio.Event | None = None
        self._arrived: asyncio.Event | None = None
        self._writing = 0  # outcomes in the write transaction now
        # The lease checks of tasks that waited long at their gate, many in one transaction.
        self.renewals = leases.Renewals(lambda tasks: self._in_db(self._renew, tasks))
        # Heartbeat, pauses and quarantine: what the worker does beside reconciling.
        self.upkeep = Upkeep(
            db, settings, vault, self.id, self.pool, in_db=self._in_db, spawn=self._spawn,
            wake=self.wake, in_flight=lambda: len(self._slots),
        )

    # -- waking ------------------------------------------------------------------------------

    def wake(self) -> None:
        """Thread-safe: have the worker look for due tasks now (new work was committed)."""
        self._news = True
        self._nudge()

    def _nudge(self) -> None:
        """Thread-safe: claim again now (room was freed), without counting it as new work."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    # -- the database thread -----------------------------------------------------------------

    async def in_db(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function`` on the worker's database thread (for the reconcilers of other kinds)."""
        return await self._in_db(function, *args)

    async def connector_for(self, ctx: AppContext) -> Connector:
        return await self.pool.get(ctx)

    async def _in_db(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function`` on the worker's database thread, off the event loop."""
        if self._database is None:
            self._database = ThreadPoolExecutor(1, thread_name_prefix="provisiond-db")
        return await asyncio.get_running_loop().run_in_executor(self._database, function, *args)

    # -- main loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._arrived = asyncio.Event()
        writer = asyncio.create_task(self._write_loop(stop))
        heart = asyncio.create_task(self.upkeep.heartbeat(stop))
        next_sweep = 0.0
        outage = 0  # rounds in a row the database did not answer
        try:
            while not stop.is_set():
                try:
                    if time.monotonic() >= next_sweep:
                        await self._in_db(self._housekeeping)
                        next_sweep = time.monotonic() + HOUSEKEEPING_SECONDS
                    self._wake.clear()
                    claim = await self._claim()
                    self._dispatch(claim.tasks, claim.read_ahead)
                    if outage:
                        log.info("the database answers again: claiming")
                    outage = 0
                    if self._starved and len(self._slots) < self.capacity:
                        continue
                    await self._idle(stop, claim)
                except SQLAlchemyError:
                    # The database is away (restarting, a network cut): keep what runs, claim
                    # nothing, ask again with backoff. Workers that still reach it take over
                    # this one's tasks once its heartbeat is older than the worker timeout.
                    if not outage:
                        log.warning("the database does not answer; not claiming until it does",
                                    exc_info=True)
                    outage += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), min(5.0, 0.2 * 2 ** min(outage, 5)))
        finally:
            await self._finish_jobs()
            self._flush_now.set()
            self._arrived.set()
            await writer
            heart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heart
            with contextlib.suppress(SQLAlchemyError):
                given_back = await self._in_db(self.upkeep.retire)
                if given_back:
                    log.warning("gave %d unfinished tasks back to the queue", given_back)
            await self.pool.aclose()
            if self._database is not None:
                self._database.shutdown(wait=True)
                self._database = None

    async def _finish_jobs(self) -> None:
        """Stopping: the tasks in flight get ``worker_drain_seconds`` to finish; what is still
        running then is cancelled and given back to the queue (``_retire``), to run again
        elsewhere, reading the app first."""
        deadline = time.monotonic() + self.settings.worker_drain_seconds
        warned = False
        while self._jobs:  # jobs spawn jobs (a batch's read spawns its requests): look again
            left = deadline - time.monotonic()
            if left > 0:
                await asyncio.wait(list(self._jobs), timeout=left,
                                   return_when=asyncio.FIRST_COMPLETED)
                continue
            if not warned:
                log.warning("%d jobs still running after the drain period: cancelling them",
                            len(self._jobs))
                warned = True
            for job in list(self._jobs):
                job.cancel()
            await asyncio.gather(*list(self._jobs), return_exceptions=True)

    def _housekeeping(self) -> None:
        """Queue accounts due for deletion."""
        from provisiond.engine.sweep import sweep_expired

        try:
            with self.db.session() as session:
                sweep_expired(session)
        except Exception:  # housekeeping must never stop the worker; it is retried later
            log.exception("worker housekeeping failed")

    async def _idle(self, stop: asyncio.Event, claim: _Claim) -> None:
        assert self._wake is not None
        timeout = IDLE_POLL_SECONDS
        if len(self._slots) < self.capacity:  # at capacity, a finished task wakes us anyway
            due = claim.next_due if claim.due_read else await self._in_db(self._next_due)
            if due is not None:
                timeout = max(0.0, min(timeout, (due - utcnow()).total_seconds()))
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        _, pending = await asyncio.wait(
            waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for waiter in pending:
            waiter.cancel()

    def _next_due(self) -> datetime | None:
        """The next task coming due. Tasks due already but left by the last claim wait for
        room (a finished task wakes the worker) or for their key to finish elsewhere (the
        poll's floor): counting them would make the loop spin."""
        with self.db.session() as session:
            return queue.next_due(session, after=utcnow())

    # -- claiming ----------------------------------------------------------------------------

    async def _claim(self) -> _Claim:
        room_total = self.capacity - len(self._slots)
        if room_total <= 0 or not await self.upkeep.registered():
            return _Claim([])
        room_normal = self.capacity - self.reserved - (len(self._slots) - self._urgent)
        room = {
            app_id: self._depth(app_id) - self._per_app.get(app_id, 0)
            for app_id in self._concurrency
        }
        for app_id, running in self._per_app.items():
            room.setdefault(app_id, min(DEFAULT_APP_ROOM, self.share) - running)
        full = [app_id for app_id, left in room.items() if left <= 0]
        default = min(DEFAULT_APP_ROOM, self.share)
        # New work was committed: a leaver's task in an app that is at its depth (a backlog
        # of its own) is taken at once, into the capacity kept for lifecycle tasks, and goes
        # first at the app's gate, instead of waiting for half that backlog to drain.
        urgent_anywhere = self._news and bool(full)
        self._news = False
        try:
            claim: _Claim = await self._in_db(
                self._claim_and_read, room_total, room_normal, room, full, default,
                urgent_anywhere,
            )
            # Took all it could: more may be due, so freed slots are worth a claim.
            self._starved = len(claim.tasks) >= min(room_total, max(room_normal, 1))
            exhausted = claim.exhausted and not self._starved
            self._exhausted_until = time.monotonic() + EXHAUSTED_SECONDS if exhausted else 0.0
            return claim
        except IntegrityError:
            # An on-demand run took one of these keys in the same instant (uq_tasks_running_key):
            # nothing was claimed; the next round claims what is still queued.
            self._exhausted_until = 0.0
            return _Claim([])

    def _claim_and_read(self, *args: Any) -> _Claim:
        """The claim, the read and decide of its account tasks, and when the next task comes
        due, in one trip to the database thread: a leaver's requests go out one hand-off
        between threads sooner, and the idle wait needs no query of its own."""
        claimed, due, exhausted = self._claim_in_db(*args)
        accounts = _accounts_by_app(claimed)
        read_ahead: _ReadAhead = None
        if accounts:
            try:
                read_ahead = self._prepare_all(accounts)
            except Exception as exc:  # handled as a failed read, by _run_accounts
                read_ahead = exc
        return _Claim(claimed, read_ahead, True, due, exhausted)

    def _claim_in_db(
        self,
        room_total: int,
        room_normal: int,
        room: dict[str, int],
        full: list[str],
        default: int,
        urgent_anywhere: bool = False,
    ) -> tuple[list[queue.Claimed], datetime | None, bool]:
        """Up to ``room_total`` tasks, of which at most ``room_normal`` not lifecycle ones,
        when the next task not due yet comes due, and whether the claim took every due task
        it could have had whatever its room (then more room would have found nothing more).

        A claim looks at a window of the due tasks: when an app reached its room in it, the
        claim is made again without that app, so that its older backlog cannot hide the tasks
        of apps behind it (at most twice more)."""
        batch: list[queue.Claimed] = []
        skip = set(full)
        cluster = self.upkeep.clustered()
        # Short of its limit with no app left out or capped, and not only lifecycle tasks
        # asked for: nothing else is due (but keys running, and apps paused). Not in a
        # cluster, whose claims are also capped by what other workers run.
        exhausted = False
        with self.db.session() as session:
            for _ in range(3):
                urgent_only = room_normal - sum(t.priority != 0 for t in batch) <= 0
                limit = room_total - len(batch)
                if not urgent_only:
                    limit = min(limit, room_normal - sum(t.priority != 0 for t in batch))
                if limit <= 0:
                    break
                got = queue.claim(
                    session, self.id, limit, skip_apps=sorted(skip), room=room,
                    default_room=default, urgent_only=urgent_only, cluster=cluster,
                )
                batch += got
                taken = Counter(task.app_id for task in got)
                for app_id, n in taken.items():
                    room[app_id] = room.get(app_id, default) - n
                capped = {app_id for app_id in taken if room[app_id] <= 0}
                exhausted = (
                    len(got) < limit and not capped and not skip and not urgent_only
                    and not cluster
                )
                if len(got) >= limit and not urgent_only and room_total > len(batch):
                    # Filled the normal room: what is left is for lifecycle tasks only.
                    room_normal = sum(t.priority != 0 for t in batch)
                    skip |= capped
                    continue
                if len(got) >= limit or not capped:
                    break  # took all it may, or nobody was hidden behind a capped app
                skip |= capped
            left = room_total - len(batch)
            if urgent_anywhere and left > 0:
                # Lifecycle tasks of apps without room: bounded by the worker's capacity only.
                batch += queue.claim(
                    session, self.id, min(left, self.reserved), urgent_only=True, cluster=cluster
                )
            due = queue.next_due(session, after=utcnow())  # see _next_due
        return batch, due, exhausted

    def _dispatch(self, claimed: Sequence[queue.Claimed], read_ahead: _ReadAhead = None) -> None:
        for task in claimed:
            urgent = task.priority == 0
            self._slots[(task.id, task.claimed_at)] = (task.app_id, urgent)
            self._per_app[task.app_id] += 1
            self._urgent += urgent
            if task.kind == "group":  # pushed groups: their own reconciler, one at a time
                self._spawn(self._run_group(task))
            elif task.kind in OTHER_KINDS:  # an import: outside the app's gate, one request at once
                self._spawn(self._run_other(task))
        accounts = _accounts_by_app(claimed)
        if accounts:
            self._spawn(self._run_accounts(accounts, read_ahead))

    def _spawn(self, job: Any) -> None:
        task = asyncio.create_task(job)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    def _release(self, task: queue.Claimed) -> None:
        found = self._slots.pop((task.id, task.claimed_at), None)
        if found is None:
            return
        app_id, urgent = found
        self._per_app[app_id] -= 1
        if self._per_app[app_id] <= 0:
            del self._per_app[app_id]
        self._urgent -= urgent
        # A freed slot is worth a claim (a transaction) when nothing runs any more, or once
        # half of the app's depth is free, or when the last claim took all it could; not
        # while the last claim found nothing more it could take (new work, a leaver's too,
        # wakes the worker through wake()). That is trusted for EXHAUSTED_SECONDS only: work
        # can come due without a wake() (another process's enqueue on SQLite, a held run
        # cancelled elsewhere, a key an on-demand run held).
        depth = self._depth(app_id)
        free = self.capacity - len(self._slots)
        exhausted = time.monotonic() < self._exhausted_until
        useful = not self._slots or (not exhausted and (
            self._per_app.get(app_id, 0) <= depth - max(1, depth // 2)
            or (self._starved and free >= self._claim_batch)
            or urgent
        ))
        if self._wake is not None and useful:
            self._wake.set()

    def _depth(self, app_id: str) -> int:
        """How many of the app's tasks this worker holds at most: four times what the app may
        run at once (so the next ones are read and decided before a request returns), within
        its share."""
        return min(4 * self._concurrency.get(app_id, DEFAULT_APP_ROOM // 4), self.share)

    def _gate(self, app_id: str) -> Gate:
        limit = min(self._concurrency.get(app_id, 1), self.share)
        return self._gates.setdefault(f"{app_id}:{limit}", Gate(limit))

    # -- account tasks -----------------------------------------------------------------------

    async def _run_accounts(
        self,
        batch: dict[str, list[queue.Claimed]],
        read_ahead: _ReadAhead = None,
    ) -> None:
        """Read and decide every app's account tasks of a claim at once (unless the claim
        did already: ``read_ahead``), then apply each."""
        try:
            if isinstance(read_ahead, BaseException):
                raise read_ahead
            if read_ahead is None:
                prepared = await self._in_db(self._prepare_all, batch)
            else:
                prepared = read_ahead
        except Exception as exc:  # a bug must not kill the loop; the tasks are marked dead
            tasks = [task for group in batch.values() for task in group]
            log.exception("reading %d account tasks failed", len(tasks))
            await asyncio.gather(*(self._crashed(task, exc) for task in tasks))
            return
        for app_id, ready in prepared.items():
            for outcome in ready.done:
                self._spawn(self._settle(outcome))
            ctx = ready.ctx
            if ctx is None:  # the app was deleted since the claim: its tasks went with it
                for task in batch[app_id]:
                    self._release(task)
                continue
            self._concurrency[app_id] = ctx.provisioning.concurrency
            if ready.probe_empty and not self._probed(app_id):
                # Beside the creates, not before them: a slow answer delays nothing.
                self._probing.add(app_id)
                self._spawn(self._probe_empty(ctx))
            for task, snap in ready.apply:
                self._spawn(self._apply(ctx, task, snap))

    async def _probe_empty(self, ctx: AppContext) -> None:
        """One look at an app provisiond has never written to: if it holds no user, the
        creates of the next minutes need no lookup first (engine.executor, ``skip_lookup``)."""
        try:
            async with self._gate(ctx.app_id).slot():
                if self.upkeep.paused_until(ctx.app_id) is not None:
                    return  # it asked to slow down: the creates look up as usual
                empty = await (await self.pool.get(ctx)).holds_no_users()
        except ConnectorError:
            return  # the creates look up as usual, and report the failure themselves
        finally:
            self._probing.discard(ctx.app_id)
        if empty:
            self._known_empty[ctx.app_id] = (time.monotonic() + KNOWN_EMPTY_SECONDS, ctx.version)
        else:
            self._not_empty[ctx.app_id] = time.monotonic() + KNOWN_EMPTY_SECONDS

    def _probed(self, app_id: str) -> bool:
        """Whether the app's emptiness is known (either way) and still trusted."""
        if app_id in self._known_empty or app_id in self._probing:
            return True
        return self._not_empty.get(app_id, 0.0) > time.monotonic()

    def _skips_lookup(self, ctx: AppContext) -> bool:
        seen = self._known_empty.get(ctx.app_id)
        if seen is None or ctx.provisioning.matching != "userName":
            return False
        expires, version = seen
        if time.monotonic() < expires and version == ctx.version:
            return True
        del self._known_empty[ctx.app_id]  # expired, or the app (its URL, say) changed
        return False

    def _prepare_all(self, batch: dict[str, list[queue.Claimed]]) -> dict[str, _Prepared]:
        """Read and decide the account tasks of every app of a claim, in one short transaction
        of a handful of statements: a leaver's ten deprovisionings cost what one does."""
        now = utcnow()
        broken: dict[str, str] = {}
        with self.db.session() as session:
            contexts = read_contexts(session, self.vault, batch, broken)
            inputs = read_batch(
                session, contexts, {app: [t.subject_id for t in tasks] for app, tasks in batch.items()}
            )
            snaps: dict[str, list[tuple[queue.Claimed, Snapshot]]] = {}
            crashed: list[tuple[queue.Claimed, str]] = []
            for app_id, tasks in batch.items():
                if app_id not in contexts:  # deleted (its tasks went with it), or broken
                    crashed += [(task, broken[app_id]) for task in tasks if app_id in broken]
                    continue
                snaps[app_id] = []
                for task in tasks:
                    try:
                        snaps[app_id].append((task, snapshot(
                            contexts[app_id], inputs[app_id][task.subject_id], None,
                            queued_at=task.updated_at, now=now,
                        )))
                    except Exception as exc:  # a bug for one user must not stop the others
                        log.exception("planning task %s of app %s crashed", task.id, app_id)
                        crashed.append((task, f"internal error: {type(exc).__name__}"))
            pending = {
                app_id: {s.pending.kind for _, s in pairs if s.pending is not None}
                for app_id, pairs in snaps.items()
            }
            # Only a deprovisioning can be held, so only then are the held runs read.
            holds = read_holds_many(
                session, [app for app, kinds in pending.items() if kinds & DEPROVISIONS], now
            )
            probe = {
                app_id
                for app_id, kinds in pending.items()
                if OperationKind.CREATE in kinds
                and contexts[app_id].provisioning.matching == "userName"
                and not self._probed(app_id)
                and not has_accounts(session, app_id)
            }
        prepared: dict[str, _Prepared] = {app_id: _Prepared(None, [], []) for app_id in batch}
        for app_id, pairs in snaps.items():
            ready = prepared[app_id] = _Prepared(contexts[app_id], [], [], app_id in probe)
            for task, snap in pairs:
                if app_id in holds:
                    snap = with_holds(snap, holds[app_id], task.updated_at)
                decision = decide(snap)
                if decision.applies:
                    ready.apply.append((task, snap))
                else:
                    ready.done.append(not_applied(task, snap, decision, self.retry_policy, now))
        for task, error in crashed:
            prepared[task.app_id].done.append(self._failed(task, error, now))
        return prepared

    async def _apply(self, ctx: AppContext, task: queue.Claimed, snap: Snapshot) -> None:
        outcome = await self.reconcile_one(ctx, task, snap)
        if outcome is None:  # no longer this worker's, or a newer change took it over
            self._release(task)
            return
        await self._settle(outcome, slot=task)

    async def reconcile_one(
        self, ctx: AppContext, task: queue.Claimed, snap: Snapshot
    ) -> Outcome | None:
        """Apply one decided key; None when, after a long wait for the app's gate, the task
        turned out to be no longer this worker's or a newer change was queued for its key
        (nothing is sent: the plan is stale, the newer task reconciles the key)."""
        result = Result()
        result.step("scope", snap.reason, policy_version=ctx.policy.version or 0)
        waited_as = task
        self.renewals.waiting(task)  # a check made while it waits may take it (engine.leases)
        try:
            async with self._gate(ctx.app_id).slot(urgent=task.priority == 0):
                # From here on the task is as the last check left it: its writes carry the
                # lease that check renewed.
                latest = await self.renewals.latest(waited_as)
                if latest is None:
                    return None
                task = latest
                if (until := self.upkeep.paused_until(ctx.app_id)) is not None:
                    return waits_for_pause(task, until)
                if utcnow() - task.claimed_at > leases.RECHECK_AFTER:
                    renewed = await self.renewals.renew(task, waited_as)
                    if renewed is None:
                        return None
                    task = renewed
                connector = await self.pool.get(ctx)
                skip_lookup = self._skips_lookup(ctx) and task.attempts == 1
                await reconcile(
                    connector, ctx.provisioning, snap.desired, snap.actual,
                    verify_remote=task.verify_remote, deprovision=ctx.deprovision, now=utcnow(),
                    result=result, skip_lookup=skip_lookup and not task.verify_remote,
                )
            self.upkeep.answered(ctx.app_id)
            if any(step["step"] == "adopt" for step in result.trace):
                self._known_empty.pop(ctx.app_id, None)  # someone else writes to it too
        except ConnectorError as exc:
            result.step("error", exc.detail, retryable=exc.retryable)
            result.outcome = "failed"
            retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
            why = self.upkeep.failed(ctx.app_id, exc, retry_after)
            outcome = account_failure(
                task, snap, exc.detail, dead=not exc.retryable and why is None,
                retry_after=retry_after, policy=self.retry_policy, now=utcnow(), result=result,
                app_quarantined=why is not None,
            )
            outcome.quarantine = why
            if retry_after is not None:  # the app's answer to every task: pause it
                outcome.pause = (retry_after, f"HTTP 429, Retry-After {retry_after:.1f} s")
            return outcome
        except SQLAlchemyError as exc:
            # The lease check before sending could not reach the database (a restart, a lock
            # timeout): nothing was sent, or the send's answer is lost with this attempt; one
            # failed check answers every task that asked in it, so it is retried, not buried.
            log.warning("task %s of app %s: the database did not answer (%s); retried",
                        task.id, task.app_id, type(exc).__name__)
            result.outcome = "failed"
            return account_failure(
                task, snap, f"the database did not answer: {type(exc).__name__}", dead=False,
                retry_after=None, policy=self.retry_policy, now=utcnow(), result=result,
            )
        except Exception as exc:  # a bug must not kill the loop; the task is marked dead
            log.exception("task %s of app %s crashed", task.id, task.app_id)
            result.outcome = "failed"
            return account_failure(
                task, snap, f"internal error: {type(exc).__name__}", dead=True,
                retry_after=None, policy=self.retry_policy, now=utcnow(), result=result,
            )
        finally:
            self.renewals.forget(waited_as)
        return applied(task, snap, result, utcnow())

    def _renew(self, tasks: list[queue.Claimed]) -> dict[tuple[str, datetime], queue.Claimed]:
        """Before sending what was planned a while ago (engine.leases): the tasks of these
        still this worker's and with no newer change queued for their key, renewed from now."""
        with self.db.session() as session:
            return leases.renew(session, tasks)

    def _failed(
        self, task: queue.Claimed, error: str, now: datetime, *, dead: bool = False
    ) -> Outcome:
        """A task that could not be planned (retried with backoff, dead once out of attempts:
        a database that was briefly away recovers, a bug shows as a dead task), or whose
        outcome could not be recorded (``dead``)."""
        write, events = failure(
            task, error, dead=dead, retry_after=None, policy=self.retry_policy,
            action="app.user.sync", doing=f"sync of {task.subject_id}", subject=task.subject_id,
            app_name=task.app_id, user_id=task.subject_id,
            targets={"app": task.app_id, "user": task.subject_id}, operation=None, now=now,
        )
        return Outcome(task, write, owned_events=events)

    async def _crashed(self, task: queue.Claimed, exc: BaseException) -> None:
        await self._settle(self._failed(task, f"internal error: {type(exc).__name__}", utcnow()))

    # -- writing -----------------------------------------------------------------------------

    async def _settle(self, outcome: Outcome, slot: queue.Claimed | None = None) -> bool:
        """Hand the outcome to the writer; True once its task's transition is written.

        ``slot``: the task as claimed, when its lease was renewed since (the slot's key)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((outcome, future))
        if self._arrived is not None:
            self._arrived.set()
        if self._flush_now is not None and (outcome.deprovision or len(self._pending) >= FLUSH_MAX):
            self._flush_now.set()
        # The slot is free once the app has answered: the key stays running in the database
        # until the write, so no claim can take it meanwhile.
        self._release(slot or outcome.task)
        return await future

    async def _write_loop(self, stop: asyncio.Event) -> None:
        assert self._flush_now is not None
        assert self._arrived is not None
        while True:
            if not self._pending:
                if stop.is_set() and not self._jobs:
                    return
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), IDLE_POLL_SECONDS)
                continue
            if not self._flush_now.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flush_now.wait(), FLUSH_SECONDS)
            self._flush_now.clear()
            batch, self._pending = self._pending, []
            self._writing = len(batch)
            try:
                owned = await self._in_db(self._write, [outcome for outcome, _ in batch])
            except Exception:  # never leave a future unresolved: the leases run out instead
                log.exception("the write loop failed on %d outcomes", len(batch))
                owned = set()
            finally:
                self._writing = 0
            for outcome, future in batch:
                if not future.done():
                    future.set_result(outcome.task.id in owned)

    def _write(self, outcomes: list[Outcome]) -> set[str]:
        """One transaction for the batch; if it fails, each outcome alone, so that one bad row
        cannot lose the others. An outcome that cannot be written at all leaves its task
        running: the lease runs out and the task is reconciled again (level-based, so it
        finds the account as the app now has it)."""
        try:
            with self.db.session() as session:
                owned = write_outcomes(session, outcomes, utcnow())
                again = successors_queued(session, outcomes)
            if again:
                self.wake()
            elif self.upkeep.clustered():
                # Capped claims count running tasks cluster-wide: the room these tasks held
                # is free only now that they are closed, not when their app answered.
                self._nudge()
            return owned
        except Exception as exc:
            if len(outcomes) == 1:
                log.exception("writing the outcome of task %s failed", outcomes[0].task.id)
                return self._write_unrecordable(outcomes[0], exc)
            log.exception("writing %d outcomes failed; writing them one by one", len(outcomes))
        written: set[str] = set()
        for outcome in outcomes:
            written |= self._write([outcome])
        return written

    def _write_unrecordable(self, outcome: Outcome, exc: Exception) -> set[str]:
        """An outcome that cannot be written (a target answered a value the database refuses,
        say): its task is dead with the reason, so it is seen, never retried in silence. What
        was sent stays sent; the account's next reconcile reads it back where it can."""
        task = outcome.task
        error = f"the outcome could not be recorded: {type(exc).__name__}: {exc}"[:500]
        try:
            with self.db.session() as session:
                dead = self._failed(task, error, utcnow(), dead=True)
                return write_outcomes(session, [dead], utcnow())
        except Exception:
            # The database itself is away: the lease runs out and the task runs again.
            log.exception("recording the failure of task %s failed too", task.id)
            return set()

    # -- imports -----------------------------------------------------------------------------

    async def _run_other(self, claimed: queue.Claimed) -> None:
        try:
            await OTHER_KINDS[claimed.kind](self, claimed)
        except Exception as exc:  # a bug must not kill the loop; the task is marked dead
            log.exception("task %s of app %s crashed", claimed.id, claimed.app_id)
            await self._in_db(self._bury, claimed, f"internal error: {type(exc).__name__}")
        finally:
            self._release(claimed)

    def _bury(self, claimed: queue.Claimed, error: str) -> None:
        with self.db.session() as session:
            task = session.get(Task, claimed.id)
            if task is not None and task.status == queue.RUNNING:
                task.status, task.last_error, task.updated_at = queue.DEAD, error, utcnow()

    # -- pushed groups ---------------------------------------------------------------------

    async def _run_group(self, claimed: queue.Claimed) -> None:
        try:
            async with self._gate(claimed.app_id).slot(urgent=claimed.priority == 0):
                await self._execute_group(claimed.id)
        except Exception as exc:  # a bug must not kill the loop; the task is marked dead
            log.exception("task %s of app %s crashed", claimed.id, claimed.app_id)
            with self.db.session() as session:
                task = session.get(Task, claimed.id)
                if task is not None and task.status == queue.RUNNING:
                    fail_group(self, session, task, None, f"internal error: {type(exc).__name__}",
                               dead=True, retry_after=None)
        finally:
            self._release(claimed)

    async def _execute_group(self, task_id: str) -> Result | None:
        with self.db.session() as session:
            task = session.get(Task, task_id)
            if task is None or task.status != queue.RUNNING:
                return None  # requeued meanwhile: its new owner runs it
            task.claimed_at = lease = utcnow()  # renew the lease: the work starts now
            snap = group_snapshot(session, self.vault, task.app_id, task.subject_id)
            if snap is None:  # no longer pushed, or the app is gone: nothing to do
                close_task(session, task, queue.SUCCEEDED, "unchanged")
                return None
            self._concurrency[snap.app_id] = snap.provisioning.concurrency
            verify, attempts = task.verify_remote, task.attempts
        # A retry reads the app's group first: a write that timed out may have been applied.
        return await execute_group(self, task_id, lease, snap, verify=verify or attempts > 1)

    # -- one task now (provisioning on demand) ---------------------------------------------

    async def execute(self, task_id: str) -> Result | None:
        """Reconcile one claimed task now, through the same read, decide and write as every
        batch (a batch of one), and return the result with its step-by-step trace."""
        claimed = await self._in_db(self._load_claimed, task_id)
        if claimed is None:
            return None
        if claimed.kind == "group":
            return await self._execute_group(task_id)
        prepared = (await self._in_db(self._prepare_all, {claimed.app_id: [claimed]}))[
            claimed.app_id
        ]
        if prepared.ctx is None:
            return None
        if prepared.done:
            (outcome,) = prepared.done
        else:
            ((task, snap),) = prepared.apply
            applied_now = await self.reconcile_one(prepared.ctx, task, snap)
            if applied_now is None:
                return None
            outcome = applied_now
        await self._in_db(self._write, [outcome])
        return outcome.result

    async def aclose(self) -> None:
        """Release what a worker that was never ``run`` holds (provisioning on demand)."""
        await self.pool.aclose()
        if self._database is not None:
            self._database.shutdown(wait=True)
            self._database = None

    def _load_claimed(self, task_id: str) -> queue.Claimed | None:
        with self.db.session() as session:
            task = session.get(Task, task_id)
            if task is None or task.status != queue.RUNNING:
                return None
            return queue.Claimed.of(task)

    # -- tests, benchmarks and one-shot commands -------------------------------------------

    async def drain(self, timeout: float = 30.0) -> None:
        """Run until no task is due or running (for tests, benchmarks and one-shot commands)."""
        stop = asyncio.Event()
        runner = asyncio.create_task(self.run(stop))
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                if self._slots or self._pending or self._writing:  # still working
                    continue
                due, busy = await self._in_db(self._queue_state)
                if (
                    not busy
                    and not self._slots
                    and (due is None or due > utcnow() + timedelta(seconds=1))
                ):
                    return
        finally:
            stop.set()
            await runner

    def _queue_state(self) -> tuple[datetime | None, int]:
        with self.db.session() as session:
            due = queue.next_due(session)
            busy = session.scalar(
                select(func.count()).select_from(Task).where(Task.status == queue.RUNNING)
            )
        return due, int(busy or 0)
