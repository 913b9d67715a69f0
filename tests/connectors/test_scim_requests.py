"""The requests ScimConnector builds itself are the ones httpx's client would build.

The connector builds a request's URL and headers without httpx's per-request merge
(``ScimHttp.url``, ``ScimHttp.build``, connectors/scim_http.py: the merge was a large part of its CPU per exchange);
what goes out must not change by it: the same URL, bytes for bytes, the same headers in the
same order, the same body and timeouts, and a cookie the app set still sent back.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from provisiond.connectors.scim import ScimConnector
from provisiond.domain.apps import BearerAuth, ScimConnectorSettings
from tests.connectors.conftest import LOOPBACK

BASES = st.sampled_from(
    [
        "http://127.0.0.1:8080/v2",
        "https://app.example.com/scim/v2",
        "https://EXAMPLE.org:8443/api/scim%20v2",
        "http://[::1]:9/scim",
        "https://bücher.example/scim/v2",
    ]
)
VALUES = st.text(min_size=0, max_size=40)


def _connector(base_url: str) -> ScimConnector:
    settings = ScimConnectorSettings(base_url=base_url, auth=BearerAuth(token="t0ken"))
    return ScimConnector(settings, policy=LOOPBACK)


def _as_httpx_builds(
    connector: ScimConnector, method: str, path: str, params: Any, content: bytes | None
) -> httpx.Request:
    headers = {"Content-Type": "application/scim+json"} if content is not None else None
    return connector._http.client.build_request(
        method, path, params=params, content=content, headers=headers
    )


def _same(ours: httpx.Request, theirs: httpx.Request) -> None:
    assert str(ours.url) == str(theirs.url)
    assert ours.url == theirs.url
    assert ours.url.raw_path == theirs.url.raw_path
    assert ours.method == theirs.method
    assert ours.headers.multi_items() == theirs.headers.multi_items()
    assert ours.content == theirs.content
    assert ours.extensions["timeout"] == theirs.extensions["timeout"]


@settings(max_examples=300, deadline=None)
@given(base=BASES, value=VALUES, start=st.integers(1, 10**6), count=st.integers(0, 1000))
def test_a_lookup_url_is_the_one_httpx_would_merge(
    base: str, value: str, start: int, count: int
) -> None:
    connector = _connector(base)
    params = {"filter": f'userName eq "{value}"', "startIndex": start, "count": count}
    ours = connector._http.url("Users", params)
    assert ours == httpx.URL(f"{base}/Users?{urlencode(params)}")
    theirs = _as_httpx_builds(connector, "GET", "Users", params, None)
    _same(connector._http.build("GET", ours, None, "GET /Users"), theirs)


@settings(max_examples=50, deadline=None)
@given(base=BASES, body=st.binary(max_size=64))
def test_a_post_and_an_account_path_are_built_as_httpx_builds_them(base: str, body: bytes) -> None:
    connector = _connector(base)
    _same(
        connector._http.build("POST", connector._http.url("Users", None), body, "POST /Users"),
        _as_httpx_builds(connector, "POST", "Users", None, body),
    )
    path, params = "Users/a%20b", {"attributes": "active"}
    _same(
        connector._http.build("PATCH", connector._http.url(path, params), body, "PATCH /Users/a%20b"),
        _as_httpx_builds(connector, "PATCH", path, params, body),
    )
    _same(
        connector._http.build("DELETE", connector._http.url(path, None), None, "DELETE /Users/a%20b"),
        _as_httpx_builds(connector, "DELETE", path, None, None),
    )


def test_a_cookie_the_app_set_goes_into_the_request_built_ahead() -> None:
    connector = _connector("https://app.example.com/scim/v2")
    connector._http.client.cookies.set("session", "abc", domain="app.example.com", path="/")
    ours = connector._http.build("GET", connector._http.url("Users", None), None, "GET /Users")
    theirs = _as_httpx_builds(connector, "GET", "Users", None, None)
    assert ours.headers["Cookie"] == "session=abc"
    _same(ours, theirs)
