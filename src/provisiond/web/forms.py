"""Form helpers: turn validation errors into messages shown beside the fields they concern."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from provisiond.errors import ProvisiondError, validation_message

FieldErrors = dict[str, str]


def validation_errors(exc: ValidationError, fields: Mapping[str, str] | None = None) -> FieldErrors:
    """``{form field: message}``; ``fields`` maps a model location ("auth.token") to a field."""
    errors: FieldErrors = {}
    for error in exc.errors(include_input=False, include_url=False):
        parts = [str(part) for part in error["loc"]]
        path = ".".join(parts)
        name = (fields or {}).get(path) or _by_suffix(parts, fields) or (parts[-1] if parts else "")
        message = validation_message(error)
        errors.setdefault(name or "form", message)
    return errors


def _by_suffix(parts: list[str], fields: Mapping[str, str] | None) -> str | None:
    for start in range(len(parts)):
        hit = (fields or {}).get(".".join(parts[start:]))
        if hit:
            return hit
    return None


def service_errors(
    exc: ProvisiondError, default: str, fields: Mapping[str, str] | None = None
) -> FieldErrors:
    """A service's refusal (Invalid, Conflict) beside its field, or beside ``default``."""
    field = exc.extra.get("field")
    name = (fields or {}).get(str(field), str(field)) if field else default
    return {name: exc.detail}


def checked(value: object) -> bool:
    return value in ("on", "true", "1", "yes")
