"""Runs: a reconcile of many users of an app, with live counts; held when over the safety limit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from provisiond.domain.policy import Limits, PolicyDocument
from provisiond.engine import queue
from provisiond.engine.context import policies_in_force
from provisiond.engine.mapping import CompiledPolicy
from provisiond.errors import Conflict, NotFound
from provisiond.services import activity, app_accounts, planning, policies, pushes, reach
from provisiond.services.apps import get_app, provisioning_of
from provisiond.services.context import Actor
from provisiond.store.tables import App, Run, Task, utcnow

BULK_RUN = 100  # a change reaching this many users gets a run of its own, with live counts
OUTCOMES = (
    "created",
    "updated",
    "deactivated",
    "reactivated",
    "deleted",
    "unchanged",
    "skipped",
    "failed",
)


def get_run(session: Session, run_id: str) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"no run with id {run_id!r}")
    return run


def list_runs(session: Session, app_id: str, limit: int = 50) -> Sequence[Run]:
    app = get_app(session, app_id)
    return session.scalars(
        select(Run).where(Run.app_id == app.id).order_by(Run.started_at.desc()).limit(limit)
    ).all()


def start_full_sync(session: Session, actor: Actor, app: App, *, reason: str = "app.sync") -> Run:
    """Reconcile every user assigned to the app or holding an account in it, reading the app."""
    if not provisioning_of(app).enabled:
        raise Conflict(f"provisioning is disabled for {app.name}: enable it before a sync")
    run = reconcile_users(
        session, actor, app, everyone(session, app.id), reason=reason, kind="full"
    )
    assert run is not None
    pushes.app_synced(session, actor, app.id, reason)
    return run


def everyone(session: Session, app_id: str) -> list[str]:
    """Every user a whole-app run considers: assigned, or holding an account."""
    return sorted(
        set(reach.assigned_users(session, app_id)) | reach.account_holders(session, app_id)
    )


def reconcile_in_apps(
    session: Session, actor: Actor, app_ids: Iterable[str], user_ids: Sequence[str], *, reason: str
) -> None:
    """:func:`reconcile_users` of a few users (a person's change) in each of these apps, with
    a handful of statements whatever the number of apps: the apps, their policy versions,
    their group roles, and one executemany for every task. A leaver's lifecycle call is on
    the path of their revocation, so it must not cost five statements per app.

    An app where these users could reach the policy's safety limit goes through
    :func:`reconcile_users`, which plans and may hold the change.
    """
    ids = sorted(set(app_ids))
    if not ids or not user_ids:
        return
    if len(user_ids) >= BULK_RUN:  # a run of its own, with live counts
        for app in _apps(session, ids):
            reconcile_users(session, actor, app, user_ids, reason=reason)
        return
    enabled = [app for app in _apps(session, ids) if provisioning_of(app).enabled]
    in_force = policies_in_force(session, [app.id for app in enabled])
    limited = [
        app
        for app in enabled
        if not _within(in_force[app.id].document.limits, len(user_ids), session, app.id)
    ]
    for app in limited:
        reconcile_users(session, actor, app, user_ids, reason=reason)
    free = [app.id for app in enabled if app not in limited]
    pushes.roles_changed_in(session, actor, free, reason)
    queue.enqueue_keys(
        session,
        [(app_id, user_id) for app_id in free for user_id in user_ids],
        reason=reason,
        correlation_id=actor.correlation_id,
    )


def _apps(session: Session, app_ids: Sequence[str]) -> list[App]:
    return list(session.scalars(select(App).where(App.id.in_(app_ids)).order_by(App.id)))


def _within(limits: Limits, deprovisions: int, session: Session, app_id: str) -> bool:
    """``limits.allows`` without counting the app's accounts where no percentage needs them."""
    if limits.max_deprovision_percent is None:
        return limits.allows(deprovisions, 0)
    return limits.allows(deprovisions, reach.account_count(session, app_id))


def reconcile_users(
    session: Session,
    actor: Actor,
    app: App,
    user_ids: Sequence[str],
    *,
    reason: str,
    kind: str = "change",
    policy: CompiledPolicy | None = None,
) -> Run | None:
    """Queue a reconcile of ``user_ids`` in ``app``, unless it would deprovision more than the
    policy's safety limit: then nothing is queued and a ``held`` run says what would happen.

    ``policy`` is a policy about to be saved (services.policy_saves): the users are planned
    under it, and the limits of both it and the policy in force apply, so loosening the limit
    in the same save as a mass change cannot wave that change through. When such a run is
    held, the document is kept on the run as the *pending* policy, never in force until an
    admin approves it.

    ``kind="full"`` (reads each account back from the app) and ``kind="policy"`` always make a
    run; a ``change`` makes one when it is held, or when it reaches ``BULK_RUN`` users or more
    (a group assigned, a large group's membership), so its progress shows with live counts.
    The check plans from the records in this very transaction, so it sees the change that is
    being made.
    """
    settings = provisioning_of(app)
    if not user_ids or not settings.enabled:
        return _empty_run(session, actor, app, kind, reason) if kind != "change" else None
    in_force = policies.compiled(session, app.id)
    policy = in_force if policy is None else policy
    limits = in_force.document.limits.tighter(policy.document.limits)
    accounts = reach.account_count(session, app.id)
    held: dict[str, Any] | None = None
    proposed: planning.AppPlan | None = None
    if not limits.allows(len(user_ids), accounts):  # only then can the limit be reached
        proposed = planning.plan_app(session, app.id, policy, settings, user_ids, now=utcnow())
        deprovisions = proposed.deprovisions
        # The percentage is of the app's accounts, not of the accounts of the users touched.
        if not limits.allows(len(deprovisions), accounts):
            held = {
                "reason": reason,
                "user_ids": sorted(user_ids),
                "counts": proposed.counts,
                "deprovisions": [planning.describe(u) for u in deprovisions[:1000]],
                "limit": limits.model_dump(),
                "accounts": accounts,
            }
            if policy is not in_force:
                # The held change is this document: it waits on the run, not in the policies.
                held["policy"] = policy.document.model_dump(mode="json")
                held["base_version"] = in_force.version or 0
    if held is None:
        # A change of who is assigned, or with which role, may change who a group role puts
        # in a pushed group (those users' account changes re-check it too, once applied).
        pushes.roles_changed(session, actor, app.id, reason)
    if held is None and kind == "change" and len(user_ids) < BULK_RUN:
        queue.enqueue(session, app.id, user_ids, reason=reason, correlation_id=actor.correlation_id)
        return None
    unchanged: set[str] = set()
    if held is None and kind != "full" and len(user_ids) >= BULK_RUN and 2 * accounts >= len(user_ids):
        # Most of these users hold accounts already (a policy saved, a large group re-checked):
        # plan from the records first, as a preview does, and queue only the users whose plan
        # is not empty. The worker would find the others in sync from the same records; a user
        # with a task queued or running keeps it (its records may be about to change).
        if proposed is None:
            proposed = planning.plan_app(session, app.id, policy, settings, user_ids, now=utcnow())
        busy = queue.pending_subjects(session, app.id, user_ids)
        unchanged = {
            planned.user_id
            for planned in proposed.users
            if planned.operation is None and planned.error is None and planned.user_id not in busy
        }
        user_ids = [user_id for user_id in user_ids if user_id not in unchanged]
    run = Run(
        app_id=app.id,
        kind=kind,
        status="held" if held else "running",
        actor=actor.name,
        total=0,
        counts={outcome: 0 for outcome in OUTCOMES},
        policy_version=policy.version or 0,
        held=held,
    )
    session.add(run)
    session.flush()
    if held is not None:
        count = len(held["deprovisions"])
        activity.record(
            session,
            actor,
            "app.run.held",
            f"{kind} run of {app.name} held: it would deprovision {held['counts']['deactivate'] + held['counts']['delete']} "
            f"of {held['accounts']} accounts, over the policy's limit ({_limit_text(limits)})"
            + (
                f"; the saved policy is pending, version {held['base_version']} stays in force"
                if "policy" in held
                else ""
            )
            + "; approve or cancel it",
            outcome="skipped",
            app_id=app.id,
            targets={"app": app.name, "run_id": run.id},
            details={
                "counts": held["counts"],
                "limit": held["limit"],
                "listed": count,
                "reason": reason,
                # Who saved what, for the audit trail: a pending save makes no app.policy.update.
                **(
                    {
                        "pending_policy": {
                            "base_version": held["base_version"],
                            "diff": policies.policy_diff(in_force.document, policy.document),
                        }
                    }
                    if "policy" in held
                    else {}
                ),
            },
        )
        return run
    _start(session, actor, app, run, sorted(user_ids), reason, unchanged=len(unchanged))
    return run


def _start(
    session: Session,
    actor: Actor,
    app: App,
    run: Run,
    user_ids: list[str],
    reason: str,
    *,
    unchanged: int = 0,
) -> None:
    """Queue the run's tasks; ``unchanged`` users were planned in sync and counted at once."""
    attached = queue.enqueue(
        session,
        app.id,
        user_ids,
        reason=reason,
        correlation_id=actor.correlation_id,
        run_id=run.id,
        verify_remote=run.kind == "full",
        # A change keeps a change's priority (a large group unassigned is access removed);
        # only syncs and policy runs wait behind everything else.
        priority=queue.priority_of(reason, None) if run.kind == "change" else None,
    )
    # Whoever holds which role may change with these users: the groups roles name are re-checked.
    pushes.roles_changed(session, actor, app.id, reason)
    run.status = "running"
    run.total = len(attached) + unchanged
    if unchanged:
        run.counts = {**run.counts, "unchanged": run.counts.get("unchanged", 0) + unchanged}
    if not attached:
        run.status, run.finished_at = "succeeded", utcnow()
    activity.record(
        session,
        actor,
        "app.run.start",
        f"{run.kind} run of {app.name} started: {run.total} users"
        + (f", {unchanged} of them already in sync" if unchanged else ""),
        app_id=app.id,
        targets={"app": app.name, "run_id": run.id},
        details={"policy_version": run.policy_version, "unchanged": unchanged},
    )


def _empty_run(session: Session, actor: Actor, app: App, kind: str, reason: str) -> Run:
    run = Run(
        app_id=app.id,
        kind=kind,
        status="running",
        actor=actor.name,
        total=0,
        counts={outcome: 0 for outcome in OUTCOMES},
    )
    session.add(run)
    session.flush()
    _start(session, actor, app, run, [], reason)
    return run


def pending_policy(session: Session, app_id: str) -> Run | None:
    """The held run carrying the app's pending policy, if a save is waiting for approval."""
    for run in session.scalars(
        select(Run).where(Run.app_id == app_id, Run.status == "held").order_by(Run.started_at)
    ):
        if run.held and "policy" in run.held:
            return run
    return None


def is_pending_policy(run: Run) -> bool:
    return run.held is not None and "policy" in run.held


def _limit_text(limits: Limits) -> str:
    parts = []
    if limits.max_deprovisions is not None:
        parts.append(f"at most {limits.max_deprovisions}")
    if limits.max_deprovision_percent is not None:
        parts.append(f"at most {limits.max_deprovision_percent:g}%")
    return " and ".join(parts)


def approve(session: Session, actor: Actor, run_id: str) -> Run:
    run = get_run(session, run_id)
    if run.status != "held" or run.held is None:
        raise Conflict(
            f"only held runs can be approved; this one is {run.status}", current_status=run.status
        )
    app = session.get(App, run.app_id)
    assert app is not None
    user_ids = list(run.held["user_ids"])
    if is_pending_policy(run):
        # The pending policy takes effect only now, as the next version, and every user of the
        # app (as of now, not as of the save) is reconciled under it.
        version, _ = policies.current(session, app.id)
        if version != run.held.get("base_version"):
            raise Conflict(
                f"the policy of {app.name} changed since this run was held (version "
                f"{run.held.get('base_version')} then, {version} now): save it again",
                current_status=run.status,
            )
        document = PolicyDocument.model_validate(run.held["policy"])
        run.policy_version, _ = policies.save(session, actor, app, document, run_id=run.id)
        user_ids = everyone(session, app.id)
    activity.record(
        session,
        actor,
        "app.run.approve",
        f"approved held {run.kind} run of {app.name}"
        + (f": policy version {run.policy_version} is now in force" if is_pending_policy(run) else ""),
        app_id=app.id,
        targets={"app": app.name, "run_id": run.id},
        details={"counts": run.held["counts"], "policy_version": run.policy_version},
    )
    orphans = run.held.get("orphans")
    if orphans:  # orphan accounts an admin asked to deprovision (services.app_accounts)
        app_accounts.queue_orphans(session, actor, app, run, orphans["action"], orphans["ids"])
        return run
    _start(session, actor, app, run, user_ids, str(run.held.get("reason", "approved")))
    return run


def cancel(session: Session, actor: Actor, run_id: str, *, superseded_by: str | None = None) -> Run:
    """Cancel a held run: nothing it held back is deprovisioned, and a pending policy is
    discarded (the version in force stays). ``superseded_by`` says which newer save replaced it."""
    run = get_run(session, run_id)
    if run.status != "held":
        raise Conflict(
            f"only held runs can be cancelled; this one is {run.status}", current_status=run.status
        )
    now = utcnow()
    run.status, run.finished_at = "cancelled", now
    app = session.get(App, run.app_id)
    name = app.name if app else run.app_id
    if is_pending_policy(run):
        # Nothing of a pending policy ever reached the queue or the worker: the tasks queued
        # meanwhile belong to other changes, planned under the policy in force, and stay.
        version = (run.held or {}).get("base_version")
        activity.record(
            session,
            actor,
            "app.run.cancel",
            f"cancelled held {run.kind} run of {name}: nothing was deprovisioned; the pending "
            f"policy was discarded and version {version} stays in force"
            + (f" ({superseded_by})" if superseded_by else ""),
            app_id=run.app_id,
            targets={"run_id": run.id},
            details={"dropped_tasks": 0, "policy_version": version, "superseded": superseded_by},
        )
        return run
    # Reconciles queued for these users before the hold would deprovision them the moment it
    # lifts: they go with the cancelled change. Changes made since (a leaver deactivated while
    # the run was held, say) were deferred by the worker, not dropped: they run now.
    user_ids = list((run.held or {}).get("user_ids", ()))
    dropped = 0
    for start in range(0, len(user_ids), 900):
        pending = session.scalars(
            select(Task).where(
                Task.app_id == run.app_id,
                Task.status == queue.QUEUED,
                Task.subject_id.in_(user_ids[start : start + 900]),
            )
        )
        for task in pending:
            if task.updated_at <= run.started_at:
                task.status, task.last_error = queue.DISMISSED, f"cancelled with held run {run.id}"
                task.updated_at = now
                dropped += 1
            else:
                task.next_attempt_at = now
                session.info["tasks_enqueued"] = True
    activity.record(
        session,
        actor,
        "app.run.cancel",
        f"cancelled held {run.kind} run of {name}: nothing was "
        f"deprovisioned ({dropped} queued reconciles of its users dropped)",
        app_id=run.app_id,
        targets={"run_id": run.id},
        details={"dropped_tasks": dropped},
    )
    return run
