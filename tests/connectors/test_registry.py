"""Connector kinds found by entry points (group ``provisiond.connectors``)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisiond.config import Settings
from provisiond.connectors.base import BuildContext, Connector
from provisiond.connectors.registry import connector_factory, installed_kinds
from provisiond.connectors.scim import ScimConnector
from provisiond.domain.apps import ProvisioningSettings
from provisiond.errors import Invalid
from tests.support.strict import BASE_URL, StrictTarget


@pytest.fixture
def kinds_read_again() -> Iterator[None]:
    installed_kinds.cache_clear()
    yield
    installed_kinds.cache_clear()


def context(transport: httpx.AsyncBaseTransport | None = None) -> BuildContext:
    return BuildContext(ProvisioningSettings(), Settings(), transport)


def test_the_built_in_scim_kind_is_an_entry_point(kinds_read_again: None) -> None:
    target = StrictTarget()
    factory = connector_factory("scim")
    connector = factory(
        {"kind": "scim", "base_url": BASE_URL, "auth": {"type": "none"}},
        context(httpx.ASGITransport(app=target)),
    )
    assert isinstance(connector, ScimConnector)

    async def check() -> bool:
        try:
            return (await connector.test_connection()).ok
        finally:
            await connector.aclose()

    assert asyncio.run(check())


def test_an_unknown_kind_names_the_installed_ones(kinds_read_again: None) -> None:
    with pytest.raises(Invalid, match=r"no connector of kind 'nis'.*scim"):
        connector_factory("nis")


class _Marker:
    """What the third-party factory below builds (a connector in name only)."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = settings


def build_marker(settings: Mapping[str, Any], context: BuildContext) -> Connector:
    return _Marker(settings)  # type: ignore[return-value]


def test_a_third_party_package_ships_a_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kinds_read_again: None
) -> None:
    """A package that declares an entry point in the group is found, as pip installs it."""
    dist = tmp_path / "provisiond_marker-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: provisiond-marker\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[provisiond.connectors]\nmarker = tests.connectors.test_registry:build_marker\n"
    )
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])

    assert {"scim", "marker"} <= set(installed_kinds())
    built = connector_factory("marker")({"anything": 1}, context())
    assert isinstance(built, _Marker) and built.settings == {"anything": 1}
