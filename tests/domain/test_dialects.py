"""Dialect profiles: the shipped ones, documents that start from them, narrowing by discovery."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from provisiond.domain.dialects import SHIPPED, ScimProfile, shipped_profile

profiles = st.builds(
    ScimProfile,
    name=st.sampled_from(["custom"]),
    patch=st.sampled_from(["rfc", "no-path", "none"]),
    membership=st.sampled_from(["value-filter", "value-list", "replace", "put"]),
    filter=st.sampled_from(["eq", "none"]),
    page_size=st.integers(1, 1000),
)


def test_a_name_is_its_shipped_profile_and_a_document_starts_from_it() -> None:
    assert ScimProfile.model_validate("okta-compatible") == shipped_profile("okta-compatible")
    edited = ScimProfile.model_validate({"name": "entra-compatible", "page_size": 50})
    assert (edited.op_case, edited.page_size) == ("capitalised", 50)
    assert edited.differs_from_shipped() and not shipped_profile("rfc").differs_from_shipped()
    assert ScimProfile() == shipped_profile("rfc") and set(SHIPPED) == {
        "rfc",
        "entra-compatible",
        "okta-compatible",
    }


def test_an_unknown_name_or_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="name"):
        ScimProfile.model_validate("workday")
    with pytest.raises(ValidationError, match="pagesize"):
        ScimProfile.model_validate({"pagesize": 5})


@given(profiles, st.booleans(), st.booleans(), st.one_of(st.none(), st.integers(1, 5000)))
def test_discovery_only_narrows(
    profile: ScimProfile, patch: bool, filter: bool, max_results: int | None
) -> None:
    """What the app announces can take a capability away, never give one the admin withheld."""
    narrowed = profile.narrowed(patch=patch, filter=filter, max_results=max_results)
    assert narrowed.put_only == (profile.put_only or not patch)
    assert narrowed.filters == (profile.filters and filter)
    assert narrowed.page_size <= profile.page_size
    assert narrowed.narrowed(patch=patch, filter=filter, max_results=max_results) == narrowed
    if not patch:
        assert narrowed.membership == "put"
    assert ("updates will be sent as PUT" in " ".join(narrowed.notes())) == narrowed.put_only
