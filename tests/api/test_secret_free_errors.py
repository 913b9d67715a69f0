"""Bad connector input is a 422 that names the field and never shows a secret: not in the
answer, not in the server's log, not in the text of a validation error."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from provisiond.api.schemas import AppCreate
from provisiond.domain.apps import ScimConnectorSettings
from tests.api.test_bad_input import assert_problem
from tests.e2e.conftest import scim_app

SECRET = "LEAKED-PASSWORD-987"
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "provisiond")

BAD_CONNECTORS: list[dict[str, Any]] = [
    {"auth": {"type": "basic", "password": SECRET}},  # the issue's: username missing
    {"auth": {"type": "basic", "username": "u", "password": SECRET, "extra": 1}},
    {"auth": {"type": "bearer", "token": [SECRET]}},
    {"auth": [SECRET]},
    {"auth": [["type", "basic"], ["password", SECRET]]},
    {"auth": SECRET},
    {"auth": {"type": SECRET}},
    {"base_url": f"http://admin:{SECRET}@127.0.0.1:9/scim"},
    {"base_url": "file:///etc/passwd", "auth": {"type": "bearer", "token": SECRET}},
    {"base_url": "gopher://127.0.0.1:70/_x", "auth": {"type": "bearer", "token": SECRET}},
    {"base_url": "http://127.0.0.1/scim?token=" + SECRET},
    {"base_url": "http://127.0.0.1:99999/scim", "auth": {"type": "bearer", "token": SECRET}},
    {"base_url": "http://127.0.0.1/sc im", "auth": {"type": "bearer", "token": SECRET}},
    {"timeout_seconds": "soon", "auth": {"type": "bearer", "token": SECRET}},
]


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record the server logs, uvicorn's too (they do not propagate to the root)."""
    caplog.set_level(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in SERVER_LOGGERS]
    for logger in loggers:
        logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        for logger in loggers:
            logger.removeHandler(caplog.handler)


def _logged(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    out, err = capfd.readouterr()
    records = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''} {r.exc_info!r}" for r in caplog.records
    )
    return "\n".join([records, caplog.text, out, err])


@pytest.mark.parametrize("connector", BAD_CONNECTORS)
def test_a_bad_connector_patch_is_a_secret_free_422(
    api: httpx.Client,
    target: str,
    connector: dict[str, Any],
    server_log: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    app = api.post("/apps", json=scim_app("patched", target)).json()
    before = api.get(f"/apps/{app['id']}").json()
    answer = api.patch(f"/apps/{app['id']}", json={"connector": connector})
    body = assert_problem(answer, 422)
    assert str(body["field"]).startswith("connector.")
    assert SECRET not in answer.text
    assert api.get(f"/apps/{app['id']}").json() == before  # nothing changed
    assert SECRET not in _logged(server_log, capfd)


@pytest.mark.parametrize("connector", BAD_CONNECTORS)
def test_a_bad_connector_on_create_is_a_secret_free_422(
    api: httpx.Client,
    target: str,
    connector: dict[str, Any],
    server_log: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    spec = scim_app("created", target)
    spec["connector"] = {**spec["connector"], **connector}
    answer = api.post("/apps", json=spec)
    body = assert_problem(answer, 422)
    assert str(body["field"]).startswith("connector")
    assert SECRET not in answer.text
    assert api.get("/apps").json()["items"] == []
    assert SECRET not in _logged(server_log, capfd)


_SECRETS = st.text(alphabet="ABCDEFGHJKMNPQRSTUVWXYZ23456789", min_size=12, max_size=40).map(
    lambda s: "S3CR3T" + s
)
_BAD_AUTH = st.sampled_from(
    [
        lambda s: {"type": "basic", "password": s},
        lambda s: {"type": "basic", "username": "", "password": s},
        lambda s: {"type": "bearer", "token": s, "scope": 1},
        lambda s: {"type": "oauth2_client_credentials", "client_secret": s, "token_url": "x"},
        lambda s: {"token": s},
    ]
)


@given(secret=_SECRETS, bad=_BAD_AUTH, base_url=st.sampled_from(["http://h/scim", "ftp://h"]))
def test_validation_errors_never_carry_the_secret(secret: str, bad: Any, base_url: str) -> None:
    connector = {"base_url": base_url, "auth": bad(secret)}
    for model, data in [
        (ScimConnectorSettings, connector),
        (AppCreate, {"name": "x", "label": "X", "connector": connector}),
    ]:
        with pytest.raises(ValidationError) as raised:
            model.model_validate(data)
        assert secret not in str(raised.value) and secret not in repr(raised.value)


# LDAP and PostgreSQL connectors hold their secrets as fields of their own (issue 16).
BAD_OTHER_KINDS: list[tuple[dict[str, Any], str]] = [
    ({"kind": "ldap", "url": "http://127.0.0.1", "bind_dn": "cn=a", "bind_password": SECRET,
      "users_dn": "ou=p"}, "connector.url"),
    ({"kind": "ldap", "url": "ldap://127.0.0.1", "bind_dn": SECRET, "bind_password": SECRET,
      "users_dn": "ou=p"}, "connector.bind_dn"),
    ({"kind": "postgresql", "host": "127.0.0.1", "username": "u", "password": [SECRET]},
     "connector.password"),
    ({"kind": SECRET, "password": SECRET}, "connector"),
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the store plays no part
@pytest.mark.parametrize(("connector", "field"), BAD_OTHER_KINDS)
def test_a_bad_ldap_or_postgresql_connector_is_a_secret_free_422(
    api: httpx.Client, connector: dict[str, Any], field: str,
    server_log: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    answer = api.post("/apps", json={"name": "other", "label": "Other", "connector": connector})
    body = assert_problem(answer, 422)
    assert body["field"] == field
    assert SECRET not in answer.text
    assert api.get("/apps").json()["items"] == []
    assert SECRET not in _logged(server_log, capfd)
