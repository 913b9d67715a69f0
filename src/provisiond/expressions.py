"""CEL expressions for provisioning policies: compile and check once, evaluate many times.

A policy has a *scope* (``user.department in ["Engineering", "Support"] && ...``, must yield a
bool) and *attribute mappings* (``user.firstName + " " + user.lastName``, usually a string).
Both are CEL, run by the Rust core of PyPI ``common-expression-language`` (module ``cel``).
This module is the only place that imports ``cel``; the rest of provisiond sees::

    compile_expression(source, *, expect="any", field="expression", known_attributes=())
        -> CompiledExpression                      raises ExpressionError (an Invalid, 422)
    CompiledExpression.evaluate(user) -> Any       raises EvaluationError

What is checked when an expression is saved
-------------------------------------------
``cel`` parses, but has no type checker: ``cel.compile("user.firstName + 1")`` succeeds and the
mistake would only show when the first user is provisioned. So ``compile_expression`` checks in
three layers, and reports the first problem as an :class:`ExpressionError` with the field name,
the 0-based ``position`` (a code-point offset) and 1-based ``line``/``column`` where one exists:

1. **Syntax** - the library parser (positions come from its ``<input>:line:col`` report).
   Empty sources and sources over :data:`MAX_EXPRESSION_LENGTH` characters are refused first.
2. **Names** (static and exact) - a small CEL tokenizer plus the library's own list of
   referenced variables and functions:

   * the only variable is ``user``, and it may only be *read from*: ``user.<attr>``,
     ``user["<attr>"]`` or ``has(user.<attr>)``. Every attribute read is therefore known
     statically, and must be in the profile schema (:data:`STANDARD_ATTRIBUTES` plus the
     ``known_attributes`` given). Type names (``int``, ``string``, ...) and the variables
     bound by comprehension macros are allowed; a macro may not rebind ``user``.
   * functions must be ones the engine provides (:data:`FUNCTIONS`); ``lowerAscii`` and other
     cel-go extension functions are *not* available and are reported at save time.
   * comprehensions (``all``/``exists``/``exists_one``/``map``/``filter``) may only range over a
     list attribute, a list literal or the list another ``map``/``filter`` made: the engine
     iterates maps in a random order, which would make ``map``/``filter`` over a map
     nondeterministic. They may not nest and there may be at most
     :data:`MAX_COMPREHENSIONS` of them (a few nested ``all`` over list literals already
     take minutes). With those rules the cost of one evaluation is bounded by the source
     length times the length of the largest list attribute.
3. **Types and result type** (dynamic, heuristic - honest about it): the expression is run on
   synthetic profiles. Standard attributes are strings; custom attributes have no declared
   type, so each plausible typing (string, int, double, bool, list of strings) is tried. Values
   are drawn from sample strings and the literals in the expression itself, so that branches
   such as ``user.department == "Sales" && ...`` are taken both ways, and profiles with
   attributes unset are included. An expression is refused if, under *every* typing, some
   sample profile produces a type error (``user.firstName + 1``, ``!user.title``,
   ``"a".startsWith(1)``) or a result of the wrong type (a scope ``user.firstName``). Failures
   that depend on the data (``int(user.employeeNumber)`` on a non-number, a missing map key,
   division by zero) are not refused. At most 600 sample evaluations are made (a few
   milliseconds for ordinary expressions). This finds the type errors on the paths the
   samples reach; it is not a proof. Type errors have no position (the engine reports none).
   :meth:`CompiledExpression.evaluate` re-checks the result type on every call, so a
   mismatch the samples missed still surfaces as an :class:`EvaluationError`, never as a
   wrong value.

Run-time semantics
------------------
``evaluate(user)`` takes the flat profile mapping (standard and custom attributes, plus ``id``
and ``status``). An attribute whose value is ``None`` or that is missing is *unset*, and unset
attributes are absent from the CEL map ``user``:

* ``has(user.title)`` is ``false`` for an unset title (and ``true`` for ``""``).
* Reading an unset attribute is an error *for that user only*: ``user.title == "CTO"`` raises
  :class:`EvaluationError` (with ``attribute="title"``) naming the attribute and suggesting
  ``has(user.title) && ...``. Other users evaluate normally. Callers decide what that means;
  for a scope the safe reading is "not in scope, and report it".
* CEL's logical operators absorb errors when the other side decides the result:
  ``false && user.title == "CTO"`` and ``user.title == "CTO" && false`` are both ``false``,
  ``user.title == "CTO" || true`` is ``true``.

Values must be strings, numbers (64-bit ints, floats), booleans or lists of those, as the
profile allows; ``str`` subclasses such as ``UserStatus`` are passed as plain strings. Any
failure - including a library exception of whatever type - is re-raised as
:class:`EvaluationError` with a readable message; library exception types never escape.

Evaluation is deterministic and side-effect free: CEL has no I/O, no clock (there is no
``now()``), no loops beyond bounded comprehensions; the checks above exclude the one source of
nondeterminism in the engine (map iteration order). Only the attributes the expression reads
are converted for the engine, which is what makes evaluation fast. Nothing is cached globally:
a :class:`CompiledExpression` holds its own compiled program and can be shared between
threads.
"""

