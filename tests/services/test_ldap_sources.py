"""Stored LDAP sources (services.ldap_sources): the bind password sealed, due after their
interval and claimed once however late, and the high-water mark never splices in a bad stamp."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from provisiond.connectors.ldap_source import high_water
from provisiond.domain.ldap_import import LdapSource, SourceEntry
from provisiond.runtime import Runtime
from provisiond.services import ldap_sources, schedules
from provisiond.services.context import SYSTEM
from provisiond.store.tables import LdapSourceRow

SECRET = "s3cret-bind-pw"


def store(rt: Runtime, name: str, every_hours: float | None) -> str:
    source = LdapSource.model_validate({
        "name": name, "url": "ldap://ldap.example.com", "bind_dn": "cn=admin,dc=example,dc=com",
        "bind_password": SECRET, "base_dn": "ou=people,dc=example,dc=com",
    })
    with rt.db.session() as session:
        row = ldap_sources.create(
            session, SYSTEM, rt.vault, source, ldap_sources.SourceSchedule(every_hours=every_hours)
        )
        return row.id


def test_a_stored_source_is_sealed_and_a_missed_schedule_runs_once(runtime: Runtime) -> None:
    hourly = store(runtime, "hourly", 1)
    store(runtime, "on-demand", None)
    with runtime.db.session() as session:
        row = session.get(LdapSourceRow, hourly)
        assert row is not None and SECRET not in str(row.settings) and SECRET not in (row.credentials or "")
        assert ldap_sources.source_of(row, runtime.vault).bind_password.get_secret_value() == SECRET
        assert "bind_password" not in ldap_sources.describe(row)["source"]
    assert schedules.claim_due_sources(runtime.db) == []  # made just now: due in an hour
    with runtime.db.session() as session:
        row = session.get(LdapSourceRow, hourly)
        assert row is not None
        row.created_at -= timedelta(days=30)  # the scheduler stopped for a month
    assert schedules.claim_due_sources(runtime.db) == [hourly]
    assert schedules.claim_due_sources(runtime.db) == []  # once, not 720 times


def _well_formed(stamp: str) -> bool:
    def digits(text: str) -> bool:
        return text.isascii() and text.isdigit()

    whole, dot, fraction = stamp.removesuffix("Z").partition(".")
    return (stamp.endswith("Z") and len(whole) == 14 and digits(whole)
            and (not dot or (1 <= len(fraction) <= 6 and digits(fraction))))


@given(st.lists(st.text(max_size=20) | st.from_regex(r"[0-9]{14}(\.[0-9]{1,3})?Z", fullmatch=True),
                max_size=5))
def test_only_a_well_formed_stamp_becomes_the_mark(stamps: list[str]) -> None:
    # The mark goes into the next run's filter: a ")" or "*" from the server must never.
    entries = [SourceEntry("uid=a", {"modifyTimestamp": stamps}),
               SourceEntry("uid=b", {"modifytimestamp": ["20261201155700Z"]})]
    assert high_water(entries) == max([s for s in stamps if _well_formed(s)] + ["20261201155700Z"])
