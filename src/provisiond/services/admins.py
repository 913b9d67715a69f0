"""Console administrators: local accounts, argon2 password hashes, lock-out after failures.

Sign-ins are logged with Okta's event names: ``user.session.start`` (success or failure),
``user.account.lock`` when the fifth failure in a row locks the account for 15 minutes,
``user.session.end`` on sign-out and ``user.account.privilege.grant`` when an admin is made.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.errors import Conflict, Invalid, NotFound, Unauthorized
from provisiond.services import activity
from provisiond.services.apps import get_app
from provisiond.services.context import ROLES, Actor, Role
from provisiond.store.tables import Admin, utcnow

MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 12
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")

# argon2id with OWASP's recommended floor (19 MiB, 2 passes, 1 lane): about 0.1 s a sign-in
# on a small server, and an attacker's guesses cost as much memory each.
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
# Verified against when the username is unknown, so that a miss costs as much as a hit.
_DUMMY_HASH = _hasher.hash("provisiond-dummy-password")


class SignInFailed(Unauthorized):
    """A refused sign-in. Not raised through a unit of work: the failure must be committed."""


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


def sign_in(session: Session, username: str, password: str, correlation_id: str) -> Admin:
    """Check a username and password; raises ``SignInFailed`` with a message fit to show.

    Five failures in a row lock the account for 15 minutes, even for the right password.
    The caller must commit even on failure: the failure count and the event are the point.
    """
    key = username.strip().lower()
    # Row lock (PostgreSQL): parallel guesses are counted one after another, so no more than
    # MAX_FAILURES get through before the lock (SQLite's BEGIN IMMEDIATE serialises already).
    admin = session.scalar(select(Admin).where(Admin.username == key).with_for_update())
    actor = Actor(f"admin:{key}" if admin else "anonymous", correlation_id=correlation_id)
    now = utcnow()
    if admin is None:
        _verify(_DUMMY_HASH, password)
        _failed(session, actor, None, key, "unknown username")
        raise SignInFailed("wrong username or password")
    if admin.disabled_at is not None:
        _verify(_DUMMY_HASH, password)
        _failed(session, actor, admin, key, "account disabled")
        raise SignInFailed("wrong username or password")
    if admin.locked_until is not None and admin.locked_until > now:
        minutes = max(1, round((admin.locked_until - now).total_seconds() / 60))
        _failed(session, actor, admin, key, "account locked")
        raise SignInFailed(
            f"too many failed sign-ins: this account is locked for {minutes} more minute(s)"
        )
    if not _verify(admin.password_hash, password):
        admin.failed_logins += 1
        _failed(session, actor, admin, key, "wrong password")
        if admin.failed_logins >= MAX_FAILURES:
            admin.locked_until, admin.failed_logins = now + LOCK_FOR, 0
            activity.record(
                session,
                actor,
                "user.account.lock",
                f"locked console admin {key} for 15 minutes after {MAX_FAILURES} failed sign-ins",
                outcome="failure",
                targets={"admin": key, "admin_id": admin.id},
            )
            raise SignInFailed(
                f"too many failed sign-ins: this account is locked for {LOCK_FOR.seconds // 60} minutes"
            )
        raise SignInFailed("wrong username or password")
    if _hasher.check_needs_rehash(admin.password_hash):
        admin.password_hash = _hasher.hash(password)
    admin.failed_logins, admin.locked_until, admin.last_login_at = 0, None, now
    activity.record(
        session,
        actor,
        "user.session.start",
        f"console admin {key} signed in",
        targets={"admin": key, "admin_id": admin.id},
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
    session: Session, actor: Actor, admin: Admin | None, username: str, reason: str
) -> None:
    activity.record(
        session,
        actor,
        "user.session.start",
        f"console sign-in of {username!r} failed: {reason}",
        outcome="failure",
        targets={"admin": username, **({"admin_id": admin.id} if admin else {})},
        details={"reason": reason},
    )
