"""The claim reads the backlog in its own order and stops at its window (issue 9).

On SQLite the plan itself is checked: the outer UPDATE finds the chosen tasks by primary
key, and the due tasks are read from ``ix_tasks_due`` already in the claim's order (no sort
of the whole backlog). On both backends, tasks equal in priority and due time go oldest first.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, update

from provisiond.engine import queue
from provisiond.runtime import Runtime
from provisiond.store.tables import Task, utcnow
from tests.engine.test_queue import make_app, make_users


def _sqlite_claim_plan(runtime: Runtime, app_id: str) -> list[str]:
    statement = queue._claim_statement("sqlite", False, False)
    parameters = {
        "skip": [], "now": utcnow(), "worker_id": "w", "limit": 16, "window": 64,
        "rooms": json.dumps({app_id: 16}), "default_room": 16,
    }
    with runtime.db.engine.connect() as connection:

        def explain(*args: Any) -> tuple[str, Any]:
            return "EXPLAIN QUERY PLAN " + args[2], args[3]

        event.listen(connection, "before_cursor_execute", explain, retval=True)
        rows = connection.execute(statement, parameters).cursor.fetchall()
        connection.rollback()
    return [row[3] for row in rows]


def test_the_sqlite_claim_updates_by_primary_key_and_reads_the_backlog_in_order(
    runtime: Runtime,
) -> None:
    if runtime.db.is_postgres:
        pytest.skip("SQLite's plan; PostgreSQL's is checked with EXPLAIN ANALYZE in bench")
    app_id = make_app(runtime)
    with runtime.db.session() as session:
        queue.enqueue(session, app_id, make_users(runtime, 3), reason="r", correlation_id="c")
    plan = _sqlite_claim_plan(runtime, app_id)
    outer = plan[0]  # the UPDATE's own access to tasks comes first
    assert outer.startswith("SEARCH tasks USING") and "(id=?)" in outer, plan
    assert any("ix_tasks_due" in step for step in plan), plan
    assert not any("RIGHT PART OF ORDER BY" in step for step in plan), plan


def test_tasks_equal_in_priority_and_due_time_are_claimed_oldest_first(
    runtime: Runtime,
) -> None:
    app_id = make_app(runtime)
    users = make_users(runtime, 4, prefix="age")
    with runtime.db.session() as session:
        queue.enqueue(session, app_id, users, reason="r", correlation_id="c")
    now = utcnow()
    with runtime.db.session() as session:  # queued in reverse order, all due at once
        for age, user_id in enumerate(users):
            session.execute(
                update(Task)
                .where(Task.subject_id == user_id)
                .values(next_attempt_at=now, created_at=now - timedelta(minutes=age))
            )
    with runtime.db.session() as session:
        first = queue.claim(session, "w", 2, now=now)
    assert [task.subject_id for task in first] == [users[3], users[2]]
