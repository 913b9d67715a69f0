"""SCIM filters (RFC 7644 §3.4.2.2) compiled to SQLAlchemy Core conditions.

scim2-models parses the filter (``ScimFilter(text).ast``: its grammar gives ``and`` precedence
over ``or``, reads ``true``/``false``/``null`` as JSON values and nests at most 32 deep); this
module only walks the tree. A *scope* says which SCIM attribute is which column, of which
type and case rule (RFC 7643 §2.1 ``caseExact``). Whatever the scope does not name is refused
with ``invalidFilter``: a filter is never silently widened by dropping a clause.

Every condition compiled here is two-valued (never SQL ``NULL``), so ``not (...)`` means what
it means in SCIM and not what three-valued logic makes of a missing attribute:
``title eq "x"`` is false for a user without a title and ``not (title eq "x")`` is true.
The semantics follow scim2-models' own evaluator (``ScimFilter.match``), which the property
tests hold the SQL to: ``ne`` holds for an absent attribute, ``eq null`` means absent, ``pr``
is false for an empty string.

Pure: no session, no I/O; ``dialect`` ("sqlite" or "postgresql") picks the few functions
that differ (case-exact substring tests, a byte-wise collation for ordering).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from scim2_models import ScimFilter
from scim2_models.exceptions import SCIMException
from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)
from sqlalchemy import (
    ColumnElement,
    SQLColumnExpression,
    and_,
    false,
    func,
    literal,
    not_,
    or_,
    true,
)

Kind = Literal["string", "boolean", "dateTime"]
_KEYWORDS = frozenset(
    {"not", "and", "or", "pr", "true", "false", "null", "eq", "ne", "co", "sw", "ew", "gt", "ge",
     "lt", "le"}
)
MAX_FILTER_LENGTH = 4096


class InvalidFilter(ValueError):
    """A filter that cannot be read or names what the endpoint does not have (400 invalidFilter)."""


class UnknownAttribute(InvalidFilter):
    """An attribute the resource type does not have: false in a search across several types."""


@dataclass(frozen=True)
class Attribute:
    """One filterable SCIM attribute.

    ``column``: its value (NULL when absent); for a boolean, the condition itself.
    ``folded``: the column holds the value casefolded already (``users.login_key``), so a
    comparison needs no ``lower()`` and can use the column's index.
    """

    column: SQLColumnExpression[Any]
    kind: Kind = "string"
    case_exact: bool = False
    folded: bool = False
    present: ColumnElement[bool] | None = None  # when it is not simply "not null, not empty"


@dataclass(frozen=True)
class MultiValued:
    """A multi-valued complex attribute (``emails``, ``members``): the scope of one value's
    sub-attributes, and how a condition on one value becomes a condition on the resource
    (an ``EXISTS``, or nothing for an attribute that holds at most one value)."""

    scope: Mapping[str, Attribute]
    any_value: Callable[[ColumnElement[bool]], ColumnElement[bool]]
    default: str = "value"  # ``emails eq "x"`` compares ``emails.value``


@dataclass(frozen=True)
class Scope:
    """The attributes of one resource type, by lower-cased name (``name.givenname``,
    ``meta.lastmodified``); extension attributes under their schema URN too."""

    attributes: Mapping[str, Attribute]
    multi_valued: Mapping[str, MultiValued] = field(default_factory=dict)
    schemas: tuple[str, ...] = ()  # URNs an attribute may be qualified with
    # Attributes only known at request time (custom profile attributes): name -> attribute.
    resolve: Callable[[str], Attribute | None] | None = None


# ``userName eq "…"``: what Okta and Entra send before every create, read without the full
# grammar (the LALR parser costs ~2 ms a filter it has not seen). Same tree as the parser's.
_SIMPLE_EQ = re.compile(
    r'\s*([A-Za-z][A-Za-z0-9_-]*(?:\.[A-Za-z][A-Za-z0-9_-]*)?)\s+eq\s+("(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9A-Fa-f]{4})*")\s*'
)


def simple_equality(text: str) -> tuple[str, str] | None:
    """(attribute path as written, value) of a filter ``attr eq "value"``; None for any
    other filter. The parser reads such a filter into the same comparison."""
    if len(text) > MAX_FILTER_LENGTH:
        return None
    simple = _SIMPLE_EQ.fullmatch(text)
    if simple is None or simple.group(1).lower() in _KEYWORDS:
        return None
    value: str = json.loads(simple.group(2))
    return simple.group(1), value


def parse(text: str) -> FilterNode:
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilter(f"the filter is longer than {MAX_FILTER_LENGTH} characters")
    simple = simple_equality(text)
    if simple is not None:
        attr, _, sub = simple[0].partition(".")
        return Comparison(
            attr_path=AttrPath(attr=attr, sub_attr=sub or None),
            op=CompareOperator.eq,
            value=simple[1],
        )
    try:
        return ScimFilter(text).ast
    except (SCIMException, ValueError) as exc:
        raise InvalidFilter(f"the filter cannot be read: {_detail(exc)}") from None


def compile_filter(
    text: str, scope: Scope, dialect: str, *, unknown_is_false: bool = False
) -> ColumnElement[bool]:
    """The condition ``text`` stands for; ``InvalidFilter`` names what is wrong with it.

    ``unknown_is_false``: an attribute the scope lacks is false rather than an error, as
    RFC 7644 §3.4.2.1 wants of a search across resource types (POST /.search at the root)."""
    return _Compiler(scope, dialect, unknown_is_false).node(parse(text))


def _detail(exc: Exception) -> str:
    return str(getattr(exc, "detail", None) or exc)


class _Compiler:
    def __init__(self, scope: Scope, dialect: str, unknown_is_false: bool = False) -> None:
        self.scope = scope
        self.dialect = dialect
        self.unknown_is_false = unknown_is_false

    def node(self, node: FilterNode) -> ColumnElement[bool]:
        try:
            return self._node(node)
        except UnknownAttribute:
            if self.unknown_is_false and not isinstance(node, LogicalExpr | Not):
                return false()
            raise

    def _node(self, node: FilterNode) -> ColumnElement[bool]:
        if isinstance(node, LogicalExpr):
            terms = [self.node(term) for term in node.terms]
            return and_(*terms) if node.op == LogicalOperator.and_ else or_(*terms)
        if isinstance(node, Not):
            return not_(self.node(node.expr))
        if isinstance(node, Comparison | Present):
            return self.leaf(node, self.scope)
        if isinstance(node, ValuePath):
            multi = self._multi(node.attr_path)
            if multi is None:
                raise UnknownAttribute(f"{node.attr_path} is not a multi-valued attribute")
            inner = _Compiler(Scope(multi.scope), self.dialect, self.unknown_is_false).node(
                node.val_filter
            )
            return multi.any_value(inner)
        raise InvalidFilter(f"unsupported filter expression {node}")

    def _multi(self, path: AttrPath) -> MultiValued | None:
        if path.uri is not None and path.uri.lower() not in self.scope.schemas:
            return None
        return self.scope.multi_valued.get(path.attr.lower())

    def leaf(self, node: Comparison | Present, scope: Scope) -> ColumnElement[bool]:
        path = node.attr_path
        multi = self._multi(path) if scope is self.scope else None
        if multi is not None:
            # ``emails.value co "@x"`` is ``emails[value co "@x"]``.
            sub = AttrPath(attr=path.sub_attr or multi.default)
            inner_node: Comparison | Present = (
                Comparison(attr_path=sub, op=node.op, value=node.value)
                if isinstance(node, Comparison)
                else Present(attr_path=sub)
            )
            return multi.any_value(self.leaf(inner_node, Scope(multi.scope)))
        attribute = self._attribute(path, scope)
        if isinstance(node, Present):
            return _present(attribute)
        return self.compare(attribute, node.op, node.value, str(path))

    def _attribute(self, path: AttrPath, scope: Scope) -> Attribute:
        name = path.attr.lower() + (f".{path.sub_attr.lower()}" if path.sub_attr else "")
        if path.uri is not None:
            uri = path.uri.lower()
            if uri not in scope.schemas:
                raise UnknownAttribute(f"unknown schema {path.uri} in the filter")
            found = scope.attributes.get(f"{uri}:{name}") or scope.attributes.get(name)
        else:
            found = scope.attributes.get(name)
        if found is None and scope.resolve is not None and path.sub_attr is None:
            found = scope.resolve(path.attr)
        if found is None:
            raise UnknownAttribute(f"unknown attribute {path} in the filter")
        return found

    def compare(
        self, attribute: Attribute, op: CompareOperator, value: Any, name: str
    ) -> ColumnElement[bool]:
        if value is None:
            if op == CompareOperator.eq:
                return not_(_not_null(attribute))
            if op == CompareOperator.ne:
                return _not_null(attribute)
            raise InvalidFilter(f"{name} {op.value} null: only eq and ne compare with null")
        if op == CompareOperator.ne:
            return not_(self.compare(attribute, CompareOperator.eq, value, name))
        if attribute.kind == "boolean":
            return self._boolean(attribute, op, value, name)
        if attribute.kind == "dateTime":
            return self._datetime(attribute, op, value, name)
        return self._string(attribute, op, value, name)

    def _boolean(
        self, attribute: Attribute, op: CompareOperator, value: Any, name: str
    ) -> ColumnElement[bool]:
        if not isinstance(value, bool):
            raise InvalidFilter(f"{name} is a boolean: compare it with true or false")
        if op != CompareOperator.eq:
            raise InvalidFilter(f"{name} is a boolean: only eq, ne and pr apply")
        condition = attribute.column
        return and_(_not_null(attribute), condition if value else not_(condition))

    def _datetime(
        self, attribute: Attribute, op: CompareOperator, value: Any, name: str
    ) -> ColumnElement[bool]:
        if op in (CompareOperator.co, CompareOperator.sw, CompareOperator.ew):
            raise InvalidFilter(f"{name} is a dateTime: {op.value} does not apply")
        if not isinstance(value, str):
            raise InvalidFilter(f"{name} is a dateTime: compare it with a quoted date")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidFilter(f"{value!r} is not an xsd:dateTime (RFC 7643 §2.3.5)") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return and_(attribute.column.is_not(None), _ordered(attribute.column, op, moment))

    def _string(
        self, attribute: Attribute, op: CompareOperator, value: Any, name: str
    ) -> ColumnElement[bool]:
        if not isinstance(value, str):
            raise InvalidFilter(f"{name} is a string: compare it with a quoted value")
        column = attribute.column
        if attribute.folded:
            value = value.casefold()
        elif not attribute.case_exact:
            column, value = func.lower(column), value.lower()
        guard = column.is_not(None)
        if op == CompareOperator.eq:
            return and_(guard, column == value)
        if op in (CompareOperator.co, CompareOperator.sw, CompareOperator.ew):
            return and_(guard, self._substring(column, op, value, attribute.case_exact))
        if self.dialect == "postgresql":
            # Byte-wise order, as SCIM clients and Python compare: not the database's locale.
            column = column.collate("C")
        return and_(guard, _ordered(column, op, value))

    def _substring(
        self, column: SQLColumnExpression[Any], op: CompareOperator, value: str, case_exact: bool
    ) -> ColumnElement[bool]:
        if case_exact and self.dialect == "sqlite":
            # SQLite's LIKE ignores ASCII case: case-exact tests use substr/instr instead.
            if op == CompareOperator.co:
                return func.instr(column, value) > 0
            if op == CompareOperator.sw:
                return func.substr(column, 1, len(value)) == value
            return and_(
                func.length(column) >= len(value), func.substr(column, -len(value)) == value
            )
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = {
            CompareOperator.co: f"%{escaped}%",
            CompareOperator.sw: f"{escaped}%",
            CompareOperator.ew: f"%{escaped}",
        }[op]
        return column.like(pattern, escape="\\")


def _ordered(
    column: SQLColumnExpression[Any], op: CompareOperator, value: Any
) -> ColumnElement[bool]:
    operators = {
        CompareOperator.eq: column.__eq__,
        CompareOperator.gt: column.__gt__,
        CompareOperator.ge: column.__ge__,
        CompareOperator.lt: column.__lt__,
        CompareOperator.le: column.__le__,
    }
    if op in operators:
        return operators[op](value)
    raise InvalidFilter(f"the operator {op.value} does not apply here")


def _not_null(attribute: Attribute) -> ColumnElement[bool]:
    if attribute.kind == "boolean":
        return attribute.present if attribute.present is not None else true()
    return attribute.column.is_not(None)


def _present(attribute: Attribute) -> ColumnElement[bool]:
    if attribute.present is not None:
        return attribute.present
    if attribute.kind == "string":
        return and_(attribute.column.is_not(None), attribute.column != "")
    return _not_null(attribute)


def constant(value: bool) -> Attribute:
    """A boolean every value has (``emails.primary`` of the one email a user has)."""
    return Attribute(true() if value else false(), kind="boolean", present=true())


def literal_string(value: str, present: ColumnElement[bool]) -> Attribute:
    return Attribute(literal(value), present=present)
