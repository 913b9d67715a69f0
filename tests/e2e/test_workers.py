"""Worker processes on one PostgreSQL: a killed worker's tasks come back in seconds, a stopped
one gives back what it could not finish, and a worker cut off from the database converges.

Real processes (`provisiond worker`), a real PostgreSQL, a real SCIM target that holds a request
as long as a test needs a task to stay in flight.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from provisiond.api import create_app
from provisiond.engine import queue, retention
from provisiond.runtime import Runtime
from provisiond.store.tables import PeriodicJob, Task, WorkerProcess
from tests.cli.conftest import process
from tests.e2e.conftest import TARGET_TOKEN, eventually, person, scim_app
from tests.support.faulty import Fault, FaultyTarget
from tests.support.servers import serve_app
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
TIMEOUT = 3  # the worker timeout the processes here run with (30 s by default)


@pytest.fixture
def held() -> Iterator[tuple[FaultyTarget, str]]:
    """A SCIM target that holds a POST when told to (a create stays in flight)."""
    target = FaultyTarget(TARGET_TOKEN)
    with serve_app(target) as url:
        yield target, url + "/v2"


@pytest.fixture
def api_only(runtime: Runtime) -> Iterator[httpx.Client]:
    """The API without a worker of its own: only the worker processes reconcile."""
    from provisiond.services import tokens
    from provisiond.services.context import SYSTEM

    with runtime.db.session() as session:
        token = tokens.create_token(session, SYSTEM, "workers")
    with serve_app(create_app(runtime=runtime, start_worker=False)) as url, httpx.Client(
        base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        yield client


def worker_env(runtime: Runtime, database_url: str | None = None, **extra: str) -> dict[str, str]:
    settings = runtime.settings
    assert settings.secret_key is not None
    return {
        "PROVISIOND_DATABASE_URL": database_url or settings.effective_database_url,
        "PROVISIOND_SECRET_KEY": settings.secret_key.get_secret_value(),
        "PROVISIOND_DATA_DIR": str(settings.data_dir),
        "PROVISIOND_WORKER_TIMEOUT_SECONDS": str(TIMEOUT),
        "PROVISIOND_CONNECTOR_ALLOW_LOOPBACK": "true",  # the targets here are on 127.0.0.1
        "PROVISIOND_RETRY_BASE_SECONDS": "0.05",
        "PROVISIOND_RETRY_MAX_SECONDS": "0.5",
        **extra,
    }


def enabled_app(api: httpx.Client, base_url: str) -> str:
    body = scim_app("crm", base_url)
    # A held request stays in flight until the test is done with it, not the connector.
    body["connector"] |= {"timeout_seconds": 120, "request_deadline_seconds": 300}
    app = api.post("/apps", json=body).json()
    settings = api.get(f"/apps/{app['id']}/provisioning").json()
    answer = api.put(f"/apps/{app['id']}/provisioning", json={**settings, "enabled": True})
    assert answer.status_code == 200, answer.text
    return str(app["id"])


def join(api: httpx.Client, app_id: str, login: str) -> str:
    user = api.post("/users", json=person(login)).json()
    answer = api.post(
        f"/apps/{app_id}/assignments", json={"principal_type": "user", "principal_id": user["id"]}
    )
    assert answer.status_code == 201, answer.text
    return str(user["id"])


def task_of(runtime: Runtime, user_id: str) -> Task:
    with runtime.db.session() as session:
        rows = list(session.scalars(select(Task).where(Task.subject_id == user_id)))
        live = [t for t in rows if t.status != queue.SUPERSEDED]
        assert len(live) == 1, [(t.status, t.reason) for t in rows]
        session.expunge(live[0])
        return live[0]


def in_flight(runtime: Runtime, user_id: str, child: subprocess.Popen[bytes]) -> Task | None:
    task = task_of(runtime, user_id)
    mine = task.status == queue.RUNNING and f":{child.pid}:" in (task.claimed_by or "")
    return task if mine else None


def worker_pids(runtime: Runtime) -> set[int]:
    with runtime.db.session() as session:
        return {row.pid for row in session.scalars(select(WorkerProcess))}


def beats(runtime: Runtime, pid: int) -> list[Any]:
    with runtime.db.session() as session:
        return [r.beat_at for r in session.scalars(select(WorkerProcess)) if r.pid == pid]


def retention_job(runtime: Runtime) -> PeriodicJob | None:
    with runtime.db.session() as session:
        job = session.get(PeriodicJob, retention.JOB)
        return job if job is not None and job.last_done_at is not None else None


def creates(target: FaultyTarget) -> int:
    return sum(1 for method, path in target.requests if method == "POST" and path.endswith("/Users"))


def accounts(base_url: str, login: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{base_url}/Users", params={"filter": f'userName eq "{login}"'},
        headers={"Authorization": f"Bearer {TARGET_TOKEN}"},
    )
    resources: list[dict[str, Any]] = answer.json().get("Resources", [])
    return resources


def test_a_killed_workers_task_is_taken_over_within_the_worker_timeout(
    runtime: Runtime, api_only: httpx.Client, held: tuple[FaultyTarget, str], tmp_path: Path
) -> None:
    target, base = held
    app_id = enabled_app(api_only, base)
    target.inject(Fault("POST", 503, times=1, delay=120))  # the first create hangs in the app
    env = worker_env(runtime)
    with process(["worker"], env, tmp_path / "one.log") as one, process(
        ["worker"], env, tmp_path / "two.log"
    ) as two:
        eventually(lambda: len(worker_pids(runtime)) == 2, 60)
        # The activity log's periodic job: offered by both on start, run by one of them.
        job = eventually(lambda: retention_job(runtime), 60)
        assert job.holder is None and job.last_result["deleted"] == 0
        assert job.due_at > job.last_done_at
        user_id = join(api_only, app_id, "ada.lovelace")
        holder = eventually(
            lambda: creates(target) == 1 and next(
                (c for c in (one, two) if in_flight(runtime, user_id, c)), None
            ),
            30,
        )
        other = two if holder is one else one
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        killed = time.monotonic()
        eventually(lambda: task_of(runtime, user_id).status == queue.SUCCEEDED, 60)
        recovered = time.monotonic() - killed
        assert other.poll() is None
    # Taken over once the dead worker had been silent for the timeout, not after 5 minutes.
    assert recovered < TIMEOUT + 15, recovered
    requeued = api_only.get("/logs", params={"action": "app.task.requeue"}).json()
    assert [e["user_id"] for e in requeued["items"]] == [user_id], requeued
    # The held create never reached the app; the second worker's did, exactly once.
    assert len(accounts(base, "ada.lovelace")) == 1
    assert creates(target) == 2


def test_a_stopped_worker_gives_back_what_it_could_not_finish(
    runtime: Runtime, api_only: httpx.Client, held: tuple[FaultyTarget, str], tmp_path: Path
) -> None:
    target, base = held
    app_id = enabled_app(api_only, base)
    target.inject(Fault("POST", 503, times=1, delay=120))
    env = worker_env(runtime, PROVISIOND_WORKER_DRAIN_SECONDS="1")
    with process(["worker"], env, tmp_path / "worker.log") as child:
        user_id = join(api_only, app_id, "grace.hopper")
        eventually(lambda: in_flight(runtime, user_id, child), 30)
        (first_beat,) = beats(runtime, child.pid)
        eventually(lambda: beats(runtime, child.pid)[0] > first_beat, 30)  # it keeps beating
        child.send_signal(signal.SIGTERM)
        assert child.wait(30) == 0, (tmp_path / "worker.log").read_text()
    task = task_of(runtime, user_id)
    # Back in the queue at once, nobody's, to be read back from the app before it is sent again.
    assert (task.status, task.claimed_by, task.verify_remote) == (queue.QUEUED, None, True)
    with runtime.db.session() as session:
        assert list(session.scalars(select(WorkerProcess))) == []
    with process(["worker"], worker_env(runtime), tmp_path / "after.log"):
        eventually(lambda: task_of(runtime, user_id).status == queue.SUCCEEDED, 60)
    assert len(accounts(base, "grace.hopper")) == 1


def test_a_worker_cut_off_from_the_database_converges_when_it_is_back(
    runtime: Runtime, api_only: httpx.Client, held: tuple[FaultyTarget, str], tmp_path: Path
) -> None:
    _, base = held
    app_id = enabled_app(api_only, base)
    url = runtime.settings.effective_database_url
    host_port = url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    with TcpProxy(host, int(port)) as proxy, process(
        ["worker"], worker_env(runtime, url.replace(host_port, f"127.0.0.1:{proxy.port}")),
        tmp_path / "worker.log",
    ) as child:
        first = join(api_only, app_id, "alan.turing")
        eventually(lambda: task_of(runtime, first).status == queue.SUCCEEDED, 60)
        proxy.cut()  # every connection dropped, new ones refused
        second = join(api_only, app_id, "edsger.dijkstra")  # committed; the worker cannot see it
        log = tmp_path / "worker.log"
        eventually(lambda: "does not answer" in log.read_text(), 60)
        assert child.poll() is None
        proxy.restore()
        eventually(lambda: task_of(runtime, second).status == queue.SUCCEEDED, 90)
        assert child.poll() is None, "the worker survived the outage"
    assert len(accounts(base, "edsger.dijkstra")) == 1
