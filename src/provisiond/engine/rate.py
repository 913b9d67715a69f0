"""An app's rate limit held across the cluster: every worker's requests spaced by 1/rate.

A connector's own limiter (connectors.scim) counts only its process's requests, so three
workers would send three times the limit. On PostgreSQL with a rate limit set, each request
first takes the app's next slot from one row (``app_rate_slots``): the row moves on by 1/rate
seconds from the moment it is taken, and a request waits until the slot is free. One clock
(the database's) and one row lock per request: at most ~rate requests in any second, whichever
workers send them. It costs one short statement per request, on a thread
of its own (never on the event loop), and only for apps with a rate limit.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from provisiond.store.db import Database

# Take the slot if it is free now (moving it on by one interval): the request is sent at
# once, so what the database spaces is the sending, not a promise kept after a long sleep (a
# loaded process that woke late from one would send beside the next request). Otherwise:
# how many seconds until it is free.
_TAKE = text(
    """
    INSERT INTO app_rate_slots (app_id, next_slot)
    VALUES (:app_id, clock_timestamp() + make_interval(secs => :gap))
    ON CONFLICT (app_id) DO UPDATE
        SET next_slot = clock_timestamp() + make_interval(secs => :gap)
        WHERE app_rate_slots.next_slot <= clock_timestamp()
    RETURNING 0.0
    """
)
_UNTIL_FREE = text(
    "SELECT extract(epoch FROM next_slot - clock_timestamp()) FROM app_rate_slots"
    " WHERE app_id = :app_id"
)


class ClusterRate:
    """The connector's rate gate for one app (``take`` before each request). One task of this
    process asks the database at a time; the others wait their turn here."""

    def __init__(self, db: Database, app_id: str, rate_per_second: float) -> None:
        self.db, self.app_id, self.gap = db, app_id, 1.0 / rate_per_second
        self._turn = asyncio.Lock()

    async def take(self) -> None:
        async with self._turn:
            while (wait := await asyncio.to_thread(self._take)) > 0:
                await asyncio.sleep(wait)

    def _take(self) -> float:
        """0 when the slot was taken, else the seconds until it is free (at least a little:
        a slot another worker just took is free one interval later)."""
        parameters = {"app_id": self.app_id, "gap": self.gap}
        with self.db.session() as session:
            if session.execute(_TAKE, parameters).first() is not None:
                return 0.0
            wait = session.scalar(_UNTIL_FREE, parameters)
        return max(float(wait or 0.0), self.gap / 20)
