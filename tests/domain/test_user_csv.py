"""The CSV row mapper: an exported row reads back as the same values, whatever they hold."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisiond.domain.user_csv import (
    GROUPS,
    HeaderError,
    RowError,
    escape_cell,
    export_header,
    export_row,
    map_row,
    read_header,
    unescape_cell,
)

# Any text a cell may hold, formula starters, quotes, commas and line breaks included; values
# are kept as the directory keeps them (stripped of outer white space, which the profile strips).
text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
).map(str.strip)
nonempty = text.filter(bool)
custom_names = st.from_regex(r"\A[a-z][A-Za-z0-9_]{0,10}\Z").filter(
    lambda n: n.casefold() not in {"login", "email", "groups", "id", "status", "title",
                                   "manager", "department", "firstname", "lastname",
                                   "displayname", "employeenumber", "employeetype"}
)
group_names = st.lists(nonempty.filter(lambda n: ";" not in n), max_size=4, unique_by=str.casefold)


@given(
    login=nonempty,
    email=nonempty,
    department=text,
    custom=st.dictionaries(custom_names, text, max_size=3),
    groups=group_names,
)
def test_an_exported_row_reads_back_as_the_same_values(
    login: str, email: str, department: str, custom: dict[str, str], groups: list[str]
) -> None:
    profile = {"login": login, "email": email, "firstName": "A", "lastName": "B",
               "department": department or None, **custom}
    header = export_header(list(custom))
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, export_row(header, "active", profile, groups)])
    rows = list(csv.reader(io.StringIO(buffer.getvalue(), newline="")))
    assert len(rows) == 2  # a line break in a value stays inside its quoted cell

    values = map_row(read_header(rows[0]), rows[1])

    assert values.login == login
    expected = {k: (v or None) for k, v in profile.items()}
    assert {k: v for k, v in values.profile.items() if k in expected} == expected
    assert all(v is None for k, v in values.profile.items() if k not in expected)
    assert values.groups is not None
    assert sorted(values.groups, key=str.casefold) == sorted(groups, key=str.casefold)


@given(st.text(max_size=30))
def test_escaping_a_cell_is_undone_and_no_escaped_cell_starts_a_formula(value: str) -> None:
    escaped = escape_cell(value)
    assert unescape_cell(escaped) == value
    assert not escaped.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_a_mapping_renames_columns_and_leaves_others_out() -> None:
    columns = read_header(["User", "Mail", "First", "Last", "Notes", "Groups"],
                          {"User": "login", "Mail": "email", "First": "firstName",
                           "Last": "lastname", "Notes": ""})
    assert columns.targets == ("login", "email", "firstName", "lastName", None, GROUPS)
    values = map_row(columns, ["ada", "ada@x.org", "Ada", "Lovelace", "secret", "Eng; Staff;"])
    assert values.profile == {"login": "ada", "email": "ada@x.org", "firstName": "Ada",
                              "lastName": "Lovelace"}
    assert values.groups == ("Eng", "Staff")


@pytest.mark.parametrize(
    ("header", "mapping", "message"),
    [
        (["email", "firstName"], {}, "no column maps to login"),
        (["login", "Employee ID"], {}, "column 'Employee ID' is not a profile attribute"),
        (["login", "Login"], {}, "both map to login"),
        (["login"], {"Nope": "email"}, "does not have: Nope"),
    ],
)
def test_a_header_that_cannot_be_read_says_why(
    header: list[str], mapping: dict[str, str], message: str
) -> None:
    with pytest.raises(HeaderError, match=message):
        read_header(header, mapping)


def test_a_row_of_the_wrong_width_or_without_login_is_refused() -> None:
    columns = read_header(["login", "email"])
    with pytest.raises(RowError, match="3 cells where the header has 2"):
        map_row(columns, ["a", "b", "c"])
    with pytest.raises(RowError, match="login is empty"):
        map_row(columns, ["", "a@x.org"])
