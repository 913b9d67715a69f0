"""The console's connector forms refuse bad input with the field marked, never showing a secret."""

from __future__ import annotations

import httpx
import pytest

from tests.api.test_secret_free_errors import SECRET, _logged, server_log  # noqa: F401
from tests.e2e.conftest import scim_app
from tests.web.conftest import post_form


@pytest.mark.usefixtures("server_log")
def test_the_console_connector_form_keeps_secrets_out_of_pages_and_logs(
    console: httpx.Client,
    api: httpx.Client,
    target: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    app = api.post("/apps", json=scim_app("formed", target)).json()
    before = api.get(f"/apps/{app['id']}").json()
    page = f"/apps/{app['id']}/provisioning"
    for form in [
        {"base_url": f"http://admin:{SECRET}@127.0.0.1/scim", "auth_type": "none"},
        {"base_url": target, "auth_type": "basic", "username": "", "password": SECRET},
        {"base_url": "gopher://127.0.0.1/x", "auth_type": "bearer", "token": SECRET},
        {"base_url": target + "?t=" + SECRET, "auth_type": "bearer", "token": "t"},
    ]:
        answer = post_form(console, page, f"/apps/{app['id']}/connector", form)
        assert answer.status_code == 422, (form, answer.status_code)
        assert SECRET not in answer.text
        assert 'aria-invalid="true"' in answer.text
    created = post_form(
        console,
        "/apps/new",
        "/apps/new",
        {
            "name": "formed2",
            "label": "Formed",
            "base_url": f"https://ops:{SECRET}@127.0.0.1/scim",
            "auth_type": "none",
        },
    )
    assert created.status_code == 422 and SECRET not in created.text
    assert api.get(f"/apps/{app['id']}").json() == before
    assert [a["name"] for a in api.get("/apps").json()["items"]] == ["formed"]
    assert SECRET not in _logged(caplog, capfd)
