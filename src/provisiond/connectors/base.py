"""The Connector protocol every application kind implements, and the data it speaks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from provisiond.domain.dialects import ScimProfile

if TYPE_CHECKING:
    import httpx

    from provisiond.config import Settings
    from provisiond.domain.apps import ProvisioningSettings


class Change(Protocol):
    """One attribute's change an update sends: the engine's planned ``Change`` has this shape."""

    @property
    def attribute(self) -> str: ...

    @property
    def old(self) -> Any: ...

    @property
    def new(self) -> Any: ...


@dataclass(frozen=True)
class RemoteUser:
    remote_id: str
    attributes: Mapping[str, Any]

    @property
    def active(self) -> bool:
        # RFC 7643 §2.1: attribute names are case-insensitive; Entra may send the string "False".
        for name, value in self.attributes.items():
            if name.lower() == "active":
                return value is not False and str(value).lower() != "false"
        return True


@dataclass(frozen=True)
class RemoteGroup:
    """A group in the app: its id, its name and its members' account ids."""

    remote_id: str
    display_name: str
    members: frozenset[str]


@dataclass(frozen=True)
class Page:
    """One page of a listing (RFC 7644 §3.4.2.4): what it holds, and the total the app claims.

    ``total`` is None when the app leaves ``totalResults`` out; apps that ignore ``count`` send
    more (or fewer) than asked. Walking every page robustly is ``connectors.paging``'s job.
    """

    items: list[Any]
    total: int | None
    start_index: int


@dataclass(frozen=True)
class Quirks:
    """A target's dialect, as data the connector reads (never ``if vendor == ...``).

    ``profile`` is the whole dialect (domain/dialects.py): the app's stored profile, narrowed by
    what its ServiceProviderConfig (RFC 7643 §5) announces at first use. The flags are what the
    engine asks of it: ``patch``, whether a group's members may be changed in place (else the
    engine sends the whole group with ``replace_group``); ``filter``, whether lookups filter.
    """

    patch: bool = True
    filter: bool = True
    max_results: int = 100
    etag: bool = False
    profile: ScimProfile = field(default_factory=ScimProfile)

    @classmethod
    def of(cls, profile: ScimProfile, *, etag: bool = False) -> Quirks:
        return cls(
            patch=profile.membership != "put",
            filter=profile.filters,
            max_results=profile.page_size,
            etag=etag,
            profile=profile,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "patch": self.patch,
            "filter": self.filter,
            "max_results": self.max_results,
            "etag": self.etag,
            "profile": self.profile.model_dump(mode="json"),
        }


@dataclass
class ConnectionStep:
    """``detail`` is for super admins (it may quote a JSON error body); ``summary``, for every
    other reader, says what failed without what the peer answered: the connection test must
    not tell a read-only admin whether some host's port is closed, open or not HTTP."""

    name: str
    ok: bool
    detail: str
    summary: str | None = None


@dataclass
class ConnectionReport:
    """The outcome of a connection test, step by step; ``ok`` only if every step passed."""

    steps: list[ConnectionStep] = field(default_factory=list)
    quirks: Quirks | None = None
    # What the app's dialect changes, in an admin's words ("this app does not support PATCH:
    # updates will be sent as PUT"), from its profile as discovery narrowed it.
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    @property
    def reason(self) -> str | None:
        failed = next((step for step in self.steps if not step.ok), None)
        return f"{failed.name}: {failed.detail}" if failed else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reason": self.reason,
            "steps": [
                {"name": s.name, "ok": s.ok, "detail": s.detail, "summary": s.summary or s.detail}
                for s in self.steps
            ],
            "quirks": None if self.quirks is None else self.quirks.as_dict(),
            "notes": list(self.notes),
        }


class RateGate(Protocol):
    """What a connector waits on before each request: a rate limit (its own, or one shared by
    a cluster of workers, engine.rate)."""

    async def take(self) -> None: ...


class Connector(Protocol):
    """What the executor needs from an application. Errors are ``provisiond.errors.ConnectorError``."""

    async def test_connection(self) -> ConnectionReport: ...

    async def find_user(self, attribute: str, value: str) -> RemoteUser | None: ...

    async def holds_no_users(self) -> bool: ...

    async def get_user(self, remote_id: str) -> RemoteUser | None: ...

    async def list_users(self, start_index: int, count: int) -> Page:
        """One page of the app's accounts, ``items`` being ``RemoteUser``s (1-based index)."""
        ...

    async def create_user(self, attributes: Mapping[str, Any]) -> RemoteUser: ...

    async def update_user(
        self, remote_id: str, changes: Sequence[Change], attributes: Mapping[str, Any]
    ) -> RemoteUser | None:
        """Apply the changes; the account as the app's answer shows it, when it says (else
        None): after a deactivation that answer is the read-back (engine.executor)."""
        ...

    async def delete_user(self, remote_id: str) -> None: ...

    # Groups (pushed groups). Members are account ids in the app.

    async def find_group(self, display_name: str) -> RemoteGroup | None: ...

    async def get_group(self, remote_id: str) -> RemoteGroup | None: ...

    async def list_groups(self, start_index: int, count: int) -> Page:
        """One page of the app's groups, ``items`` being ``RemoteGroup``s (1-based index)."""
        ...

    async def create_group(self, display_name: str, members: Sequence[str]) -> RemoteGroup: ...

    async def update_group(
        self,
        remote_id: str,
        *,
        display_name: str | None = None,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        members: Sequence[str] | None = None,
    ) -> int:
        """Rename and/or change members in place (PATCH); ``members``, the whole new list,
        lets the connector replace it rather than send many removals. Returns requests sent."""
        ...

    async def replace_group(
        self, remote_id: str, display_name: str, members: Sequence[str]
    ) -> None: ...

    async def delete_group(self, remote_id: str) -> None: ...

    async def quirks(self) -> Quirks: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class BuildContext:
    """What any kind of connector is built with, besides its own settings."""

    provisioning: ProvisioningSettings
    config: Settings  # the operator's: destination policy, answer size cap...
    transport: httpx.AsyncBaseTransport | None = None  # tests' in-process peers; else the network
    rate_gate: RateGate | None = None  # the app's rate limit as a cluster holds it (engine.rate)


class ConnectorFactory(Protocol):
    """What an entry point of group ``provisiond.connectors`` names (docs/connectors.md): it
    builds the connector of one kind from the app's connector settings (public settings and
    secrets merged), validating them itself; bad settings raise ``pydantic.ValidationError``
    or ``provisiond.errors.Invalid``."""

    def __call__(self, settings: Mapping[str, Any], context: BuildContext) -> Connector: ...
