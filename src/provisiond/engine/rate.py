"""An app's rate limit held across the cluster: every worker's requests spaced by 1/rate.

A connector's own limiter (connectors.scim) counts only its process's requests, so three
workers would send three times the limit. On PostgreSQL with a rate limit set, each request
first takes the app's next slot from one row (``app_rate_slots``): the row moves on by 1/rate
seconds from the later of its value and the database's clock, and the request waits until its
slot. One clock (the database's) and one row lock per request: at most ~rate requests in any
second, whichever workers send them. It costs one short statement per request, on a thread
of its own (never on the event loop), and only for apps with a rate limit.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from provisiond.store.db import Database

# RETURNING: the slot taken (the new value less one interval), as seconds from now.
_TAKE = text(
    """
    INSERT INTO app_rate_slots (app_id, next_slot)
    VALUES (:app_id, clock_timestamp() + make_interval(secs => :gap))
    ON CONFLICT (app_id) DO UPDATE
        SET next_slot = greatest(app_rate_slots.next_slot, clock_timestamp())
            + make_interval(secs => :gap)
    RETURNING extract(epoch FROM next_slot - clock_timestamp()) - :gap
    """
)


class ClusterRate:
    """The connector's rate gate for one app (``take`` before each request)."""

    def __init__(self, db: Database, app_id: str, rate_per_second: float) -> None:
        self.db, self.app_id, self.gap = db, app_id, 1.0 / rate_per_second

    async def take(self) -> None:
        wait = await asyncio.to_thread(self._take)
        if wait > 0:
            await asyncio.sleep(wait)

    def _take(self) -> float:
        with self.db.session() as session:
            wait = session.scalar(_TAKE, {"app_id": self.app_id, "gap": self.gap})
        return float(wait or 0.0)
