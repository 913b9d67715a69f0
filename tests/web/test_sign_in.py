"""Console sign-in: passwords, lock-out, sessions that expire or end, CSRF on every form."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import select

from provisiond.runtime import Runtime
from provisiond.store.tables import Event, Group
from provisiond.web.sessions import COOKIE, SessionCodec, new_session
from tests.web.conftest import PASSWORD, MakeAdmin, csrf_of, post_form, sign_in


def _attempt(base: str, username: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=base) as client:
        page = client.get("/login")
        return client.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
        )


def _events(runtime: Runtime, action: str) -> list[Event]:
    with runtime.db.session() as session:
        return list(session.scalars(select(Event).where(Event.action == action)))


def test_sign_in_sets_a_hardened_cookie_and_signs_out(
    server: str, make_admin: MakeAdmin, runtime: Runtime
) -> None:
    make_admin("ada")
    with sign_in(server, "ada") as client:
        _sign_in_and_out(server, client, runtime)


def _sign_in_and_out(server: str, client: httpx.Client, runtime: Runtime) -> None:
    cookie = next(h for h in client.cookies.jar if h.name == COOKIE)
    assert cookie.has_nonstandard_attr("HttpOnly") and not cookie.secure
    with httpx.Client(base_url=server) as raw:
        page = raw.get("/login")
        answer = raw.post(
            "/login",
            data={"username": "ada", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        )
    assert "samesite=lax" in answer.headers["set-cookie"].lower()
    assert "httponly" in answer.headers["set-cookie"].lower()
    dashboard = client.get("/")
    assert dashboard.status_code == 200 and "ada" in dashboard.text
    assert [e.actor for e in _events(runtime, "user.session.start")] == ["admin:ada", "admin:ada"]

    stolen = dict(client.cookies)
    assert post_form(client, "/", "/logout", {}).status_code == 303
    # The old cookie is dead everywhere: sign-out bumps the admin's session epoch.
    with httpx.Client(base_url=server, cookies=stolen) as replay:
        assert replay.get("/apps").status_code == 303
    assert _events(runtime, "user.session.end")[0].actor == "admin:ada"


def test_a_wrong_password_is_refused_like_an_unknown_name(
    server: str, make_admin: MakeAdmin, runtime: Runtime
) -> None:
    make_admin("bob")
    refused = _attempt(server, "bob", "not the password")
    unknown = _attempt(server, "nobody", "whatever")
    assert refused.status_code == unknown.status_code == 401
    assert "wrong username or password" in refused.text
    assert _error_of(refused) == _error_of(unknown)
    assert 'aria-invalid="true"' in refused.text


def test_an_expired_session_goes_back_to_sign_in(
    server: str, make_admin: MakeAdmin, runtime: Runtime
) -> None:
    make_admin("cy")
    with sign_in(server, "cy") as client:
        assert client.get("/").status_code == 200
    with runtime.db.session() as session:
        from provisiond.store.tables import Admin

        admin = session.scalar(select(Admin).where(Admin.username == "cy"))
        assert admin is not None
        admin_id = admin.id
    codec = SessionCodec(runtime.keys.primary)
    stale = new_session(admin_id, 0, now=time.time() - 3 * 3600)  # idle for hours
    with httpx.Client(base_url=server, cookies={COOKIE: codec.dump(stale)}) as old:
        answer = old.get("/tasks")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=/tasks&expired=1"
        assert "Your session has expired" in old.get(answer.headers["location"]).text
    forged = codec.dump(new_session(admin_id, 0)) + "x"
    with httpx.Client(base_url=server, cookies={COOKIE: forged}) as bad:
        assert bad.get("/").status_code == 303


def test_every_form_needs_the_session_csrf_token(console: httpx.Client, runtime: Runtime) -> None:
    for data in ({"name": "No token"}, {"name": "Wrong token", "csrf_token": "forged"}):
        answer = console.post("/directory/groups", data=data)
        assert answer.status_code == 403, answer.text
        assert "reload the page" in answer.text
    # The sign-in form is protected too (login CSRF).
    with httpx.Client(base_url=str(console.base_url)) as fresh:
        answer = fresh.post("/login", data={"username": "root", "password": PASSWORD})
        assert answer.status_code == 403
    with runtime.db.session() as session:
        assert session.scalars(select(Group)).all() == []
    ok = post_form(console, "/directory/groups", "/directory/groups", {"name": "With token"})
    assert ok.status_code == 303


def _error_of(page: httpx.Response) -> str:
    start = page.text.index('id="signin-error">')
    return page.text[start : page.text.index("</p>", start)]
