"""API tokens: ``/tokens`` (super_admin only). A token's secret is shown once, on creation."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.schemas import Page
from provisiond.authz import Action
from provisiond.services import tokens
from provisiond.services.context import Role
from provisiond.store.tables import ApiToken

router = APIRouter(prefix="/tokens", tags=["tokens"])


class TokenOut(BaseModel):
    id: str
    name: str
    role: str
    apps: list[str]
    prefix: str = Field(description="The token's first characters, to tell it apart.")
    status: str = Field(description="active, expired or revoked")
    created_at: datetime
    last_used_at: datetime | None = Field(description="Updated at most once a minute.")
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiToken) -> TokenOut:
        return cls(
            id=row.id,
            name=row.name,
            role=row.role,
            apps=list(row.apps or ()),
            prefix=row.prefix,
            status=tokens.status_of(row),
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
        )


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    role: Role = Role.SUPER_ADMIN
    apps: list[str] = Field(default_factory=list, description="app_admin: the apps it manages.")
    expires_in_seconds: int | None = Field(
        default=None, ge=60, le=int(tokens.MAX_LIFETIME.total_seconds()),
        description="The token stops working this long from now; never if absent.",
    )


class TokenCreated(TokenOut):
    token: str = Field(description="The secret: shown this once, stored only as a hash.")


@router.get("", dependencies=[requires(Action.ADMIN_MANAGE)])
def list_tokens(
    rt: RuntimeDep, _: AdminDep, include_revoked: bool = Query(default=False)
) -> Page[TokenOut]:
    """Every token, newest first; no secret, only each one's prefix."""
    with rt.db.session() as session:
        rows = tokens.list_tokens(session, include_revoked=include_revoked)
        return Page[TokenOut](items=[TokenOut.of(row) for row in rows])


@router.post("", status_code=201, dependencies=[requires(Action.ADMIN_MANAGE)])
def create_token(
    body: TokenCreate, rt: RuntimeDep, actor: AdminDep, response: Response
) -> TokenCreated:
    expires_in = (
        timedelta(seconds=body.expires_in_seconds) if body.expires_in_seconds is not None else None
    )
    with rt.db.session() as session:
        secret, row = tokens.issue_token(
            session, actor, body.name, body.role.value, body.apps, expires_in=expires_in
        )
        out = TokenCreated(**TokenOut.of(row).model_dump(), token=secret)
    response.headers["Location"] = f"/api/v1/tokens/{out.id}"
    response.headers["Cache-Control"] = "no-store"  # the answer holds a secret
    return out


@router.get("/{token_id}", dependencies=[requires(Action.ADMIN_MANAGE)])
def get_token(token_id: str, rt: RuntimeDep, _: AdminDep) -> TokenOut:
    with rt.db.session() as session:
        return TokenOut.of(tokens.get_token(session, token_id))


@router.post("/{token_id}/revoke", dependencies=[requires(Action.ADMIN_MANAGE)])
def revoke_token(token_id: str, rt: RuntimeDep, actor: AdminDep) -> TokenOut:
    """The token answers 401 from the next request on."""
    with rt.db.session() as session:
        return TokenOut.of(tokens.revoke_token(session, actor, token_id))
