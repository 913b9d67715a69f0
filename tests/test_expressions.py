"""CEL policy expressions: what is refused at save time (with positions), how users evaluate."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisiond.domain.directory import UserStatus
from provisiond.errors import Invalid, ProvisiondError
from provisiond.expressions import (
    MAX_COMPREHENSIONS,
    MAX_EXPRESSION_LENGTH,
    STANDARD_ATTRIBUTES,
    CompiledExpression,
    EvaluationError,
    Expect,
    ExpressionError,
    compile_expression,
)

SCOPE = 'user.department in ["Engineering", "Support"] && user.employeeType != "contractor"'
ADA = {
    "id": "u-ada",
    "status": "active",
    "login": "ada@example.com",
    "email": "ada@example.com",
    "firstName": "Ada",
    "lastName": "Lovelace",
    "department": "Engineering",
    "employeeType": "employee",
}


def cel_string(value: str) -> str:
    """A CEL string literal for any Python string."""
    safe = (ch if " " <= ch <= "~" and ch not in '"\\' else f"\\U{ord(ch):08x}" for ch in value)
    return '"' + "".join(safe) + '"'


def refused(source: str, **options: Any) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source, **options)
    return caught.value


# --- accepted expressions -----------------------------------------------------------------------


def test_a_scope_compiles_once_and_evaluates_per_user() -> None:
    scope = compile_expression(SCOPE, expect="bool", field="scope")

    assert isinstance(scope, CompiledExpression)
    assert scope.attributes == {"department", "employeeType"}
    assert scope.evaluate(ADA) is True
    assert scope.evaluate({**ADA, "employeeType": "contractor"}) is False
    assert scope.evaluate({**ADA, "department": "Sales"}) is False


def test_a_mapping_concatenates_strings() -> None:
    mapping = compile_expression('user.firstName + " " + user.lastName', expect="string")

    assert mapping.evaluate(ADA) == "Ada Lovelace"


@pytest.mark.parametrize(
    ("source", "expect", "known", "user", "result"),
    [
        ('user["firstName"] + "!"', "string", (), ADA, "Ada!"),
        ("user.email.endsWith(\"@example.com\") && size(user.login) > 3", "bool", (), ADA, True),
        ('{"Engineering": "ENG", "Sales": "SLS"}[user.department]', "string", (), ADA, "ENG"),
        ('user.groups.exists(g, g.startsWith("eng-"))', "bool", ("groups",),
         {"groups": ["eng-core"]}, True),
        ('user.groups.filter(g, g != "all").map(g, "app-" + g)', "list", ("groups",),
         {"groups": ["all", "ops"]}, ["app-ops"]),
        ("user.level >= 3", "bool", ("level",), {"level": 4}, True),
        ("user.contractor", "bool", ("contractor",), {"contractor": False}, False),
        ("type(user.firstName) == string", "bool", (), ADA, True),
        ('int(user.employeeNumber) > 1000', "bool", (), {"employeeNumber": "1815"}, True),
        ('user.login.matches(r"^[a-z]+@")', "bool", (), ADA, True),
        ("// a comment\nuser.status == 'active'", "bool", (), ADA, True),
    ],
)
def test_accepted_expressions(
    source: str, expect: Any, known: tuple[str, ...], user: dict[str, Any], result: Any
) -> None:
    compiled = compile_expression(source, expect=expect, known_attributes=known)

    assert compiled.evaluate(user) == result


def test_every_standard_attribute_is_known() -> None:
    for name in STANDARD_ATTRIBUTES:
        assert compile_expression(f"user.{name}", expect="string").attributes == {name}


def test_custom_attributes_are_known_only_when_given_and_nothing_leaks_between_compiles() -> None:
    assert compile_expression("user.costCenter", known_attributes={"costCenter"})
    error = refused("user.costCenter")
    assert error.message == "unknown attribute 'user.costCenter'"


def test_str_subclasses_such_as_the_user_status_are_plain_strings() -> None:
    active = compile_expression('user.status == "active"', expect="bool")

    assert active.evaluate({"status": UserStatus.ACTIVE}) is True


def test_the_longest_expression_allowed_is_accepted() -> None:
    source = '"' + "a" * (MAX_EXPRESSION_LENGTH - 2) + '"'

    compiled = compile_expression(source, expect="string")

    assert len(compiled.evaluate({})) == MAX_EXPRESSION_LENGTH - 2


# --- refused at save time: size -----------------------------------------------------------------


@pytest.mark.parametrize("source", ["", "   ", "\n\t"])
def test_an_empty_expression_is_refused(source: str) -> None:
    error = refused(source, field="scope")

    assert str(error) == "scope: the expression is empty"
    assert error.position is None


def test_an_overlong_expression_is_refused() -> None:
    error = refused('"' + "a" * MAX_EXPRESSION_LENGTH + '"', field="scope")

    assert error.message.startswith("the expression is too long (4098 characters")
    assert (error.position, error.line, error.column) == (4096, 1, 4097)


# --- refused at save time: syntax ---------------------------------------------------------------


def test_a_syntax_error_has_a_position() -> None:
    error = refused('user.department in ["Engineering"', field="scope")

    assert str(error) == (
        "scope: syntax error: unexpected end of expression, expected ']' or ',' at 1:34"
    )
    assert (error.position, error.line, error.column) == (33, 1, 34)


def test_a_syntax_error_on_a_later_line_has_line_and_column() -> None:
    source = 'user.department == "Sales"\n  && user.title &&& true'
    error = refused(source)

    assert error.position == source.index("&&&") + 2
    assert (error.line, error.column) == (2, 19)
    assert error.message == "syntax error: unexpected '&'"


def test_an_unterminated_string_points_at_its_quote() -> None:
    error = refused('user.title == "CTO')

    assert error.message == "syntax error: unterminated string"
    assert error.position == 14


def test_columns_count_code_points() -> None:
    error = refused('"héllo 😀" == ++')

    assert error.position == 13
    assert error.column == 14


def test_deep_nesting_is_refused_not_crashing() -> None:
    error = refused("(" * 200 + "true" + ")" * 200)

    assert error.message == "the expression is nested too deeply (the limit is 96 levels)"
    assert error.position == 96


# --- refused at save time: names ----------------------------------------------------------------


def test_an_unknown_attribute_is_refused_with_its_position_and_a_suggestion() -> None:
    error = refused('user.departmnt == "Sales"', field="scope")

    assert str(error) == (
        "scope: unknown attribute 'user.departmnt' at 1:6; did you mean 'user.department'?"
    )
    assert (error.position, error.line, error.column) == (5, 1, 6)
    assert error.field == "scope"
    assert error.hint == "did you mean 'user.department'?"


def test_an_unknown_attribute_on_a_later_line() -> None:
    error = refused('user.department == "Sales" &&\n  has(user.tittle)')

    assert error.message == "unknown attribute 'user.tittle'"
    assert (error.line, error.column) == (2, 12)


def test_an_unknown_attribute_read_by_index() -> None:
    error = refused('user["costCentre"] == "1"', known_attributes=["costCenter"])

    assert error.message == "unknown attribute 'user.costCentre'"
    assert error.position == 5
    assert error.hint == "did you mean 'user.costCenter'?"


def test_the_earliest_problem_is_reported() -> None:
    error = refused("user.b == user.a")

    assert error.message == "unknown attribute 'user.b'"


@pytest.mark.parametrize(
    ("source", "message", "position"),
    [
        ('usr.department == "x"', "unknown name 'usr'", 0),
        ('user.title == manager', "unknown name 'manager'", 14),
        ("optional.of(1)", "unknown name 'optional'", 0),
        ('user.firstName.lowerAscii() == "ada"', "unknown function 'lowerAscii'", 15),
        ("now() > 1", "unknown function 'now'", 0),
        ("size(user) > 2", "'user' can only be read from", 5),
        ("user.size() > 2", "'user' can only be read from", 0),
        ("[user].size() > 0", "'user' can only be read from", 1),
        ("[1].exists(user, user == 1)", "'user' cannot be used as a variable name", 11),
        ('user.firstName.matches("[a-z")', "invalid regular expression: unclosed character class",
         23),
    ],
)
def test_unknown_names_and_misuse_are_refused_with_positions(
    source: str, message: str, position: int
) -> None:
    error = refused(source)

    assert error.message == message
    assert error.position == position


# --- refused at save time: comprehensions (determinism and cost) --------------------------------


@pytest.mark.parametrize(
    ("source", "position"),
    [
        ("user.map(k, k)", 0),  # user itself is a map: refused as misuse
        ('{"a": 1, "b": 2}.map(k, k)', 17),
        ('({"a": 1}).exists(k, k == "a")', 11),
        ('[{"a": 1}][0].filter(k, true)', 14),
    ],
)
def test_comprehensions_over_maps_are_refused_because_map_order_is_random(
    source: str, position: int
) -> None:
    error = refused(source)

    assert error.position == position


def test_comprehensions_cannot_nest() -> None:
    error = refused("[1, 2].exists(x, [3].exists(y, x == y))")

    assert error.message == (
        "comprehensions cannot be nested ('exists' inside another comprehension)"
    )
    assert error.position == 21


def test_comprehensions_are_limited_in_number() -> None:
    chain = "[[0]]" + "".join(f".map(a{i}, a{i} + a{i})" for i in range(MAX_COMPREHENSIONS + 1))
    error = refused(chain)

    assert error.message == f"too many comprehensions (the limit is {MAX_COMPREHENSIONS})"
    assert error.position == chain.rindex("map")


# --- refused at save time: types (found by evaluating synthetic profiles) -----------------------


@pytest.mark.parametrize(
    ("source", "expect", "known", "message"),
    [
        ("user.firstName + 1", "any", (), "type error: unsupported operation: string + int"),
        ("!user.title", "any", (), "type error: no such overload"),
        ('"a".startsWith(1)', "any", (),
         "type error: no overload of 'startsWith' takes these argument types"),
        # only reached when the department matches a literal of the expression
        ('user.department == "Sales" && user.firstName - "x" == "y"', "bool", (),
         "type error: unsupported operation: string - string"),
        # a custom attribute with no type: no plausible type makes this work
        ('user.level + 1 + "x"', "any", ("level",), "type error"),
        ("user.firstName", "bool", (), "must yield a bool, but yields a string"),
        ('user.firstName + "x"', "list", (), "must yield a list, but yields a string"),
        ("has(user.title) ? user.title : 1", "string", (),
         "must yield a string, but yields an int"),
        ("size(user.firstName)", "string", (), "must yield a string, but yields an int"),
    ],
)
def test_type_errors_are_refused_without_position(
    source: str, expect: Any, known: tuple[str, ...], message: str
) -> None:
    error = refused(source, expect=expect, known_attributes=known, field="scope")

    assert error.message.startswith(message)
    assert str(error).startswith(f"scope: {message}")
    assert (error.position, error.line, error.column) == (None, None, None)


def test_a_comprehension_variable_used_outside_its_comprehension_is_refused() -> None:
    error = refused("[1].exists(x, x > 0) && x == 1")

    assert error.message == "unknown name 'x'"


def test_expression_errors_are_invalid_input_with_the_location_in_the_problem() -> None:
    error = refused("user.x", field="mapping.displayName")

    assert isinstance(error, Invalid)
    assert error.status == 422
    assert error.extra == {"field": "mapping.displayName", "position": 5, "line": 1, "column": 6}


def test_an_unknown_expected_type_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="expect must be one of"):
        compile_expression("true", expect="int")  # type: ignore[arg-type]


# --- run time: unset attributes -----------------------------------------------------------------


def test_unset_attributes_are_absent_and_has_reports_them() -> None:
    has_title = compile_expression("has(user.title)", expect="bool")

    assert has_title.evaluate({"title": "CTO"}) is True
    assert has_title.evaluate({"title": ""}) is True
    assert has_title.evaluate({"title": None}) is False
    assert has_title.evaluate({}) is False


@pytest.mark.parametrize("user", [{}, {"title": None}])
def test_reading_an_unset_attribute_fails_for_that_user_only(user: dict[str, Any]) -> None:
    scope = compile_expression('user.title == "CTO"', expect="bool", field="scope")

    with pytest.raises(EvaluationError) as caught:
        scope.evaluate(user)

    assert str(caught.value) == (
        "scope: attribute 'user.title' is not set for this user; guard it with has(user.title)"
    )
    assert caught.value.attribute == "title"
    assert caught.value.field == "scope"
    assert scope.evaluate({"title": "CTO"}) is True  # other users are unaffected


def test_guarded_reads_of_unset_attributes_succeed() -> None:
    scope = compile_expression('has(user.title) && user.title == "CTO"', expect="bool")
    mapping = compile_expression('has(user.title) ? user.title : "none"', expect="string")

    assert scope.evaluate({}) is False
    assert mapping.evaluate({}) == "none"


@pytest.mark.parametrize(
    ("source", "result"),
    [
        ('false && user.title == "CTO"', False),
        ('user.title == "CTO" && false', False),
        ('user.title == "CTO" || true', True),
        ('true || user.title == "CTO"', True),
    ],
)
def test_an_unset_attribute_does_not_matter_when_the_other_side_decides(
    source: str, result: bool
) -> None:
    assert compile_expression(source, expect="bool").evaluate({}) is result


# --- run time: other failures are EvaluationError, never a library exception --------------------


@pytest.mark.parametrize(
    ("source", "known", "user", "message"),
    [
        ('{"Engineering": "ENG"}[user.department]', (), {"department": "Sales"},
         "no such key 'Sales'"),
        ('{"a": "1"}[user.title]', (), {"title": "title"}, "no such key 'title'"),
        ("int(user.employeeNumber) > 1", (), {"employeeNumber": "E-12"}, "int() failed: "),
        ("10 / (size(user.title) - 3) > 1", (), {"title": "CTO"}, "division by zero"),
        ("user.groups[3] == 'x'", ("groups",), {"groups": []}, "index out of bounds"),
        ("user.level * 9223372036854775807 > 1", ("level",), {"level": 2},
         "arithmetic overflow"),
        ("user.level > 1", ("level",), {"level": "high"}, "type error: no such overload"),
        ("user.level > 1", ("level",), {"level": 2**64}, "attribute 'user.level' is out of"),
        ("user.level > 1", ("level",), {"level": {"a": 1}}, "attribute 'user.level' has a value"),
        ('user.title == "x"', (), {"title": "\udc80"}, "a profile value cannot be passed"),
        ("user.nickname", ("nickname",), {"nickname": 5}, "must yield a string, but yielded"),
    ],
)
def test_run_time_failures_are_evaluation_errors(
    source: str, known: tuple[str, ...], user: dict[str, Any], message: str
) -> None:
    expect: Expect = "string" if source == "user.nickname" else "any"
    compiled = compile_expression(source, expect=expect, known_attributes=known, field="m")

    with pytest.raises(EvaluationError) as caught:
        compiled.evaluate(user)

    assert type(caught.value) is EvaluationError
    assert isinstance(caught.value, ProvisiondError)
    assert caught.value.detail.lower().startswith(f"m: {message}".lower())
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


# --- properties ---------------------------------------------------------------------------------

texts = st.text(max_size=12)
values = st.one_of(st.none(), texts, st.sampled_from(["Engineering", "Support", "Sales", ""]))
profiles = st.fixed_dictionaries(
    {},
    optional={
        name: values
        for name in ("firstName", "lastName", "department", "title", "employeeType", "login")
    },
)
profiles_with_groups = st.one_of(
    profiles, st.builds(lambda p, g: {**p, "groups": g}, profiles, st.lists(texts, max_size=4))
)

PROPERTY_EXPRESSIONS = [
    compile_expression(SCOPE, expect="bool"),
    compile_expression('user.firstName + " " + user.lastName', expect="string"),
    compile_expression('has(user.title) ? user.title : "none"', expect="string"),
    compile_expression('{"Engineering": "ENG", "Support": "SUP"}[user.department]'),
    compile_expression(
        'has(user.groups) && user.groups.filter(g, g != "").map(g, "x-" + g).exists(g, g == "x-a")',
        expect="bool", known_attributes={"groups"},
    ),
    compile_expression("user.login.matches('^[a-z]+$') || size(user.title) > 3", expect="bool"),
]


def outcome(compiled: CompiledExpression, user: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "value", compiled.evaluate(user)
    except EvaluationError as error:
        return "error", (error.detail, error.attribute)


@settings(deadline=None)
@given(profiles_with_groups)
def test_evaluation_is_deterministic(user: dict[str, Any]) -> None:
    for compiled in PROPERTY_EXPRESSIONS:
        assert outcome(compiled, user) == outcome(compiled, dict(user))


@settings(deadline=None)
@given(st.text(max_size=20))
def test_compiling_is_deterministic(source: str) -> None:
    def result() -> tuple[Any, ...]:
        try:
            compiled = compile_expression(source, known_attributes={"groups"})
        except ExpressionError as error:
            return (error.detail, error.position, error.line, error.column)
        return (compiled.source, compiled.attributes)

    assert result() == result()


@settings(deadline=None)
@given(profiles, texts)
def test_equality_agrees_with_python(user: dict[str, Any], wanted: str) -> None:
    scope = compile_expression(f"user.department == {cel_string(wanted)}", expect="bool")

    if user.get("department") is None:  # unset: an error for this user, naming the attribute
        with pytest.raises(EvaluationError) as caught:
            scope.evaluate(user)
        assert caught.value.attribute == "department"
    else:
        assert scope.evaluate(user) is (user.get("department") == wanted)


@settings(deadline=None)
@given(profiles, st.lists(texts, max_size=5))
def test_in_a_list_agrees_with_python(user: dict[str, Any], allowed: list[str]) -> None:
    listed = ", ".join(cel_string(value) for value in allowed)
    scope = compile_expression(f"user.department in [{listed}]", expect="bool")

    if user.get("department") is None:
        with pytest.raises(EvaluationError):
            scope.evaluate(user)
    else:
        assert scope.evaluate(user) is (user["department"] in allowed)


@settings(deadline=None)
@given(texts, texts, texts)
def test_concatenation_agrees_with_python(first: str, separator: str, last: str) -> None:
    mapping = compile_expression(
        f"user.firstName + {cel_string(separator)} + user.lastName", expect="string"
    )

    assert mapping.evaluate({"firstName": first, "lastName": last}) == first + separator + last


MEMBER = compile_expression(
    "user.groups.exists(g, g == user.login)", expect="bool", known_attributes={"groups"}
)


@settings(deadline=None)
@given(st.lists(texts, max_size=5), texts)
def test_membership_in_a_list_attribute_agrees_with_python(groups: list[str], group: str) -> None:
    assert MEMBER.evaluate({"groups": groups, "login": group}) is (group in groups)
