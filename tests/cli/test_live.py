"""Long-running commands as real processes: ``logs --follow`` and a standalone ``worker``."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from provisiond.api import create_app
from provisiond.runtime import Runtime
from tests.cli.conftest import invoke, ok, process, wait_for
from tests.e2e.conftest import TARGET_TOKEN, eventually, person, remote_user
from tests.support.patience import PATIENCE
from tests.support.servers import serve_app


def lines_of(stream: object) -> queue.Queue[str]:
    """The lines a child process prints, as they come."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def next_line(lines: queue.Queue[str], containing: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout * PATIENCE
    while True:
        line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        if containing in line:
            return line


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_logs_follow_prints_new_events_until_ctrl_c(
    server: str, admin_token: str, api: httpx.Client, json_output: bool
) -> None:
    suffix = str(time.monotonic_ns())[-8:]
    for name in ("first", "second"):
        api.post("/groups", json={"name": f"{name} {suffix}"}).raise_for_status()
    args = ["--json"] if json_output else []
    env = {**os.environ, "PROVISIOND_SERVER": server, "PROVISIOND_TOKEN": admin_token}
    with subprocess.Popen(
        [sys.executable, "-m", "provisiond.cli", *args, "logs", "--follow", "--limit", "2", "--interval", "0.2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as child:
        lines = lines_of(child.stdout)
        # The backlog, oldest first.
        assert f"first {suffix}" in lines.get(timeout=60)
        assert f"second {suffix}" in lines.get(timeout=60)
        # Then what happens, as it happens (stdout is a pipe here: each line is flushed).
        api.post("/users", json=person(f"zed.{suffix}")).raise_for_status()
        line = next_line(lines, f"zed.{suffix}")
        if json_output:
            event = json.loads(line)
            assert (event["action"], event["outcome"]) == ("user.lifecycle.create", "success")
        else:
            assert "success  user.lifecycle.create  created user zed." in line
        assert lines.empty()  # nothing twice
        child.send_signal(signal.SIGINT)
        assert child.wait(10) == 0
        errors = child.stderr.read() if child.stderr else ""
    assert "Traceback" not in errors
    assert ("following the activity log" in errors) is not json_output


@pytest.fixture
def server_without_worker(runtime: Runtime) -> Iterator[str]:
    with serve_app(create_app(runtime=runtime, start_worker=False)) as url:
        yield url


def test_a_standalone_worker_provisions(
    runtime: Runtime, server_without_worker: str, admin_token: str, target: str, tmp_path: Path
) -> None:
    suffix = str(time.monotonic_ns())[-8:]
    env = {"PROVISIOND_SERVER": server_without_worker, "PROVISIOND_TOKEN": admin_token}

    def cli(*args: str, input: str | None = None) -> str:
        return ok(invoke(*args, input=input, env=env)).stdout

    user = json.loads(cli("--json", "users", "create", "--login", f"wes.{suffix}", "--email",
                          f"wes.{suffix}@example.com", "--first-name", "Wes", "--last-name", "Worker"))
    cli("apps", "create", f"crm-{suffix}", "--base-url", target, "--auth", "bearer", "--token-stdin",
        input=TARGET_TOKEN)
    cli("provisioning", "enable", f"crm-{suffix}")
    cli("assign", f"crm-{suffix}", "--user", user["id"])

    secret_key = runtime.settings.secret_key
    assert secret_key is not None
    worker_env = {
        "PROVISIOND_DATABASE_URL": runtime.settings.effective_database_url,
        "PROVISIOND_SECRET_KEY": secret_key.get_secret_value(),
        "PROVISIOND_DATA_DIR": str(tmp_path / "worker"),
        # The target listens on 127.0.0.1, which connectors may not reach by default.
        "PROVISIOND_CONNECTOR_ALLOW_LOOPBACK": "true",
    }
    log = tmp_path / "worker.log"
    with process(["worker"], worker_env, log) as child:
        wait_for(log, r"worker \S+ started", child)
        assert ("LISTEN/NOTIFY" in log.read_text()) is runtime.db.is_postgres
        with httpx.Client(base_url=target + "/", headers={"Authorization": f"Bearer {TARGET_TOKEN}"}) as scim:
            eventually(lambda: remote_user(scim, f"wes.{suffix}"), timeout=60)
        synced = cli("sync", f"crm-{suffix}", "--timeout", "60")
        assert "succeeded: 1 unchanged" in synced
        child.send_signal(signal.SIGTERM)
        assert child.wait(15) == 0, log.read_text()
    assert "Traceback" not in log.read_text()
    assert "active" in cli("accounts", f"crm-{suffix}")


def test_run_is_a_cli_module() -> None:
    """``python -m provisiond.cli`` and the ``provisiond`` script are one and the same."""
    result = subprocess.run(
        [sys.executable, "-m", "provisiond.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "Usage: provisiond" in result.stdout
