"""The pure side of a SCIM dialect: request bodies shaped by a profile, client-side matching."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from provisiond.connectors.base import RemoteGroup, RemoteUser
from provisiond.connectors.scim_dialect import matches, member_removals, patch_body, unmet
from provisiond.domain.dialects import ScimProfile, shipped_profile


def test_userName_and_emails_match_in_any_case_externalId_exactly() -> None:
    user = RemoteUser(
        "1",
        {"UserName": "Ada.L", "externalId": "X-1", "emails": [{"value": "A@Example.com"}]},
    )
    assert matches(user, "userName", "ada.l")
    assert matches(user, "emails.value", "a@example.COM")
    assert matches(user, "externalId", "X-1") and not matches(user, "externalId", "x-1")
    assert not matches(user, "userName", "ada")


@given(st.text(min_size=1), st.sampled_from(["userName", "externalId", "emails.value"]))
def test_an_account_matches_its_own_value(value: str, attribute: str) -> None:
    attributes = (
        {"emails": [{"value": value}]} if attribute == "emails.value" else {attribute: value}
    )
    assert matches(RemoteUser("1", attributes), attribute, value)


def test_entra_speaks_capitalised_ops_and_string_booleans() -> None:
    body = patch_body(
        [{"op": "replace", "path": "active", "value": False}], shipped_profile("entra-compatible")
    )
    assert body["Operations"] == [{"op": "Replace", "path": "active", "value": "False"}]


@given(st.lists(st.text(min_size=1), unique=True, max_size=40), st.integers(1, 7))
def test_removals_name_every_member_once(members: list[str], batch: int) -> None:
    for style in ("value-filter", "value-list"):
        profile = ScimProfile(membership=style, members_per_request=batch)  # type: ignore[arg-type]
        removals = member_removals(members, profile)
        named = [m for _, values in removals for m in values]
        assert named == members
        assert all(len(values) <= batch for _, values in removals)


def test_a_returned_group_that_kept_a_removed_member_is_named() -> None:
    group = RemoteGroup("g", "Ops", frozenset({"a", "b"}))
    assert unmet(group, add=["a"], remove=["c"]) is None
    assert "still holds 1 removed member" in str(unmet(group, add=[], remove=["b"]))
    assert "lacks 1 added member" in str(unmet(group, add=["z"], remove=[]))