from __future__ import annotations

import difflib
import itertools
import math
import random
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

import cel

from provisiond.errors import Invalid, ProvisiondError

__all__ = [
    "FUNCTIONS",
    "MAX_COMPREHENSIONS",
    "MAX_EXPRESSION_LENGTH",
    "STANDARD_ATTRIBUTES",
    "CompiledExpression",
    "EvaluationError",
    "Expect",
    "ExpressionError",
    "compile_expression",
]

Expect = Literal["bool", "string", "any", "list"]

MAX_EXPRESSION_LENGTH: Final = 4096
MAX_COMPREHENSIONS: Final = 4

#: The directory profile schema every expression may read (all strings).
STANDARD_ATTRIBUTES: Final = frozenset({
    "login", "email", "firstName", "lastName", "displayName", "department", "title",
    "manager", "employeeNumber", "employeeType", "id", "status",
})

#: Functions the engine provides (cel-rust's standard library), usable as ``f(x)`` or ``x.f()``.
FUNCTIONS: Final = frozenset({
    "size", "contains", "startsWith", "endsWith", "matches",
    "int", "uint", "double", "string", "bytes", "timestamp", "duration", "dyn", "type",
    "getFullYear", "getMonth", "getDayOfYear", "getDayOfMonth", "getDate", "getDayOfWeek",
    "getHours", "getMinutes", "getSeconds", "getMilliseconds",
})

_TYPE_NAMES: Final = frozenset({
    "int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type",
})
_COMPREHENSIONS: Final = frozenset({"all", "exists", "exists_one", "map", "filter"})
_LIST_MAKERS: Final = frozenset({"map", "filter"})
_INT64 = range(-(2**63), 2**63)


# ---------------------------------------------------------------------------------------------
# Errors


