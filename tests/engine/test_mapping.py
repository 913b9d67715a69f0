"""A compiled policy's mappings: reading ``user.<attr>`` mappings from the profile gives what
evaluating every mapping through the engine gives."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisiond.domain.policy import DEFAULT_MAPPINGS, PolicyDocument
from provisiond.engine.mapping import CompiledPolicy, compile_policy
from provisiond.expressions import EvaluationError

POLICIES = {
    "default": PolicyDocument(),
    "direct only": PolicyDocument(
        mappings={"userName": "user.login", "title": "user.title", "externalId": "user.id"}
    ),
    "custom": PolicyDocument(
        mappings={
            **DEFAULT_MAPPINGS,
            "title": "user.title",
            "nickName": 'user.department + "-" + user.cost',
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":
                "user.department",
        }
    ),
}
COMPILED = {
    name: compile_policy(document, known_attributes={"cost"})
    for name, document in POLICIES.items()
}

words = st.text(alphabet=string.ascii_letters + " é\ud800", max_size=6)
# Set, unset, or of a type the engine converts or refuses (so that every path is taken).
values = st.one_of(
    words, words, words, st.none(), st.integers(-3, 3), st.booleans(), st.lists(words, max_size=2),
    st.just({"nested": "map"}),
)
profiles = st.fixed_dictionaries(
    {},
    optional={
        name: values
        for name in ("login", "email", "firstName", "lastName", "displayName", "title",
                     "department", "cost", "id", "status")
    },
)


def _through_the_engine(policy: CompiledPolicy, profile: dict[str, Any]) -> dict[str, Any]:
    """Every mapping evaluated by the engine: all together, else one by one."""
    document: dict[str, Any] = {}
    try:
        combined = policy.combined.evaluate(profile)
    except EvaluationError:
        combined = None
    for index, mapping in enumerate(policy.mappings):
        if combined is not None:
            value = combined[str(index)]
        else:
            try:
                value = mapping.expression.evaluate(profile)
            except EvaluationError as exc:
                if mapping.direct is not None and exc.attribute == mapping.direct:
                    continue
                raise
        mapping.path.assign(document, value)
    return document


def _outcome(function: Any, *args: Any) -> Any:
    try:
        return ("ok", function(*args))
    except EvaluationError as exc:
        return ("error", exc.detail)


@pytest.mark.parametrize("name", sorted(POLICIES))
@given(profile=profiles)
def test_mappings_read_from_the_profile_equal_the_engine_s(
    name: str, profile: dict[str, Any]
) -> None:
    policy = COMPILED[name]
    expected = _outcome(_through_the_engine, policy, profile)
    assert _outcome(policy.attributes, profile) == expected
    assert _outcome(policy.attributes, profile) == expected  # and again, compiled


def test_the_default_policy_reads_its_direct_mappings_without_the_engine() -> None:
    policy = compile_policy(PolicyDocument())
    profile = {"login": "ada", "id": "u-1", "firstName": "Ada", "lastName": "L",
               "email": "ada@example.com", "status": "active"}
    assert policy.attributes(profile)["displayName"] == "Ada L"
    assert policy._rest is not None  # the one mapping left for the engine
    assert policy._rest.attributes == {"displayName", "firstName", "lastName"}


def test_a_profile_value_the_engine_refuses_is_refused_on_the_direct_path_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lone surrogate (only SQLite can store one) is not passed on to the app: the user's
    operation fails with the engine's reason, as it did before the direct reads."""
    profile = {"login": "a\ud800", "firstName": "A", "lastName": "B", "email": "a@x",
               "id": "1", "status": "active"}
    fast = _outcome(compile_policy(PolicyDocument()).attributes, profile)
    slow_policy = compile_policy(PolicyDocument())
    monkeypatch.setattr(slow_policy, "_read_directly", lambda _profile: None)
    assert fast == _outcome(slow_policy.attributes, profile)
    assert fast[0] == "error"
