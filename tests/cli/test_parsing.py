"""The command line without a server: the command tree, argument parsing, error translation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
import typer

from provisiond import __version__
from provisiond.cli.activity import parse_since
from provisiond.cli.client import Api, ApiError, path
from provisiond.cli.directory import parse_attrs
from provisiond.cli.main import hoist_global_options
from provisiond.cli.runs import summary
from tests.cli.conftest import flat, invoke, ok
from tests.support.servers import free_port

COMMANDS = {
    (): ["serve", "worker", "migrate", "token", "users", "groups", "apps", "provisioning", "roles",
         "assign", "unassign", "assignments", "sync", "accounts", "logs", "tasks"],
    ("token",): ["create"],
    ("users",): ["list", "get", "create", "update", "activate", "suspend", "unsuspend",
                 "deactivate", "delete"],
    ("groups",): ["list", "create", "delete", "members", "add", "remove"],
    ("apps",): ["list", "get", "create", "delete"],
    ("provisioning",): ["show", "set", "test", "enable", "disable"],
    ("roles",): ["list", "create", "update", "delete"],
    ("tasks",): ["list", "retry", "dismiss"],
}


@pytest.mark.parametrize("group", list(COMMANDS), ids=lambda g: " ".join(g) or "root")
def test_help_shows_the_command_tree(group: tuple[str, ...]) -> None:
    result = ok(invoke(*group, "--help"))
    for command in COMMANDS[group]:
        assert f" {command} " in result.stdout, (command, result.stdout)


def test_version() -> None:
    assert ok(invoke("--version")).stdout.strip() == f"provisiond {__version__}"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["users", "list", "--json"], ["--json", "users", "list"]),
        (["users", "get", "x", "--server", "http://h"], ["--server", "http://h", "users", "get", "x"]),
        (["--server=http://h", "logs", "--json"], ["--server=http://h", "--json", "logs"]),
        # After "--" everything is an argument; --token is never moved (apps create has --token-*).
        (["users", "get", "--", "--json"], ["users", "get", "--", "--json"]),
        (["apps", "list", "--token", "t"], ["apps", "list", "--token", "t"]),
        (["users", "list", "--server"], ["users", "list", "--server"]),
    ],
)
def test_global_options_may_follow_the_command(args: list[str], expected: list[str]) -> None:
    assert hoist_global_options(args) == expected


def test_attributes_are_strings_or_typed_json() -> None:
    assert parse_attrs(["costCenter=42", "contractor:=true", "level:=3", "tags:=[\"a\"]", "note=a=b"]) == {
        "costCenter": "42", "contractor": True, "level": 3, "tags": ["a"], "note": "a=b",
    }
    for bad in ("novalue", "=x", "n:=not-json"):
        with pytest.raises(typer.BadParameter):
            parse_attrs([bad])


def test_since_takes_an_age_or_a_time() -> None:
    fifteen = datetime.fromisoformat(parse_since("15m"))
    assert abs(datetime.now(UTC) - timedelta(minutes=15) - fifteen) < timedelta(seconds=5)
    assert datetime.fromisoformat(parse_since("2024-05-01T12:00:00Z")) == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert datetime.fromisoformat(parse_since("2024-05-01")).tzinfo is not None  # local time
    with pytest.raises(typer.BadParameter):
        parse_since("yesterday")


def test_ids_cannot_leave_their_path_segment() -> None:
    assert path("users", "../tasks", "lifecycle") == "/users/..%2Ftasks/lifecycle"


def test_problem_documents_become_messages() -> None:
    invalid = httpx.Response(
        422, json={"detail": "name too long", "field": "name", "status": 422},
        headers={"Content-Type": "application/problem+json"},
    )
    assert ApiError.of(invalid, token_sent=True).message == "name too long (field: name)"
    prefixed = httpx.Response(422, json={"detail": "profile.email: not an email", "field": "profile.email"})
    assert ApiError.of(prefixed, token_sent=True).message == "profile.email: not an email"
    gateway = httpx.Response(502, text="<html>Bad Gateway</html>")
    assert ApiError.of(gateway, token_sent=True).message == "HTTP 502 Bad Gateway: <html>Bad Gateway</html>"
    unauthorized = httpx.Response(401, json={"detail": "send an API token"})
    assert "PROVISIOND_TOKEN" in ApiError.of(unauthorized, token_sent=False).message


def test_the_api_prefix_is_added_once() -> None:
    for server in ("http://h:1", "http://h:1/", "http://h:1/api/v1"):
        api = Api(server, None)
        try:
            assert str(api._http.base_url) == "http://h:1/api/v1/"
        finally:
            api.close()


def test_server_down_is_exit_2_naming_the_server() -> None:
    server = f"http://127.0.0.1:{free_port()}"
    result = invoke("--server", server, "--token", "pvd_do-not-print-me", "users", "list")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: cannot connect to the provisiond server at {server}")
    assert "is it running?" in result.stderr
    assert "pvd_do-not-print-me" not in result.output
    assert result.stdout == ""


def test_bad_server_url_is_exit_2() -> None:
    result = invoke("--server", "localhost:8000", "users", "list")
    assert result.exit_code == 2
    assert "cannot talk to the provisiond server at localhost:8000" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--auth", "bearer"], "--auth bearer needs the token: --token-stdin or --token-env VAR"),
        (["--auth", "bearer", "--token-env", "PROVISIOND_TEST_UNSET"],
         "the environment variable PROVISIOND_TEST_UNSET is not set"),
        (["--auth", "bearer", "--token-stdin", "--token-env", "X"], "not both"),
        (["--auth", "none", "--token-stdin"], "--token-stdin do not apply to --auth none"),
        (["--auth", "basic", "--password-stdin"], "--auth basic needs --username"),
        (["--auth", "oauth2", "--client-id", "c", "--client-secret-stdin"], "needs --token-url"),
    ],
)
def test_app_secrets_are_checked_before_any_request(args: list[str], message: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # a request would fail with "cannot connect"
    result = invoke("--server", closed, "apps", "create", "wiki", "--base-url", "http://t/scim/v2", *args)
    assert result.exit_code == 2, result.output
    assert message in flat(result.output)
    assert "cannot connect" not in result.output


def test_a_secret_is_never_an_argument() -> None:
    result = invoke("apps", "create", "wiki", "--base-url", "http://t/v2", "--auth", "bearer",
                    "--token", "s3cret-on-argv")
    # --token is the global API token and belongs before the command: here it is refused.
    assert result.exit_code == 2
    assert "No such option" in flat(result.output)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["assign", "wiki"], "give exactly one of --user USER or --group GROUP"),
        (["assign", "wiki", "--user", "u", "--group", "g"], "give exactly one of"),
        (["users", "update", "u1"], "nothing to change"),
        (["users", "create", "--login", "a", "--email", "a@x.io", "--first-name", "A",
          "--last-name", "B", "--attr", "oops"], "expected KEY=VALUE"),
        (["provisioning", "set", "wiki"], "give at least one setting to change"),
        (["logs", "--since", "yesterday"], "neither a time"),
        (["users", "list", "--status", "gone"], "'gone' is not one of"),
    ],
)
def test_usage_errors_are_exit_2(args: list[str], message: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    result = invoke("--server", closed, *args)
    assert result.exit_code == 2, result.output
    assert message in flat(result.output)


def test_invalid_settings_are_named() -> None:
    result = invoke("migrate", env={"PROVISIOND_DATABASE_URL": "mysql://db/x"})
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid settings: PROVISIOND_DATABASE_URL:")


def test_run_summaries() -> None:
    run = {"id": "r1", "status": "succeeded", "total": 3, "counts": {"created": 2, "unchanged": 1, "failed": 0}}
    assert summary(run) == "full sync r1 succeeded: 2 created, 1 unchanged"
    assert summary({**run, "counts": {}}) == "full sync r1 succeeded: nothing to do"
    assert summary({**run, "status": "running"}) == "full sync r1 started for 3 user(s)"
    held = {**run, "status": "held", "held": {"counts": {"deactivate": 40, "delete": 2}, "accounts": 50}}
    assert summary(held) == (
        "full sync r1 is held: it would deprovision 42 of 50 accounts, over the app's policy limit"
    )
