"""Real servers for tests: the demo SCIM target in a subprocess, provisiond in a uvicorn thread."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Generous: a process importing scim2-server on a shared two-core machine under a load of 20
# took more than 20 s to answer; a test waits on the condition, however long it takes.
def wait_until_up(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up within {timeout} s")


@contextmanager
def scim_target(token: str = "target-token", *, patch: bool = True) -> Iterator[str]:
    """The stock scim2-server (ASGI, uvicorn) as a separate process; yields its base URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "provisiond.demo.target",
        "--port",
        str(port),
        "--bearer-token",
        token,
    ]
    if not patch:
        command.append("--no-patch")
    process = subprocess.Popen(command, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    base = f"http://127.0.0.1:{port}/v2"
    try:
        wait_until_up(f"{base}/ServiceProviderConfig")
        yield base
    finally:
        process.terminate()
        process.wait(10)


class ThreadedServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test process owns the signals
        pass


@contextmanager
def serve_app(app: object) -> Iterator[str]:
    port = free_port()
    server = ThreadedServer(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
