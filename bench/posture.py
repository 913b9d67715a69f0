"""The access posture report over a large directory: time, beside loading the rows naively.

    .venv/bin/python bench/posture.py [--users 100000] [--database-url URL]

Setup (not timed): N users; an enabled app assigned a group of all of them through a nested
group (half are members of the child), a second app with provisioning disabled. In the
enabled app 98% have an active account; 1% are deprovisioned yet keep an active account
(each with a queued deprovisioning and a read-back, a tenth of those unconfirmed); 1% have
none (a third of those with a dead task). Timed: ``services.posture.report`` (once on the
freshly loaded tables, then best of 3 after ANALYZE, as autovacuum leaves them), one
user's signed receipt (best of 3), and, as the baseline in the same run, loading the users and
accounts as ORM objects (what a per-user loop would start with).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text

sys.path.insert(0, str(Path(__file__).parent))
from _support import bench_database, load_average, workdir

from provisiond.config import Settings
from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings
from provisiond.runtime import Runtime
from provisiond.services import apps, posture, receipts
from provisiond.services.context import SYSTEM
from provisiond.store.db import Database
from provisiond.store.tables import (
    Account,
    Assignment,
    Group,
    GroupChild,
    GroupMember,
    Revocation,
    Task,
    User,
    utcnow,
)


def seed(rt: Runtime, count: int) -> str:
    with rt.db.session() as session:
        made = []
        for name, enabled in (("bench", True), ("off", False)):
            app = apps.create_app(
                session, SYSTEM, rt.vault, name=name, label=name,
                connector=ScimConnectorSettings(base_url="http://127.0.0.1:9/v2"),
                provisioning=ProvisioningSettings(),
            )
            if enabled:
                apps.set_provisioning(session, SYSTEM, app, ProvisioningSettings(enabled=True))
            made.append(app.id)
        parent, child = Group(name="all", name_key="all"), Group(name="half", name_key="half")
        session.add_all([parent, child])
        session.flush()
        session.add(GroupChild(parent_id=parent.id, child_id=child.id))
        session.add(Assignment(app_id=made[0], principal_type="group", principal_id=parent.id))
        app_id, groups = made[0], (parent.id, child.id)
    now = utcnow()
    first_user = ""
    for start in range(0, count, 5000):
        users, members, accounts, tasks, reads = [], [], [], [], []
        for i in range(start, min(count, start + 5000)):
            user_id = str(uuid.uuid4())
            first_user = first_user or user_id
            leaver, missing = i % 100 == 1, i % 100 == 2
            users.append({"id": user_id, "login": f"user{i:06d}", "login_key": f"user{i:06d}",
                          "status": "deprovisioned" if leaver else "active", "profile": {},
                          "created_at": now, "updated_at": now, "status_changed_at": now})
            members.append({"group_id": groups[i % 2], "user_id": user_id, "added_at": now,
                            "source": "manual"})
            if not missing:
                accounts.append({"id": str(uuid.uuid4()), "app_id": app_id, "user_id": user_id,
                                 "remote_id": f"r{i}", "status": "active", "applied": {},
                                 "created_at": now})
            if leaver or (missing and i % 300 == 2):
                tasks.append({"id": str(uuid.uuid4()), "app_id": app_id, "subject_id": user_id,
                              "kind": "user", "reason": "bench", "priority": 0,
                              "status": "queued" if leaver else "dead", "attempts": 0,
                              "verify_remote": False, "next_attempt_at": now,
                              "correlation_id": str(uuid.uuid4()), "created_at": now,
                              "updated_at": now})
            if leaver:
                reads.append({"app_id": app_id, "user_id": user_id, "action": "deactivate",
                              "remote_id": f"r{i}", "applied_at": now, "read_state":
                              "active" if i % 1000 == 1 else "inactive", "read_at": now,
                              "confirmed": i % 1000 != 1, "correlation_id": str(uuid.uuid4())})
        with rt.db.session() as session:
            session.execute(insert(User), users)
            session.execute(insert(GroupMember), members)
            session.execute(insert(Account), accounts)
            if tasks:
                session.execute(insert(Task), tasks)
            if reads:
                session.execute(insert(Revocation), reads)
    return first_user


def best_of(label: str, runs: int, fn: Any) -> Any:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    print(f"{label:<44} best {min(times):7.3f} s   (runs: {', '.join(f'{t:.3f}' for t in times)})")
    return result, min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with workdir() as tmp, bench_database(args.database_url or None, tmp) as url:
        rt = Runtime(Settings(data_dir=tmp, database_url=url, secret_key="bench"), db=Database(url))
        rt.migrate()
        started = time.perf_counter()
        someone = seed(rt, args.users)
        print(f"# seeded {args.users} users in {time.perf_counter() - started:.1f} s "
              f"({url.split(':')[0]}); load {load_average()}")

        def report() -> posture.Posture:
            with rt.db.session() as session:
                return posture.report(session)

        def receipt() -> dict[str, Any]:
            with rt.db.session() as session:
                return receipts.signed_receipt(session, rt.vault, someone)

        def naive() -> int:
            with rt.db.session() as session:
                return len(session.scalars(select(User)).all()) + len(
                    session.scalars(select(Account)).all())

        best_of("posture report, tables not yet analysed", 1, report)
        with rt.db.engine.begin() as connection:  # what autovacuum (PostgreSQL) does soon after
            connection.execute(text("ANALYZE"))
        found, seconds = best_of("posture report, after ANALYZE", 3, report)
        best_of("one user's signed receipt", 3, receipt)
        _, baseline = best_of("baseline: load users + accounts as ORM", 3, naive)
        print(f"posture / baseline: {seconds / baseline:.2f}")
        for kind, total in found.totals.items():
            if total:
                print(f"  {kind:<34} {total}")
        print(f"# load after: {load_average()}")


if __name__ == "__main__":
    main()
