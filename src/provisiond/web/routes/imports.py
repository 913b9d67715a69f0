"""Users page: import a CSV file (upload, preview, apply with live counts) and export one.

The same services as ``POST /api/v1/imports``: the upload is read and planned, the preview page
shows the plan and every bad row, and Apply (asking first when it deactivates anyone) applies it
in the background while the page refreshes its counts.
"""

from __future__ import annotations

import io
import json

from fastapi import APIRouter
from starlette.datastructures import UploadFile
from starlette.responses import Response, StreamingResponse

from provisiond.authz import Action
from provisiond.errors import Invalid
from provisiond.services import import_apply, imports, user_export
from provisiond.web.confirm import Confirmation, ask, confirmed
from provisiond.web.context import ConsoleDep, PostDep, redirect, render

router = APIRouter()
CONSOLE_IMPORT = "/directory/imports"  # the upload: api/app.py's BodyLimit leaves it to streaming


@router.get("/directory/users.csv")
def export(console: ConsoleDep) -> Response:
    console.authorize(Action.DIRECTORY_READ)
    return StreamingResponse(
        user_export.export_csv(console.rt.db),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="users.csv"'},
    )


@router.get(CONSOLE_IMPORT)
def new_import(console: ConsoleDep) -> Response:
    console.authorize(Action.DIRECTORY_WRITE)
    return render(console.request, "directory/import.html", error=None, mapping="")


@router.post(CONSOLE_IMPORT)
def upload(console: PostDep) -> Response:
    console.authorize(Action.DIRECTORY_WRITE)
    assert console.form is not None
    file = console.form.get("file")
    mapping_text = console.field("mapping")
    if not isinstance(file, UploadFile) or not file.filename:
        return render(console.request, "directory/import.html", status_code=422,
                      error="Choose a CSV file to upload.", mapping=mapping_text)
    try:
        mapping = _mapping(mapping_text)
    except Invalid as exc:
        return render(console.request, "directory/import.html", status_code=422,
                      error=str(exc), mapping=mapping_text)
    options = imports.Options(
        mapping,
        deactivate_missing=console.field("deactivate_missing") == "on",
        skip_invalid=console.field("skip_invalid") == "on",
    )
    # Starlette spooled the upload to a temporary file (in memory up to 1 MiB).
    with (
        io.TextIOWrapper(file.file, encoding="utf-8-sig", newline="") as text,
        console.rt.db.session() as session,
    ):
        imported = imports.read_file(session, console.actor, text, options, filename=file.filename)
        import_id = imported.id
    return redirect(console.request, f"{CONSOLE_IMPORT}/{import_id}")


def _mapping(text: str) -> dict[str, str]:
    """``Column=attribute`` lines (``Column=`` ignores the column)."""
    mapping: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        column, sep, target = line.partition("=")
        if not sep or not column.strip():
            raise Invalid(f"mapping, line {number}: write Column=attribute, got {line!r}")
        mapping[column.strip()] = target.strip()
    return mapping


@router.get(CONSOLE_IMPORT + "/{import_id}")
def show(import_id: str, console: ConsoleDep) -> Response:
    console.authorize(Action.DIRECTORY_READ)
    with console.rt.db.session() as session:
        imported = imports.get_import(session, import_id)
    return render(
        console.request, "directory/import_plan.html", imp=imported,
        mapping=json.dumps(imported.options.get("mapping") or {}),
    )


@router.post(CONSOLE_IMPORT + "/{import_id}/apply")
def apply(import_id: str, console: PostDep) -> Response:
    console.authorize(Action.DIRECTORY_WRITE)
    page = f"{CONSOLE_IMPORT}/{import_id}"
    with console.rt.db.session() as session:
        imported = imports.get_import(session, import_id)
        leaving = imported.planned.get("deactivate", 0)
    if leaving and not confirmed(console):
        return ask(console, Confirmation(
            title="Apply the import and deactivate users?",
            summary=f"Applying this file deactivates {leaving} user{'' if leaving == 1 else 's'} "
            "it does not name: each loses every account provisiond gave them.",
            action=page + "/apply", button=f"Apply and deactivate {leaving}", back=page,
        ))
    with console.rt.db.session() as session:
        applier = import_apply.start(session, console.actor, import_id).applier or ""
    import_apply.in_background(console.rt.db, console.actor, import_id, applier)
    console.flash("Applying the import.")
    return redirect(console.request, page)


@router.post(CONSOLE_IMPORT + "/{import_id}/discard")
def discard(import_id: str, console: PostDep) -> Response:
    console.authorize(Action.DIRECTORY_WRITE)
    with console.rt.db.session() as session:
        imports.discard(session, import_id)
    console.flash("Discarded the import.")
    return redirect(console.request, "/directory/users")