class ExpressionError(Invalid):
    """An expression refused when it is saved: syntax, unknown name, type or result type."""

    type, title = "invalid-expression", "Invalid expression"

    def __init__(
        self,
        message: str,
        *,
        field: str,
        source: str | None = None,
        position: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.position = position
        self.hint = hint
        self.line: int | None = None
        self.column: int | None = None
        where = ""
        if position is not None and source is not None:
            self.line, self.column = _line_column(source, position)
            where = f" at {self.line}:{self.column}"
        detail = f"{field}: {message}{where}" + (f"; {hint}" if hint else "")
        located = {"position": position, "line": self.line, "column": self.column}
        super().__init__(detail, field=field, **{k: v for k, v in located.items() if v is not None})


class EvaluationError(ProvisiondError):
    """A compiled expression failed for one particular user at run time."""

    status, type, title = 422, "expression-evaluation", "Expression evaluation failed"

    def __init__(self, detail: str, *, field: str, attribute: str | None = None) -> None:
        super().__init__(detail, field=field, **({"attribute": attribute} if attribute else {}))
        self.field = field
        self.attribute = attribute


# ---------------------------------------------------------------------------------------------
# The compiled expression


class CompiledExpression:
    """A checked expression, ready to evaluate for any number of users.

    Build it with :func:`compile_expression`. ``attributes`` are the profile attributes the
    expression reads; ``expect`` is the result type every evaluation is held to.
    """

    __slots__ = ("_names", "_program", "attributes", "expect", "field", "source")

    def __init__(
        self,
        *,
        source: str,
        expect: Expect,
        field: str,
        program: cel.Program,
        attributes: Collection[str],
    ) -> None:
        self.source = source
        self.expect: Expect = expect
        self.field = field
        self.attributes = frozenset(attributes)
        self._names = tuple(sorted(self.attributes))
        self._program = program

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r}, expect={self.expect!r}, field={self.field!r})"

    def evaluate(self, user: Mapping[str, Any]) -> Any:
        """The value of the expression for ``user`` (a flat profile mapping).

        Unset attributes (missing or ``None``) are absent from ``user``; see the module
        docstring. Raises :class:`EvaluationError` on any failure, including a result of the
        wrong type.
        """
        activation: dict[str, Any] = {}
        for name in self._names:
            value = user.get(name)
            if value is not None:
                activation[name] = _engine_value(name, value, self.field)
        result = self._run(activation)
        if not _has_type(result, self.expect):
            raise EvaluationError(
                f"{self.field}: must yield {_article(self.expect)}, "
                f"but yielded {_article(_cel_type(result))}",
                field=self.field,
            )
        return result

    def _run(self, activation: dict[str, Any]) -> Any:
        try:
            return self._program.execute({"user": activation})
        except BaseException as exc:
            if not _is_engine_failure(exc):
                raise
            failure = _classify(exc)
            attribute = failure.key if failure.kind == "missing" else None
            if attribute in self.attributes and attribute not in activation:
                message = (
                    f"attribute 'user.{attribute}' is not set for this user; "
                    f"guard it with has(user.{attribute})"
                )
            else:
                attribute = None
                message = failure.message
            raise EvaluationError(
                f"{self.field}: {message}", field=self.field, attribute=attribute
            ) from None


def compile_expression(
    source: str,
    *,
    expect: Expect = "any",
    field: str = "expression",
    known_attributes: Collection[str] = (),
) -> CompiledExpression:
    """Parse and check ``source``; raise :class:`ExpressionError` on the first problem found.

    ``expect`` is the type every result must have ("any" accepts everything); ``field`` names
    the expression in messages (``"scope"``, ``"mapping.displayName"``); ``known_attributes``
    are the custom profile attributes that exist besides :data:`STANDARD_ATTRIBUTES`.
    """
    if expect not in get_args(Expect):
        raise ValueError(f"expect must be one of {get_args(Expect)}, not {expect!r}")
    if not source.strip():
        raise ExpressionError("the expression is empty", field=field)
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"the expression is too long ({len(source)} characters; "
            f"the limit is {MAX_EXPRESSION_LENGTH})",
            field=field, source=source, position=MAX_EXPRESSION_LENGTH,
        )
    program = _parse(source, field)
    tokens = _tokenize(source, field)
    known = STANDARD_ATTRIBUTES | frozenset(known_attributes)
    attributes = _check_names(program, tokens, source, field, known)
    compiled = CompiledExpression(
        source=source, expect=expect, field=field, program=program, attributes=attributes
    )
    _check_types(compiled, tokens, custom=frozenset(known_attributes) - STANDARD_ATTRIBUTES)
    return compiled


# ---------------------------------------------------------------------------------------------
# Layer 1: syntax

_PARSE_ERROR = re.compile(r"ERROR: <input>:(\d+):(\d+): ([^\n]*)")
_EXPECTING = re.compile(r"^(?:mismatched|extraneous) input '(.*)' expecting \{?(.*?)\}?$")


