"""Managing console admins: list, change role and apps, disable, enable, delete, unlock, reset.

Only a super_admin may (``Action.ADMIN_MANAGE``, checked by the interfaces). The last active
super_admin can be neither demoted, disabled nor deleted: nobody could manage admins after.
Disabling, deleting and resetting a password end the admin's sessions at once (its session
epoch moves on, so every cookie it holds is refused on its next request).

Events, named like Okta's where Okta has one, each naming the actor and the admin:
``user.account.privilege.update``, ``user.account.disable``, ``user.account.enable``,
``user.account.delete``, ``user.account.unlock``, ``user.account.reset_password``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.errors import Conflict, Invalid
from provisiond.services import activity, login_throttle
from provisiond.services.admins import MIN_PASSWORD_LENGTH, get_admin, hash_password
from provisiond.services.apps import get_app
from provisiond.services.context import ROLES, Actor, Role
from provisiond.store.tables import Admin, utcnow


def list_admins(session: Session) -> list[Admin]:
    return list(session.scalars(select(Admin).order_by(Admin.username)))


def status_of(admin: Admin) -> str:
    """``disabled``, ``throttled`` (failed sign-ins in a row: attempts now wait, per address;
    services/login_throttle.py) or ``active``. No admin is ever locked out."""
    if admin.disabled_at is not None:
        return "disabled"
    if admin.failed_logins >= login_throttle.FREE_FAILURES:
        return "throttled"
    return "active"


def update_admin(
    session: Session,
    actor: Actor,
    admin_id: str,
    *,
    role: str | None = None,
    apps: Sequence[str] | None = None,
) -> Admin:
    """Change an admin's role and/or the apps an app_admin manages (ids or names)."""
    admin = get_admin(session, admin_id)
    new_role = admin.role if role is None else role
    if new_role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}", field="role")
    if apps is None:
        app_ids = list(admin.apps) if new_role == Role.APP_ADMIN else []
    else:
        if apps and new_role != Role.APP_ADMIN:
            raise Invalid("only an app_admin is granted apps", field="apps")
        app_ids = sorted({get_app(session, app).id for app in apps})
    if new_role != Role.SUPER_ADMIN:
        _keep_a_super_admin(session, admin, "take the super_admin role from")
    before = {"role": admin.role, "apps": list(admin.apps)}
    admin.role, admin.apps = new_role, app_ids
    after = {"role": new_role, "apps": app_ids}
    if before != after:
        _record(
            session, actor, admin, "user.account.privilege.update",
            f"changed console admin {admin.username}: {before['role']} -> {new_role}",
            details={"before": before, "after": after},
        )
    return admin


def disable_admin(session: Session, actor: Actor, admin_id: str) -> Admin:
    """The admin can no longer sign in, and its sessions end now."""
    admin = get_admin(session, admin_id)
    if admin.disabled_at is not None:
        raise Conflict(f"the console admin {admin.username} is disabled already")
    _keep_a_super_admin(session, admin, "disable")
    admin.disabled_at = utcnow()
    admin.session_epoch += 1
    _record(session, actor, admin, "user.account.disable", f"disabled console admin {admin.username}")
    return admin


def enable_admin(session: Session, actor: Actor, admin_id: str) -> Admin:
    admin = get_admin(session, admin_id)
    if admin.disabled_at is None:
        raise Conflict(f"the console admin {admin.username} is not disabled")
    admin.disabled_at = None
    _record(session, actor, admin, "user.account.enable", f"enabled console admin {admin.username}")
    return admin


def delete_admin(session: Session, actor: Actor, admin_id: str) -> None:
    """Delete the account; its sessions stop working with it (their admin is gone)."""
    admin = get_admin(session, admin_id)
    _keep_a_super_admin(session, admin, "delete")
    _record(session, actor, admin, "user.account.delete", f"deleted console admin {admin.username}")
    session.delete(admin)


def unlock_admin(session: Session, actor: Actor, admin_id: str) -> Admin:
    """Forget the failed sign-ins: attempts from every address are checked at once again
    (in this process's throttle; another API process forgets them within the hour)."""
    admin = get_admin(session, admin_id)
    admin.locked_until, admin.failed_logins = None, 0
    login_throttle.forget_everywhere(admin.username)
    _record(session, actor, admin, "user.account.unlock", f"unlocked console admin {admin.username}")
    return admin


def reset_password(session: Session, actor: Actor, admin_id: str, password: str) -> Admin:
    """Set a new password chosen by the actor; the admin's sessions end and its failed
    sign-ins are forgotten as by an unlock (they were most likely its own, with the password it
    forgot: the new one must not wait them out)."""
    admin = get_admin(session, admin_id)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(
            f"the password needs at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    admin.password_hash = hash_password(password)
    admin.session_epoch += 1
    admin.locked_until, admin.failed_logins = None, 0
    login_throttle.forget_everywhere(admin.username)
    _record(
        session, actor, admin, "user.account.reset_password",
        f"reset the password of console admin {admin.username}",
    )
    return admin


def _keep_a_super_admin(session: Session, admin: Admin, verb: str) -> None:
    """Refuse to leave no active super_admin."""
    if admin.role != Role.SUPER_ADMIN or admin.disabled_at is not None:
        return
    # Locked rows (PostgreSQL): two super admins demoting each other at once cannot both pass.
    others = session.scalars(
        select(Admin.id)
        .where(
            Admin.role == Role.SUPER_ADMIN.value,
            Admin.disabled_at.is_(None),
            Admin.id != admin.id,
        )
        .with_for_update()
    ).all()
    if not others:
        raise Conflict(
            f"cannot {verb} {admin.username}: it is the last active super_admin "
            "(make another admin super_admin first)",
            field="role",
        )


def _record(
    session: Session,
    actor: Actor,
    admin: Admin,
    action: str,
    message: str,
    details: dict[str, object] | None = None,
) -> None:
    activity.record(
        session,
        actor,
        action,
        message,
        targets={"admin": admin.username, "admin_id": admin.id},
        details=details,
    )
