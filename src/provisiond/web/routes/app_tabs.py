"""An app's other tabs: Roles, Assignments, Policy (edit, dry-run preview, save), Accounts,
Activity (its Groups tab is in push_groups)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError
from sqlalchemy import select
from starlette.responses import Response

from provisiond.authz import Action
from provisiond.domain.roles import RoleExpression, RoleKind
from provisiond.errors import Conflict, Invalid, NotFound, ProvisiondError
from provisiond.services import (
    activity,
    apps,
    assignments,
    directory,
    holds,
    impact,
    policy_saves,
    roles,
)
from provisiond.store.tables import Account, App, Group, User
from provisiond.web.confirm import Confirmation, ask, confirmed, deprovisions
from provisiond.web.context import Console, ConsoleDep, PostDep, redirect, render
from provisiond.web.forms import FieldErrors, service_errors, validation_errors
from provisiond.web.policy_errors import MappingError, each_mapping
from provisiond.web.routes import app_side
from provisiond.web.routes.apps import load

router = APIRouter()


def _optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:  # arrives with its own issue; the tab says so meanwhile
        return None


policies = _optional("provisiond.services.policies")
dry_run = _optional("provisiond.services.preview")


def render_tab(
    console: Console, app: App, tab: str, status_code: int = 200, **context: Any
) -> Response:
    """An app's tab; ``can_manage`` says whether its forms are shown. Every tab says when the
    app's provisioning is paused or quarantined (``hold``)."""
    with console.rt.db.session() as session:
        hold = holds.state_of(session, app.id)
    return render(
        console.request,
        f"apps/{tab}.html",
        status_code=status_code,
        app=app,
        tab=tab,
        can_manage=console.may(Action.APP_MANAGE, app.id),
        hold=hold,
        **context,
    )


@router.post("/apps/{app_id}/provisioning/resume")
def resume(app_id: str, console: PostDep) -> Response:
    """End the app's quarantine now, without waiting for its next probe."""
    app = load(console, app_id, Action.APP_MANAGE)
    try:
        with console.rt.db.session() as session:
            now = holds.resume(session, console.actor, app.id)
    except Conflict as exc:
        console.flash(exc.detail)
        return redirect(console.request, f"/apps/{app.id}/provisioning")
    if console.rt.worker is not None:
        console.rt.worker.wake()
    console.flash(f"{app.label} resumes: {now.queued} queued task(s) are due now.")
    return redirect(console.request, f"/apps/{app.id}/provisioning")


# -- roles ---------------------------------------------------------------------------------------

ROLE_FIELDS = {"name": "name", "description": "description", "kind": "kind", "value": "value"}


def _roles_page(console: Console, app: App, status_code: int = 200, **context: Any) -> Response:
    with console.rt.db.session() as session:
        rows = roles.list_roles(session, app.id)
    context.setdefault("errors", {})
    context.setdefault("values", {"kind": "scim_role"})
    return render_tab(
        console, app, "roles", status_code, roles=rows, kinds=list(RoleKind), **context
    )


@router.get("/apps/{app_id}/roles")
def list_roles(app_id: str, console: ConsoleDep) -> Response:
    return _roles_page(console, load(console, app_id))


@router.post("/apps/{app_id}/roles")
def create_role(app_id: str, console: PostDep) -> Response:
    app = load(console, app_id, Action.APP_MANAGE)
    values = {key: console.field(key) for key in ROLE_FIELDS}
    try:
        if not values["name"]:
            raise Invalid("enter a name", field="name")
        expression = RoleExpression(
            kind=values["kind"] or "scim_role", value=values["value"] or values["name"]
        )
        with console.rt.db.session() as session:
            roles.create_role(
                session, console.actor, app.id, name=values["name"],
                description=values["description"] or None, expression=expression,
            )
    except ValidationError as exc:
        errors = validation_errors(exc, ROLE_FIELDS)
        return _roles_page(console, app, 422, errors=errors, values=values)
    except (Invalid, Conflict) as exc:
        errors = service_errors(exc, "name", ROLE_FIELDS)
        return _roles_page(console, app, 422, errors=errors, values=values)
    console.flash(f"Role {values['name']} defined.")
    return redirect(console.request, f"/apps/{app.id}/roles")


def _role_form(
    console: Console, app: App, role: Any, status_code: int = 200, **context: Any
) -> Response:
    context.setdefault("errors", {})
    context.setdefault("values", {
        "name": role.name, "description": role.description or "",
        "kind": role.expression["kind"], "value": role.expression["value"],
    })
    return render(
        console.request, "apps/role.html", status_code=status_code, app=app, tab="roles",
        can_manage=True, role=role, **context,
    )


