"""The credentials key: a wrong key is refused at start, and a rotation keeps provisioning working.

Real databases (SQLite and PostgreSQL), a real SCIM target, the real ``provisiond keys rotate``
command; the servers are the API over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from provisiond.api import create_app
from provisiond.config import Settings
from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings
from provisiond.runtime import Runtime
from provisiond.services import apps, tokens
from provisiond.services.context import SYSTEM
from provisiond.store import keys
from provisiond.store.keys import KeyMismatch
from tests.cli.conftest import invoke, ok
from tests.e2e.conftest import TARGET_TOKEN, eventually, person, remote_user, scim_app
from tests.support.servers import serve_app

OLD, NEW = "the old passphrase", "the new passphrase"


def settings_with(database_url: str, data_dir: Path, key: str, *old: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        secret_key=key,
        old_secret_keys=",".join(old) or None,
        connector_allow_loopback=True,  # the SCIM target runs on 127.0.0.1
    )


@contextmanager
def serving(rt: Runtime) -> Iterator[httpx.Client]:
    """The runtime's API (with its worker) on 127.0.0.1, as a client with a super_admin token."""
    with rt.db.session() as session:
        token = tokens.create_token(session, SYSTEM, "rotation")
    try:
        with serve_app(create_app(runtime=rt, start_worker=True)) as url, httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            yield client
    finally:
        rt.db.dispose()


def provision(api: httpx.Client, scim: httpx.Client, app_id: str, login: str) -> None:
    user = api.post("/users", json=person(login)).json()
    answer = api.post(
        f"/apps/{app_id}/assignments", json={"principal_type": "user", "principal_id": user["id"]}
    )
    assert answer.status_code == 201, answer.text
    eventually(lambda: remote_user(scim, login), timeout=20)


def test_a_wrong_key_is_refused_and_a_rotation_keeps_provisioning(
    database_url: str, tmp_path: Path, target: str, scim: httpx.Client
) -> None:
    suffix = str(time.monotonic_ns())[-8:]
    # Before: an app whose bearer token is sealed with the old key, provisioning a user.
    before = Runtime(settings_with(database_url, tmp_path, OLD))
    before.migrate()
    # The server stops before the rotation: a running one would go on with the old key alone.
    with serving(before) as api:
        app = api.post("/apps", json=scim_app(f"wiki-{suffix}", target)).json()
        settings = api.get(f"/apps/{app['id']}/provisioning").json()
        enabled = api.put(f"/apps/{app['id']}/provisioning", json={**settings, "enabled": True})
        enabled.raise_for_status()
        provision(api, scim, app["id"], f"ada.{suffix}")
    old_print = keys.fingerprint(keys.derive(OLD))

    # Another key is refused at start, naming the key the database expects (never the key).
    with pytest.raises(KeyMismatch) as refused:
        Runtime(settings_with(database_url, tmp_path, "some other passphrase"))
    message = refused.value.detail
    assert f"sealed with the key with fingerprint {old_print}" in message
    assert "PROVISIOND_SECRET_KEY" in message and "keys rotate" in message
    assert OLD not in message and keys.derive(OLD).decode() not in message

    # The rotation: the new key in PROVISIOND_SECRET_KEY, the old one accepted meanwhile.
    env = {
        "PROVISIOND_DATABASE_URL": database_url,
        "PROVISIOND_DATA_DIR": str(tmp_path),
        "PROVISIOND_SECRET_KEY": NEW,
        "PROVISIOND_OLD_SECRET_KEYS": OLD,
    }
    rotated = ok(invoke("--json", "keys", "rotate", env=env))
    new_print = keys.fingerprint(keys.derive(NEW))
    assert '"sealed": 2' in rotated.stdout and new_print in rotated.stdout  # the app + the canary

    # After: the old key alone is refused; the new key alone opens everything and provisions.
    with pytest.raises(KeyMismatch, match=f"fingerprint {new_print}"):
        Runtime(settings_with(database_url, tmp_path, OLD))
    with serving(Runtime(settings_with(database_url, tmp_path, NEW))) as api:
        test = api.post(f"/apps/{app['id']}/provisioning/test").json()
        assert test["ok"], test  # the bearer token decrypts with the new key
        provision(api, scim, app["id"], f"bob.{suffix}")
        events = api.get("/logs", params={"action": "system.key.rotate"}).json()["items"]
    assert [e["targets"]["key"] for e in events] == [new_print]
    assert TARGET_TOKEN not in str(events)


def test_a_missing_key_file_is_refused_and_not_replaced(tmp_path: Path, target: str) -> None:
    """serve used to write a fresh key next to credentials sealed with another one."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    env = {"PROVISIOND_DATABASE_URL": url, "PROVISIOND_DATA_DIR": str(tmp_path)}
    rt = Runtime(  # makes the key file
        Settings(data_dir=tmp_path, database_url=url, connector_allow_loopback=True)
    )
    rt.migrate()
    with rt.db.session() as session:
        apps.create_app(
            session, SYSTEM, rt.vault, name="wiki", label="Wiki",
            connector=ScimConnectorSettings.model_validate(
                {"base_url": target, "auth": {"type": "bearer", "token": TARGET_TOKEN}}
            ),
            provisioning=ProvisioningSettings(),
        )
    rt.db.dispose()
    key_file = tmp_path / "secret.key"
    first = key_file.read_bytes()
    key_file.unlink()

    result = invoke("serve", "--port", "1", env=env)
    assert result.exit_code == 1, result.output
    assert "no credentials key" in result.stderr and str(key_file) in result.stderr
    assert not key_file.exists()

    # With the key file back, a file rotation: new key first, old after it; --drop-old.
    key_file.write_bytes(first)
    ok(invoke("keys", "rotate", env=env))
    lines = key_file.read_bytes().split()
    assert len(lines) == 2 and lines[1] == first.strip()
    ok(invoke("keys", "rotate", "--drop-old", env=env))
    assert len(key_file.read_bytes().split()) == 1
    assert key_file.stat().st_mode & 0o777 == 0o600

    # The first key alone is now refused, by the serve command itself.
    key_file.write_bytes(first)
    result = invoke("serve", "--port", "1", env=env)
    assert result.exit_code == 1
    assert "does not open what this database holds" in result.stderr
    assert first.decode().strip() not in result.stderr
