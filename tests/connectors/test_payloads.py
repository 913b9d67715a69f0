"""Payloads checked in full once per shape give the bodies and the refusals a full check gives."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scim2_models import Context

from provisiond.connectors import payloads
from provisiond.connectors.payloads import ScimUser, dump, patch_body, user_payload
from provisiond.errors import TerminalError

CREATE = Context.RESOURCE_CREATION_REQUEST
names = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=12)
emails = st.builds(
    lambda local, primary, kind: {"value": f"{local}@example.org", "primary": primary,
                                  "type": kind},
    names, st.booleans(), st.sampled_from(["work", "home"]),
)
users = st.fixed_dictionaries(
    {"userName": names},
    optional={
        "active": st.booleans(),
        "displayName": names,
        "externalId": st.one_of(names, st.none()),
        "name": st.fixed_dictionaries({"givenName": names}, optional={"familyName": names}),
        "emails": st.lists(emails, max_size=3),
        "id": names,  # read-only: dropped from a create
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": st.fixed_dictionaries(
            {}, optional={"department": names, "employeeNumber": names}
        ),
    },
)


def full_check(attributes: dict[str, Any]) -> dict[str, Any] | str:
    """What scim2-models alone says: the body, or that it refuses the payload."""
    schemas = [payloads.CORE_USER]
    if payloads.ENTERPRISE_USER in attributes:
        schemas.append(payloads.ENTERPRISE_USER)
    try:
        model = ScimUser.model_validate({"schemas": schemas, **attributes}, scim_ctx=CREATE)
    except ValueError:
        return "refused"
    return dump(model, CREATE)


def ours(attributes: dict[str, Any]) -> dict[str, Any] | str:
    try:
        return user_payload(attributes, CREATE)
    except TerminalError:
        return "refused"


@settings(max_examples=150, deadline=None)
@given(st.lists(users, min_size=1, max_size=6))
def test_a_payload_gets_the_body_and_the_verdict_of_a_full_check(batch: list[dict[str, Any]]) -> None:
    payloads._checked.clear()
    for attributes in batch:  # later payloads often share a shape checked by an earlier one
        assert ours(attributes) == full_check(attributes)


def test_a_shape_checked_once_still_refuses_bad_values_and_missing_or_doubled_ones() -> None:
    payloads._checked.clear()
    good = {"userName": "ann", "emails": [{"value": "ann@example.org", "primary": True}]}
    assert ours(good) == full_check(good)
    assert payloads._checked  # its shape is known now
    bad_email = {"userName": "bob", "emails": [{"value": "not an address", "primary": True}]}
    assert ours(bad_email) == "refused"
    no_name = {"userName": None, "emails": [{"value": "c@example.org", "primary": True}]}
    assert ours(no_name) == "refused"
    two_primary = {
        "userName": "dan",
        "emails": [
            {"value": "d@example.org", "primary": True},
            {"value": "e@example.org", "primary": True},
        ],
    }
    assert ours(two_primary) == "refused"


@pytest.mark.parametrize(
    "paths",
    [
        [("active", False)],
        [("active", True), ("title", None)],
        [("displayName", "Ann B"), ("active", True)],
    ],
)
def test_patch_bodies_are_the_models_and_a_deactivation_is_built_once(
    paths: list[tuple[str, Any]],
) -> None:
    assert patch_body(paths) == payloads._patch(paths)
    assert patch_body(paths) == patch_body(list(paths))
    if all(isinstance(value, bool | None) for _, value in paths):
        assert patch_body(paths) is patch_body(list(paths))
