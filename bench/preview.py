"""Preview (dry run) of a policy over a large directory: time and peak memory.

    .venv/bin/python bench/preview.py [--users 100000] [--database-url URL]

Setup (not timed): N users in one assigned group, a policy with a scope and 8 mappings, and
account records that already match it, each with the fingerprint of the inputs it was
reconciled with (as the worker leaves them). Timed: ``services.preview.preview`` with nothing to
change, then again after 1% of the profiles changed. Baseline in the same run: loading the same
rows (users, memberships, accounts) as ORM objects, the naive way to read them.
Peak memory is the growth of the process's resident-set high-water mark (ru_maxrss) during
each step, previews first (the mark only grows).
Also timed: a reconcile of every user (a policy run) with nothing to change, which plans from
the records and queues nothing. Target (issues 4 and 9): no-change preview and reconcile under
5 s and 500 MB at 100,000 users.
"""

from __future__ import annotations

import argparse
import gc
import resource
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from provisiond.config import Settings
from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings
from provisiond.domain.directory import UserStatus
from provisiond.domain.policy import PolicyDocument
from provisiond.engine.desired import DirectoryUser, evaluate
from provisiond.engine.fingerprint import fingerprint, policy_key
from provisiond.engine.mapping import compile_policy
from provisiond.runtime import Runtime
from provisiond.services import apps, policies, preview, runs
from provisiond.services.context import SYSTEM
from provisiond.store.db import Database
from provisiond.store.tables import Account, Assignment, Group, GroupMember, Task, User, utcnow

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
POLICY = PolicyDocument(
    scope='user.department in ["Engineering", "Support", "Sales"] && user.employeeType != "contractor"',
    mappings={
        "userName": "user.login",
        "externalId": "user.id",
        "name.givenName": "user.firstName",
        "name.familyName": "user.lastName",
        "displayName": 'user.firstName + " " + user.lastName',
        "title": "user.title",
        'emails[type eq "work"].value': "user.email",
        f"{ENTERPRISE}:department": "user.department",
    },
)
DEPARTMENTS = ["Engineering", "Support", "Sales"]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def profile(i: int) -> dict[str, Any]:
    return {
        "login": f"user{i:06d}", "email": f"user{i:06d}@example.org", "firstName": f"First{i}",
        "lastName": f"Last{i}", "department": DEPARTMENTS[i % 3], "title": "Engineer",
        "employeeType": "employee",
    }


def seed(rt: Runtime, count: int) -> str:
    policy = compile_policy(POLICY)
    with rt.db.session() as session:
        app = apps.create_app(
            session, SYSTEM, rt.vault, name="bench", label="Bench",
            connector=ScimConnectorSettings(base_url="http://127.0.0.1:9/v2"),
            provisioning=ProvisioningSettings(),
        )
        apps.set_provisioning(session, SYSTEM, app, ProvisioningSettings(enabled=True))
        policies.save(session, SYSTEM, app, POLICY)
        group = Group(name="everyone", name_key="everyone")
        session.add(group)
        session.flush()
        session.add(Assignment(app_id=app.id, principal_type="group", principal_id=group.id))
        app_id, group_id = app.id, group.id
    # As the worker leaves them: the record holds the fingerprint of the inputs it applied.
    key = policy_key(POLICY, ProvisioningSettings(enabled=True))
    now = utcnow()
    batch = 5000
    for start in range(0, count, batch):
        users, members, accounts = [], [], []
        for i in range(start, min(count, start + batch)):
            user_id = str(uuid.uuid4())
            data = profile(i)
            users.append({"id": user_id, "login": data["login"], "login_key": data["login"], "status": "active",
                          "profile": data, "created_at": now, "updated_at": now, "status_changed_at": now})
            members.append({"group_id": group_id, "user_id": user_id, "added_at": now})
            desired = evaluate(DirectoryUser(user_id, UserStatus.ACTIVE, data), ["group"], policy).desired
            assert desired is not None
            inputs = fingerprint(key, user_id, "active", data, ["group:" + group_id])
            accounts.append({"id": str(uuid.uuid4()), "app_id": app_id, "user_id": user_id,
                             "remote_id": f"r{i}", "status": "active", "applied": desired.attributes,
                             "fingerprint": inputs, "created_at": now})
        with rt.db.session() as session:
            session.execute(insert(User), users)
            session.execute(insert(GroupMember), members)
            session.execute(insert(Account), accounts)
    return app_id


def timed(label: str, fn: Any) -> Any:
    gc.collect()
    before = peak_mb()
    started = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - started
    print(f"{label:<38} {elapsed:7.2f} s   peak RSS +{peak_mb() - before:6.0f} MB (total {peak_mb():.0f} MB)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        settings = Settings(data_dir=Path(tmp), database_url=url, secret_key="bench")
        rt = Runtime(settings, db=Database(url))
        rt.migrate()
        started = time.perf_counter()
        app_id = seed(rt, args.users)
        print(f"seeded {args.users} users with matching accounts in {time.perf_counter() - started:.1f} s ({url.split(':')[0]})")

        def load_only() -> int:
            with rt.db.session() as session:
                rows = len(session.scalars(select(User)).all())
                rows += len(session.execute(select(GroupMember.group_id, GroupMember.user_id)).all())
                rows += len(session.scalars(select(Account).where(Account.app_id == app_id)).all())
                return rows

        def run_preview() -> dict[str, Any]:
            with rt.db.session() as session:
                return preview.preview(session, SYSTEM, app_id, None, limit=100)

        def reconcile_everyone() -> Any:
            """A reconcile of every user of the app (a policy run), nothing having changed:
            planned from the records, queued only where the plan is not empty."""
            with rt.db.session() as session:
                app = apps.get_app(session, app_id)
                run = runs.reconcile_users(
                    session, SYSTEM, app, runs.everyone(session, app_id), reason="bench",
                    kind="policy",
                )
                assert run is not None
                return run.status, run.total, dict(run.counts)

        # Preview first: ru_maxrss only grows, so the baseline must not raise it beforehand.
        result = timed("preview, nothing to change", run_preview)
        assert result["counts"]["unchanged"] == args.users, result["counts"]
        status, total, counts = timed("reconcile of everyone, nothing to change", reconcile_everyone)
        with rt.db.session() as session:
            queued = session.scalar(select(func.count()).select_from(Task))
        print(f"  run {status}: {total} users, unchanged {counts['unchanged']}; tasks queued {queued}")
        assert status == "succeeded" and counts["unchanged"] == args.users and queued == 0
        with rt.db.session() as session:  # 1% change title
            ids = session.scalars(select(User.id).order_by(User.login_key).limit(args.users // 100)).all()
            for start in range(0, len(ids), 900):
                for user in session.scalars(select(User).where(User.id.in_(ids[start:start + 900]))):
                    user.profile = {**user.profile, "title": "Senior Engineer"}
        result = timed("preview, 1% changed", run_preview)
        assert result["counts"]["update"] == args.users // 100, result["counts"]
        print(f"counts: {result['counts']}")
        timed("baseline: ORM load of the same rows", load_only)
        rt.db.dispose()


if __name__ == "__main__":
    main()
