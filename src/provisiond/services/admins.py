"""Console administrators: local accounts, argon2 password hashes, throttled sign-ins.

Sign-ins are logged with Okta's event names: ``user.session.start`` (success or failure; a
failure names the admin only when the name is one, never what was typed otherwise),
``user.session.end`` on sign-out and ``user.account.privilege.grant`` when an admin is made.
Repeated failures slow down one (address, name) pair (services/login_throttle.py); no account
is locked, so nobody can lock an admin out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.errors import Conflict, Invalid, NotFound, Unauthorized
from provisiond.services import activity
from provisiond.services.apps import get_app
from provisiond.services.context import ROLES, Actor, Role
from provisiond.services.login_throttle import LoginThrottle
from provisiond.store.tables import Admin, utcnow

MIN_PASSWORD_LENGTH = 12
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")

# argon2id with OWASP's recommended floor (19 MiB, 2 passes, 1 lane): about 0.1 s a sign-in
# on a small server, and an attacker's guesses cost as much memory each.
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
# Verified against when the username is unknown, so that a miss costs as much as a hit.
_DUMMY_HASH = _hasher.hash("provisiond-dummy-password")


class SignInFailed(Unauthorized):
    """A refused sign-in. Not raised through a unit of work: the failure must be committed."""


class SignInThrottled(SignInFailed):
    """Too many failures from this address at this name: wait ``retry_after`` seconds."""

    status, type, title = 429, "too-many-sign-ins", "Too many failed sign-ins"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many failed sign-ins: try again in {retry_after} second(s)",
            retry_after=retry_after,
        )
        self.retry_after = retry_after


def actor_of(admin: Admin, correlation_id: str) -> Actor:
    """The actor a signed-in admin's changes are recorded under."""
    return Actor(
        name=f"admin:{admin.username}",
        role=admin.role,
        correlation_id=correlation_id,
        grants=frozenset(admin.apps),
    )


def get_admin(session: Session, admin_id: str) -> Admin:
    admin = session.get(Admin, admin_id)
    if admin is None:
        raise NotFound(f"no admin with id {admin_id!r}")
    return admin


def create_admin(
    session: Session,
    actor: Actor,
    *,
    username: str,
    password: str,
    role: str = Role.SUPER_ADMIN.value,
    apps: Sequence[str] = (),
) -> Admin:
    """Make an admin account; ``apps`` (ids or names) are the apps an app_admin manages."""
    username = username.strip().lower()
    if not USERNAME.match(username):
        raise Invalid(
            "username: 2-64 characters, lower-case letters, digits and . _ @ -", field="username"
        )
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}", field="role")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(
            f"the password needs at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    if role != Role.APP_ADMIN and apps:
        raise Invalid("only an app_admin is granted apps", field="apps")
    if session.scalar(select(Admin).where(Admin.username == username)) is not None:
        raise Conflict(f"an admin named {username!r} exists already", field="username")
    app_ids = sorted({get_app(session, app).id for app in apps})
    admin = Admin(
        username=username,
        password_hash=_hasher.hash(password),
        role=role,
        apps=app_ids,
        failed_logins=0,
        session_epoch=0,
    )
    session.add(admin)
    session.flush()
    activity.record(
        session,
        actor,
        "user.account.privilege.grant",
        f"created console admin {username} ({role})",
        targets={"admin": username, "admin_id": admin.id},
        details={"role": role, "apps": app_ids},
    )
    return admin


def sign_in(
    session: Session,
    username: str,
    password: str,
    correlation_id: str,
    *,
    address: str = "",
    throttle: LoginThrottle | None = None,
) -> Admin:
    """Check a username and password; raises ``SignInFailed`` with a message fit to show.

    An unknown name and a wrong password are answered alike, at the same cost (a hash is
    verified either way). With ``throttle``, failures from ``address`` at this name make its
    next attempts wait (services/login_throttle.py): ``SignInThrottled`` (429) before any
    check, for known and unknown names alike; no account is ever locked. The caller must
    commit even on failure: the event is the point.
    """
    key = username.strip().lower()
    if throttle is not None:
        wait = throttle.admit(address, key)
        if wait > 0:
            raise SignInThrottled(math.ceil(wait))
    ok = False
    try:
        admin = _check(session, key, password, correlation_id, address)
        ok = True
        return admin
    finally:  # whatever happened (a database error too), the admitted attempt is released
        if throttle is not None:
            throttle.done(address, key, ok=ok)


def _check(
    session: Session,
    key: str,
    password: str,
    correlation_id: str,
    address: str,
) -> Admin:
    admin = session.scalar(select(Admin).where(Admin.username == key))
    now = utcnow()
    if admin is None:
        _verify(_DUMMY_HASH, password)
        # What was typed as a name may be a password (typed in the wrong box): not recorded.
        _failed(session, Actor("anonymous", correlation_id=correlation_id), None, address)
        raise SignInFailed("wrong username or password")
    # Whoever typed the password is not known to be the admin: failures are anonymous's.
    anonymous = Actor("anonymous", correlation_id=correlation_id)
    if admin.disabled_at is not None:
        _verify(_DUMMY_HASH, password)  # as long as for anyone else: a disabled name leaks nothing
        _failed(session, anonymous, admin, address, reason="account disabled")
        raise SignInFailed("wrong username or password")
    if not _verify(admin.password_hash, password):
        admin.failed_logins += 1  # consecutive failures, shown to whoever manages admins
        _failed(session, anonymous, admin, address)
        raise SignInFailed("wrong username or password")
    if _hasher.check_needs_rehash(admin.password_hash):
        admin.password_hash = _hasher.hash(password)
    admin.failed_logins, admin.locked_until, admin.last_login_at = 0, None, now
    activity.record(
        session,
        actor_of(admin, correlation_id),
        "user.session.start",
        f"console admin {key} signed in",
        targets={"admin": key, "admin_id": admin.id},
        details={"address": address} if address else None,
    )
    return admin


def sign_out(session: Session, admin: Admin, correlation_id: str) -> None:
    """End every session of this admin (their cookies carry the old epoch)."""
    admin.session_epoch += 1
    activity.record(
        session,
        actor_of(admin, correlation_id),
        "user.session.end",
        f"console admin {admin.username} signed out",
        targets={"admin": admin.username, "admin_id": admin.id},
    )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _failed(
    session: Session, actor: Actor, admin: Admin | None, address: str, reason: str | None = None
) -> None:
    """A failed sign-in's event: the name only when it is an admin's, never the password."""
    name = admin.username if admin else "an unknown username"
    reason = reason or ("wrong password" if admin else "unknown username")
    activity.record(
        session,
        actor,
        "user.session.start",
        f"console sign-in as {name} failed: {reason}",
        outcome="failure",
        targets={"admin": admin.username, "admin_id": admin.id} if admin else None,
        details={"reason": reason, **({"address": address} if address else {})},
    )