def _parse(source: str, field: str) -> cel.Program:
    try:
        return cel.compile(source)
    except BaseException as exc:
        if not _is_engine_failure(exc):
            raise
        # the report echoes the source, which may itself contain "ERROR: <input>:..."
        report = str(exc).removeprefix(f"Failed to parse expression '{source}': ")
        match = _PARSE_ERROR.search(report)
        if match is None:
            raise ExpressionError(f"syntax error: {_first_line(report)}", field=field) from None
        line, column, text = int(match[1]), int(match[2]), match[3]
        raise ExpressionError(
            _syntax_message(text), field=field, source=source,
            position=_offset(source, line, column),
        ) from None


def _syntax_message(text: str) -> str:
    text = text.removeprefix("Syntax error: ")
    limit = re.search(r"Recursion limit of (\d+) exceeded", text)
    if limit:
        return f"the expression is nested too deeply (the limit is {limit[1]} levels)"
    if text.startswith("token recognition error at: '"):
        fragment = text.removeprefix("token recognition error at: ").strip("'")
        if fragment[:1] in {'"', "'"} or fragment[1:2] in {'"', "'"}:
            return "syntax error: unterminated string"
        return f"syntax error: unexpected {fragment.strip()!r}"
    if text.startswith("no viable alternative at input '"):
        return f"syntax error near {text.removeprefix('no viable alternative at input ')}"
    expecting = _EXPECTING.match(text)
    if expecting:
        found, wanted = expecting[1], [w.strip() for w in expecting[2].split(", ")]
        what = "end of expression" if found == "<EOF>" else repr(found)
        message = f"syntax error: unexpected {what}"
        if len(wanted) <= 3:
            message += ", expected " + " or ".join(w for w in wanted)
        return message
    return f"syntax error: {text}" if "error" not in text.lower() else text


# ---------------------------------------------------------------------------------------------
# Layer 2: names, by way of a tokenizer (the library exposes no syntax tree)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["ident", "string", "bytes", "int", "double", "uint", "op"]
    text: str
    start: int


_TOKEN = re.compile(
    r"""
    (?P<skip> [ \t\n\r\f]+ | //[^\n]* )
  | (?P<raw> (?:[rR][bB]?|[bB][rR]) (?: \"\"\"[\s\S]*?\"\"\" | '''[\s\S]*?'''
                                    | "[^"\r\n]*" | '[^'\r\n]*' ) )
  | (?P<str> [bB]? (?: \"\"\"(?:\\[\s\S]|[^\\])*?\"\"\" | '''(?:\\[\s\S]|[^\\])*?'''
                    | "(?:\\.|[^"\\\r\n])*" | '(?:\\.|[^'\\\r\n])*' ) )
  | (?P<hex> 0[xX][0-9a-fA-F]+[uU]? )
  | (?P<double> \d*\.\d+(?:[eE][+-]?\d+)? | \d+[eE][+-]?\d+ )
  | (?P<int> \d+[uU]? )
  | (?P<ident> [_a-zA-Z][_a-zA-Z0-9]* )
  | (?P<op> == | != | <= | >= | && | \|\| | [-+*/%!<>?:.,()\[\]{}] )
    """,
    re.VERBOSE,
)


def _tokenize(source: str, field: str) -> list[_Token]:
    tokens: list[_Token] = []
    offset = 0
    while offset < len(source):
        match = _TOKEN.match(source, offset)
        if match is None:  # the parser accepted it, so this is syntax the checks do not know
            raise ExpressionError("syntax not supported here", field=field, source=source,
                                  position=offset)
        kind, text = match.lastgroup, match[0]
        if kind in {"raw", "str"}:
            prefix = text[: len(text) - len(text.lstrip("rRbB"))]
            tokens.append(_Token("bytes" if "b" in prefix.lower() else "string", text, offset))
        elif kind in {"hex", "int"}:
            tokens.append(_Token("uint" if text[-1] in "uU" else "int", text, offset))
        elif kind in {"double", "ident", "op"}:
            tokens.append(_Token(kind, text, offset))  # type: ignore[arg-type]
        offset = match.end()
    return tokens


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
            "\\": "\\", "'": "'", '"': '"', "?": "?", "`": "`"}
