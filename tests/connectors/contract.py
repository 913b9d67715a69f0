"""The connector contract: what every connector must do, as tests any connector can run.

A connector passes by subclassing ``ConnectorContract`` in its own test module and giving a
``subject`` fixture (parametrise it to run the whole contract against several peers)::

    class TestMyConnector(ConnectorContract):
        @pytest.fixture
        def subject(self) -> ContractSubject:
            return ContractSubject(
                connect=lambda: MyConnector(...),        # a fresh connector to a working app
                user=lambda name: {"uid": name},         # a new account's attributes
                matching=("uid", lambda name: name),     # how find_user finds that account
                change=("mail", "changed@example.com"),  # one attribute an update sets
                unreachable=lambda: MyConnector(...),    # the same kind of app, not answering
            )

Each test makes its own accounts and groups with names of its own, so the app need not be
empty and tests do not see each other. What is checked is the ``Connector`` protocol of
``provisiond.connectors.base`` as the engine relies on it: create, find, read, update,
deactivate, reactivate, delete (idempotently), a 409 as ``RemoteConflict``, a write to a
vanished account as ``RemoteNotFound``, every page of a listing, groups with their members,
and failures classified transient (retryable) or terminal. docs/connectors.md says more.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from provisiond.connectors.base import Connector, RemoteUser
from provisiond.connectors.paging import Walk
from provisiond.engine.planner import Change as ContractChange  # what the engine sends
from provisiond.errors import (
    RemoteConflict,
    RemoteNotFound,
    TerminalError,
    TransientError,
)

T = TypeVar("T")


@dataclass(frozen=True)
class ContractSubject:
    """What the contract needs to know of one connector and one app it talks to."""

    connect: Callable[[], Connector]
    user: Callable[[str], dict[str, Any]]
    # The matching attribute find_user is asked for, and its value for an account's name.
    matching: tuple[str, Callable[[str], str]] = ("userName", lambda name: name)
    change: tuple[str, Any] = ("displayName", "Changed Name")
    active_attribute: str | None = "active"  # None: the app keeps no active flag
    groups: bool = True
    unreachable: Callable[[], Connector] | None = None  # failures must be transient
    refused: Callable[[], Connector] | None = None  # bad credentials: failures are terminal


def fresh(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class ConnectorContract:
    """Subclass it and provide a ``subject`` fixture; every test below then runs."""

    @pytest.fixture
    def subject(self) -> ContractSubject:
        raise NotImplementedError("a connector's test module provides the subject fixture")

    # -- running --------------------------------------------------------------------------

    @staticmethod
    def run(
        subject: ContractSubject,
        scenario: Callable[[Connector], Awaitable[T]],
        connect: Callable[[], Connector] | None = None,
    ) -> T:
        async def main() -> T:
            connector = (connect or subject.connect)()
            try:
                return await scenario(connector)
            finally:
                await connector.aclose()

        return asyncio.run(main())

    @staticmethod
    async def created(subject: ContractSubject, connector: Connector, name: str) -> RemoteUser:
        return await connector.create_user(subject.user(name))

    # -- accounts -------------------------------------------------------------------------

    def test_a_created_account_is_found_and_read(self, subject: ContractSubject) -> None:
        name = fresh()
        attribute, value_of = subject.matching

        async def scenario(connector: Connector) -> None:
            created = await self.created(subject, connector, name)
            assert created.remote_id
            found = await connector.find_user(attribute, value_of(name))
            assert found is not None and found.remote_id == created.remote_id
            read = await connector.get_user(created.remote_id)
            assert read is not None and read.remote_id == created.remote_id
            assert read.active
            assert not await connector.holds_no_users()

        self.run(subject, scenario)

    def test_what_does_not_exist_is_none(self, subject: ContractSubject) -> None:
        attribute, value_of = subject.matching

        async def scenario(connector: Connector) -> None:
            assert await connector.find_user(attribute, value_of(fresh("nobody"))) is None
            created = await self.created(subject, connector, fresh())
            await connector.delete_user(created.remote_id)
            assert await connector.get_user(created.remote_id) is None

        self.run(subject, scenario)

    def test_an_update_changes_the_attribute(self, subject: ContractSubject) -> None:
        attribute, new = subject.change
        name = fresh()

        async def scenario(connector: Connector) -> None:
            created = await self.created(subject, connector, name)
            wanted = {**subject.user(name), attribute: new}
            await connector.update_user(
                created.remote_id, [ContractChange(attribute, None, new)], wanted
            )
            read = await connector.get_user(created.remote_id)
            assert read is not None
            assert _attribute(read.attributes, attribute) == new

        self.run(subject, scenario)

    def test_deactivate_then_reactivate(self, subject: ContractSubject) -> None:
        if subject.active_attribute is None:
            pytest.skip("this app keeps no active flag")
        flag = subject.active_attribute
        name = fresh()

        async def scenario(connector: Connector) -> None:
            created = await self.created(subject, connector, name)
            for active in (False, True):
                wanted = {**subject.user(name), flag: active}
                changes = [ContractChange(flag, not active, active)]
                await connector.update_user(created.remote_id, changes, wanted)
                read = await connector.get_user(created.remote_id)
                assert read is not None and read.active is active

        self.run(subject, scenario)

    def test_delete_is_idempotent(self, subject: ContractSubject) -> None:
        async def scenario(connector: Connector) -> None:
            created = await self.created(subject, connector, fresh())
            await connector.delete_user(created.remote_id)
            await connector.delete_user(created.remote_id)  # already gone: the goal is reached
            assert await connector.get_user(created.remote_id) is None

        self.run(subject, scenario)

    def test_a_second_create_of_one_account_is_a_remote_conflict(
        self, subject: ContractSubject
    ) -> None:
        name = fresh()

        async def scenario(connector: Connector) -> None:
            await self.created(subject, connector, name)
            with pytest.raises(RemoteConflict) as caught:
                await self.created(subject, connector, name)
            assert not caught.value.retryable

        self.run(subject, scenario)

    def test_an_update_of_a_vanished_account_is_remote_not_found(
        self, subject: ContractSubject
    ) -> None:
        attribute, new = subject.change
        name = fresh()

        async def scenario(connector: Connector) -> None:
            created = await self.created(subject, connector, name)
            await connector.delete_user(created.remote_id)
            with pytest.raises(RemoteNotFound):
                await connector.update_user(
                    created.remote_id,
                    [ContractChange(attribute, None, new)],
                    {**subject.user(name), attribute: new},
                )

        self.run(subject, scenario)

    def test_a_listing_yields_every_account_once(self, subject: ContractSubject) -> None:
        async def scenario(connector: Connector) -> None:
            made = {(await self.created(subject, connector, fresh())).remote_id for _ in range(5)}
            walk = Walk(connector.list_users, key=lambda user: user.remote_id, page_size=2)
            listed = [user.remote_id async for page in walk for user in page]
            assert made <= set(listed)
            assert len(listed) == len(set(listed))
            assert walk.pages >= 2  # pages of two asked: the connector pages, it does not list all

        self.run(subject, scenario)

    # -- groups ---------------------------------------------------------------------------

    def test_groups_and_their_members(self, subject: ContractSubject) -> None:
        if not subject.groups:
            pytest.skip("this connector pushes no groups")
        name = fresh("Group ")

        async def scenario(connector: Connector) -> None:
            ada, bob, cyd = [
                (await self.created(subject, connector, fresh())).remote_id for _ in range(3)
            ]
            group = await connector.create_group(name, [ada])
            found = await connector.find_group(name.upper())  # display names: case-insensitive
            assert found is not None and found.remote_id == group.remote_id
            await connector.update_group(group.remote_id, add=[bob, cyd], remove=[ada])
            assert await _members(connector, group.remote_id) == {bob, cyd}
            await connector.update_group(
                group.remote_id, display_name=name + " renamed", remove=[cyd], members=[bob]
            )
            read = await connector.get_group(group.remote_id)
            assert read is not None and read.display_name == name + " renamed"
            assert read.members == {bob}
            await connector.replace_group(group.remote_id, name, [ada, cyd])
            assert await _members(connector, group.remote_id) == {ada, cyd}
            walk = Walk(connector.list_groups, key=lambda g: g.remote_id, page_size=1)
            assert group.remote_id in {g.remote_id async for page in walk for g in page}
            await connector.delete_group(group.remote_id)
            await connector.delete_group(group.remote_id)
            assert await connector.get_group(group.remote_id) is None

        self.run(subject, scenario)

    # -- failures -------------------------------------------------------------------------

    def test_an_app_that_does_not_answer_is_a_transient_failure(
        self, subject: ContractSubject
    ) -> None:
        if subject.unreachable is None:
            pytest.skip("no unreachable peer given")
        with pytest.raises(TransientError) as caught:
            self.run(subject, lambda c: c.get_user("anyone"), subject.unreachable)
        assert caught.value.retryable

    def test_refused_credentials_are_a_terminal_failure(self, subject: ContractSubject) -> None:
        if subject.refused is None:
            pytest.skip("no peer refusing the credentials given")
        with pytest.raises(TerminalError) as caught:
            self.run(subject, lambda c: c.get_user("anyone"), subject.refused)
        assert not caught.value.retryable

    def test_a_connection_test_reports_ok_or_says_why(self, subject: ContractSubject) -> None:
        report = self.run(subject, lambda c: c.test_connection())
        assert report.ok, report.as_dict()
        if subject.unreachable is not None:
            failed = self.run(subject, lambda c: c.test_connection(), subject.unreachable)
            assert not failed.ok and failed.reason


async def _members(connector: Connector, remote_id: str) -> frozenset[str]:
    group = await connector.get_group(remote_id)
    assert group is not None
    return group.members


def _attribute(attributes: Mapping[str, Any], name: str) -> Any:
    """An attribute by name, case-insensitively (RFC 7643 §2.1; other kinds name them as they do)."""
    for key, value in attributes.items():
        if key.lower() == name.lower():
            return value
    return None


__all__ = ["ConnectorContract", "ContractChange", "ContractSubject", "fresh"]
