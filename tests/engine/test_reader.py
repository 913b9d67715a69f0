"""The batched reads of the worker (engine.reader) on SQLite and PostgreSQL.

One directory with every way of reaching an app (direct assignments, group assignments, groups
nested two deep and in a diamond, role-granting assignments with priorities) and accounts of
users assigned, unassigned and removed from the directory: a read of N keys is the union of N
reads of one, and says how each user is assigned exactly as services.reach does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, text

from provisiond.domain.apps import ProvisioningSettings, ScimConnectorSettings
from provisiond.domain.directory import Lifecycle
from provisiond.domain.roles import RoleExpression, RoleKind
from provisiond.engine import reader
from provisiond.engine.context import AppContext, read_context
from provisiond.engine.reader import AccountInputs
from provisiond.engine.roles import Role
from provisiond.runtime import Runtime
from provisiond.services import apps, assignments, directory, nesting, reach, roles
from provisiond.services.context import SYSTEM
from provisiond.store.tables import Account, Assignment, Run, new_id, utcnow
from tests.engine.test_queue import make_users

GONE = "00000000-0000-0000-0000-00000000dead"  # an account whose user left the directory
NOBODY = "00000000-0000-0000-0000-000000000000"  # neither a user nor an account


@dataclass(frozen=True)
class Directory:
    users: list[str]  # u0 .. u9
    groups: dict[str, str]  # name -> id
    roles_app: str  # defines roles; assignments grant them
    plain_app: str  # defines none

    @property
    def keys(self) -> list[str]:
        return [*self.users, GONE, NOBODY]


def _app(rt: Runtime, name: str) -> str:
    with rt.db.session() as session:
        app = apps.create_app(
            session, SYSTEM, rt.vault, name=name, label=name,
            connector=ScimConnectorSettings(
                base_url="http://127.0.0.1:9/v2", auth={"type": "bearer", "token": "t"}
            ),
            provisioning=ProvisioningSettings(),
        )
        apps.set_provisioning(session, SYSTEM, app, ProvisioningSettings(enabled=True))
        return app.id


def build(rt: Runtime) -> Directory:
    users = make_users(rt, 10, prefix="reader")
    u = dict(enumerate(users))
    with rt.db.session() as session:
        groups = {
            name: directory.create_group(session, SYSTEM, name, None).id
            for name in ("everyone", "eng", "backend", "db", "ops", "sales")
        }
        g = groups
        # everyone > eng > backend > db, and ops > db (a diamond below everyone); sales alone.
        for parent, child in [
            ("everyone", "eng"), ("eng", "backend"), ("backend", "db"), ("ops", "db"),
            ("everyone", "ops"),
        ]:
            nesting.add_child(session, SYSTEM, g[parent], g[child])
        for group, members in {
            "db": [u[1], u[6]],
            "backend": [u[2]],
            "eng": [u[3]],
            "sales": [u[3], u[4], u[6]],
            "ops": [u[5]],
        }.items():
            for member in members:
                directory.add_member(session, SYSTEM, g[group], member)
        directory.change_lifecycle(session, SYSTEM, u[9], Lifecycle.SUSPEND)

    roles_app, plain_app = _app(rt, "reader-roles"), _app(rt, "reader-plain")
    with rt.db.session() as session:
        for name, kind in (("admin", RoleKind.SCIM_ROLE), ("editor", RoleKind.ENTITLEMENT)):
            roles.create_role(session, SYSTEM, roles_app, name=name, description=None,
                              expression=RoleExpression(kind=kind, value=name))
        for app_id, granting in ((roles_app, True), (plain_app, False)):
            def assign(kind: str, principal: str, priority: int | None, *granted: str,
                       app_id: str = app_id, granting: bool = granting) -> None:
                assignments.create_assignment(
                    session, SYSTEM, app_id, principal_type=kind, principal_id=principal,
                    priority=priority, roles_=granted if granting else (),
                )

            assign("user", u[0], None, "admin")
            assign("user", u[1], None)  # also reached through db
            assign("user", u[9], None, "editor")  # suspended
            assign("group", g["eng"], 10, "editor")
            assign("group", g["db"], 5, "admin", "editor")
            assign("group", g["sales"], 20)
            assign("group", g["everyone"], None)
        for app_id in (roles_app, plain_app):
            for user_id, status in ((u[0], "active"), (u[3], "deactivated"), (u[8], "active"),
                                    (GONE, "active")):
                session.add(Account(
                    app_id=app_id, user_id=user_id, remote_id=f"r-{user_id}", status=status,
                    applied={"userName": user_id},
                    deactivated_at=utcnow() if status == "deactivated" else None,
                ))
    return Directory(users, groups, roles_app, plain_app)


@pytest.fixture
def world(runtime: Runtime) -> Directory:
    return build(runtime)


def context(rt: Runtime, app_id: str) -> AppContext:
    with rt.db.session() as session:
        ctx = read_context(session, rt.vault, app_id)
    assert ctx is not None
    return ctx


def read(rt: Runtime, ctx: AppContext, ids: list[str]) -> dict[str, AccountInputs]:
    with rt.db.session() as session:
        return reader.read_inputs(session, ctx, ids)


# -- one read of N keys is N reads of one -----------------------------------------------------


@pytest.mark.parametrize("chunk", [900, 2], ids=["one-chunk", "chunks-of-2"])
def test_a_batch_reads_what_each_key_reads_alone(
    runtime: Runtime, world: Directory, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    contexts = [context(runtime, world.roles_app), context(runtime, world.plain_app)]
    assert contexts[0].roles.kinds and not contexts[1].roles.kinds  # both paths of the reader
    alone = {
        ctx.app_id: {key: read(runtime, ctx, [key])[key] for key in world.keys}
        for ctx in contexts
    }
    monkeypatch.setattr(reader, "CHUNK", chunk)  # the batches cross chunk boundaries

    @settings(max_examples=20, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(ids=st.lists(st.sampled_from(world.keys), max_size=len(world.keys) + 3))
    def batch_equals_union(ids: list[str]) -> None:
        for ctx in contexts:
            batch = read(runtime, ctx, ids)
            assert batch == {key: alone[ctx.app_id][key] for key in ids}

    batch_equals_union()


def test_a_batch_across_apps_reads_what_each_app_reads_alone(
    runtime: Runtime, world: Directory
) -> None:
    """The worker reads the tasks of every app of a claim at once (the same users once, every
    app's assignments and accounts in one statement each): the same as app by app."""
    contexts = {
        ctx.app_id: ctx
        for ctx in (context(runtime, world.roles_app), context(runtime, world.plain_app))
    }

    @settings(max_examples=20, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        roles_ids=st.lists(st.sampled_from(world.keys), max_size=len(world.keys)),
        plain_ids=st.lists(st.sampled_from(world.keys), max_size=len(world.keys)),
    )
    def across_apps(roles_ids: list[str], plain_ids: list[str]) -> None:
        wanted = {world.roles_app: roles_ids, world.plain_app: plain_ids}
        with runtime.db.session() as session:
            batch = reader.read_batch(session, contexts, wanted)
        for app_id, ids in wanted.items():
            assert batch.get(app_id, {}) == (read(runtime, contexts[app_id], ids) if ids else {})

    across_apps()


def test_the_inputs_say_what_the_records_say(runtime: Runtime, world: Directory) -> None:
    u = world.users
    ctx = context(runtime, world.roles_app)
    inputs = read(runtime, ctx, world.keys)
    assert inputs[GONE].user is None and inputs[GONE].sources == ()
    assert inputs[GONE].account is not None and inputs[GONE].account.remote_id == f"r-{GONE}"
    assert inputs[NOBODY] == AccountInputs(NOBODY, None, (), None)
    assert inputs[u[9]].user is not None and inputs[u[9]].user.status == "suspended"
    assert inputs[u[3]].account is not None and inputs[u[3]].account.deactivated_at is not None
    assert inputs[u[8]].sources == () and inputs[u[8]].account is not None  # unassigned
    admin = Role("admin", RoleKind.SCIM_ROLE, "admin")
    editor = Role("editor", RoleKind.ENTITLEMENT, "editor")
    by_label = {s.label: s for s in inputs[u[1]].sources}  # direct (no role), and through db
    assert by_label["user"].roles == ()
    db = by_label[f"group:{world.groups['db']}"]
    assert db.priority == 5 and set(db.roles) == {admin, editor} and db.assignment_id
    assert [s.roles for s in inputs[u[0]].sources if s.label == "user"] == [(admin,)]
    # Without roles in the app, the sources are the labels only.
    plain = read(runtime, context(runtime, world.plain_app), world.keys)
    for key in world.keys:
        assert [s.label for s in plain[key].sources] == [s.label for s in inputs[key].sources]
        assert all(s.roles == () and s.assignment_id == "" for s in plain[key].sources)


@pytest.mark.parametrize("which", ["roles_app", "plain_app"])
def test_the_labels_are_the_assignment_sources_of_each_user(
    runtime: Runtime, world: Directory, which: str
) -> None:
    app_id = getattr(world, which)
    ctx = context(runtime, app_id)
    inputs = read(runtime, ctx, world.keys)
    with runtime.db.session() as session:
        labels = reader.assignment_labels(session, app_id, world.keys)
        expected = {key: reach.assignment_sources(session, app_id, key) for key in world.keys}
        everyone = reach.assigned_users(session, app_id)
    for key in world.keys:
        assert [s.label for s in inputs[key].sources] == expected[key], key
        assert labels.get(key, []) == expected[key], key
        assert everyone.get(key, []) == expected[key], key
    g, u = world.groups, world.users
    # The nesting as built: u1 (in db) is reached by every group above db, and directly.
    assert expected[u[1]] == ["user", *sorted(f"group:{g[n]}" for n in ("db", "eng", "everyone"))]
    assert expected[u[5]] == [f"group:{g['everyone']}"]  # ops is not assigned, everyone is
    assert expected[u[7]] == [] and expected[u[8]] == []


def test_effective_groups_are_the_closure_of_each_users_memberships(
    runtime: Runtime, world: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with runtime.db.session() as session:
        expected = {key: reach.effective_groups_of(session, key) for key in world.keys}
        batch = reader.effective_groups(session, world.keys)
        monkeypatch.setattr(reader, "CHUNK", 3)
        chunked = reader.effective_groups(session, world.keys)
    for key in world.keys:
        assert batch.get(key, set()) == expected[key] == chunked.get(key, set()), key
    g = world.groups
    assert expected[world.users[1]] == {g[n] for n in ("db", "backend", "eng", "ops", "everyone")}


def test_a_batch_of_many_role_app_users_is_read_in_chunks(runtime: Runtime) -> None:
    """65,536 users assigned directly to an app that defines roles, read in one call."""
    if runtime.db.url.startswith("sqlite"):
        pytest.skip("this SQLite build allows more bound parameters than PostgreSQL does")
    app_id = _app(runtime, "reader-many")
    with runtime.db.session() as session:
        roles.create_role(session, SYSTEM, app_id, name="admin", description=None,
                          expression=RoleExpression(value="admin"))
    ids = [new_id() for _ in range(65_536)]
    now = utcnow()
    with runtime.db.session() as session:  # bulk: the services would take minutes
        session.execute(insert(Assignment), [
            {"id": new_id(), "app_id": app_id, "principal_type": "user", "principal_id": uid,
             "priority": None, "created_at": now}
            for uid in ids
        ])
    with runtime.db.engine.connect() as connection:  # what autovacuum does soon after a bulk load
        connection.execute(text("ANALYZE assignments"))
        connection.commit()
    ctx = context(runtime, app_id)
    with runtime.db.session() as session:
        inputs = reader.read_inputs(session, ctx, ids)
    assert len(inputs) == len(ids)
    assert all([s.label for s in inputs[uid].sources] == ["user"] for uid in ids[:10])


# -- holds ------------------------------------------------------------------------------------


def test_the_holds_are_the_held_runs_and_the_recently_cancelled_ones(runtime: Runtime) -> None:
    app_id = _app(runtime, "reader-holds")
    other = _app(runtime, "reader-other")
    now = utcnow()
    held = {"user_ids": ["a", "b"], "reason": "r"}
    rows = {
        "held": Run(app_id=app_id, kind="change", status="held", actor="t", counts={},
                    held=held, started_at=now - timedelta(minutes=3)),
        "cancelled-recently": Run(app_id=app_id, kind="change", status="cancelled", actor="t",
                                  counts={}, held=held, started_at=now - timedelta(hours=2),
                                  finished_at=now - timedelta(minutes=59)),
        "cancelled-long-ago": Run(app_id=app_id, kind="change", status="cancelled", actor="t",
                                  counts={}, held=held, started_at=now - timedelta(hours=3),
                                  finished_at=now - timedelta(hours=1, minutes=1)),
        "approved": Run(app_id=app_id, kind="change", status="running", actor="t", counts={},
                        held=held, started_at=now),
        "never-held": Run(app_id=app_id, kind="full", status="running", actor="t", counts={}),
        "other-app": Run(app_id=other, kind="change", status="held", actor="t", counts={},
                         held=held, started_at=now),
    }
    with runtime.db.session() as session:
        session.add_all(rows.values())
        session.flush()
        ids = {name: run.id for name, run in rows.items()}
    with runtime.db.session() as session:
        holds = reader.read_holds(session, app_id, now)
    assert {hold.run_id for hold in holds} == {ids["held"], ids["cancelled-recently"]}
    for hold in holds:
        assert hold.user_ids == frozenset({"a", "b"})
        assert hold.started_at == rows["held" if hold.status == "held" else "cancelled-recently"].started_at
