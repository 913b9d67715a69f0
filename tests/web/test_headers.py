"""Every console response carries the security headers: pages, errors, redirects, static files."""

from __future__ import annotations

import httpx

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def _assert_hardened(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CSP, response.request.url
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


def test_console_responses_carry_the_security_headers(
    server: str, console: httpx.Client
) -> None:
    with httpx.Client(base_url=server) as anonymous:
        _assert_hardened(anonymous.get("/login"))
        _assert_hardened(anonymous.get("/apps"))  # the redirect to sign in
        _assert_hardened(anonymous.get("/static/console.js"))
        _assert_hardened(anonymous.get("/static/console.css"))
    for path in ("/", "/apps", "/activity", "/directory/users", "/tasks", "/no-such-page"):
        _assert_hardened(console.get(path))
