"""PATCH requests as the big IdPs send them, made into RFC 7644 §3.5.2 operations.

Entra capitalises ``op`` ("Replace") and sends booleans as strings ("False"); Okta replaces
``{"active": false}`` with no path. scim2-models reads the capitalised op itself; the string
booleans and the provisiond extension (custom attributes, which scim2-models has no model
for) are handled here.
"""

from __future__ import annotations

from typing import Any

from provisiond.services.inbound import PATCH_OP, ScimError, invalid_value

MAX_OPERATIONS = 1000


def normalise(body: Any) -> list[dict[str, Any]]:
    """The operations of a PatchOp body, checked for shape, string booleans made booleans."""
    if not isinstance(body, dict):
        raise ScimError(400, "invalidSyntax", "the body must be a JSON object")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or PATCH_OP not in schemas:
        raise ScimError(400, "invalidSyntax", f"schemas must be [{PATCH_OP!r}]")
    operations = next((v for k, v in body.items() if k.lower() == "operations"), None)
    if not isinstance(operations, list) or not operations:
        raise ScimError(400, "invalidSyntax", "Operations must be a non-empty list")
    if len(operations) > MAX_OPERATIONS:
        raise invalid_value(f"at most {MAX_OPERATIONS} operations in one PATCH")
    out: list[dict[str, Any]] = []
    for operation in operations:
        if not isinstance(operation, dict) or not isinstance(operation.get("op"), str):
            raise ScimError(400, "invalidSyntax", "each operation is an object with an op")
        operation = dict(operation)
        operation["op"] = operation["op"].lower()
        path = operation.get("path")
        if path is not None and not isinstance(path, str):
            raise ScimError(400, "invalidPath", "path must be a string")
        if "value" in operation:
            operation["value"] = _booleans(operation["value"], path)
        out.append(operation)
    return out


def _booleans(value: Any, path: str | None) -> Any:
    if isinstance(path, str) and path.strip().lower() in ("active", "emails.primary", "primary"):
        return as_boolean(value)
    if path is None and isinstance(value, dict):
        return {k: as_boolean(v) if k.lower() == "active" else v for k, v in value.items()}
    return value


def as_boolean(value: Any) -> Any:
    """Entra's "True"/"False" as booleans; anything else as it is (validation judges it)."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def split_extension(
    operations: list[dict[str, Any]], urn: str, values: dict[str, Any]
) -> tuple[list[dict[str, Any]], bool]:
    """Apply the operations on ``urn``'s attributes to ``values`` (in place); the others
    are returned for scim2-models, with whether ``values`` changed."""
    rest: list[dict[str, Any]] = []
    changed = False
    prefix = urn.lower()
    for operation in operations:
        path = operation.get("path")
        value = operation.get("value")
        if path is None and isinstance(value, dict):
            key = next((k for k in value if k.lower() == prefix), None)
            if key is not None:
                value = dict(value)
                _apply(values, operation["op"], None, value.pop(key))
                changed = True
                if value:
                    rest.append({**operation, "value": value})
                continue
        if isinstance(path, str) and path.lower().startswith(prefix):
            name = path[len(prefix) :].lstrip(":") or None
            _apply(values, operation["op"], name, value)
            changed = True
            continue
        rest.append(operation)
    return rest, changed


def _apply(values: dict[str, Any], op: str, name: str | None, value: Any) -> None:
    if name is None:
        if op == "remove":
            values.clear()
            return
        if not isinstance(value, dict):
            raise invalid_value("the provisiond extension's value is an object of attributes")
        if op == "replace":
            values.clear()
        values.update(value)
        return
    if op == "remove":
        values.pop(name, None)
    elif op in ("add", "replace"):
        values[name] = value
    else:
        raise invalid_value(f"{op!r} is not a PATCH operation: add, remove or replace")
