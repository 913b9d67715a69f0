"""The console's reports: a user's signed receipt (page, download) and the access posture."""

from __future__ import annotations

import httpx
import pytest

from provisiond.domain import receipts
from provisiond.domain.directory import Profile
from provisiond.runtime import Runtime
from provisiond.services import directory
from provisiond.services.context import SYSTEM
from provisiond.store.tables import Account, Revocation, new_id, utcnow
from tests.web.test_tasks_page import an_app


# The store does not matter here (tests/e2e run both): SQLite only, for the suite's budget.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_receipt_page_and_the_posture_page(console: httpx.Client, runtime: Runtime) -> None:
    now = utcnow()
    with runtime.db.session() as session:
        app = an_app(session, runtime, "payroll", "Payroll")
        user = directory.create_user(session, SYSTEM, Profile(login="gone.soon", email="gone.soon@example.com", firstName="Gone", lastName="Soon"), activate=True)
        session.add(Account(app_id=app.id, user_id=user.id, remote_id="p-1",
                            status="deactivated", applied={}))
        session.add(Revocation(app_id=app.id, user_id=user.id, action="deactivate",
                               remote_id="p-1", applied_at=now, read_state="inactive",
                               read_at=now, confirmed=True, correlation_id=new_id()))
        user_id = user.id

    page = console.get(f"/directory/users/{user_id}/receipt")
    assert page.status_code == 200, page.text
    assert "data-receipt-status>confirmed<" in page.text and "p-1" in page.text
    assert f'href="/directory/users/{user_id}/receipt"' in console.get(
        f"/directory/users/{user_id}").text
    saved = console.get(f"/directory/users/{user_id}/receipt.json")
    assert saved.headers["content-disposition"] == 'attachment; filename="receipt-gone.soon.json"'
    assert receipts.verify(saved.json()).valid

    posture = console.get("/posture")
    assert posture.status_code == 200
    assert 'data-kind="provisioning_disabled"' in posture.text
    assert f'href="/apps/{app.id}/provisioning">Fix' in posture.text
    assert 'href="/posture"' in console.get("/").text
    exported = console.get("/posture.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    assert "provisioning_disabled,payroll" in exported.text
