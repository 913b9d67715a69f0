"""``make demo``: provisiond on embedded SQLite, a demo SCIM app, seed data, one sync.

Starts the stock scim2-server on 127.0.0.1:8081 (a separate process), provisiond on
127.0.0.1:8000, seeds about 50 users in 4 groups and one app with provisioning enabled and a
group assigned through the REST API (as an admin would), runs a full sync, prints where to look.

The demo SCIM app keeps its accounts in memory, so a demo cannot resume: a previous demo's
database is wiped only when asked (``make demo RESET=1``, ``--reset``), after saying what it
holds; otherwise nothing is touched and the demo says how to start again.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from provisiond.api import create_app
from provisiond.config import Settings
from provisiond.demo.seed import seed
from provisiond.runtime import Runtime
from provisiond.services import admins, tokens
from provisiond.services.context import SYSTEM


def _wait(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout:g} s")


# What a previous demo's database holds, said before it is wiped: (table, what it is).
CONTENTS = (
    ("users", "users"),
    ("groups", "groups"),
    ("apps", "apps"),
    ("accounts", "accounts"),
    ("admins", "console admins"),
    ("api_tokens", "API tokens"),
    ("events", "activity log events"),
)


def contents(db_file: Path) -> list[str]:
    """What the database at ``db_file`` holds, read only (a table it lacks is left out)."""
    found: list[str] = []
    connection = sqlite3.connect(f"{db_file.resolve().as_uri()}?mode=ro", uri=True)
    try:
        for table, label in CONTENTS:
            try:
                query = f"SELECT count(*) FROM {table}"  # noqa: S608 - the constants above
                (count,) = connection.execute(query).fetchone()
            except sqlite3.DatabaseError:
                continue
            found.append(f"{count} {label}")
    finally:
        connection.close()
    return found


def clear_previous(db_file: Path, *, reset: bool) -> None:
    """Wipe a previous demo's database only when ``reset``, saying what goes; else exit 2."""
    leftovers = [p for p in (db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")) if p.exists()]
    if not leftovers:
        return
    held = ", ".join(contents(db_file)) if db_file.exists() else "no tables"
    if not reset:
        print(
            f"A previous demo's database is at {db_file} ({held}).\n"
            "The demo starts from an empty SCIM app, so it starts from an empty database too: "
            "run `make demo RESET=1` (or `python -m provisiond.demo --reset`) to wipe it and "
            "start a new demo, or pass --data-dir to use another directory. Nothing was changed.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    print(f"--reset: wiping the previous demo at {db_file}: {held}.", flush=True)
    for leftover in leftovers:
        leftover.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--target-port", type=int, default=8081)
    parser.add_argument("--data-dir", type=Path, default=Path("var/demo"))
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--exit-after-seed", action="store_true", help="stop once seeded (for CI)")
    parser.add_argument(
        "--reset", action="store_true", help="wipe a previous demo's database (says what first)"
    )
    args = parser.parse_args()

    # The demo app starts empty, so the directory must too: a previous demo is wiped only
    # when asked.
    db_file = args.data_dir / "provisiond.db"
    clear_previous(db_file, reset=args.reset)
    target_token = secrets.token_urlsafe(24)
    target = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "provisiond.demo.target",
            "--port",
            str(args.target_port),
            "--bearer-token",
            target_token,
        ],
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    target_url = f"http://127.0.0.1:{args.target_port}/v2"
    settings = Settings(
        data_dir=args.data_dir,
        database_url=f"sqlite:///{db_file.resolve()}",
        # The demo target listens on 127.0.0.1, which connectors may not reach by default.
        connector_allow_loopback=True,
    )
    runtime = Runtime(settings)
    runtime.migrate()
    admin_password = secrets.token_urlsafe(12)
    with runtime.db.session() as session:
        token = tokens.create_token(session, SYSTEM, "demo")
        admins.create_admin(session, SYSTEM, username="admin", password=admin_password)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime=runtime), host="127.0.0.1", port=args.port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{args.port}"
    try:
        _wait(f"{target_url}/ServiceProviderConfig")
        _wait(f"{base}/healthz")
        summary = seed(base, token, target_url, target_token, users=args.users)
        print(
            f"""
provisiond demo is running.

  Admin console  {base}/   sign in as  admin  /  {admin_password}
  API            {base}/api/v1      (OpenAPI: {base}/docs)
  Demo SCIM app  {target_url}   (scim2-server, bearer token in the app's settings)
  Admin token    {token}

Seeded {summary["users"]} users in {summary["groups"]} groups; app "{summary["app"]}" has the group
"{summary["assigned_group"]}" assigned (and pushed as a group) and its first sync {summary["run_status"]}: {summary["counts"]}.

Try (in another terminal):
  export PROVISIOND_TOKEN={token}
  .venv/bin/provisiond accounts {summary["app"]}
  .venv/bin/provisiond users deactivate {summary["sample_user"]}     # gone from the app in well under a second
  .venv/bin/provisiond logs --follow

Ctrl-C stops the demo.""",
            flush=True,
        )
        if not args.exit_after_seed:
            while thread.is_alive():
                thread.join(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.should_exit = True
        thread.join(30)
        target.terminate()
        target.wait(10)


if __name__ == "__main__":
    main()