@router.get("/apps/{app_id}/roles/{role_id}/edit")
def edit_role(app_id: str, role_id: str, console: ConsoleDep) -> Response:
    app = load(console, app_id, Action.APP_MANAGE)
    with console.rt.db.session() as session:
        role = roles.get_role(session, app.id, role_id)
    return _role_form(console, app, role)


@router.post("/apps/{app_id}/roles/{role_id}/edit")
def update_role(app_id: str, role_id: str, console: PostDep) -> Response:
    """Rename, describe or re-express a role, as the API's PATCH does: its holders are
    re-planned (and the pushed group it named loses them) when the expression changes."""
    app = load(console, app_id, Action.APP_MANAGE)
    values = {key: console.field(key) for key in ROLE_FIELDS}
    with console.rt.db.session() as session:
        role = roles.get_role(session, app.id, role_id)
    try:
        if not values["name"]:
            raise Invalid("enter a name", field="name")
        expression = RoleExpression(
            kind=values["kind"] or "scim_role", value=values["value"] or values["name"]
        )
        with console.rt.db.session() as session:
            role = roles.update_role(
                session, console.actor, app.id, role.id,
                changes={
                    "name": values["name"],
                    "description": values["description"] or None,
                    "expression": expression.model_dump(mode="json"),
                },
            )
    except ValidationError as exc:
        errors = validation_errors(exc, ROLE_FIELDS)
        return _role_form(console, app, role, 422, errors=errors, values=values)
    except (Invalid, Conflict) as exc:
        errors = service_errors(exc, "name", ROLE_FIELDS)
        return _role_form(console, app, role, 422, errors=errors, values=values)
    console.flash(f"Role {role.name} saved; the users who hold it are being updated.")
    return redirect(console.request, f"/apps/{app.id}/roles")


@router.post("/apps/{app_id}/roles/{role_id}/delete")
def delete_role(app_id: str, role_id: str, console: PostDep) -> Response:
    app = load(console, app_id, Action.APP_MANAGE)
    try:
        with console.rt.db.session() as session:
            roles.delete_role(session, console.actor, app.id, role_id)
    except Conflict as exc:  # still granted: say by whom, beside the list
        return _roles_page(console, app, 409, refusal=exc.detail)
    console.flash("Role deleted.")
    return redirect(console.request, f"/apps/{app.id}/roles")


# -- assignments ---------------------------------------------------------------------------------


def _assignments_page(
    console: Console, app: App, status_code: int = 200, **context: Any
) -> Response:
    with console.rt.db.session() as session:
        rows = assignments.list_assignments(session, app.id)
        groups = session.scalars(select(Group).order_by(Group.name_key)).all()
        names = {g.id: g.name for g in groups}
        users = directory.find_users_by_ids(
            session, [r.principal_id for r in rows if r.principal_type == "user"]
        )
        names.update({uid: user.login for uid, user in users.items()})
        granted = {aid: [r.name for r in rs] for aid, rs in roles.roles_of(
            session, [r.id for r in rows]).items()}
        defined = roles.list_roles(session, app.id)
    context.setdefault("errors", {})
    context.setdefault("values", {"principal_type": "group"})
    return render_tab(
        console,
        app,
        "assignments",
        status_code,
        assignments=rows,
        groups=groups,
        names=names,
        granted=granted,
        roles=defined,
        **context,
    )


@router.get("/apps/{app_id}/assignments")
def list_assignments(app_id: str, console: ConsoleDep) -> Response:
    return _assignments_page(console, load(console, app_id))


def _principal(console: Console, kind: str) -> str:
    if kind == "group":
        group_id = console.field("group_id")
        if not group_id:
            raise Invalid("choose a group", field="group_id")
        return group_id
    login = console.field("login")
    if not login:
        raise Invalid("enter the user's login", field="login")
    with console.rt.db.session() as session:
        user = session.scalar(select(User).where(User.login_key == login.casefold()))
    if user is None:
        raise Invalid(f"no user with login {login!r}", field="login")
    return user.id


