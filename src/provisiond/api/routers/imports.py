"""CSV import of users: upload (read and plan), look, apply with live counts, discard; and
the export (``GET /exports/users``) that imports back unchanged.

The upload is the request body itself (``text/csv``), streamed to a spooled temporary file and
read from there, so a 100,000-row file never sits in memory; its size limit is
``PROVISIOND_IMPORT_MAX_BYTES``, not the API's body limit (api/app.py's ``BodyLimit``).
"""

from __future__ import annotations

import io
import json
import tempfile
from typing import IO

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.problems import declare
from provisiond.api.schemas import ImportOut
from provisiond.authz import Action
from provisiond.errors import Invalid, PayloadTooLarge
from provisiond.runtime import Runtime
from provisiond.services import import_apply, imports, user_export
from provisiond.services.context import Actor

router = APIRouter(prefix="/imports", tags=["imports"])
exports = APIRouter(prefix="/exports", tags=["users"])
PATH = "/api/v1/imports"  # the path whose body BodyLimit leaves to this router

EXAMPLE = (
    "login,email,firstName,lastName,department,groups\r\n"
    "ada.lovelace,ada@example.com,Ada,Lovelace,Engineering,Engineers;Staff\r\n"
)
CSV_BODY = {
    "requestBody": {
        "required": True,
        "description": "The CSV file: a header row, then one user a row (UTF-8).",
        "content": {"text/csv": {"schema": {"type": "string"}, "example": EXAMPLE}},
    }
}


def parse_mapping(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        mapping = json.loads(raw)
    except ValueError:
        raise Invalid("mapping: not JSON", field="mapping") from None
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise Invalid(
            'mapping: a JSON object of column -> attribute ("" ignores a column)', field="mapping"
        )
    return mapping


async def spool(request: Request, limit: int) -> IO[bytes]:
    """The body in a temporary file (in memory up to 1 MiB), refused past ``limit`` bytes."""
    file = tempfile.SpooledTemporaryFile(max_size=1 << 20)  # noqa: SIM115 - returned open
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            file.close()
            raise PayloadTooLarge(f"the file is larger than {limit} bytes")
        file.write(chunk)
    file.seek(0)
    return file


def read_upload(
    rt: Runtime, actor: Actor, body: IO[bytes], options: imports.Options, filename: str | None
) -> ImportOut:
    with (
        body,
        io.TextIOWrapper(body, encoding="utf-8-sig", newline="") as text,
        rt.db.session() as session,
    ):
        return ImportOut.of(imports.read_file(session, actor, text, options, filename=filename))


@router.post(
    "",
    status_code=201,
    dependencies=[requires(Action.DIRECTORY_WRITE)],
    responses=declare(413),
    openapi_extra=CSV_BODY,
)
async def create_import(
    request: Request,
    rt: RuntimeDep,
    actor: AdminDep,
    mapping: str | None = Query(
        default=None,
        max_length=4096,
        description='Column -> profile attribute, as JSON: {"Employee ID": "employeeNumber", '
        '"Notes": ""} ("" ignores a column). Columns not named map to the attribute of '
        "their own name; `groups` lists group names separated by `;`.",
    ),
    deactivate_missing: bool = Query(
        default=False, description="Also plan to deactivate every user the file does not name."
    ),
    skip_invalid: bool = Query(
        default=False, description="Allow applying the good rows of a file with bad ones."
    ),
    filename: str | None = Query(default=None, max_length=256),
) -> ImportOut:
    """Read a CSV file of users and plan what it changes: creates, updates, unchanged users and
    (``deactivate_missing``) deactivations, with every bad row's line and reason. Nothing is
    changed: apply it with ``POST /imports/{id}/apply``. An import with bad rows is
    ``invalid`` (it cannot be applied) unless ``skip_invalid``."""
    options = imports.Options(parse_mapping(mapping), deactivate_missing, skip_invalid)
    body = await spool(request, rt.settings.import_max_bytes)
    return await run_in_threadpool(read_upload, rt, actor, body, options, filename)


@router.get("/{import_id}", dependencies=[requires(Action.DIRECTORY_READ)], responses=declare(404))
def get_import(import_id: str, rt: RuntimeDep, _: AdminDep) -> ImportOut:
    """An import: its plan, its errors, and while it is applied, its live counts."""
    with rt.db.session() as session:
        return ImportOut.of(imports.get_import(session, import_id))


@router.post(
    "/{import_id}/apply",
    status_code=202,
    dependencies=[requires(Action.DIRECTORY_WRITE)],
    responses=declare(404, 409),
)
def apply_import(import_id: str, rt: RuntimeDep, actor: AdminDep) -> ImportOut:
    """Apply a ``ready`` import (409 otherwise), a chunk of rows at a time, in the background:
    ``GET /imports/{id}`` shows the counts until its status is ``succeeded`` or ``failed``."""
    with rt.db.session() as session:
        started = import_apply.start(session, actor, import_id)
        out, applier = ImportOut.of(started), started.applier or ""
    import_apply.in_background(rt.db, actor, import_id, applier)
    return out


@router.delete(
    "/{import_id}",
    status_code=204,
    dependencies=[requires(Action.DIRECTORY_WRITE)],
    responses=declare(404, 409),
)
def discard_import(import_id: str, rt: RuntimeDep, _: AdminDep) -> None:
    """Forget an import that is not being applied (a dry run's, say)."""
    with rt.db.session() as session:
        imports.discard(session, import_id)


@exports.get(
    "/users",
    dependencies=[requires(Action.DIRECTORY_READ)],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def export_users(rt: RuntimeDep, _: AdminDep) -> StreamingResponse:
    """Every user as CSV, with their direct group memberships (``groups``, ``;``-separated):
    the columns ``POST /imports`` reads, so the file imports back unchanged."""
    return StreamingResponse(
        user_export.export_csv(rt.db),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="users.csv"'},
    )
