"""Failures downstream are retried, recorded and visible; none is lost."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from provisiond.engine import quarantine
from provisiond.runtime import Runtime
from tests.e2e.conftest import TARGET_TOKEN, assign, eventually, person, remote_user, scim_app
from tests.support.faulty import Fault, FaultyTarget
from tests.support.tcp_proxy import TcpProxy


def enabled_app(
    api: httpx.Client, name: str, base_url: str, **provisioning: object
) -> dict[str, object]:
    app = api.post("/apps", json=scim_app(name, base_url, **provisioning)).json()
    settings = api.get(f"/apps/{app['id']}/provisioning").json()
    response = api.put(
        f"/apps/{app['id']}/provisioning", json={**settings, **provisioning, "enabled": True}
    )
    assert response.status_code == 200, response.text
    return app


def test_transient_errors_are_retried_until_they_pass(
    api: httpx.Client, faulty: tuple[FaultyTarget, str]
) -> None:
    target, base = faulty
    app = enabled_app(api, "flaky", base)
    target.inject(Fault("POST", 503, times=2))
    user = api.post("/users", json=person("retry.me")).json()
    api.post(
        f"/apps/{app['id']}/assignments",
        json={"principal_type": "user", "principal_id": user["id"]},
    )
    with httpx.Client(
        base_url=base + "/", headers={"Authorization": f"Bearer {TARGET_TOKEN}"}
    ) as scim:
        eventually(lambda: remote_user(scim, "retry.me"), timeout=60)

    def provision_events() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = api.get(
            "/logs", params={"user": user["id"], "action": "app.user.provision"}
        ).json()["items"]
        return found

    # The success is logged just after the app answered: wait for it, not only for the account.
    events = eventually(lambda: len(provision_events()) == 3 and provision_events())
    outcomes = sorted(e["outcome"] for e in events)
    assert outcomes == ["retry", "retry", "success"], events
    assert "503" in events[-1]["message"]
    assert [
        t["status"] for t in api.get("/tasks", params={"app": app["id"]}).json()["items"]
    ].count("dead") == 0


def test_429_honours_retry_after(api: httpx.Client, faulty: tuple[FaultyTarget, str]) -> None:
    target, base = faulty
    app = enabled_app(api, "limited", base)
    target.inject(Fault("POST", 429, times=1, headers={"Retry-After": "1"}))
    user = api.post("/users", json=person("slow.down")).json()
    api.post(
        f"/apps/{app['id']}/assignments",
        json={"principal_type": "user", "principal_id": user["id"]},
    )
    retry = eventually(
        lambda: api.get("/logs", params={"outcome": "retry", "action": "app.user"}).json()[
            "items"
        ]
    )
    assert retry[0]["details"]["retry_in_seconds"] >= 0.5  # the test settings cap backoff at 0.5 s
    eventually(lambda: api.get(f"/apps/{app['id']}/accounts").json()["items"], timeout=60)


def test_429_with_retry_after_pauses_the_whole_app(
    api: httpx.Client, faulty: tuple[FaultyTarget, str]
) -> None:
    target, base = faulty
    app = enabled_app(api, "throttled", base, concurrency=1)
    target.inject(Fault("POST", 429, times=1, headers={"Retry-After": "2"}))
    logins = [f"patient.{n}" for n in range(4)]
    for login in logins:
        user = api.post("/users", json=person(login)).json()
        assign(api, app["id"], "user", user["id"])
    eventually(lambda: len(api.get(f"/apps/{app['id']}/accounts").json()["items"]) == 4, 120)
    refused = target.requests.index(("POST", "/v2/Users"))
    after = target.arrivals[refused + 1 :]
    # Not one request to the app until its Retry-After had passed: the other tasks waited.
    assert after and min(after) >= target.arrivals[refused] + 2 - 0.05
    def pause_and_resume() -> list[str]:  # the end is written on a worker's next heartbeat
        events = api.get("/logs", params={"app": app["id"], "action": "app.provisioning"}).json()
        actions = [e["action"] for e in events["items"]]
        return actions if "app.provisioning.resume" in actions else []

    actions = eventually(pause_and_resume)
    assert actions[:2] == ["app.provisioning.resume", "app.provisioning.pause"], actions  # newest first


def test_terminal_errors_end_as_dead_tasks_that_can_be_retried(
    api: httpx.Client, faulty: tuple[FaultyTarget, str]
) -> None:
    target, base = faulty
    app = enabled_app(api, "strict", base)
    target.inject(
        Fault(
            "POST",
            400,
            times=1,
            body={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "400",
                "scimType": "invalidValue",
                "detail": "department is not allowed here",
            },
        )
    )
    user = api.post("/users", json=person("dead.letter")).json()
    api.post(
        f"/apps/{app['id']}/assignments",
        json={"principal_type": "user", "principal_id": user["id"]},
    )
    dead = eventually(lambda: api.get("/tasks", params={"status": "dead"}).json()["items"])
    assert dead[0]["attempts"] == 1  # terminal: not retried blindly
    assert "department is not allowed here" in dead[0]["last_error"]
    logged = api.get("/logs", params={"action": "task.dead"}).json()["items"]
    assert logged and logged[0]["outcome"] == "failure"
    account_errors = api.get(f"/apps/{app['id']}/accounts").json()["items"]
    assert account_errors == []  # never created

    retried = api.post(f"/tasks/{dead[0]['id']}/retry")
    assert retried.status_code == 200, retried.text
    eventually(lambda: api.get(f"/apps/{app['id']}/accounts").json()["items"], timeout=60)
    assert api.post(f"/tasks/{dead[0]['id']}/dismiss").status_code == 409  # no longer dead


def test_deprovisioning_that_keeps_failing_is_dead_and_visible(
    api: httpx.Client, faulty: tuple[FaultyTarget, str]
) -> None:
    target, base = faulty
    app = enabled_app(api, "sticky", base)
    user = api.post("/users", json=person("leaver.one")).json()
    api.post(
        f"/apps/{app['id']}/assignments",
        json={"principal_type": "user", "principal_id": user["id"]},
    )
    eventually(lambda: api.get(f"/apps/{app['id']}/accounts").json()["items"])
    target.inject(Fault("PATCH", 500, times=10))
    api.post(f"/users/{user['id']}/lifecycle/deactivate").raise_for_status()
    dead = eventually(
        lambda: api.get("/tasks", params={"status": "dead"}).json()["items"], timeout=15
    )
    assert dead[0]["operation"] == "deactivate" and dead[0]["attempts"] == 3
    account = api.get(f"/apps/{app['id']}/accounts").json()["items"][0]
    assert account["status"] == "active" and "500" in account["last_error"]
    failures = api.get(
        "/logs", params={"action": "app.user.deprovision", "outcome": "failure"}
    ).json()
    assert failures["items"], "a failed deprovisioning must be in the activity log"
    dismissed = api.post(f"/tasks/{dead[0]['id']}/dismiss").json()
    assert dismissed["status"] == "dismissed"


def app_metric(api: httpx.Client, name: str, **labels: str) -> float:
    """A sample of /metrics (scraped with the test's admin token), summed over ``labels``."""
    root = str(api.base_url).removesuffix("/").removesuffix("/api/v1")
    answer = httpx.get(f"{root}/metrics", headers={"Authorization": api.headers["Authorization"]})
    assert answer.status_code == 200, answer.text
    return sum(
        sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def test_an_app_that_keeps_failing_is_quarantined_then_resumes_by_itself(
    api: httpx.Client, faulty: tuple[FaultyTarget, str], runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, base = faulty
    parts = urlsplit(base)
    assert parts.port is not None
    with TcpProxy("127.0.0.1", parts.port) as proxy:
        app = enabled_app(
            api, "outage", base.replace(f":{parts.port}/", f":{proxy.port}/"), concurrency=1
        )
        leaver = api.post("/users", json=person("leaving.soon")).json()
        assign(api, app["id"], "user", leaver["id"])
        eventually(lambda: api.get(f"/apps/{app['id']}/accounts").json()["items"])
        assert runtime.worker is not None
        # Small enough for a test: 3 of 3 attempts failing, probes a second apart. Tasks have
        # 3 attempts here, and the users are assigned one by one: the first task may well make
        # all 3 failures itself; the last of them quarantines the app and the task waits.
        monkeypatch.setattr(runtime.worker.upkeep, "_watch", quarantine.Watch(window=3, failing=3))
        monkeypatch.setattr(quarantine, "SCHEDULE", (1.0,))
        proxy.cut()  # the app is down: its address refuses every connection
        for n in range(3):
            user = api.post("/users", json=person(f"waiting.{n}")).json()
            assign(api, app["id"], "user", user["id"])
        api.post(f"/users/{leaver['id']}/lifecycle/deactivate").raise_for_status()

        def quarantined() -> dict[str, Any] | None:
            answer = api.get(f"/apps/{app['id']}/provisioning/state")
            assert answer.status_code == 200, answer.text
            state: dict[str, Any] = answer.json()
            return state if state["state"] == "quarantined" else None

        state = eventually(quarantined)
        assert "3 of its last 3 requests failed" in state["reason"]

        def waiting() -> bool:  # the three creates, and the leaver's deprovisioning, shown so
            now = quarantined()
            return now is not None and now["queued"] >= 4 and now["queued_deprovisions"] == 1

        eventually(waiting)
        assert app_metric(api, "provisiond_app_state", app="outage", state="quarantined") == 1
        assert app_metric(api, "provisiond_app_quarantines_total", app="outage") == 1
        eventually(lambda: api.get("/logs", params={"action": "app.provisioning.probe"}).json()[
            "items"
        ])  # a probe ran while it was down, and failed
        tasks = api.get("/tasks", params={"app": app["id"]}).json()["items"]
        assert not [t for t in tasks if t["status"] == "dead"], tasks  # waiting, not burnt

        proxy.restore()  # the app is back

        def landed() -> bool:
            accounts = api.get(f"/apps/{app['id']}/accounts").json()["items"]
            status = {a["user_id"]: a["status"] for a in accounts}
            return len(accounts) == 4 and status[leaver["id"]] == "deactivated"

        eventually(landed, 120)
    assert api.get(f"/apps/{app['id']}/provisioning/state").json()["state"] == "flowing"
    assert app_metric(api, "provisiond_app_state", app="outage", state="flowing") == 1
    resumed = api.get("/logs", params={"action": "app.provisioning.resume"}).json()["items"]
    assert "the probe passed" in resumed[0]["message"]
    # Resuming by hand answers 409 when there is nothing to resume.
    assert api.post(f"/apps/{app['id']}/provisioning/resume").status_code == 409