_ESCAPE = re.compile(r"\\(?:([ntrabfv\\'\"?`])|[xX]([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})"
                     r"|U([0-9a-fA-F]{8})|([0-3][0-7]{2})|(.))", re.DOTALL)


def _string_value(token: _Token) -> str | None:
    """The value of a string literal token, or None for an escape this decoder does not know."""
    body = token.text.lstrip("rRbB")
    raw = "r" in token.text[: len(token.text) - len(body)].lower()
    quote = 3 if body[:3] in {'"""', "'''"} else 1
    body = body[quote:-quote]
    if raw or "\\" not in body:
        return body
    failed = False

    def unescape(match: re.Match[str]) -> str:
        nonlocal failed
        simple, hex2, hex4, hex8, octal, _other = match.groups()
        if simple:
            return _ESCAPES[simple]
        code = int(hex2 or hex4 or hex8 or "0", 16) if not octal else int(octal, 8)
        if (hex2 or hex4 or hex8 or octal) and code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
            return chr(code)
        failed = True
        return ""

    value = _ESCAPE.sub(unescape, body)
    return None if failed else value


def _matching(tokens: Sequence[_Token]) -> dict[int, int]:
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for index, token in enumerate(tokens):
        if token.kind != "op":
            continue
        if token.text in "([{":
            stack.append(index)
        elif token.text in ")]}" and stack:
            opened = stack.pop()
            pairs[opened], pairs[index] = index, opened
    return pairs


def _is(tokens: Sequence[_Token], index: int, kind: str, text: str | None = None) -> bool:
    if not 0 <= index < len(tokens):
        return False
    token = tokens[index]
    return token.kind == kind and (text is None or token.text == text)


def _check_names(
    program: cel.Program, tokens: list[_Token], source: str, field: str, known: frozenset[str]
) -> set[str]:
    """Every attribute read, after checking variables, functions and comprehensions."""
    problems: list[tuple[int, str, str | None]] = []  # (position, message, hint)
    attributes: set[str] = set()
    pairs = _matching(tokens)

    def root(index: int) -> bool:  # an identifier that is not a field or a function name
        return _is(tokens, index, "ident") and not _is(tokens, index - 1, "op", ".")

    # comprehensions: bound variables, receivers, nesting and count
    bound: set[str] = set()
    open_until = -1
    count = 0
    for index, token in enumerate(tokens):
        if not (
            token.kind == "ident" and token.text in _COMPREHENSIONS
            and _is(tokens, index - 1, "op", ".") and _is(tokens, index + 1, "op", "(")
        ):
            continue
        count += 1
        if count == MAX_COMPREHENSIONS + 1:
            problems.append((token.start, f"too many comprehensions (the limit is "
                                          f"{MAX_COMPREHENSIONS})", None))
        if index < open_until:
            problems.append((token.start, f"comprehensions cannot be nested ('{token.text}' "
                                          "inside another comprehension)", None))
        open_until = max(open_until, pairs.get(index + 1, len(tokens)))
        if _is(tokens, index + 2, "ident") and _is(tokens, index + 3, "op", ","):
            variable = tokens[index + 2]
            bound.add(variable.text)
            if variable.text == "user":
                problems.append((variable.start, "'user' cannot be used as a variable name", None))
        if not _ranges_over_list(tokens, index - 2, pairs):
            problems.append((
                token.start,
                f"'{token.text}' may only range over a list attribute or a list literal",
                "iterating a map has no defined order",
            ))

    # the variable user: only ever read from, every attribute known
    for index, token in enumerate(tokens):
        if token.text != "user" or not root(index):
            continue
        name: str | None = None
        where = token.start
        if (_is(tokens, index + 1, "op", ".") and _is(tokens, index + 2, "ident")
                and not _is(tokens, index + 3, "op", "(")):
            name, where = tokens[index + 2].text, tokens[index + 2].start
        elif (_is(tokens, index + 1, "op", "[") and _is(tokens, index + 2, "string")
                and _is(tokens, index + 3, "op", "]")):
            name, where = _string_value(tokens[index + 2]), tokens[index + 2].start
        if name is None:
            problems.append((
                token.start, "'user' can only be read from",
                "write user.<attribute>, user[\"<attribute>\"] or has(user.<attribute>)",
            ))
        elif name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            problems.append((where, f"unknown attribute 'user.{name}'",
                             f"did you mean 'user.{close[0]}'?" if close else None))
        else:
            attributes.add(name)

    # any other variable (the library's own list, so nothing is missed)
    for name in sorted(set(program.variables()) - {"user"} - bound - _TYPE_NAMES):
        found = (t.start for i, t in enumerate(tokens) if t.text == name and root(i))
        close = difflib.get_close_matches(name, ["user"], n=1)
        problems.append((
            next(found, -1), f"unknown name '{name}'",
            "did you mean 'user'?" if close else "the only variable is 'user'",
        ))

    # regular expressions given as literals (the engine compiles them only when run)
    for index, token in enumerate(tokens):
        if (token.text == "matches" and _is(tokens, index - 1, "op", ".")
                and _is(tokens, index + 1, "op", "(") and _is(tokens, index + 2, "string")
                and _is(tokens, index + 3, "op", ")")):
            pattern = tokens[index + 2]
            invalid = _regex_problem(pattern.text)
            if invalid:
                problems.append((pattern.start, f"invalid regular expression: {invalid}", None))

    # functions: operators are spelled _+_, @in, !_ ...; the rest must exist
    for name in sorted(program.functions()):
        if name[:1] in {"_", "@", "!", "-"} or name in FUNCTIONS:
            continue
        where = next((t.start for i, t in enumerate(tokens)
                      if t.kind == "ident" and t.text == name and _is(tokens, i + 1, "op", "(")),
                     -1)
        problems.append((where, f"unknown function '{name}'", None))

    if problems:
        position, message, hint = min(problems, key=lambda problem: problem[0])
        raise ExpressionError(message, field=field, source=source,
                              position=None if position < 0 else position, hint=hint)
    return attributes


