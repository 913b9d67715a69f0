"""Drift: only what provisiond manages, compared as the planner compares; report mode."""

from __future__ import annotations

from provisiond.engine.drift import as_applied, drift_of, last_modified

APPLIED = {"userName": "ada", "displayName": "Ada L", "title": "Eng", "active": True}


def test_only_mapped_attributes_and_active_count_as_drift() -> None:
    found = {
        "username": "ada",
        "displayName": "Someone",
        "title": "Boss",
        "active": False,
        "nickName": "added by the app",
        "meta": {"lastModified": "2026-12-01T10:00:00Z"},
    }
    desired = {"userName": "ada", "displayName": "Ada Lovelace"}  # title is no longer mapped
    drift = drift_of(APPLIED, found, desired, modified=last_modified(found))
    assert [(d["attribute"], d["applied"], d["found"], d["desired"]) for d in drift] == [
        ("active", True, False, None),
        ("displayName", "Ada L", "Someone", "Ada Lovelace"),
    ]
    assert {d["modified"] for d in drift} == {"2026-12-01T10:00:00Z"}


def test_names_compare_case_insensitively_and_empty_lists_are_unassigned() -> None:
    applied = {"userName": "ada", "emails": [], "active": True}
    found = {"USERNAME": "ada", "active": True}
    assert drift_of(applied, found, {"userName": "ada", "emails": []}) == []


def test_report_mode_plans_from_what_was_applied_but_never_hides_a_lifecycle_change() -> None:
    found = {"userName": "ada", "displayName": "Someone", "active": False, "id": "r1"}
    drift = drift_of(APPLIED, found, {"displayName": "Ada L"})
    planned_from = as_applied(found, drift)
    assert planned_from["displayName"] == "Ada L" and planned_from["active"] is False
    assert planned_from["id"] == "r1"
