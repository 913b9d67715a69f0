"""POST /scim/v2/Bulk (RFC 7644 §3.7): many writes in one request, each applied as the single
request would be, through the same functions (api/scim/resources.py), in the order sent (an
operation referring to a later POST's bulkId waiting for it).

Not atomic, as the RFC has it: each operation is its own directory change in its own
transaction (validated, logged with the SCIM client as actor, its tasks queued), exactly as if
it had been sent alone. A failed operation changes nothing and is reported in its place;
``failOnErrors`` stops the run after that many failures, the rest not attempted. The request
as a whole (its shape, its size, every operation's method and path) is checked before any
operation runs, so a malformed bulk changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response

from provisiond.api.deps import RuntimeDep
from provisiond.api.scim.deps import BodyDep, Caller, CallerDep, base_url
from provisiond.api.scim.errors import body_of, scim_response
from provisiond.api.scim.resources import (
    GROUPS,
    USERS,
    Kind,
    Written,
    create_resource,
    delete_resource,
    patch_resource,
    replace_resource,
)
from provisiond.errors import ProvisiondError
from provisiond.runtime import Runtime
from provisiond.services.inbound import BULK_REQUEST, BULK_RESPONSE, MAX_OPERATIONS, ScimError

_KINDS = {kind.name: kind for kind in (USERS, GROUPS)}
_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_PREFIX = "bulkId:"


@dataclass(frozen=True)
class Operation:
    """One checked operation of a BulkRequest (§3.7)."""

    method: str
    kind: Kind
    resource_id: str | None  # None for a POST
    bulk_id: str | None
    version: str | None
    data: Any

    def answer(self, status: int, location: str | None = None,
               version: str | None = None, response: Any = None) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "status": str(status)}
        for key, value in (("bulkId", self.bulk_id), ("location", location),
                           ("version", version), ("response", response)):
            if value is not None:
                out[key] = value
        return out


def _invalid(detail: str) -> ScimError:
    return ScimError(400, "invalidSyntax", detail)


def _operation(index: int, raw: Any) -> Operation:
    where = f"Operations[{index}]"
    if not isinstance(raw, dict):
        raise _invalid(f"{where} is not an object")
    method = raw.get("method")
    if not isinstance(method, str) or method.upper() not in _METHODS:
        raise _invalid(f"{where}.method is one of {', '.join(_METHODS)}, not {method!r}")
    method = method.upper()
    path = raw.get("path")
    if not isinstance(path, str):
        raise _invalid(f"{where}.path is required")
    parts = path.strip("/").split("/")
    kind = _KINDS.get(parts[0])
    if kind is None or len(parts) > 2 or (len(parts) == 2) == (method == "POST") or not parts[-1]:
        shape = "/Users or /Groups" if method == "POST" else "/Users/{id} or /Groups/{id}"
        raise _invalid(f"{where}.path of a {method} is {shape}, not {path!r}")
    bulk_id, version = raw.get("bulkId"), raw.get("version")
    if method == "POST" and not (isinstance(bulk_id, str) and bulk_id):
        raise _invalid(f"{where}: a POST needs a bulkId (RFC 7644 §3.7)")
    if bulk_id is not None and not isinstance(bulk_id, str):
        raise _invalid(f"{where}.bulkId must be a string")
    if version is not None and not isinstance(version, str):
        raise _invalid(f"{where}.version must be a string")
    if method != "DELETE" and raw.get("data") is None:
        raise _invalid(f"{where}: a {method} needs data")
    return Operation(method, kind, parts[1] if len(parts) == 2 else None, bulk_id, version,
                     raw.get("data"))


def parse(body: Any) -> tuple[int | None, list[Operation]]:
    """(failOnErrors, the operations) of a BulkRequest, or a 400/413 before anything runs."""
    if not isinstance(body, dict) or BULK_REQUEST not in (body.get("schemas") or []):
        raise _invalid(f"schemas must be [{BULK_REQUEST!r}]")
    fail_on_errors = body.get("failOnErrors")
    if fail_on_errors is not None and (
        not isinstance(fail_on_errors, int) or isinstance(fail_on_errors, bool)
        or fail_on_errors < 1
    ):
        raise ScimError(400, "invalidValue", "failOnErrors is a positive integer")
    raw = body.get("Operations")
    if not isinstance(raw, list) or not raw:
        raise _invalid("Operations is a non-empty list")
    if len(raw) > MAX_OPERATIONS:
        raise ScimError(413, "tooLarge",
                        f"{len(raw)} operations: at most {MAX_OPERATIONS} (maxOperations)")
    operations = [_operation(i, item) for i, item in enumerate(raw)]
    ids = [op.bulk_id for op in operations if op.bulk_id is not None]
    if len(ids) != len(set(ids)):
        raise _invalid("each bulkId is used by one operation only")
    return fail_on_errors, operations


def references(value: Any) -> set[str]:
    """The bulkIds a value refers to: every ``"bulkId:xyz"`` string in it (§3.7.2)."""
    if isinstance(value, str):
        return {value[len(_PREFIX):]} if value.startswith(_PREFIX) else set()
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return set().union(*(references(item) for item in items))


def resolve(value: Any, created: dict[str, str]) -> Any:
    """``value`` with every ``"bulkId:xyz"`` string replaced by the id that operation created."""
    if isinstance(value, str) and value.startswith(_PREFIX):
        return created[value[len(_PREFIX):]]
    if isinstance(value, list):
        return [resolve(item, created) for item in value]
    if isinstance(value, dict):
        return {key: resolve(item, created) for key, item in value.items()}
    return value


def _unresolvable(wanted: set[str], posted: set[str], failed: set[str]) -> ScimError | None:
    """Why an operation referring to ``wanted`` can never run (a bulkId no POST has, or one
    whose POST failed)."""
    if unknown := sorted(wanted - posted):
        return ScimError(400, "invalidValue", f"no POST of this bulk has bulkId {unknown[0]!r}")
    if gone := sorted(wanted & failed):
        return ScimError(400, "invalidValue", f"the POST with bulkId {gone[0]!r} failed")
    return None


def _apply(
    rt: Runtime, caller: Caller, op: Operation, created: dict[str, str], base: str
) -> dict[str, Any]:
    data = resolve(op.data, created)
    if op.method == "POST":
        new = create_resource(rt, op.kind, caller, data, base)
        assert op.bulk_id is not None  # parse() requires one on a POST
        created[op.bulk_id] = new["id"]
        return op.answer(201, new["meta"]["location"], new["meta"]["version"])
    resource_id = resolve(op.resource_id, created)
    how = Written(base, op.version)
    if op.method == "DELETE":
        delete_resource(rt, op.kind, caller, resource_id, how)
        return op.answer(204)
    write = replace_resource if op.method == "PUT" else patch_resource
    out = write(rt, op.kind, caller, resource_id, data, how)
    assert out is not None  # Written answers with the body by default
    return op.answer(200, out["meta"]["location"], out["meta"]["version"])


def run(rt: Runtime, caller: Caller, body: Any, base: str) -> dict[str, Any]:
    """The BulkResponse of a BulkRequest: one result per operation attempted, in request order.

    Operations run in the order sent, except that one referring to a later POST's bulkId waits
    until that POST has run (§3.7.2: the service provider resolves references); operations
    left waiting on each other are a circle, each refused with 409 (§3.7.1)."""
    fail_on_errors, operations = parse(body)
    posted = {op.bulk_id for op in operations if op.method == "POST" and op.bulk_id}
    created: dict[str, str] = {}
    failed: set[str] = set()
    results: dict[int, dict[str, Any]] = {}
    pending = list(range(len(operations)))
    wants = [references(op.data) | references(op.resource_id) for op in operations]

    def fail(index: int, exc: ProvisiondError) -> bool:
        """Record a failure; True when failOnErrors says stop."""
        op = operations[index]
        error = body_of(exc)
        results[index] = op.answer(int(error["status"]), response=error)
        if op.method == "POST" and op.bulk_id:
            failed.add(op.bulk_id)
        errors = sum(1 for r in results.values() if "response" in r)
        return fail_on_errors is not None and errors >= fail_on_errors

    while pending:
        ready = None
        for index in pending:
            problem = _unresolvable(wants[index], posted, failed)
            if problem is not None or wants[index] <= created.keys():
                ready = (index, problem)
                break
        if ready is None:  # each waits on another: a circle
            circle = ScimError(409, None, "a circular bulkId reference (RFC 7644 §3.7.1)")
            for index in pending:
                if fail(index, circle):
                    break
            break
        index, problem = ready
        pending.remove(index)
        try:
            if problem is not None:
                raise problem
            results[index] = _apply(rt, caller, operations[index], created, base)
        except ProvisiondError as exc:
            if fail(index, exc):
                break
    return {"schemas": [BULK_RESPONSE], "Operations": [results[i] for i in sorted(results)]}


def routes() -> APIRouter:
    router = APIRouter()

    @router.post("/Bulk")
    def bulk(request: Request, rt: RuntimeDep, caller: CallerDep, body: BodyDep) -> Response:
        """Many writes at once (RFC 7644 §3.7), each its own directory change."""
        return scim_response(run(rt, caller, body, base_url(request)))

    return router
