"""SCIM dialect profiles: how one app speaks SCIM, as a document an admin picks or edits.

RFC 7644 leaves much optional (PATCH, filtering, paging) and real apps differ even in what it
fixes; a profile says, per app, what the connector sends and what it expects back, so that
``connectors/scim.py`` reads data and never branches on a vendor. Three ship named:

- ``rfc``: RFC 7644 as written — PATCH with paths (§3.5.2), member removal by value filter
  (``members[value eq "…"]``, §3.5.2.2), ``eq`` filters, ``count`` honoured.
- ``entra-compatible``: an app built to be provisioned by Microsoft Entra ID, which sends
  capitalised PATCH ops (``"Replace"``), changes group members with ``Add``/``Remove`` on path
  ``members`` carrying the values (no filter in the path), filters with ``eq`` only and may send
  booleans as strings (``"active": "False"``).
- ``okta-compatible``: an app built for Okta, which deactivates with a PATCH ``replace`` carrying
  ``{"active": false}`` and no path, changes members by ``add``/``remove`` with
  ``members[value eq "…"]``, pages by 100 and never deletes users.

(Sources: Entra's and Okta's SCIM provisioning guides as summarised in the project's field
notes; docs/connectors.md lists each field.) What an app's ServiceProviderConfig says narrows a
profile at first use (``narrowed``): an app announcing no PATCH gets PUT whatever was picked.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

PatchStyle = Literal["rfc", "no-path", "none"]
OpCase = Literal["lower", "capitalised"]
MembershipStyle = Literal["value-filter", "value-list", "replace", "put"]
FilterSupport = Literal["eq", "none"]
BooleanEncoding = Literal["json", "string"]
DeactivateBy = Literal["active", "delete"]
Patch404 = Literal["gone", "unsupported"]
ProfileName = Literal["rfc", "entra-compatible", "okta-compatible", "custom"]


class ScimProfile(BaseModel):
    """One app's SCIM dialect. Every field has the RFC's answer as its default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ProfileName = "rfc"
    # Users: "rfc" = one op per attribute with its path; "no-path" = one ``replace`` whose value
    # is an object of the changed attributes (RFC 7644 §3.5.2.3 allows it; some apps take only
    # that); "none" = the app has no PATCH: updates are a full PUT (§3.5.1).
    patch: PatchStyle = "rfc"
    op_case: OpCase = "lower"  # "capitalised": "Add", "Replace", "Remove", as Entra sends them
    # Group members: add/remove with ``members[value eq "…"]`` filters, add/remove on path
    # ``members`` with the values, one ``replace`` of the whole list, or a PUT of the group.
    membership: MembershipStyle = "value-filter"
    filter: FilterSupport = "eq"  # "none": list every page and match here (RFC 7644 §3.4.2.2)
    page_size: int = Field(default=100, ge=1, le=1000)
    count_honoured: bool = True  # False: pages may be any size (paging copes either way)
    booleans: BooleanEncoding = "json"  # "string": send "True"/"False"
    deactivate_by: DeactivateBy = "active"  # "delete": the app has no active flag
    # Member values one request carries, filtered removals one request carries (each is a pass
    # over the group at the target), and when one replace of the list is cheaper than removals.
    members_per_request: int = Field(default=500, ge=1, le=10_000)
    removals_per_request: int = Field(default=25, ge=1, le=10_000)
    replace_above_removals: int = Field(default=100, ge=0)
    replace_max_members: int = Field(default=10_000, ge=0)
    # What a 404 to a PATCH means: the resource is gone (RFC 7644 §3.12), or the app answers 404
    # to a PATCH it does not implement (then fall back to PUT).
    patch_404: Patch404 = "gone"
    requests_per_hour: int | None = Field(default=None, ge=1, le=10_000_000)

    @model_validator(mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        """A bare name (``"entra-compatible"``) is that shipped profile; a document naming one
        starts from it, so an admin writes only what differs."""
        if isinstance(value, str):
            value = {"name": value}
        if isinstance(value, dict) and value.get("name") in SHIPPED:
            return {**SHIPPED[value["name"]], **value}
        return value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # What the validator takes: a shipped profile's name, or a document.
        named = {"type": "string", "enum": sorted(SHIPPED), "title": "A shipped profile"}
        return {"anyOf": [named, handler(core_schema)]}

    @property
    def put_only(self) -> bool:
        return self.patch == "none"

    @property
    def filters(self) -> bool:
        return self.filter != "none"

    def paced(self, rate_per_second: float | None) -> float | None:
        """The requests a second to send at most: the provisioning rate limit, or the app's
        hourly budget spread evenly through the hour if that is lower."""
        if self.requests_per_hour is None:
            return rate_per_second
        hourly = self.requests_per_hour / 3600
        return hourly if rate_per_second is None else min(rate_per_second, hourly)

    def differs_from_shipped(self) -> bool:
        shipped = SHIPPED.get(self.name)
        return shipped is None or self != ScimProfile.model_validate({"name": self.name})

    def narrowed(self, *, patch: bool, filter: bool, max_results: int | None) -> ScimProfile:
        """This profile, within what the app's ServiceProviderConfig announces."""
        changes: dict[str, Any] = {}
        if not patch:
            changes |= {"patch": "none", "membership": "put"}
        if not filter:
            changes["filter"] = "none"
        if max_results and max_results < self.page_size:
            changes["page_size"] = max_results
        return self.model_copy(update=changes) if changes else self

    def notes(self) -> list[str]:
        """What this profile changes from the RFC, in an admin's words (the connection test)."""
        said = []
        if self.put_only:
            said.append("this app does not support PATCH: updates will be sent as PUT")
        elif self.patch == "no-path":
            said.append("user updates are sent as one PATCH replace without a path")
        if self.op_case == "capitalised":
            said.append("PATCH operations are capitalised (Add, Replace, Remove)")
        if self.membership == "put" and not self.put_only:
            said.append("group members are changed by a PUT of the whole group")
        elif self.membership == "replace":
            said.append("group members are changed by one replace of the whole list")
        elif self.membership == "value-list":
            said.append("group members are removed by value, without a filter in the path")
        if not self.filters:
            said.append(
                "this app cannot filter: accounts are found by listing every page "
                f"({self.page_size} a page)"
            )
        if self.booleans == "string":
            said.append('booleans are sent as strings ("True", "False")')
        if self.deactivate_by == "delete":
            said.append("deactivation deletes the account (the app has no active flag)")
        if self.requests_per_hour:
            said.append(f"at most {self.requests_per_hour:,} requests an hour")
        return said


# The shipped profiles, as what they change from the defaults (the RFC's dialect).
SHIPPED: dict[str, dict[str, Any]] = {
    "rfc": {},
    "entra-compatible": {
        "op_case": "capitalised",
        "membership": "value-list",
        "booleans": "string",
    },
    "okta-compatible": {
        "patch": "no-path",
        "membership": "value-filter",
        "page_size": 100,
    },
}


def shipped_profile(name: str) -> ScimProfile:
    return ScimProfile.model_validate({"name": name})
