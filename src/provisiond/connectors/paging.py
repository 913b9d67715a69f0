"""Walking every page of an app's listing, whatever the app gets wrong about paging.

RFC 7644 §3.4.2.4 pages by ``startIndex`` (1-based) and ``count``, and requires
``totalResults``. Real apps differ: some ignore ``count`` (sending more or fewer than asked),
some leave ``totalResults`` out or get it wrong, some ignore ``startIndex`` and answer the same
page forever, and a listing that changes while it is read repeats or skips items. The walk:

- advances by what the app *sent*, not by what was asked for;
- drops an item it has already seen (by key), counting it;
- ends on an empty page, after a few pages in a row with nothing new (a server that ignores
  ``startIndex`` answers the same page for ever), past the claimed total, or at ``max_items``
  (a hostile app cannot keep it going for ever);
- without a total, a short page does not end it (an app that caps pages below ``count`` would
  be cut off): only an empty or all-repeated page does.

Only the ids seen are kept, so memory is bounded by the number of accounts, not their size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from provisiond.connectors.base import Page

DEFAULT_MAX_ITEMS = 1_000_000
STALE_PAGES = 3  # pages in a row with nothing new: the app is going round in circles


@dataclass
class Walk:
    """Pages of items not seen before, and what the walk noticed on the way."""

    fetch: Callable[[int, int], Awaitable[Page]]
    key: Callable[[Any], Hashable]
    page_size: int = 100
    max_items: int = DEFAULT_MAX_ITEMS
    pages: int = 0  # requests sent
    repeated: int = 0  # items the app sent more than once
    claimed_total: int | None = None  # the app's last totalResults
    truncated: bool = False  # stopped at max_items
    _seen: set[Hashable] = field(default_factory=set)

    @property
    def seen(self) -> int:
        return len(self._seen)

    @property
    def total_mismatch(self) -> bool:
        """The app's totalResults disagrees with what it listed."""
        return self.claimed_total is not None and self.claimed_total != self.seen

    async def __aiter__(self) -> AsyncIterator[list[Any]]:
        start, stale = 1, 0
        while True:
            page = await self.fetch(start, self.page_size)
            self.pages += 1
            if page.total is not None:
                self.claimed_total = page.total
            if not page.items:
                return
            fresh = []
            for item in page.items:
                marker = self.key(item)
                if marker in self._seen:
                    self.repeated += 1
                    continue
                if len(self._seen) >= self.max_items:
                    self.truncated = True
                    break
                self._seen.add(marker)
                fresh.append(item)
            if fresh:
                yield fresh
            stale = 0 if fresh else stale + 1
            if self.truncated or stale >= STALE_PAGES:
                return
            start += len(page.items)
            if page.total is not None and start > page.total:
                return
