"""A compiled provisioning policy: scope and attribute mappings, evaluated per user. Pure.

All of an app's mappings are also compiled as one CEL map expression: one evaluation per user
instead of one per attribute (FIELD-NOTES: per-call overhead dominates). When that combined
evaluation fails, the mappings are evaluated one by one to name the one that failed and to
apply the rule for unset attributes: a mapping that is just ``user.<attr>`` writes nothing when
the attribute is unset; any other failure fails that user's operation, visibly.

Most mappings are just ``user.<attr>`` (five of the six defaults): when every such attribute
is a string, they are read from the profile and only the others go through the engine, which
gives the same document for a fraction of the engine's per-call cost.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from provisiond.domain.apps import Deprovision, DeprovisionAction, ProvisioningSettings
from provisiond.domain.policy import (
    AttributePath,
    DeprovisionChoice,
    PathError,
    PolicyDocument,
    resolve_path,
)
from provisiond.errors import Invalid
from provisiond.expressions import (
    CompiledExpression,
    EvaluationError,
    ExpressionError,
    compile_expression,
)

_DIRECT = re.compile(r"^\s*user\.([A-Za-z][A-Za-z0-9_]*)\s*$")


@dataclass(frozen=True)
class CompiledMapping:
    path: AttributePath
    expression: CompiledExpression
    direct: str | None  # the attribute, when the source is exactly ``user.<attr>``


class CompiledPolicy:
    """A policy checked and compiled once, evaluated for any number of users."""

    def __init__(
        self,
        document: PolicyDocument,
        scope: CompiledExpression | None,
        mappings: tuple[CompiledMapping, ...],
        combined: CompiledExpression,
        version: int | None,
    ) -> None:
        self.document = document
        self.scope = scope
        self.mappings = mappings
        self.combined = combined
        self.version = version
        # What every user's evaluation reuses: each mapping with its key in the combined map.
        self._keyed = tuple((str(index), mapping) for index, mapping in enumerate(mappings))
        self._direct = tuple(mapping.direct for mapping in mappings if mapping.direct)
        # The mappings that are not ``user.<attr>``, as one CEL map keyed as ``combined``
        # (None: there are none); "unbuilt" until first used, "broken" if the engine refused it.
        self._rest: CompiledExpression | None = None
        self._rest_state = "built" if len(self._direct) == len(mappings) else "unbuilt"

    def in_scope(self, profile: Mapping[str, Any]) -> bool:
        """Whether the scope admits ``profile``; raises EvaluationError for this user."""
        return True if self.scope is None else bool(self.scope.evaluate(profile))

    def attributes(self, profile: Mapping[str, Any]) -> dict[str, Any]:
        """The SCIM attributes the mappings give ``profile``; raises EvaluationError."""
        document = self._read_directly(profile)
        if document is not None:
            return document
        document = {}
        try:
            values = self.combined.evaluate(profile)
        except EvaluationError:
            values = None
        for key, mapping in self._keyed:
            if values is not None:
                value = values[key]
            else:
                try:
                    value = mapping.expression.evaluate(profile)
                except EvaluationError as exc:
                    if mapping.direct is not None and exc.attribute == mapping.direct:
                        continue  # an unset attribute maps to an unset attribute
                    raise
            mapping.path.assign(document, value)
        return document

    def _read_directly(self, profile: Mapping[str, Any]) -> dict[str, Any] | None:
        """The mappings' document with each ``user.<attr>`` mapping read from the profile and
        only the others through the engine (a CEL evaluation costs about 1 µs per mapping
        and 4 µs per call, most of a user's decide), or None where that could differ from
        the combined evaluation: an attribute unset or not a string (the engine converts
        and checks those), or the other mappings failing together."""
        if self._rest_state != "built" and not self._build_rest():
            return None
        if any(not _plain(profile.get(name)) for name in self._direct):
            return None
        values: Mapping[str, Any] = {}
        if self._rest is not None:
            try:
                values = self._rest.evaluate(profile)
            except EvaluationError:
                return None
        document: dict[str, Any] = {}
        for key, mapping in self._keyed:
            value = profile[mapping.direct] if mapping.direct else values[key]
            mapping.path.assign(document, value)
        return document

    def _build_rest(self) -> bool:
        """Compile the mappings that are not direct, once: each of them and all of them
        together compiled already, so only the engine itself could refuse them."""
        if self._rest_state == "broken":
            return False
        parts = [
            f'"{key}": ({mapping.expression.source})'
            for key, mapping in self._keyed
            if mapping.direct is None
        ]
        try:
            self._rest = compile_expression(
                "{" + ", ".join(parts) + "}", expect="any", field="mappings",
                known_attributes=self.combined.attributes,
            )
        except ExpressionError:
            self._rest_state = "broken"
            return False
        self._rest_state = "built"
        return True

    def deprovisioning(self, settings: ProvisioningSettings) -> Deprovision:
        """The deprovisioning rule: the policy's, or the app's setting where it inherits."""
        rules = self.document.deprovisioning
        action = (
            settings.deprovision_action
            if rules.action is DeprovisionChoice.INHERIT
            else DeprovisionAction(rules.action.value)
        )
        after = timedelta(days=rules.delete_after_days) if rules.delete_after_days else None
        return Deprovision(action, after)


def compile_policy(
    document: PolicyDocument,
    *,
    version: int | None = None,
    known_attributes: Collection[str] = (),
) -> CompiledPolicy:
    """Check every path and expression; the first problem is an Invalid naming its field."""
    scope = None
    if document.scope is not None and document.scope.strip():
        scope = compile_expression(
            document.scope, expect="bool", field="scope", known_attributes=known_attributes
        )
    mappings: list[CompiledMapping] = []
    seen: dict[tuple[str | None, str, str | None, str | None], str] = {}
    for text, source in document.mappings.items():
        field = f"mappings.{text}"
        try:
            path = resolve_path(text)
        except PathError as exc:
            raise Invalid(f"{field}: {exc}", field=field) from exc
        key = (path.schema, path.attribute.lower(), path.element_type, path.sub)
        if key in seen:
            raise Invalid(f"{field}: maps the same attribute as {seen[key]!r}", field=field)
        seen[key] = text
        expression = compile_expression(
            source, expect=path.result, field=field, known_attributes=known_attributes
        )
        direct = _DIRECT.match(source)
        mappings.append(CompiledMapping(path, expression, direct[1] if direct else None))
    combined_source = "{" + ", ".join(
        f'"{index}": ({mapping.expression.source})' for index, mapping in enumerate(mappings)
    ) + "}"
    try:
        combined = compile_expression(
            combined_source, expect="any", field="mappings", known_attributes=known_attributes
        )
    except ExpressionError as exc:  # each part passed alone; say so rather than point into glue
        raise Invalid(f"mappings: the mappings cannot be evaluated together: {exc.detail}") from exc
    return CompiledPolicy(document, scope, tuple(mappings), combined, version)


@cache
def default_policy() -> CompiledPolicy:
    """The policy of an app that has none saved (DEFAULT_MAPPINGS, everyone assigned)."""
    return compile_policy(PolicyDocument())


def _plain(value: Any) -> bool:
    """A string the engine would pass through as it is: a lone surrogate (which only SQLite
    can store) is refused by the engine, so it takes the engine's path and fails there."""
    if type(value) is not str:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
