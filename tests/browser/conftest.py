"""Playwright (sync API) driving Debian's chromium; screenshots go to artifacts/ (gitignored).

Browser tests run on SQLite only, to keep CI time down: the console's behaviour on PostgreSQL
is covered by tests/web and tests/api/test_roles.py, which run on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.conftest import admin_token, api, scim, server, target  # noqa: F401
from tests.support.patience import PATIENCE
from tests.web.conftest import make_admin  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
# Playwright's own waits (actions and `expect`) default to 5 s, which a page that loads its
# scripts on a CI machine at load 20 has been seen to overrun (the API docs showed "loading").
WAIT_MS = int(15_000 * PATIENCE)
expect.set_options(timeout=WAIT_MS)
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'provisiond.db'}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: apt-get install chromium (see .ci/run)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
