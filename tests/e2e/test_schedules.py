"""A scheduled full sync, end to end: the app's interval set over the API, the scheduler beside
the server's worker starts the run, the run reads the app and repairs what drifted there."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from provisiond.config import Settings
from tests.e2e.conftest import eventually, person
from tests.e2e.test_failures import enabled_app


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"scheduler_tick_seconds": 0.2})


def test_the_scheduler_runs_an_apps_full_sync_and_repairs_drift(
    api: httpx.Client, scim: httpx.Client, target: str
) -> None:
    app = enabled_app(api, "nightly", target)
    user = api.post("/users", json=person("grace.hopper")).json()
    api.post(f"/apps/{app['id']}/assignments",
             json={"principal_type": "user", "principal_id": user["id"]}).raise_for_status()

    def account() -> dict[str, Any] | None:
        items = api.get(f"/apps/{app['id']}/accounts").json()["items"]
        return items[0] if items and items[0]["remote_id"] else None

    remote_id = eventually(account)["remote_id"]
    # Someone edits the account in the app behind provisiond's back.
    scim.patch(f"Users/{remote_id}", json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Not Grace"}],
    }).raise_for_status()
    settings = api.get(f"/apps/{app['id']}/provisioning").json()
    assert settings["full_sync_every_hours"] == 24  # daily unless told otherwise
    for bad in (-1, 0, 10_000, "daily"):  # refused, naming the field; the setting stays
        refused = api.put(f"/apps/{app['id']}/provisioning",
                          json={**settings, "full_sync_every_hours": bad})
        assert refused.status_code == 422, refused.text
        assert "full_sync_every_hours" in refused.text
    assert api.get(f"/apps/{app['id']}/provisioning").json()["full_sync_every_hours"] == 24
    answer = api.put(f"/apps/{app['id']}/provisioning",
                     json={**settings, "full_sync_every_hours": 0.0005})  # 1.8 s
    assert answer.status_code == 200, answer.text

    def scheduled() -> list[dict[str, Any]]:
        runs = api.get(f"/apps/{app['id']}/runs").json()["items"]
        return [r for r in runs if r["kind"] == "full" and r["actor"] == "scheduler"
                and r["status"] == "succeeded"]

    eventually(scheduled)
    eventually(lambda: scim.get(f"Users/{remote_id}").json()["displayName"] != "Not Grace")
    logged = api.get("/logs", params={"action": "app.sync.schedule"}).json()["items"]
    assert logged and "nightly" in logged[0]["message"]
