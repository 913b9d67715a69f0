"""What the worker holds per app: one pooled connector, and a gate that lets lifecycle work
through first."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx

from provisiond.config import Settings
from provisiond.connectors.base import Connector, RateGate
from provisiond.connectors.registry import build_connector
from provisiond.engine.context import AppContext
from provisiond.engine.pushed_groups import GroupSnapshot

RETIRED_KEPT = 16  # replaced connectors kept open a while: a request may still be on its way


class ConnectorPool:
    """One connector per app (pooled connections), rebuilt when the app's settings change."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        config: Settings | None = None,
        *,
        rate_gates: Callable[[str, float], RateGate] | None = None,
    ) -> None:
        """``rate_gates``: the app's rate limit as a cluster holds it (engine.rate), for apps
        that have one; without it each connector keeps its own."""
        self._items: dict[str, tuple[str, Connector]] = {}
        self._retired: list[Connector] = []
        self._transport = transport
        self._config = config
        self._rate_gates = rate_gates

    async def get(self, snap: AppContext | GroupSnapshot) -> Connector:
        """The app's connector for these settings. A task read before a change of the app's
        settings never replaces the newer connector (it gets the newer one), and a replaced
        connector is closed only once the requests it may still carry are over."""
        app_id = snap.app_id
        version = snap.version if isinstance(snap, AppContext) else snap.app_version
        current = self._items.get(app_id)
        if current is not None and current[0] >= version:  # ISO timestamps order as text
            return current[1]
        assert snap.connector is not None, "a planning context sends nothing"
        # The app's hourly budget (a SCIM app's dialect profile) holds cluster-wide too.
        rate = snap.provisioning.rate_limit_per_second
        profile = getattr(snap.connector, "profile", None)  # other kinds have none
        rate = profile.paced(rate) if profile is not None else rate
        connector = build_connector(
            snap.connector, snap.provisioning, self._transport, self._config,
            rate_gate=self._rate_gates(app_id, rate) if rate and self._rate_gates else None,
        )
        self._items[app_id] = (version, connector)
        if current is not None:
            self._retired.append(current[1])
            if len(self._retired) > RETIRED_KEPT:
                await self._retired.pop(0).aclose()
        return connector

    async def aclose(self) -> None:
        for _, connector in self._items.values():
            await connector.aclose()
        for connector in self._retired:
            await connector.aclose()
        self._items.clear()
        self._retired.clear()


class Gate:
    """At most ``limit`` requests to one app at once; waiting lifecycle tasks (a leaver's
    deprovisioning) go before waiting bulk ones, whatever the order they arrived in."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._busy = 0
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @asynccontextmanager
    async def slot(self, urgent: bool = False) -> AsyncIterator[None]:
        await self._acquire(urgent)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, urgent: bool) -> None:
        if self._busy < self.limit and not self._waiting:
            self._busy += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (0 if urgent else 1, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # handed the slot just as it was cancelled: pass it on
            raise

    def _release(self) -> None:
        self._busy -= 1
        while self._waiting and self._busy < self.limit:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():  # a cancelled waiter is skipped
                self._busy += 1
                future.set_result(None)
