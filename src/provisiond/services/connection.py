"""Connection tests: one real round trip to the app, recorded, used to gate enabling."""

from __future__ import annotations

from typing import Any

from provisiond.connectors.registry import build_connector
from provisiond.domain.apps import AnyConnectorSettings, ProvisioningSettings
from provisiond.errors import Conflict
from provisiond.runtime import Runtime
from provisiond.services import apps, grants, pushes, runs
from provisiond.services.context import Actor
from provisiond.store.tables import Run


async def probe(
    rt: Runtime, settings: AnyConnectorSettings, provisioning: ProvisioningSettings
) -> dict[str, Any]:
    # A test is a handful of requests an admin waits for: the app's rate limit paces the
    # provisioning, not this (at a very low limit the test would wait minutes between steps).
    unpaced = provisioning.model_copy(update={"rate_limit_per_second": None})
    connector = build_connector(settings, unpaced, rt.transport, rt.settings)
    try:
        report = await connector.test_connection()
    finally:
        await connector.aclose()
    return report.as_dict()


async def test_app(rt: Runtime, actor: Actor, app_id: str) -> dict[str, Any]:
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        settings, provisioning, app_id = (
            apps.settings_of(app, rt.vault),
            apps.provisioning_of(app),
            app.id,
        )
    report = await probe(rt, settings, provisioning)
    with rt.db.session() as session:
        apps.record_test(session, actor, apps.get_app(session, app_id), report)
    return report


async def put_provisioning(
    rt: Runtime, actor: Actor, app_id: str, wanted: ProvisioningSettings
) -> tuple[ProvisioningSettings, dict[str, Any] | None, Run | None]:
    """Store settings; enabling first passes a live connection test and then starts a full sync."""
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        before = apps.provisioning_of(app)
        settings, app_id = apps.settings_of(app, rt.vault), app.id
    report = None
    if wanted.enabled and not before.enabled:
        report = await probe(rt, settings, wanted)
        if not report["ok"]:
            with rt.db.session() as session:
                app = apps.get_app(session, app_id)
                apps.record_test(session, actor, app, report)
            raise Conflict(
                f"provisioning stays disabled: the connection test failed ({report['reason']})",
                test=report,
            )
    with rt.db.session() as session:
        app = apps.get_app(session, app_id)
        if report is not None:
            apps.record_test(session, actor, app, report)
        was, now = apps.set_provisioning(session, actor, app, wanted)
        run = (
            runs.start_full_sync(session, actor, app, reason="app.provisioning.enable")
            if now and not was
            else None
        )
        planner_inputs = (before.features, before.deprovision_action)
        if now and was and planner_inputs != (wanted.features, wanted.deprovision_action):
            # What may be done changed: e.g. deprovisioning turned back on must now reach the
            # people who left meanwhile. Held, like any run, if it deprovisions too many.
            run = runs.reconcile_users(
                session, actor, app, runs.everyone(session, app.id),
                reason="app.provisioning.update", kind="policy",
            )
        if now and was and wanted.features.push_groups and not before.features.push_groups:
            # Pushed groups were skipped while the feature was off: bring them up to date.
            pushes.app_synced(session, actor, app.id, "app.provisioning.update")
        if now and was and before.role_mode != wanted.role_mode:
            # Only users granted a role by some assignment can get other roles.
            held = grants.granted_users(session, app.id)
            runs.reconcile_users(session, actor, app, held, reason="app.provisioning.update")
        return apps.provisioning_of(app), app.last_test, run
