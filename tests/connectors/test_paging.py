"""connectors.paging: every item of a listing exactly once, whatever the app gets wrong.

The pure walk against listings that misbehave as real apps do (hypothesis), and
``ScimConnector.list_users`` walked against the real scim2-server.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from provisiond.connectors.base import Page, RemoteUser
from provisiond.connectors.paging import Walk
from provisiond.connectors.scim import ScimConnector
from provisiond.domain.apps import ScimConnectorSettings
from tests.connectors.conftest import LOOPBACK


def listing(
    items: list[int], *, cap: int | None, total: str, stuck: bool
) -> Any:
    """An app's GET handler: ``cap`` sends at most that many whatever ``count`` says (None:
    honours count); ``total`` is right, missing, or off by some; ``stuck`` ignores startIndex."""

    async def fetch(start: int, count: int) -> Page:
        size = count if cap is None else cap
        first = 0 if stuck else start - 1
        sent = items[first:first + size]
        claimed = {"right": len(items), "missing": None, "high": len(items) + 7}[total]
        return Page(list(sent), claimed, start)

    return fetch


async def walk_all(walk: Walk) -> list[Any]:
    got: list[Any] = []
    async for page in walk:
        got += page
    return got


@given(
    size=st.integers(0, 300),
    page_size=st.integers(1, 60),
    cap=st.none() | st.integers(1, 80),
    total=st.sampled_from(["right", "missing", "high"]),
    repeats=st.lists(st.integers(0, 299), max_size=20),
)
def test_every_item_once_whether_count_is_honoured_and_total_sent_or_not(
    size: int, page_size: int, cap: int | None, total: str, repeats: list[int]
) -> None:
    base = list(range(size))
    # A listing that changed while read repeats some items (they shift into a later page).
    items = [x for item in base for x in ([item, item] if item in repeats else [item])]
    walk = Walk(listing(items, cap=cap, total=total, stuck=False), key=lambda i: i,
                page_size=page_size)
    got = asyncio.run(walk_all(walk))
    assert got == base
    assert walk.seen == size
    assert walk.repeated <= len(items) - size


@given(size=st.integers(1, 200), page_size=st.integers(1, 50))
def test_an_app_that_ignores_start_index_ends_the_walk_after_a_few_repeated_pages(
    size: int, page_size: int
) -> None:
    walk = Walk(listing(list(range(size)), cap=None, total="missing", stuck=True),
                key=lambda i: i, page_size=page_size)
    got = asyncio.run(walk_all(walk))
    assert got == list(range(min(size, page_size)))
    assert walk.pages <= 4


def test_a_walk_stops_at_its_cap_and_says_so() -> None:
    walk = Walk(listing(list(range(100)), cap=None, total="right", stuck=False),
                key=lambda i: i, page_size=30, max_items=45)
    assert len(asyncio.run(walk_all(walk))) == 45
    assert walk.truncated


def test_list_users_walks_every_account_of_a_real_scim_server(
    scim_settings: ScimConnectorSettings,
) -> None:
    tag = uuid.uuid4().hex[:8]

    async def scenario() -> tuple[list[RemoteUser], Walk]:
        connector = ScimConnector(scim_settings, policy=LOOPBACK)
        try:
            for n in range(7):
                await connector.create_user({"userName": f"pager.{tag}.{n}", "active": True})
            walk = Walk(connector.list_users, key=lambda u: u.remote_id, page_size=3)
            return await walk_all(walk), walk
        finally:
            await connector.aclose()

    users, walk = asyncio.run(scenario())
    mine = sorted(u.attributes["userName"] for u in users if tag in u.attributes["userName"])
    assert mine == [f"pager.{tag}.{n}" for n in range(7)]
    assert walk.claimed_total == walk.seen and walk.repeated == 0
    assert walk.pages >= 3  # paged, 3 at a time
