"""Imports into the directory from an LDAP directory: ``POST /ldap-imports`` previews or applies
an import of its people and groups (CSV imports are api/routers/imports.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from provisiond.api.authorization import requires
from provisiond.api.deps import AdminDep, RuntimeDep
from provisiond.api.problems import declare
from provisiond.api.schemas import example
from provisiond.authz import Action
from provisiond.domain.ldap_import import LdapSource
from provisiond.services import ldap_import

# Not under /imports: there a path segment is a CSV import's id (api/routers/imports.py).
router = APIRouter(prefix="/ldap-imports", tags=["imports"])

SOURCE_EXAMPLE: dict[str, Any] = {
    "name": "corp",
    "url": "ldaps://ldap.example.com",
    "bind_dn": "cn=provisiond,ou=services,dc=example,dc=com",
    "bind_password": "<the bind password>",
    "base_dn": "ou=people,dc=example,dc=com",
    "filter": "(objectClass=inetOrgPerson)",
    "group_base_dn": "ou=groups,dc=example,dc=com",
    "disabled_attribute": "employeeType",
    "disabled_value": "disabled",
}

IMPORT_EXAMPLE: dict[str, Any] = {
    "applied": False,
    "source": "corp",
    "counts": {"create": 1, "update": 0, "suspend": 0, "reactivate": 0, "deactivate": 1,
               "create_group": 1, "add_member": 1, "remove_member": 0, "error": 0},
    "create": ["ada"], "update": [], "suspend": [], "reactivate": [],
    "deactivate": ["bob"], "create_group": ["Engineering"],
    "add_member": [{"group": "Engineering", "login": "ada"}], "remove_member": [],
    "errors": [], "read": 2, "high_water": "20261201145502Z",
}


class LdapImportRequest(BaseModel):
    # The source carries the bind password: never echo the input in a ValidationError's text.
    model_config = example(
        {
            "source": SOURCE_EXAMPLE,
            "apply": False,
        },
        secret=True,
    )
    source: LdapSource
    apply: bool = Field(default=False, description="Apply the plan; false shows it only.")


class ImportOut(BaseModel):
    model_config = example(IMPORT_EXAMPLE)
    applied: bool
    source: str
    counts: dict[str, int]
    create: list[str]
    update: list[dict[str, Any]]
    suspend: list[str]
    reactivate: list[str]
    deactivate: list[str]
    create_group: list[str]
    add_member: list[dict[str, str]]
    remove_member: list[dict[str, str]]
    errors: list[str] = Field(description="Entries that cannot be imported; any one stops an apply.")
    read: int = Field(description="User entries read from the directory.")
    high_water: str | None = Field(description="The highest modifyTimestamp read, if the server gives it.")


@router.post(
    "", dependencies=[requires(Action.DIRECTORY_WRITE)], responses=declare(409, 502)
)
async def import_ldap(body: LdapImportRequest, rt: RuntimeDep, actor: AdminDep) -> ImportOut:
    """Read users and groups from an LDAP directory and show what importing them changes;
    with ``apply``, make the changes (409, nothing changed, if any entry cannot be imported).
    Imported users carry ``ldapSource``; those gone from the source are deactivated."""
    result = await ldap_import.import_from_ldap(rt, actor, body.source, apply=body.apply)
    return ImportOut.model_validate(result)
