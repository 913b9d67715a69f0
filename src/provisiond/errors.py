"""The one error tree of provisiond.

::

    ProvisiondError                  anything provisiond raises on purpose
    ├── NotFound                     404  an id that names nothing
    ├── Conflict                     409  duplicate login, invalid lifecycle transition, ...
    ├── Invalid                      422  input that breaks a rule (carries the field)
    ├── PayloadTooLarge              413
    ├── Unauthorized                 401  no or wrong API token
    ├── Forbidden                    403
    └── ConnectorError               a downstream application failed
        ├── TransientError           worth retrying: timeout, 5xx, connection refused
        │   ├── RateLimited          429, with the target's Retry-After
        │   └── NotRevoked           a deprovisioning answered 2xx, yet the read-back shows access
        └── TerminalError            retrying cannot help: 400, 401, 403, bad payload
            ├── RemoteConflict       409: the account exists already (the executor adopts it)
            ├── RemoteNotFound       404 on a known account: it was removed behind our back
            └── RemoteUnsupported    501: the app does not implement the operation (RFC 7644
                                     §3.12): never retried, a reason to fall back (PATCH → PUT)

Whether to retry belongs to the type, decided here once: the executor asks ``error.retryable``.
"""

from __future__ import annotations

from typing import Any


class ProvisiondError(Exception):
    status: int = 500
    type: str = "about:blank"
    title: str = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(ProvisiondError):
    status, type, title = 404, "not-found", "Not found"


class Conflict(ProvisiondError):
    status, type, title = 409, "conflict", "Conflict"


class Invalid(ProvisiondError):
    status, type, title = 422, "invalid", "Invalid input"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail, **({"field": field} if field else {}), **extra)
        self.field = field


class PayloadTooLarge(ProvisiondError):
    status, type, title = 413, "payload-too-large", "Payload too large"


class Unauthorized(ProvisiondError):
    status, type, title = 401, "unauthorized", "Unauthorized"


class Forbidden(ProvisiondError):
    status, type, title = 403, "forbidden", "Forbidden"


class ConnectorError(ProvisiondError):
    """A downstream application failed; ``retryable`` tells the executor what to do."""

    status, type, title = 502, "connector-error", "Application error"
    retryable: bool = False

    def __init__(self, detail: str, *, http_status: int | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.http_status = http_status


class TransientError(ConnectorError):
    type = "connector-transient"
    retryable = True


class RateLimited(TransientError):
    type = "connector-rate-limited"

    def __init__(self, detail: str, *, retry_after: float | None = None, **extra: Any) -> None:
        super().__init__(detail, http_status=429, **extra)
        self.retry_after = retry_after


class NotRevoked(TransientError):
    """The app accepted a deactivation or a delete, but reading the account back shows it
    still active (or still there): retried, since the app's answer was not the truth."""

    type = "connector-not-revoked"


class TerminalError(ConnectorError):
    type = "connector-terminal"


class RemoteConflict(TerminalError):
    type = "connector-conflict"


class RemoteNotFound(TerminalError):
    type = "connector-not-found"


class RemoteUnsupported(TerminalError):
    type = "connector-unsupported"


def validation_message(error: Any) -> str:
    """A pydantic error's message, fit to show beside its field: never with the input.

    pydantic keeps the offending value in ``input`` (callers drop it) and, for a discriminated
    union, quotes the tag in ``msg`` itself; in a connector's auth that may be a pasted secret.
    """
    if error.get("type") == "union_tag_invalid":
        expected = (error.get("ctx") or {}).get("expected_tags", "")
        return f"not a known type; expected one of {expected}"
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")
