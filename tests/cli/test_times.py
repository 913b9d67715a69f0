"""Times are printed in local time with their zone: never a bare clock time."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from provisiond.cli.output import when


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_utc_time_is_shown_in_local_time_with_its_zone(berlin: None) -> None:
    assert when("2026-12-01T11:00:00+00:00") == "2026-12-01 12:00:00 CET"
    assert when("2026-07-01T11:00:00Z") == "2026-07-01 13:00:00 CEST"
    assert when("2026-12-01T11:00:00") == "2026-12-01 12:00:00 CET"  # the API's times are UTC
    assert when(None) == "-"
