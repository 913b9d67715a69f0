"""An outage to recover from: an enabled app whose SCIM target refused every create for a while,
so that each assigned user's task is dead (a terminal 400, not retried blindly)."""

from __future__ import annotations

import time

import httpx

from tests.e2e.conftest import eventually, person, scim_app
from tests.support.faulty import Fault, FaultyTarget

OUTAGE = {
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
    "status": "400", "scimType": "invalidValue", "detail": "directory sync paused",
}


def dead_tasks_after_an_outage(
    api: httpx.Client, target: FaultyTarget, base: str, count: int
) -> tuple[dict[str, object], list[str]]:
    """An enabled app whose first ``count`` creates were refused (terminal): that many dead."""
    suffix = str(time.monotonic_ns())[-8:]
    app = api.post("/apps", json=scim_app(f"outage-{suffix}", base)).json()
    api.put(f"/apps/{app['id']}/provisioning", json={"enabled": True}).raise_for_status()
    target.inject(Fault("POST", 400, times=count, body=OUTAGE))
    logins = [f"u{n}.{suffix}" for n in range(count)]
    for login in logins:
        user = api.post("/users", json=person(login)).json()
        api.post(f"/apps/{app['id']}/assignments",
                 json={"principal_type": "user", "principal_id": user["id"]}).raise_for_status()

    def all_dead() -> bool:
        items = api.get("/tasks", params={"status": "dead", "app": app["id"]}).json()["items"]
        return len(items) == count

    eventually(all_dead, timeout=60)
    return app, logins
