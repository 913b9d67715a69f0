"""Reports: a leaver's signed receipt (page and download) and the access posture (page, CSV)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from provisiond.authz import Action, app_scope
from provisiond.services import posture, receipts
from provisiond.web.context import Console, ConsoleDep, render

router = APIRouter()


def _receipt(console: Console, user_id: str) -> dict[str, Any]:
    console.authorize(Action.DIRECTORY_READ)
    with console.rt.db.session() as session:
        return receipts.signed_receipt(
            session, console.rt.vault, user_id, apps=app_scope(console.actor)
        )


@router.get("/directory/users/{user_id}/receipt")
def receipt_page(user_id: str, console: ConsoleDep) -> Response:
    document = _receipt(console, user_id)
    return render(console.request, "reports/receipt.html", document=document,
                  receipt=document["receipt"], signature=document["signature"])


@router.get("/directory/users/{user_id}/receipt.json")
def receipt_download(user_id: str, console: ConsoleDep) -> Response:
    document = _receipt(console, user_id)
    login = "".join(c for c in document["receipt"]["user"]["login"] if c.isalnum() or c in ".-_")
    return Response(
        json.dumps(document, indent=2, ensure_ascii=False) + "\n",
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="receipt-{login or user_id}.json"'},
    )


@router.get("/posture")
def posture_page(console: ConsoleDep) -> Response:
    console.authorize(Action.DIRECTORY_READ)
    with console.rt.db.session() as session:
        found = posture.report(session, apps=app_scope(console.actor))
    return render(console.request, "reports/posture.html", posture=found)


@router.get("/posture.csv")
def posture_csv(console: ConsoleDep) -> Response:
    console.authorize(Action.DIRECTORY_READ)
    with console.rt.db.session() as session:
        found = posture.report(session, apps=app_scope(console.actor))
    return Response(
        posture.as_csv(found), media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="posture.csv"'},
    )
