"""``users import`` / ``users export`` against a real server: the file is streamed, planned,
and applied with a progress bar; a dry run or a bad file changes nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cli.conftest import Run, flat, ok


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # tests/e2e has both stores
def test_import_dry_run_apply_bad_rows_and_export(cli: Run, tmp_path: Path) -> None:
    suffix = str(time.monotonic_ns())[-8:]
    good = tmp_path / "people.csv"
    good.write_text(
        "User,email,firstName,lastName,Notes\n"
        f"ada.{suffix},ada@example.com,Ada,Lovelace,x\n"
        f"alan.{suffix},alan@example.com,Alan,Turing,y\n",
        encoding="utf-8",
    )
    maps = ("--map", "User=login", "--map", "Notes=")

    dry = ok(cli("users", "import", str(good), *maps, "--dry-run"))
    assert "2 rows read: 2 to create, 0 to update" in flat(dry.output)
    assert "dry run: nothing was changed" in dry.output
    assert f"ada.{suffix}" not in ok(cli("users", "list", "--q", suffix)).output

    applied = ok(cli("users", "import", str(good), *maps))
    assert "import succeeded: 2 created" in flat(applied.output)
    assert f"alan.{suffix}" in ok(cli("users", "list", "--q", suffix)).output

    bad = tmp_path / "bad.csv"
    bad.write_text(
        "login,email,firstName,lastName\n"
        f"ada.{suffix},ada@example.com,Ada,Byron\n"
        f"eve.{suffix},eve@,Eve,Hacker\n",
        encoding="utf-8",
    )
    refused = cli("users", "import", str(bad))
    assert refused.exit_code == 1
    assert "line 3: email:" in flat(refused.output)
    assert "nothing was imported" in flat(refused.output)
    assert ok(cli("--json", "users", "get", f"ada.{suffix}")).stdout.count("Lovelace") == 1

    exported = tmp_path / "out.csv"
    ok(cli("users", "export", "--output", str(exported)))
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("login,status,email,firstName,lastName")
    assert any(line.startswith(f"ada.{suffix},active,ada@example.com,Ada,Lovelace") for line in lines)
    again = ok(cli("users", "import", str(exported), "--dry-run"))
    assert "0 to create, 0 to update" in flat(again.output)
