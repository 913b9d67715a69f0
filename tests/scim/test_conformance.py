"""scim2-tester, the independent conformance suite, against a running provisiond: every check.

It reads the schemas /scim/v2 publishes and creates, reads, replaces, patches (every
attribute, every op) and deletes Users and Groups with them, over real HTTP."""

from __future__ import annotations

import warnings

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server


def test_scim2_tester_passes_every_check(server: str, scim_token: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with httpx2.Client(
            base_url=f"{server}/scim/v2", headers={"Authorization": f"Bearer {scim_token}"},
            timeout=60,
        ) as http:
            results = check_server(SyncSCIMClient(http))
    failed = [f"{r.title}: {r.reason}" for r in results if r.status != Status.SUCCESS]
    assert len(results) >= 80
    assert failed == []
