"""/docs in a real browser that may reach nothing but the server: Swagger UI renders every
operation and offers the bearer token (Authorize)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import shot


def test_the_api_docs_render_without_internet(page: Page, server: str) -> None:
    local = urlsplit(server).netloc
    elsewhere: list[str] = []

    def offline(route: Route) -> None:
        if urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:  # a machine without internet: any other host is unreachable
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", offline)
    page.goto(f"{server}/docs")
    expect(page.get_by_role("button", name="Authorize")).to_be_visible()
    operations = len(httpx.get(f"{server}/openapi.json").json()["paths"])
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() >= operations
    shot(page, "api-docs")
    assert elsewhere == []
