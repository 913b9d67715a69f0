"""The SCIM filter compiler: SQL gives the users scim2-models' own evaluator gives.

The property: for hypothesis-generated users and filters, the users the compiled SQL selects
(on SQLite and on PostgreSQL) are exactly those ``ScimFilter.match`` accepts on the SCIM
representation of the same users. A filter the compiler refuses is never run.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scim2_models import ScimFilter
from scim2_models.exceptions import SCIMException
from sqlalchemy import Engine, create_engine, delete, insert, select

from provisiond.services.inbound import ENTERPRISE
from provisiond.services.inbound.filters import InvalidFilter, compile_filter
from provisiond.services.inbound.users import ScimUser, render, scope
from provisiond.store.tables import Base, User

MOMENTS = [datetime(2026, 1, d, 12, tzinfo=UTC) for d in (1, 2, 3)]
TEXT = st.text(alphabet="aAb.", min_size=1, max_size=3)
WORD = st.text(alphabet="aAb", min_size=1, max_size=3)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    Base.metadata.create_all(engine, tables=[User.__table__])  # type: ignore[list-item]
    yield engine
    engine.dispose()


@st.composite
def users(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows = []
    for index in range(draw(st.integers(min_value=0, max_value=6))):
        login = draw(TEXT) + str(index)
        profile = {"login": login, "email": f"{draw(WORD)}@{draw(WORD)}.x",
                   "firstName": draw(TEXT), "lastName": draw(TEXT)}
        for key in ("displayName", "title", "department"):
            if draw(st.booleans()):
                profile[key] = draw(TEXT)
        rows.append({
            "id": f"id-{index}-{draw(TEXT)}",
            "login": login,
            "login_key": login.casefold(),
            "status": draw(st.sampled_from(["active", "suspended", "deprovisioned"])),
            "profile": profile,
            "external_id": draw(st.none() | TEXT),
            "email_type": draw(st.none() | st.sampled_from(["work", "home"])),
            "created_at": MOMENTS[0],
            "updated_at": draw(st.sampled_from(MOMENTS)),
            "status_changed_at": MOMENTS[0],
        })
    return rows


STRINGS = ["userName", "name.givenName", "name.familyName", "displayName", "title",
           "externalId", "emails.value", "emails.type", f"{ENTERPRISE}:department", "id"]
OPS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]


def _quoted(value: str) -> str:
    return '"' + value + '"'


@st.composite
def comparisons(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["string", "present", "active", "date", "null"]))
    if kind == "present":
        return f"{draw(st.sampled_from(STRINGS))} pr"
    if kind == "active":
        return f"active {draw(st.sampled_from(['eq', 'ne']))} {draw(st.sampled_from(['true', 'false']))}"
    if kind == "date":
        moment = draw(st.sampled_from(MOMENTS)).isoformat().replace("+00:00", "Z")
        op = draw(st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"]))
        return f"meta.lastModified {op} {_quoted(moment)}"
    if kind == "null":
        return f"{draw(st.sampled_from(['title', 'externalId']))} {draw(st.sampled_from(['eq', 'ne']))} null"
    attribute = draw(st.sampled_from(STRINGS))
    return f"{attribute} {draw(st.sampled_from(OPS))} {_quoted(draw(TEXT))}"


def _value_path(inner: str) -> str:
    return f"emails[{inner}]"


def filters() -> st.SearchStrategy[str]:
    email_leaf = st.builds(
        lambda attr, op, value: f"{attr} {op} {_quoted(value)}",
        st.sampled_from(["value", "type"]), st.sampled_from(OPS), TEXT,
    )
    leaves = comparisons() | email_leaf.map(_value_path)
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.builds(lambda a, b: f"{a} and {b}", inner, inner),
            st.builds(lambda a, b: f"{a} or {b}", inner, inner),
            inner.map(lambda a: f"not ({a})"),
            inner.map(lambda a: f"({a})"),
        ),
        max_leaves=5,
    )


def reference(rows: list[dict[str, Any]], text: str) -> set[str] | None:
    """The users scim2-models' evaluator matches; None if it refuses the filter (it checks
    an ``emails.value eq`` operand is an email address, which the SQL need not)."""
    try:
        scim_filter = ScimFilter[ScimUser](text)
    except SCIMException:
        return None
    out = set()
    for row in rows:
        resource = ScimUser.model_validate(render(User(**row), "http://x/scim/v2"))
        if scim_filter.match(resource):
            out.add(row["id"])
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=users(), text=filters())
def test_sql_selects_what_the_reference_evaluator_selects(
    engine: Engine, rows: list[dict[str, Any]], text: str
) -> None:
    try:
        condition = compile_filter(text, scope(), engine.dialect.name)
    except InvalidFilter:
        assume(False)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        expected = reference(rows, text)
    assume(expected is not None)
    with engine.begin() as connection:
        connection.execute(delete(User))
        if rows:
            connection.execute(insert(User), rows)
        got = set(connection.scalars(select(User.id).where(condition)))
    assert got == expected, text


@pytest.mark.parametrize(
    "text",
    [
        'userName eq',  # no value
        'userName eq "a" and',  # dangling
        '(userName eq "a"',  # unbalanced
        'userName zz "a"',  # no such operator
        'nickName eq "a"',  # an attribute provisiond does not keep
        'urn:x:y:userName eq "a"',  # an unknown schema
        'active co "true"',  # a boolean compared as a string
        'active eq "true"',
        'meta.lastModified gt "not a date"',
        'meta.created sw "2026"',
        'title gt null',
        'emails[nope eq "x"]',
        'userName[value eq "x"]',  # not multi-valued
        'x eq "' + "a" * 10_000 + '"',  # 10,000 characters
    ],
)
def test_what_the_compiler_refuses(text: str) -> None:
    with pytest.raises(InvalidFilter):
        compile_filter(text, scope(), "sqlite")


def test_and_binds_tighter_than_or() -> None:
    # a or b and c == a or (b and c): with a true and c false, the user matches.
    rows = [{"userName": "u", "title": "t"}]
    condition = compile_filter('userName eq "u" or title eq "t" and title eq "x"', scope(), "sqlite")
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine, tables=[User.__table__])  # type: ignore[list-item]
    with engine.begin() as connection:
        connection.execute(insert(User), [{
            "id": "1", "login": "u", "login_key": "u", "status": "active",
            "profile": {"login": "u", "email": "u@x.x", "firstName": "a", "lastName": "b",
                        "title": rows[0]["title"]},
        }])
        assert connection.scalar(select(User.id).where(condition)) == "1"
