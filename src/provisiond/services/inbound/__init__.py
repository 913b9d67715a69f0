"""provisiond as a SCIM 2.0 service provider: SCIM resources to and from directory records.

Every change goes through the directory services (services/directory.py, nesting.py), so a
change made over SCIM is validated, logged and reconciled exactly like one made by an admin.
"""

from __future__ import annotations

from provisiond.errors import ProvisiondError

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# provisiond's custom profile attributes (those beside the standard profile).
PROFILE = "urn:provisiond:params:scim:schemas:extension:profile:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"

MAX_RESULTS = 1000  # the most resources one list answer holds (ServiceProviderConfig)
# The most operations one /Bulk holds; its payload is bounded by Settings.max_body_bytes.
MAX_OPERATIONS = 1000


class ScimError(ProvisiondError):
    """An error with the RFC 7644 §3.12 ``scimType`` it answers with."""

    type, title = "scim", "SCIM error"

    def __init__(self, status: int, scim_type: str | None, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.scim_type = scim_type


def invalid_value(detail: str) -> ScimError:
    return ScimError(400, "invalidValue", detail)