def _regex_problem(literal: str) -> str | None:
    """Why the engine refuses the regular expression written as ``literal``, if it does."""
    try:
        cel.evaluate(f'"".matches({literal})')
    except BaseException as exc:
        if not _is_engine_failure(exc):
            raise
        text = str(exc)
        if "regex" not in text:
            return None
        reason = [line for line in text.splitlines() if line.startswith("error: ")]
        return reason[-1].removeprefix("error: ").split(". Check ")[0] if reason else "invalid"
    return None


def _ranges_over_list(tokens: Sequence[_Token], end: int, pairs: Mapping[int, int]) -> bool:
    """Whether the receiver ending at token ``end`` is syntactically a list."""
    if _is(tokens, end, "op", "]"):
        opened = pairs.get(end, -1)
        before = tokens[opened - 1] if opened > 0 else None
        if before is None or not _ends_operand(before):
            return True  # a list literal
        # an index: only user["attribute"] reads a (list) attribute
        return (end - opened == 2 and _is(tokens, opened + 1, "string")
                and _is(tokens, opened - 1, "ident", "user")
                and not _is(tokens, opened - 2, "op", "."))
    if _is(tokens, end, "ident"):  # user.attribute
        return (_is(tokens, end - 1, "op", ".") and _is(tokens, end - 2, "ident", "user")
                and not _is(tokens, end - 3, "op", "."))
    if _is(tokens, end, "op", ")"):  # the list another map or filter made
        opened = pairs.get(end, -1)
        return (opened >= 2 and _is(tokens, opened - 2, "op", ".")
                and tokens[opened - 1].text in _LIST_MAKERS
                and _ranges_over_list(tokens, opened - 3, pairs))
    return False


def _ends_operand(token: _Token) -> bool:
    if token.kind == "op":
        return token.text in {")", "]", "}"}
    return not (token.kind == "ident" and token.text == "in")


# ---------------------------------------------------------------------------------------------
# Layer 3: types, by evaluating on synthetic profiles

