"""The API's request and response bodies (its OpenAPI document is generated from these)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from provisiond.authz import shown_test
from provisiond.domain.apps import (
    ConnectorSettings,
    ProvisioningSettings,
    app_name_pattern,
    connector_kind,
    shown_connector,
)
from provisiond.domain.directory import Profile
from provisiond.domain.roles import NAME_MAX, RoleExpression
from provisiond.services import pushes
from provisiond.services.context import Actor
from provisiond.store import tables


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def example(body: dict[str, Any], *, secret: bool = False) -> ConfigDict:
    """The config of a request body shown with this example in the OpenAPI document.
    ``secret``: the body may hold secrets, so a ValidationError never echoes its input."""
    return ConfigDict(
        extra="forbid", json_schema_extra={"examples": [body]}, hide_input_in_errors=secret
    )


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


# -- users and groups -------------------------------------------------------------------------------


class UserCreate(Strict):
    model_config = example(
        {
            "profile": {
                "login": "ada.lovelace",
                "email": "ada.lovelace@example.com",
                "firstName": "Ada",
                "lastName": "Lovelace",
                "department": "Engineering",
            },
            "activate": True,
        }
    )
    profile: Profile
    activate: bool = Field(default=True, description="Create active (true) or staged (false).")


class UserPatch(Strict):
    model_config = example({"profile": {"title": "Principal engineer", "manager": None}})
    profile: dict[str, Any] = Field(description="Profile attributes to change; null removes one.")


class UserOut(BaseModel):
    id: str
    status: str
    profile: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    status_changed_at: datetime
    source: str | None = Field(
        default=None,
        description="The SCIM client (GET /scim-clients) that created the user and owns its "
        "attributes; null for a user an admin created.",
    )

    @classmethod
    def of(cls, user: tables.User) -> UserOut:
        return cls(
            id=user.id,
            status=user.status,
            profile=user.profile,
            created_at=user.created_at,
            updated_at=user.updated_at,
            status_changed_at=user.status_changed_at,
            source=user.source,
        )


RULE_DESCRIPTION = (
    'A CEL bool over `user` (e.g. `user.department == "Sales"`): the group\'s members are '
    "the users it holds for, kept current; null for a group whose members are set by hand."
)


class GroupCreate(Strict):
    model_config = example(
        {"name": "sales", "description": "Everyone in Sales", "rule": 'user.department == "Sales"'}
    )
    name: str = Field(min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=2048)
    rule: str | None = Field(default=None, max_length=4096, description=RULE_DESCRIPTION)


class GroupPatch(Strict):
    model_config = example({"description": "Sales, all regions"})
    name: str | None = Field(default=None, min_length=1, max_length=256)
    description: str | None = Field(default=None, max_length=2048)
    rule: str | None = Field(
        default=None, max_length=4096, description=RULE_DESCRIPTION + " Leave out to keep it."
    )


class GroupRef(BaseModel):
    id: str
    name: str


class GroupOut(BaseModel):
    id: str
    name: str
    description: str | None
    rule: str | None
    member_count: int = Field(description="Effective members: direct and of nested groups.")
    children: list[GroupRef] = Field(description="The groups nested in this one.")
    created_at: datetime

    @classmethod
    def of(
        cls, group: tables.Group, member_count: int, children: Sequence[tables.Group] = ()
    ) -> GroupOut:
        return cls(
            id=group.id,
            name=group.name,
            description=group.description,
            rule=group.rule,
            member_count=member_count,
            children=[GroupRef(id=child.id, name=child.name) for child in children],
            created_at=group.created_at,
        )


# -- apps -------------------------------------------------------------------------------------------


class AppCreate(Strict):
    # The connector's auth holds secrets: never echo the input in a ValidationError's text.
    model_config = example(
        {
            "name": "crm",
            "label": "CRM",
            "connector": {
                "type": "scim2",
                "base_url": "https://crm.example.com/scim/v2",
                "auth": {"type": "bearer", "token": "<the app's SCIM token>"},
                "profile": "rfc",
            },
        },
        secret=True,
    )
    name: str = Field(pattern=app_name_pattern(), description="Unique, lower-case, URL-safe.")
    label: str = Field(min_length=1, max_length=256)
    connector: ConnectorSettings = Field(
        description="By kind: scim (the default), ldap or postgresql (docs/architecture.md, Connectors beyond SCIM)."
    )
    provisioning: ProvisioningSettings = Field(default_factory=ProvisioningSettings)


class AppPatch(Strict):
    model_config = example({"label": "CRM (EU)"})
    label: str | None = Field(default=None, min_length=1, max_length=256)
    connector: dict[str, Any] | None = Field(
        default=None,
        description="Connector fields to change. Secrets may be left out to keep the stored ones.",
    )


class AppOut(BaseModel):
    id: str
    name: str
    label: str
    connector: dict[str, Any]
    provisioning: dict[str, Any]
    last_test: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, app: tables.App, viewer: Actor) -> AppOut:
        connector = shown_connector(app.connector)
        # Write-only credentials: only whether they are set.
        if connector_kind(connector) == "scim":
            connector["auth"] = {
                **connector.get("auth", {}),
                "secret_set": app.credentials is not None,
            }
        else:
            connector["secret_set"] = app.credentials is not None
        return cls(
            id=app.id,
            name=app.name,
            label=app.label,
            connector=connector,
            provisioning=app.provisioning,
            last_test=shown_test(viewer, app.last_test),
            created_at=app.created_at,
            updated_at=app.updated_at,
        )


class ProvisioningOut(ProvisioningSettings):
    model_config = example(
        {
            "enabled": True,
            "features": {"create_users": True, "update_users": True, "deactivate_users": True},
            "deprovision_action": "deactivate",
            "matching": "userName",
            "concurrency": 4,
        }
    )
    last_test: dict[str, Any] | None = None


class AssignmentCreate(Strict):
    model_config = example(
        {"principal_type": "group", "principal_id": "sales", "roles": ["viewer"], "priority": 10}
    )
    principal_type: Literal["user", "group"]
    principal_id: str = Field(min_length=1, max_length=64)
    role: str | None = Field(
        default=None, max_length=128, description="One of the app's roles, by name or id."
    )
    roles: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=64, description="Several of the app's roles."
    )
    priority: int | None = Field(
        default=None,
        ge=0,
        le=10_000,
        description="Group assignments: lower wins (role_mode priority); unique per app.",
    )


class AssignmentPatch(Strict):
    """Only the fields given change; ``roles: []`` (or ``role: null``) removes every role."""

    model_config = example({"roles": ["viewer", "editor"]})

    role: str | None = Field(default=None, max_length=128)
    roles: list[Annotated[str, Field(min_length=1, max_length=128)]] | None = Field(
        default=None, max_length=64
    )
    priority: int | None = Field(default=None, ge=0, le=10_000)


class AssignmentOut(BaseModel):
    id: str
    app_id: str
    principal_type: str
    principal_id: str
    role: str | None = Field(description="The role's name when it grants exactly one.")
    roles: list[str]
    priority: int | None
    created_at: datetime
    run_id: str | None = Field(
        default=None,
        description="When creating it reconciles 100 users or more (or is held by the safety "
        "limits): the run that does, with live counts at /runs/{id}.",
    )

    @classmethod
    def of(cls, row: tables.Assignment, roles: list[tables.AppRole]) -> AssignmentOut:
        names = [role.name for role in roles]
        return cls(
            id=row.id,
            app_id=row.app_id,
            principal_type=row.principal_type,
            principal_id=row.principal_id,
            role=names[0] if len(names) == 1 else None,
            roles=names,
            priority=row.priority,
            created_at=row.created_at,
        )


class RoleCreate(Strict):
    model_config = example(
        {
            "name": "editor",
            "description": "May change records",
            "expression": {"kind": "scim_role", "value": "Editor"},
        }
    )
    name: str = Field(min_length=1, max_length=NAME_MAX)
    description: str | None = Field(default=None, max_length=2048)
    expression: RoleExpression | None = Field(
        default=None, description='Default: {"kind": "scim_role", "value": <name>}.'
    )


class RolePatch(Strict):
    model_config = example({"description": "May change and delete records"})
    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)
    description: str | None = Field(default=None, max_length=2048)
    expression: RoleExpression | None = None


class RoleOut(BaseModel):
    id: str
    app_id: str
    name: str
    description: str | None
    expression: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: tables.AppRole) -> RoleOut:
        return cls(
            id=row.id,
            app_id=row.app_id,
            name=row.name,
            description=row.description,
            expression=row.expression,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class PushGroupCreate(Strict):
    model_config = example({"group": "sales", "unpush_action": "leave"})
    group: str = Field(
        min_length=1, max_length=256, description="The directory group's id or name."
    )
    unpush_action: Literal["leave", "delete"] = Field(
        default="leave",
        description="What happens to the app's group when it is unpushed or the directory "
        "group deleted: left as it is, or deleted in the app.",
    )


class PushedMemberOut(BaseModel):
    remote_id: str
    user_id: str | None
    login: str | None


class PushedGroupOut(BaseModel):
    group_id: str
    app_id: str
    name: str
    status: str  # pending | active | failed | unpushing
    remote_id: str | None
    remote_name: str | None
    linked: bool
    unpush_action: str
    members: int
    last_synced_at: datetime | None
    last_error: str | None
    created_at: datetime
    member_list: list[PushedMemberOut] | None = None

    @classmethod
    def of(
        cls,
        row: tables.PushedGroup,
        members: int,
        member_list: list[PushedMemberOut] | None = None,
    ) -> PushedGroupOut:
        return cls(
            group_id=row.group_id,
            app_id=row.app_id,
            name=row.group_name,
            status=pushes.status_of(row),
            remote_id=row.remote_id,
            remote_name=row.remote_name,
            linked=row.linked,
            unpush_action=row.unpush_action,
            members=members,
            last_synced_at=row.last_synced_at,
            last_error=row.last_error,
            created_at=row.created_at,
            member_list=member_list,
        )


class AccountOut(BaseModel):
    id: str
    app_id: str
    user_id: str
    login: str | None
    remote_id: str | None
    status: str
    attributes: dict[str, Any]
    last_synced_at: datetime | None
    last_error: str | None


class RunOut(BaseModel):
    id: str
    app_id: str
    kind: str
    status: str
    actor: str
    total: int
    done: int
    counts: dict[str, int]
    started_at: datetime
    finished_at: datetime | None
    policy_version: int | None = None
    held: dict[str, Any] | None = None

    @classmethod
    def of(cls, run: tables.Run) -> RunOut:
        return cls(
            policy_version=run.policy_version,
            held=run.held,
            id=run.id,
            app_id=run.app_id,
            kind=run.kind,
            status=run.status,
            actor=run.actor,
            total=run.total,
            done=sum(run.counts.values()),
            counts=run.counts,
            started_at=run.started_at,
            finished_at=run.finished_at,
        )


class ProvisioningStateOut(BaseModel):
    state: str = Field(description="flowing | paused (the app answered 429) | quarantined")
    since: datetime | None
    until: datetime | None = Field(description="paused: its end; quarantined: the next probe")
    reason: str | None
    probes_failed: int
    queued: int = Field(description="Tasks waiting in the queue")
    queued_deprovisions: int = Field(description="... of which lifecycle (leavers first)")


class WorkerOut(BaseModel):
    id: str
    host: str
    pid: int
    state: str = Field(description="running | draining (stopping) | lost (stopped beating)")
    in_flight: int = Field(description="Tasks it held at its last heartbeat")
    started_at: datetime
    beat_at: datetime


class TaskOut(BaseModel):
    id: str
    app_id: str
    kind: str  # user: an account; group: a pushed group
    user_id: str | None
    group_id: str | None
    run_id: str | None
    reason: str
    operation: str | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    correlation_id: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, task: tables.Task) -> TaskOut:
        return cls(
            id=task.id,
            app_id=task.app_id,
            kind=task.kind,
            user_id=task.subject_id if task.kind == "user" else None,
            group_id=task.subject_id if task.kind == "group" else None,
            run_id=task.run_id,
            reason=task.reason,
            operation=task.operation,
            status=task.status,
            attempts=task.attempts,
            next_attempt_at=task.next_attempt_at,
            last_error=task.last_error,
            correlation_id=task.correlation_id,
            created_at=task.created_at,
            updated_at=task.updated_at,
        )


class EventOut(BaseModel):
    id: int
    time: datetime
    actor: str
    action: str
    outcome: str
    app_id: str | None
    user_id: str | None
    targets: dict[str, Any]
    message: str
    details: dict[str, Any]
    correlation_id: str

    @classmethod
    def of(cls, row: tables.Event) -> EventOut:
        return cls(
            id=row.id,
            time=row.time,
            actor=row.actor,
            action=row.action,
            outcome=row.outcome,
            app_id=row.app_id,
            user_id=row.user_id,
            targets=row.targets,
            message=row.message,
            details=row.details,
            correlation_id=row.correlation_id,
        )


# -- CSV imports ------------------------------------------------------------------------------------


class ImportRowError(BaseModel):
    line: int | None = Field(description="The file's line (1 is the header); null: not a row")
    message: str


class ImportOut(BaseModel):
    """A CSV import: what reading the file planned, and (while applying) what is done."""

    id: str
    status: str = Field(description="invalid | ready | applying | succeeded | failed")
    filename: str | None
    options: dict[str, Any]
    rows: int = Field(description="Data rows read from the file")
    planned: dict[str, int] = Field(description="create, update, unchanged, deactivate, invalid")
    done: dict[str, int] = Field(description="The same as they are applied, and failed")
    total: int = Field(description="Changes to apply: rows to create, update or check, plus deactivations")
    applied: int = Field(description="Changes applied so far (done, failed included)")
    error_count: int
    errors: list[ImportRowError] = Field(description="The first 1000 errors, by line")
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, imported: tables.UserImport) -> ImportOut:
        planned = imported.planned
        return cls(
            id=imported.id,
            status=imported.status,
            filename=imported.filename,
            options=imported.options,
            rows=imported.rows,
            planned=planned,
            done=imported.done,
            total=sum(planned.get(k, 0) for k in ("create", "update", "unchanged", "deactivate")),
            applied=sum(imported.done.values()),
            error_count=imported.error_count,
            errors=[ImportRowError(**item) for item in imported.errors.get("items", [])],
            created_at=imported.created_at,
            finished_at=imported.finished_at,
        )
