"""Sign-in failures slow down one (address, name) pair with growing delays; nothing locks.

The console's throttle runs on a clock the test moves, so nothing here sleeps. Addresses are
told apart by X-Forwarded-For, which uvicorn takes from a proxy on 127.0.0.1 (its default).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from provisiond.api import create_app
from provisiond.runtime import Runtime
from provisiond.services import admin_accounts
from provisiond.services.context import SYSTEM
from provisiond.services.login_throttle import LoginThrottle, forget_everywhere
from provisiond.store.tables import Admin, Event
from tests.support.servers import serve_app
from tests.web.conftest import PASSWORD, MakeAdmin, csrf_of

HERE, ELSEWHERE = "10.0.0.1", "10.0.0.2"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def console_server(runtime: Runtime, clock: Clock) -> Iterator[str]:
    app = create_app(runtime=runtime, start_worker=False)
    console = next(route for route in app.routes if getattr(route, "name", "") == "console")
    console.app.state.login_throttle = LoginThrottle(clock)  # type: ignore[attr-defined]
    with serve_app(app) as url:
        yield url


def attempt(base: str, username: str, password: str, address: str = HERE) -> httpx.Response:
    with httpx.Client(base_url=base, headers={"X-Forwarded-For": address}) as client:
        page = client.get("/login")
        return client.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
        )


def _outcome(answer: httpx.Response) -> tuple[int, str | None, str]:
    """What an attacker can tell apart: status, Retry-After and the message shown."""
    start = answer.text.find('id="signin-error">')
    message = answer.text[start : answer.text.find("</p>", start)] if start >= 0 else ""
    return answer.status_code, answer.headers.get("retry-after"), message


def test_failures_slow_one_address_and_name_and_never_lock_the_admin(
    console_server: str, make_admin: MakeAdmin, runtime: Runtime, clock: Clock
) -> None:
    make_admin("bob")
    known = [attempt(console_server, "bob", f"guess {n}") for n in range(5)]
    unknown = [attempt(console_server, "nobody", f"guess {n}") for n in range(5)]
    assert [_outcome(a) for a in known] == [_outcome(a) for a in unknown]
    assert {a.status_code for a in known} == {401}

    # The sixth try waits, even with the right password, and a known name waits like an
    # unknown one: nothing tells them apart.
    waiting = attempt(console_server, "bob", PASSWORD)
    assert waiting.status_code == 429 and waiting.headers["retry-after"] == "1"
    assert "try again in 1 second" in waiting.text
    assert _outcome(waiting) == _outcome(attempt(console_server, "nobody", PASSWORD))

    # The admin, from another address, signs in at once: a guesser cannot lock anyone out.
    assert attempt(console_server, "bob", PASSWORD, ELSEWHERE).status_code == 303
    # Another name from the guesser's address is not slowed either.
    make_admin("carol")
    assert attempt(console_server, "carol", PASSWORD).status_code == 303

    # Each further failure doubles the wait: 1 s, 2 s, 4 s ...
    for expected in ("2", "4", "8"):
        clock.now += float(waiting.headers["retry-after"]) + 0.01
        assert attempt(console_server, "bob", "again wrong").status_code == 401
        waiting = attempt(console_server, "bob", PASSWORD)
        assert waiting.status_code == 429 and waiting.headers["retry-after"] == expected
    clock.now += 8.01
    assert attempt(console_server, "bob", PASSWORD).status_code == 303  # and it clears
    assert attempt(console_server, "bob", "wrong once more").status_code == 401

    with runtime.db.session() as session:
        assert session.scalar(select(Admin.locked_until).where(Admin.username == "bob")) is None
        events = list(session.scalars(select(Event).where(Event.action.startswith("user."))))
    assert not [e for e in events if e.action == "user.account.lock"]
    failures = [e for e in events if e.outcome == "failure"]
    assert len(failures) == 5 + 5 + 3 + 1  # throttled tries are refused before any check
    for event in failures:
        text = f"{event.message} {event.targets} {event.details} {event.actor}"
        assert "guess" not in text and PASSWORD not in text and "wrong" not in event.actor
        assert "nobody" not in text  # a name that is no admin's may be a password
    assert {e.details["address"] for e in failures} == {HERE}
    named = [e for e in failures if e.targets]
    assert len(named) == 5 + 3 + 1 and all(e.targets["admin"] == "bob" for e in named)


def test_a_name_typed_in_the_wrong_box_is_not_recorded(
    console_server: str, runtime: Runtime
) -> None:
    answer = attempt(console_server, PASSWORD.replace(" ", "-"), "x")
    assert answer.status_code == 401
    with runtime.db.session() as session:
        events = list(session.scalars(select(Event)))
    assert events and PASSWORD.replace(" ", "-") not in str(
        [(e.message, e.targets, e.details, e.actor) for e in events]
    )


@given(failures=st.integers(min_value=0, max_value=10_000))
def test_the_delay_grows_from_one_second_and_stops_at_the_cap(failures: int) -> None:
    throttle = LoginThrottle(lambda: 0.0)
    delay = throttle.delay_after(failures)
    assert 0 <= delay <= 300
    assert (delay == 0) == (failures < 5)
    assert throttle.delay_after(failures + 1) >= delay
    if failures >= 5:
        assert delay == min(300.0, 2.0 ** min(failures - 5, 20))


def test_parallel_guesses_past_the_free_ones_are_checked_one_at_a_time() -> None:
    now = [0.0]
    throttle = LoginThrottle(lambda: now[0])
    for _ in range(4):
        assert throttle.admit("a", "bob") == 0
        throttle.done("a", "bob", ok=False)
    assert throttle.admit("a", "bob") == 0  # the fifth is checked ...
    assert throttle.admit("a", "bob") > 0  # ... and none beside it while it runs
    throttle.done("a", "bob", ok=False)
    assert throttle.admit("a", "bob") == pytest.approx(1.0)
    assert throttle.admit("b", "bob") == 0 and throttle.admit("a", "Bob ") > 0


def test_unlocking_an_admin_forgets_its_failures_from_every_address() -> None:
    throttle = LoginThrottle(lambda: 0.0)
    for address in ("a", "b"):
        for _ in range(6):
            if throttle.admit(address, "bob") == 0:
                throttle.done(address, "bob", ok=False)
        assert throttle.admit(address, "bob") > 0
        assert throttle.admit(address, "eve") == 0
    forget_everywhere("Bob")  # what a super admin's unlock does (services.admin_accounts)
    assert throttle.admit("a", "bob") == 0 and throttle.admit("b", "bob") == 0


def test_a_reset_password_is_checked_at_once_from_an_address_that_was_waiting(
    console_server: str, make_admin: MakeAdmin, runtime: Runtime
) -> None:
    """The admin who forgot a password failed from its own address; the new one a super admin
    set must not wait out those failures (reset_password lifts them, as unlock does)."""
    make_admin("dana")
    for n in range(5):
        assert attempt(console_server, "dana", f"forgotten {n}").status_code == 401
    assert attempt(console_server, "dana", PASSWORD).status_code == 429
    with runtime.db.session() as session:
        dana = session.scalars(select(Admin).where(Admin.username == "dana")).one()
        admin_accounts.reset_password(session, SYSTEM, dana.id, "a new password for dana")
    assert attempt(console_server, "dana", "a new password for dana").status_code == 303
