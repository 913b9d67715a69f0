"""SCIM clients: ``/scim-clients`` (super_admin only). A client's token is shown once."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.problems import declare
from provisiond.api.schemas import Page, example
from provisiond.authz import Action
from provisiond.services import scim_clients
from provisiond.store.tables import ScimClient

router = APIRouter(prefix="/scim-clients", tags=["scim clients"])


class ScimClientOut(BaseModel):
    id: str
    name: str = Field(description="Its changes are logged with the actor scim:NAME.")
    prefix: str = Field(description="The token's first characters, to tell it apart.")
    status: str = Field(description="active or revoked")
    created_at: datetime
    last_used_at: datetime | None = Field(description="Updated at most once a minute.")
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ScimClient) -> ScimClientOut:
        return cls(
            id=row.id,
            name=row.name,
            prefix=row.prefix,
            status=scim_clients.status_of(row),
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


class ScimClientCreate(BaseModel):
    model_config = example({"name": "okta"})

    name: str = Field(min_length=1, max_length=128)


class ScimClientCreated(ScimClientOut):
    token: str = Field(description="The bearer token for /scim/v2: shown this once.")


@router.get("", dependencies=[requires(Action.ADMIN_MANAGE)])
def list_scim_clients(
    rt: RuntimeDep, _: AdminDep, include_revoked: bool = Query(default=False)
) -> Page[ScimClientOut]:
    """Every SCIM client, newest first; no token, only each one's prefix."""
    with rt.db.session() as session:
        rows = scim_clients.list_clients(session, include_revoked=include_revoked)
        return Page[ScimClientOut](items=[ScimClientOut.of(row) for row in rows])


@router.post("", status_code=201, dependencies=[requires(Action.ADMIN_MANAGE)],
             responses=declare(409))
def create_scim_client(
    body: ScimClientCreate, rt: RuntimeDep, actor: AdminDep, response: Response
) -> ScimClientCreated:
    """A new SCIM client and its token, in this answer only (``Cache-Control: no-store``)."""
    with rt.db.session() as session:
        secret, row = scim_clients.create_client(session, actor, body.name)
        out = ScimClientCreated(**ScimClientOut.of(row).model_dump(), token=secret)
    response.headers["Location"] = f"/api/v1/scim-clients/{out.id}"
    response.headers["Cache-Control"] = "no-store"  # the answer holds a secret
    return out


@router.post(
    "/{client_id}/revoke", dependencies=[requires(Action.ADMIN_MANAGE)],
    responses=declare(404, 409),
)
def revoke_scim_client(client_id: str, rt: RuntimeDep, actor: AdminDep) -> ScimClientOut:
    """Its token answers 401 on /scim/v2 from the next request on."""
    with rt.db.session() as session:
        return ScimClientOut.of(scim_clients.revoke_client(session, actor, client_id))
