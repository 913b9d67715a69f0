"""CLI fixtures: the real server and SCIM target of the end-to-end tests, and a CLI runner."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from provisiond.cli.main import app
from tests.e2e.conftest import admin_token, api, scim, server, target  # noqa: F401
from tests.support.patience import PATIENCE

Run = Callable[..., Result]


def flat(text: str) -> str:
    """Output with Rich's panel borders and line wrapping taken out, for substring checks."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}"
    return result


def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input, env=env)


@pytest.fixture
def cli(server: str, admin_token: str) -> Run:  # noqa: F811 - the fixtures imported above
    """Run ``provisiond ARGS`` against the test server, authenticated by the environment."""

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        base = {"PROVISIOND_SERVER": server, "PROVISIOND_TOKEN": admin_token}
        return invoke(*args, input=input, env={**base, **(env or {})})

    return run


@pytest.fixture
def cli_json(cli: Run) -> Callable[..., Any]:
    """Run ``provisiond --json ARGS``, expect success, return the parsed output."""

    def run(*args: str, input: str | None = None) -> Any:
        return json.loads(ok(cli("--json", *args, input=input)).stdout)

    return run


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``provisiond ARGS`` in its own process, its output in ``log``; stopped (TERM) at the end."""
    with log.open("wb") as output:
        child = subprocess.Popen(
            [sys.executable, "-m", "provisiond.cli", *args],
            env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT,
        )
        try:
            yield child
        finally:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def wait_for(log: Path, pattern: str, child: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout * PATIENCE
    while not re.search(pattern, log.read_text()):
        assert child.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"{pattern!r} not in:\n{log.read_text()}"
        time.sleep(0.05)