_PLAUSIBLE_TYPES: Final = ("string", "int", "double", "bool", "list")
_MAX_PROFILES: Final = 48
_MAX_SAMPLE_EVALUATIONS: Final = 600


def _check_types(
    compiled: CompiledExpression, tokens: Sequence[_Token], custom: frozenset[str]
) -> None:
    names = compiled._names
    literals = _Literals.harvest(tokens)
    typed_custom = [name for name in names if name in custom]
    budget = _MAX_SAMPLE_EVALUATIONS
    first_problem: str | None = None
    for typing in _typings(typed_custom):
        types = {name: typing.get(name, "string") for name in names}
        problem: str | None = None
        for profile in _sample_profiles(names, types, literals):
            if budget == 0:
                return  # checked as far as the budget goes; evaluate() still checks results
            budget -= 1
            problem = _type_problem(compiled, profile)
            if problem is not None:
                break
        if problem is None:
            return
        first_problem = first_problem or problem
    if first_problem is not None:
        raise ExpressionError(first_problem, field=compiled.field)


def _typings(custom: Sequence[str]) -> Iterator[dict[str, str]]:
    """Typings of the custom attributes read: all of them for up to two, else uniform ones."""
    if len(custom) <= 2:
        for combination in itertools.product(_PLAUSIBLE_TYPES, repeat=len(custom)):
            yield dict(zip(custom, combination, strict=True))
    else:
        for kind in _PLAUSIBLE_TYPES:
            yield dict.fromkeys(custom, kind)


@dataclass(frozen=True)
class _Literals:
    strings: tuple[str, ...]
    ints: tuple[int, ...]
    doubles: tuple[float, ...]

    @classmethod
    def harvest(cls, tokens: Sequence[_Token]) -> _Literals:
        strings: dict[str, None] = {}
        ints: dict[int, None] = {}
        doubles: dict[float, None] = {}
        for token in tokens:
            if token.kind == "string":
                value = _string_value(token)
                if value is not None:
                    strings[value] = None
            elif token.kind == "int":
                number = int(token.text, 0)
                if number in _INT64:
                    ints[number] = None
            elif token.kind == "double":
                doubles[float(token.text)] = None
        return cls(tuple(strings)[:8], tuple(ints)[:4], tuple(doubles)[:4])

    def candidates(self, name: str, kind: str) -> list[Any]:
        if kind == "string":
            return [f"Sample {name}", *self.strings, "1"]
        if kind == "int":
            return [1, *self.ints, 0]
        if kind == "double":
            return [1.5, *self.doubles, *(float(i) for i in self.ints)]
        if kind == "bool":
            return [True, False]
        return [[f"Sample {name}"], *([s] for s in self.strings), []]


def _sample_profiles(
    names: Sequence[str], types: Mapping[str, str], literals: _Literals
) -> Iterator[dict[str, Any]]:
    options = [literals.candidates(name, types[name]) for name in names]
    base = {name: values[0] for name, values in zip(names, options, strict=True)}
    yield base
    if math.prod(len(values) for values in options) <= _MAX_PROFILES:
        for combination in itertools.product(*options):
            yield dict(zip(names, combination, strict=True))
    else:
        for i in range(1, max(len(values) for values in options)):
            yield {name: values[i % len(values)] for name, values in zip(names, options,
                                                                            strict=True)}
        chooser = random.Random(0)  # fixed seed: compiling is deterministic too
        for _ in range(_MAX_PROFILES):
            yield {name: chooser.choice(values) for name, values in zip(names, options,
                                                                         strict=True)}
    yield {}
    for name in names:
        yield {other: value for other, value in base.items() if other != name}


def _type_problem(compiled: CompiledExpression, profile: dict[str, Any]) -> str | None:
    try:
        result = compiled._program.execute({"user": profile})
    except BaseException as exc:
        if not _is_engine_failure(exc):
            raise
        failure = _classify(exc)
        return failure.message if failure.kind == "type" else None
    if not _has_type(result, compiled.expect):
        expected, got = _article(compiled.expect), _article(_cel_type(result))
        return f"must yield {expected}, but yields {got}"
    return None


