"""Console admins: ``/admins`` (super_admin only). Passwords go in, never come out."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, SecretStr

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.problems import declare
from provisiond.api.schemas import Page, example
from provisiond.authz import Action
from provisiond.services import admin_accounts, admins
from provisiond.services.context import Role
from provisiond.store.tables import Admin

router = APIRouter(prefix="/admins", tags=["admins"])


class AdminOut(BaseModel):
    id: str
    username: str
    role: str
    apps: list[str]
    status: str = Field(description="active, throttled (failed sign-ins in a row) or disabled")
    created_at: datetime
    last_login_at: datetime | None
    locked_until: datetime | None
    disabled_at: datetime | None

    @classmethod
    def of(cls, row: Admin) -> AdminOut:
        return cls(
            id=row.id,
            username=row.username,
            role=row.role,
            apps=list(row.apps or ()),
            status=admin_accounts.status_of(row),
            created_at=row.created_at,
            last_login_at=row.last_login_at,
            locked_until=row.locked_until,
            disabled_at=row.disabled_at,
        )


class AdminCreate(BaseModel):
    model_config = example(
        {"username": "grace", "password": "<a long passphrase>", "role": "app_admin",
         "apps": ["crm"]},
        secret=True,
    )

    username: str = Field(min_length=2, max_length=64)
    password: SecretStr
    role: Role = Role.SUPER_ADMIN
    apps: list[str] = Field(default_factory=list)


class AdminPatch(BaseModel):
    model_config = example({"role": "help_desk"})

    role: Role | None = None
    apps: list[str] | None = Field(default=None, description="app_admin: the apps it manages.")


class PasswordReset(BaseModel):
    model_config = example({"password": "<a new long passphrase>"}, secret=True)

    password: SecretStr = Field(description="The new password, chosen by the super_admin.")


MANAGE = [requires(Action.ADMIN_MANAGE)]


@router.get("", dependencies=MANAGE)
def list_admins(rt: RuntimeDep, _: AdminDep) -> Page[AdminOut]:
    """Every console admin: role, apps, status (active, throttled, disabled), last sign-in."""
    with rt.db.session() as session:
        return Page[AdminOut](items=[AdminOut.of(row) for row in admin_accounts.list_admins(session)])


@router.post("", status_code=201, dependencies=MANAGE, responses=declare(409))
def create_admin(body: AdminCreate, rt: RuntimeDep, actor: AdminDep, response: Response) -> AdminOut:
    """A new console admin (409 if the username is taken); the password is never returned."""
    with rt.db.session() as session:
        row = admins.create_admin(
            session,
            actor,
            username=body.username,
            password=body.password.get_secret_value(),
            role=body.role.value,
            apps=body.apps,
        )
        out = AdminOut.of(row)
    response.headers["Location"] = f"/api/v1/admins/{out.id}"
    return out


@router.get("/{admin_id}", dependencies=MANAGE, responses=declare(404))
def get_admin(admin_id: str, rt: RuntimeDep, _: AdminDep) -> AdminOut:
    """One console admin."""
    with rt.db.session() as session:
        return AdminOut.of(admins.get_admin(session, admin_id))


@router.patch("/{admin_id}", dependencies=MANAGE, responses=declare(404, 409))
def update_admin(admin_id: str, body: AdminPatch, rt: RuntimeDep, actor: AdminDep) -> AdminOut:
    """Change the role and/or the apps; the last active super_admin keeps its role (409)."""
    with rt.db.session() as session:
        row = admin_accounts.update_admin(
            session, actor, admin_id, role=body.role.value if body.role else None, apps=body.apps
        )
        return AdminOut.of(row)


@router.post("/{admin_id}/disable", dependencies=MANAGE, responses=declare(404, 409))
def disable_admin(admin_id: str, rt: RuntimeDep, actor: AdminDep) -> AdminOut:
    """It can no longer sign in; its console sessions end at once."""
    with rt.db.session() as session:
        return AdminOut.of(admin_accounts.disable_admin(session, actor, admin_id))


@router.post("/{admin_id}/enable", dependencies=MANAGE, responses=declare(404, 409))
def enable_admin(admin_id: str, rt: RuntimeDep, actor: AdminDep) -> AdminOut:
    """It may sign in again (409 if it was not disabled)."""
    with rt.db.session() as session:
        return AdminOut.of(admin_accounts.enable_admin(session, actor, admin_id))


@router.post("/{admin_id}/unlock", dependencies=MANAGE, responses=declare(404))
def unlock_admin(admin_id: str, rt: RuntimeDep, actor: AdminDep) -> AdminOut:
    """Clear its failed sign-ins."""
    with rt.db.session() as session:
        return AdminOut.of(admin_accounts.unlock_admin(session, actor, admin_id))


@router.post("/{admin_id}/password", dependencies=MANAGE, responses=declare(404))
def reset_password(
    admin_id: str, body: PasswordReset, rt: RuntimeDep, actor: AdminDep
) -> AdminOut:
    """Set a new password; the admin's sessions end."""
    with rt.db.session() as session:
        row = admin_accounts.reset_password(
            session, actor, admin_id, body.password.get_secret_value()
        )
        return AdminOut.of(row)


@router.delete(
    "/{admin_id}", status_code=204, dependencies=MANAGE, responses=declare(404, 409)
)
def delete_admin(admin_id: str, rt: RuntimeDep, actor: AdminDep) -> None:
    """Delete it; its sessions end (409 for the last active super_admin)."""
    with rt.db.session() as session:
        admin_accounts.delete_admin(session, actor, admin_id)
