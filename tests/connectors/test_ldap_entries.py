"""SCIM attributes as LDAP entries (pure): any value gives one valid RDN; DNs compare as LDAP."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisiond.connectors.ldap_entries import (
    dn_key,
    parent_of,
    person_attributes,
    rdn_of,
    render_rdn,
    same_dn,
    unescape,
)
from provisiond.errors import TerminalError

values = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
    lambda text: text.strip() == text
)


@given(value=values)
def test_any_user_name_gives_one_rdn_holding_it(value: str) -> None:
    rdn = render_rdn("uid={userName}", {"userName": value})
    dn = f"{rdn},ou=people,dc=example,dc=org"
    assert rdn_of(dn) == rdn and parent_of(dn) == "ou=people,dc=example,dc=org"
    assert unescape(rdn.partition("=")[2]) == value
    assert dn_key(dn)[0] == ("uid", value.lower())


def test_a_server_escape_and_ours_are_the_same_dn() -> None:
    assert same_dn("cn=Ada\\2C Countess,OU=People,dc=x", "cn=ada\\, countess,ou=people,dc=x")
    assert not same_dn("cn=Ada,ou=people,dc=x", "cn=Ada,ou=inactive,dc=x")


def test_a_template_the_account_cannot_fill_names_what_is_missing() -> None:
    with pytest.raises(TerminalError, match=r"cn=\{name.givenName\} gives no DN: the account has no name.givenName"):
        render_rdn("cn={name.givenName}", {"userName": "ada"})


def test_person_attributes_fill_what_inetorgperson_requires() -> None:
    assert person_attributes({"userName": "ada"}) == {"uid": ["ada"], "cn": ["ada"], "sn": ["ada"]}
    full = person_attributes({
        "userName": "ada", "name": {"givenName": "Ada", "familyName": "Byron"},
        "emails": [{"value": "a@x.org", "primary": False}, {"value": "ada@x.org", "primary": True}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"},
    })
    assert full["cn"] == ["Ada Byron"] and full["mail"] == ["ada@x.org"]
    assert full["departmentNumber"] == ["R&D"]
    with pytest.raises(TerminalError, match="no userName"):
        person_attributes({"displayName": "x"})
