from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from provisiond import authz
from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.problems import declare
from provisiond.api.report_schemas import ReceiptOut, SigningKeyOut
from provisiond.api.schemas import Page
from provisiond.authz import Action
from provisiond.services import receipts, signing

router = APIRouter(tags=["receipts"])


@router.get(
    "/users/{user_id}/receipt",
    dependencies=[requires(Action.DIRECTORY_READ)],
    responses={**declare(404), 200: {"model": ReceiptOut, "description": "The signed receipt"}},
    response_class=JSONResponse,
)
def get_receipt(user_id: str, rt: RuntimeDep, actor: AdminDep) -> JSONResponse:
    """A user's revocation receipt, signed (Ed25519): every app the user has an account in,
    the deprovisioning sent there, the remote id, what the app showed when the account was
    read back and when. ``status`` is ``confirmed`` only once every app's read-back showed
    the access gone. Save it and check it offline with ``provisiond receipt verify FILE``.
    An app_admin's receipt covers its granted apps only (``scope`` says so)."""
    with rt.db.session() as session:
        document = receipts.signed_receipt(
            session, rt.vault, user_id, apps=authz.app_scope(actor)
        )
    # The exact JSON that was signed: not re-serialised through a model.
    return JSONResponse(document)


@router.get("/receipts/keys", dependencies=[requires(Action.DIRECTORY_READ)])
def list_signing_keys(rt: RuntimeDep, _: AdminDep) -> Page[SigningKeyOut]:
    """The public keys that sign receipts, newest first, retired ones included (receipts they
    signed still verify). Give this document to ``provisiond receipt verify --keys``."""
    with rt.db.session() as session:
        keys = signing.published(session)
    return Page[SigningKeyOut](items=[SigningKeyOut(**asdict(key)) for key in keys])