# ---------------------------------------------------------------------------------------------
# Engine failures, values and types


@dataclass(frozen=True, slots=True)
class _Failure:
    kind: Literal["type", "missing", "data"]
    message: str
    key: str | None = None


_UNDEFINED = re.compile(r"Undefined variable or function: '([^']*)'")
_FUNCTION_FAILED = re.compile(r"Function '([^']*)' error: (.*)")


def _is_engine_failure(exc: BaseException) -> bool:
    """Exceptions the engine raises for a failing expression; a Rust panic is a BaseException."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def _classify(exc: BaseException) -> _Failure:
    text = _first_line(str(exc))
    if isinstance(exc, KeyError):
        key = exc.args[0] if exc.args else None
        return _Failure("missing", f"no such key {key!r}", key if isinstance(key, str) else None)
    if isinstance(exc, TypeError):
        sentence = _first_sentence(text)
        return _Failure("type", "type error: " + sentence[:1].lower() + sentence[1:])
    undefined = _UNDEFINED.match(text)
    if undefined and undefined[1] in FUNCTIONS:
        return _Failure("type", f"type error: no overload of '{undefined[1]}' takes these "
                                "argument types")
    if undefined:  # e.g. a comprehension variable used outside its comprehension
        return _Failure("type", f"unknown name '{undefined[1]}'")
    if text.startswith("Internal CEL error"):
        return _Failure("type", "unsupported construct: " + text.split(": ", 1)[-1])
    if isinstance(exc, ZeroDivisionError):
        return _Failure("data", "division by zero")
    text = text.removesuffix(" Check function arguments and their types.").rstrip(".")
    function = _FUNCTION_FAILED.match(text)
    if function:
        return _Failure("data", f"{function[1]}() failed: {function[2]}")
    if text.startswith("Conversion Error"):
        reason = text.rsplit(": ", 1)[-1]
        return _Failure("data", f"a profile value cannot be passed to the engine ({reason})")
    return _Failure("data", text or type(exc).__name__)


def _engine_value(name: str, value: Any, field: str) -> Any:
    if isinstance(value, str):
        return value if type(value) is str else str.__str__(value)
    if isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        if value in _INT64:
            return value
        raise EvaluationError(f"{field}: attribute 'user.{name}' is out of the 64-bit range",
                              field=field, attribute=name)
    if isinstance(value, list | tuple) and all(
        isinstance(item, str | bool | float) or (isinstance(item, int) and item in _INT64)
        for item in value
    ):
        return [str.__str__(item) if isinstance(item, str) else item for item in value]
    raise EvaluationError(
        f"{field}: attribute 'user.{name}' has a value of unsupported type "
        f"{type(value).__name__!r}",
        field=field, attribute=name,
    )


def _has_type(result: Any, expect: Expect) -> bool:
    if expect == "bool":
        return type(result) is bool
    if expect == "string":
        return isinstance(result, str)
    if expect == "list":
        return isinstance(result, list)
    return True


def _cel_type(result: Any) -> str:
    names = {bool: "bool", str: "string", int: "int", float: "double", list: "list",
             dict: "map", bytes: "bytes", type(None): "null"}
    for python, name in names.items():
        if type(result) is python:
            return name
    return type(result).__name__


def _article(kind: str) -> str:
    if kind in {"any", "null"}:
        return kind
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


# ---------------------------------------------------------------------------------------------
# Positions


def _line_column(source: str, position: int) -> tuple[int, int]:
    """1-based line and column (in code points) of a 0-based offset; lines end at '\\n'."""
    line = source.count("\n", 0, position) + 1
    return line, position - (source.rfind("\n", 0, position) + 1) + 1


def _offset(source: str, line: int, column: int) -> int:
    start = 0
    for _ in range(line - 1):
        newline = source.find("\n", start)
        if newline < 0:
            break
        start = newline + 1
    return min(start + column - 1, len(source))


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0].strip()


def _first_sentence(text: str) -> str:
    return text.split(". ", 1)[0].rstrip(".")