@router.post("/apps/{app_id}/assignments")
def create_assignment(app_id: str, console: PostDep) -> Response:
    app = load(console, app_id, Action.APP_MANAGE)
    values = {
        k: console.field(k) for k in ("principal_type", "group_id", "login", "role", "priority")
    }
    kind = values["principal_type"] if values["principal_type"] in ("user", "group") else "group"
    try:
        priority = None
        if values["priority"]:
            if not values["priority"].isdigit() or int(values["priority"]) > 10_000:
                raise Invalid("a whole number from 0 to 10000", field="priority")
            priority = int(values["priority"])
        principal_id = _principal(console, kind)
        with console.rt.db.session() as session:
            assignments.create_assignment(
                session,
                console.actor,
                app.id,
                principal_type=kind,
                principal_id=principal_id,
                role=values["role"] or None,
                priority=priority,
            )
    except (Invalid, Conflict, NotFound) as exc:
        field = "group_id" if kind == "group" else "login"
        return _assignments_page(
            console, app, 422, errors=service_errors(exc, field, {"principal_id": field}), values=values
        )
    console.flash("Assigned. Its users are being provisioned.")
    return redirect(console.request, f"/apps/{app.id}/assignments")


@router.post("/apps/{app_id}/assignments/{assignment_id}/delete")
def delete_assignment(app_id: str, assignment_id: str, console: PostDep) -> Response:
    app = load(console, app_id, Action.APP_MANAGE)
    if not confirmed(console):
        return _confirm_unassign(console, app, assignment_id)
    with console.rt.db.session() as session:
        assignments.delete_assignment(session, console.actor, app.id, assignment_id)
    console.flash("Unassigned. Users left without an assignment are deprovisioned.")
    return redirect(console.request, f"/apps/{app.id}/assignments")


def _confirm_unassign(console: Console, app: App, assignment_id: str) -> Response:
    with console.rt.db.session() as session:
        row = assignments.get_assignment(session, app.id, assignment_id)
        if row.principal_type == "group":
            who = f"group {directory.get_group(session, row.principal_id).name}"
        else:
            who = directory.get_user(session, row.principal_id).login
        found = impact.of_unassign(session, app.id, assignment_id)
    return ask(
        console,
        Confirmation(
            title=f"Unassign {who} from {app.label}?",
            summary=_unassign_summary(who, app, found),
            action=f"/apps/{app.id}/assignments/{assignment_id}/delete",
            button=f"Unassign {who}",
            back=f"/apps/{app.id}/assignments",
            impact=found,
        ),
    )


def _unassign_summary(who: str, app: App, found: impact.Impact) -> str:
    waiting = sum(a.count for a in found.apps if not a.enabled)
    if waiting:  # provisioning off: nothing is sent now, the deprovisionings wait for it
        return (
            f"Provisioning of {app.label} is disabled: unassigning {who} sends nothing now, "
            f"and deprovisions {waiting} account{'' if waiting == 1 else 's'} once it is enabled."
        )
    if not found.count:
        return f"Unassigning {who} deprovisions no account in {app.label}: nobody loses access."
    return f"Unassigning {who} {deprovisions(found)} in {app.label}."


# -- policy --------------------------------------------------------------------------------------


def _policy_form(document: Any) -> dict[str, str]:
    data = document.model_dump(mode="json")
    return {
        "scope": data["scope"] or "",
        "mappings": "\n".join(f"{path} = {source}" for path, source in data["mappings"].items()),
        "deprovision_action": data["deprovisioning"]["action"],
        "delete_after_days": str(data["deprovisioning"]["delete_after_days"] or ""),
        "max_deprovisions": str(data["limits"]["max_deprovisions"] or ""),
        "max_deprovision_percent": str(data["limits"]["max_deprovision_percent"] or ""),
    }


def _draft(values: dict[str, str]) -> Any:
    mappings: dict[str, str] = {}
    for number, line in enumerate(values["mappings"].splitlines(), 1):
        if not line.strip():
            continue
        path, sep, source = line.partition("=")
        if not sep or not path.strip() or not source.strip():
            raise Invalid(f"line {number}: write attribute = expression", field="mappings")
        mappings[path.strip()] = source.strip()
    raw = {
        "scope": values["scope"] or None,
        "mappings": mappings,
        "deprovisioning": {
            "action": values["deprovision_action"] or "inherit",
            "delete_after_days": values["delete_after_days"] or None,
        },
        "limits": {
            "max_deprovisions": values["max_deprovisions"] or None,
            "max_deprovision_percent": values["max_deprovision_percent"] or None,
        },
    }
    return _document_type().model_validate(raw)


def _document_type() -> Any:
    from provisiond.domain.policy import PolicyDocument

    return PolicyDocument


POLICY_FIELDS = {
    "scope": "scope",
    "mappings": "mappings",
    "deprovisioning.action": "deprovision_action",
    "deprovisioning.delete_after_days": "delete_after_days",
    "limits.max_deprovisions": "max_deprovisions",
    "limits.max_deprovision_percent": "max_deprovision_percent",
}


