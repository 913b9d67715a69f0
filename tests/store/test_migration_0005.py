"""Migration 0005: the role typed on assignments becomes a role of the app, on both backends."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from tests.support.migrations import migrate as _run


def test_assignment_role_texts_become_app_roles(database_url: str) -> None:
    _run(database_url, "0004")
    engine = create_engine(database_url)
    with engine.begin() as connection:
        for app in ("a1", "a2"):
            connection.execute(text(
                "INSERT INTO apps (id, name, label, connector_type, connector, provisioning, "
                "created_at, updated_at) VALUES (:id, :id, :id, 'scim2', '{}', '{}', "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"id": app})
        rows = [("x1", "a1", "Editor"), ("x2", "a1", " editor "), ("x3", "a1", None),
                ("x4", "a2", "admin"), ("x5", "a1", "admin")]
        for assignment, app, role in rows:
            connection.execute(text(
                "INSERT INTO assignments (id, app_id, principal_type, principal_id, role, "
                "created_at) VALUES (:id, :app, 'group', :id, :role, CURRENT_TIMESTAMP)"),
                {"id": assignment, "app": app, "role": role})
    engine.dispose()
    _run(database_url, "0005")
    engine = create_engine(database_url)
    with engine.connect() as connection:
        roles = connection.execute(text(
            "SELECT app_id, name, name_key FROM app_roles ORDER BY app_id, name_key")).all()
        links = connection.execute(text(
            "SELECT l.assignment_id, r.name_key FROM assignment_roles l "
            "JOIN app_roles r ON r.id = l.role_id ORDER BY l.assignment_id")).all()
    engine.dispose()
    assert [(a, k) for a, _, k in roles] == [("a1", "admin"), ("a1", "editor"), ("a2", "admin")]
    assert [tuple(link) for link in links] == [
        ("x1", "editor"), ("x2", "editor"), ("x4", "admin"), ("x5", "admin")]
    _run(database_url, "0004", down=True)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows_back = connection.execute(text("SELECT id, role FROM assignments")).all()
        back: dict[str, str | None] = {row[0]: row[1] for row in rows_back}
    engine.dispose()
    assert back["x1"] == "Editor" and back["x3"] is None and back["x4"] == "admin"
