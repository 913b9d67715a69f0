"""The console lists an LDAP or PostgreSQL app and shows its connector in its own form."""

from __future__ import annotations

import httpx
import pytest

from tests.web.conftest import MakeAdmin, sign_in


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_postgresql_app_is_shown_in_its_form(api: httpx.Client, server: str, make_admin: MakeAdmin) -> None:
    body = {
        "name": "warehouse",
        "label": "Warehouse",
        "connector": {"kind": "postgresql", "host": "db.example.com", "username": "provisiond",
                      "password": "s3cret-pg"},
    }
    app = api.post("/apps", json=body).json()
    with sign_in(server, make_admin("root")) as client:
        listed = client.get("/apps")
        assert "postgresql://db.example.com:5432/postgres" in listed.text
        page = client.get(f"/apps/{app['id']}/provisioning")
        assert page.status_code == 200
        assert "db.example.com" in page.text and "s3cret-pg" not in page.text
        assert 'name="host" type="text" value="db.example.com"' in page.text
        assert "Set — leave empty to keep it." in page.text