def _policy_page(console: Console, app: App, status_code: int = 200, **context: Any) -> Response:
    if policies is None:
        return render_tab(console, app, "policy", status_code, available=False)
    with console.rt.db.session() as session:
        version, document = policies.current(session, app.id)
        context.setdefault("pending", policy_saves.pending_of(session, app.id))
    context.setdefault("values", _policy_form(document))
    context.setdefault("errors", {})
    return render_tab(
        console, app, "policy", status_code, available=True, version=version, **context
    )


@router.get("/apps/{app_id}/policy")
def policy(app_id: str, console: ConsoleDep) -> Response:
    return _policy_page(console, load(console, app_id))


@router.post("/apps/{app_id}/policy")
def policy_post(app_id: str, console: PostDep) -> Response:
    """``action=preview`` shows the dry run of the draft; ``action=save`` stores it."""
    app = load(console, app_id, Action.APP_MANAGE)
    if policies is None:
        raise NotFound("provisioning policies are not available in this version")
    values = {key: console.field(key) for key in POLICY_FIELDS.values()}
    errors: FieldErrors = {}
    preview = None
    saved: policy_saves.Saved | None = None
    try:
        draft = _draft(values)
        with console.rt.db.session() as session:
            if console.field("action") == "save":
                # As the API's PUT: in force with every user reconciled under it, or pending
                # behind a held run when over the limits.
                saved = policy_saves.save(session, console.actor, apps.get_app(session, app.id), draft)
            else:
                preview = _preview(console, session, app, draft)
    except ValidationError as exc:
        errors = validation_errors(exc, POLICY_FIELDS)
    except ProvisiondError as exc:
        errors = service_errors(exc, "mappings", POLICY_FIELDS)
        if str(exc.extra.get("field", "")).startswith("mappings."):
            found = _mapping_errors(console, values["mappings"])
            errors = {"mappings": _refused(found) if found else exc.detail}
            return _policy_page(console, app, 422, values=values, errors=errors, mapping_errors=found)
    if errors:
        return _policy_page(console, app, 422, values=values, errors=errors)
    if preview is not None:
        return _policy_page(console, app, values=values, preview=preview)
    assert saved is not None
    console.flash(_saved_message(saved))
    if saved.pending is not None and saved.changed:
        return redirect(console.request, f"/runs/{saved.pending['run_id']}")
    return redirect(console.request, f"/apps/{app.id}/policy")


def _mapping_errors(console: Console, text: str) -> list[MappingError]:
    """Each refused mapping, compiled alone (the first refusal hides the others)."""
    assert policies is not None
    with console.rt.db.session() as session:
        return each_mapping(text, lambda draft: policies.check(session, draft), _document_type())


def _refused(found: list[MappingError]) -> str:
    n = len(found)
    return f"{n} mapping{'' if n == 1 else 's'} refused: see {'it' if n == 1 else 'each'} below."


def _preview(console: Console, session: Any, app: App, draft: Any) -> dict[str, Any]:
    """The policy's own changes, and (where the dry-run service exists) what each user gets."""
    assert policies is not None
    _, before = policies.current(session, app.id)
    policies.check(session, draft)
    result: dict[str, Any] = {"policy": policies.policy_diff(before, draft), "users": None}
    if dry_run is not None:
        plan = dry_run.preview(session, console.actor, app.id, draft, limit=200)
        result.update(counts=plan["counts"], users=plan["changes"], held=plan["would_hold"])
    return result


def _saved_message(saved: policy_saves.Saved) -> str:
    if not saved.changed:
        return "No change to save."
    if saved.pending is not None:
        return (
            f"Not in force yet: this policy would deprovision {saved.pending['deprovisions']} "
            f"accounts, over the limit. Version {saved.version} stays in force until an admin "
            "approves the held run."
        )
    return f"Policy saved as version {saved.version}."


# -- accounts and activity -----------------------------------------------------------------------


@router.get("/apps/{app_id}/accounts")
def accounts(app_id: str, console: ConsoleDep) -> Response:
    app = load(console, app_id)
    with console.rt.db.session() as session:
        rows = session.execute(
            select(Account, User.login)
            .outerjoin(User, User.id == Account.user_id)
            .where(Account.app_id == app.id)
            .order_by(User.login_key)
        ).all()
        side = app_side.accounts_context(session, app.id)
    return render_tab(console, app, "accounts", accounts=rows, **side)


@router.get("/apps/{app_id}/activity")
def app_activity(app_id: str, console: ConsoleDep) -> Response:
    app = load(console, app_id)
    console.authorize(Action.LOG_READ)
    with console.rt.db.session() as session:
        events, _ = activity.search(session, activity.LogQuery(app_id=app.id, limit=100))
    return render_tab(console, app, "activity", events=events)
