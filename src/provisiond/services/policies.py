"""Provisioning policies: versioned documents, checked on save, compiled once per version."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisiond.domain.policy import PolicyDocument
from provisiond.engine.context import policy_in_force
from provisiond.engine.mapping import CompiledPolicy, compile_policy
from provisiond.expressions import STANDARD_ATTRIBUTES
from provisiond.services import activity
from provisiond.services.context import Actor
from provisiond.store.tables import App, Policy, User


def current(session: Session, app_id: str) -> tuple[int, PolicyDocument]:
    """The policy in force: (version, document); version 0 is the built-in default."""
    row = session.scalar(
        select(Policy).where(Policy.app_id == app_id).order_by(Policy.version.desc()).limit(1)
    )
    if row is None:
        return 0, PolicyDocument()
    return row.version, PolicyDocument.model_validate(row.document)


def compiled(session: Session, app_id: str) -> CompiledPolicy:
    return policy_in_force(session, app_id)


def custom_attributes(session: Session) -> set[str]:
    """Custom attribute names in use in the directory: what expressions may read beside the
    standard profile. Checked at save time, so a typo is refused rather than unset forever."""
    names: set[str] = set()
    for profile in session.scalars(select(User.profile)):
        names.update(profile)
    return names - STANDARD_ATTRIBUTES


def check(session: Session, document: PolicyDocument, version: int | None = None) -> CompiledPolicy:
    """Compile against the live profile schema; raises Invalid with the field and position."""
    return compile_policy(document, version=version, known_attributes=custom_attributes(session))


def next_version(session: Session, app_id: str) -> int:
    latest = session.scalar(select(func.max(Policy.version)).where(Policy.app_id == app_id))
    return (latest or 0) + 1


def save(
    session: Session,
    actor: Actor,
    app: App,
    document: PolicyDocument,
    *,
    run_id: str | None = None,
    checked: bool = False,
) -> tuple[int, bool]:
    """Store ``document`` as the next version, in force at once; returns (version, changed).

    Callers that reconcile go through services.policy_saves, which keeps a save over the
    safety limit pending instead; ``run_id`` is the held run whose approval saves it, and
    ``checked`` says the caller has just compiled it (compiling costs most of a save)."""
    if not checked:
        check(session, document)
    version, before = current(session, app.id)
    if before == document:
        return version, False
    new_version = next_version(session, app.id)
    session.add(
        Policy(
            app_id=app.id,
            version=new_version,
            document=document.model_dump(mode="json"),
            actor=actor.name,
        )
    )
    session.flush()
    activity.record(
        session,
        actor,
        "app.policy.update",
        f"updated the provisioning policy of {app.name} to version {new_version}",
        app_id=app.id,
        targets={"app": app.name, "version": new_version},
        details={
            "from_version": version,
            "to_version": new_version,
            "diff": policy_diff(before, document),
            **({"approved_run": run_id} if run_id else {}),
        },
    )
    return new_version, True


def policy_diff(before: PolicyDocument, after: PolicyDocument) -> list[dict[str, Any]]:
    """Field-by-field differences, mappings per attribute path."""
    changes: list[dict[str, Any]] = []
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    for key in ("scope", "deprovisioning", "limits"):
        if old[key] != new[key]:
            changes.append({"field": key, "old": old[key], "new": new[key]})
    for path in sorted(set(old["mappings"]) | set(new["mappings"])):
        if old["mappings"].get(path) != new["mappings"].get(path):
            changes.append(
                {
                    "field": f"mappings.{path}",
                    "old": old["mappings"].get(path),
                    "new": new["mappings"].get(path),
                }
            )
    return changes
