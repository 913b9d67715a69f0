"""/metrics: scraped over HTTP after a real provision and deprovision, parsed as Prometheus."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from provisiond.runtime import Runtime
from provisiond.services import tokens
from provisiond.services.context import SYSTEM
from tests.e2e.conftest import eventually, person, remote_user, scim_app


def _scrape(server: str, token: str) -> dict[str, list[Sample]]:
    answer = httpx.get(f"{server}/metrics", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(answer.text)}


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    return sum(found)


def test_metrics_count_operations_queue_and_latency(
    api: httpx.Client, scim: httpx.Client, target: str, server: str, runtime: Runtime
) -> None:
    with runtime.db.session() as session:
        scraper = tokens.create_token(session, SYSTEM, "prometheus", "read_only")
    assert httpx.get(f"{server}/metrics").status_code == 401
    login = f"ada.metrics{time.monotonic_ns()}"  # the target app outlives one database
    app = api.post("/apps", json=scim_app("wiki", target)).json()
    settings = api.get(f"/apps/{app['id']}/provisioning").json()
    api.put(
        f"/apps/{app['id']}/provisioning", json={**settings, "enabled": True}
    ).raise_for_status()
    ada = api.post("/users", json=person(login)).json()
    api.post(
        f"/apps/{app['id']}/assignments", json={"principal_type": "user", "principal_id": ada["id"]}
    ).raise_for_status()
    eventually(lambda: remote_user(scim, login))
    api.post(f"/users/{ada['id']}/lifecycle/deactivate").raise_for_status()
    eventually(lambda: remote_user(scim, login)["active"] is False)

    def deprovisioned() -> dict[str, list[Sample]] | None:
        families = _scrape(server, scraper)
        latency = families["provisiond_deprovision_latency_seconds"]
        done = _value(latency, "provisiond_deprovision_latency_seconds_count", app="wiki") == 1
        return families if done else None

    families = eventually(deprovisioned)
    operations = families["provisiond_operations"]
    assert (
        _value(
            operations, "provisiond_operations_total", app="wiki", op="provision", outcome="success"
        )
        == 1
    )
    assert (
        _value(
            operations,
            "provisiond_operations_total",
            app="wiki",
            op="deprovision",
            outcome="success",
        )
        == 1
    )
    latency = families["provisiond_deprovision_latency_seconds"]
    assert (
        _value(latency, "provisiond_deprovision_latency_seconds_bucket", app="wiki", le="+Inf") == 1
    )
    assert 0 < _value(latency, "provisiond_deprovision_latency_seconds_sum", app="wiki") < 5
    accounts = families["provisiond_accounts"]
    assert _value(accounts, "provisiond_accounts", app="wiki", status="deactivated") == 1
    queue = families["provisiond_task_queue_depth"]
    assert {s.labels["status"] for s in queue} == {"queued", "running", "dead"}
    assert _value(queue, "provisiond_task_queue_depth", status="dead") == 0
    assert families["provisiond_task_oldest_queued_age_seconds"][0].value >= 0
    runs = families["provisiond_run_duration_seconds"]
    assert _value(runs, "provisiond_run_duration_seconds_count", app="wiki", kind="full") >= 1
    assert "provisiond_task_retries" in families
