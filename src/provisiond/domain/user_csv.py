"""Users as CSV rows: which column feeds which profile attribute, and a row read as values.

Pure: no I/O. ``services/imports.py`` streams a file through :func:`map_row`;
``services/user_export.py`` writes the rows :func:`read_header` reads back, so an export imported
again changes nothing.

A cell is a string. An empty cell of a mapped column means "no value": the attribute is removed
from an existing user (required ones cannot be: that row is refused). The ``groups`` column
lists the user's direct group names, ``;``-separated; when the file has it, the user's direct
(hand-made) memberships become exactly those groups.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

STANDARD = (
    "login",
    "email",
    "firstName",
    "lastName",
    "displayName",
    "department",
    "title",
    "manager",
    "employeeNumber",
    "employeeType",
)
REQUIRED = ("login", "email", "firstName", "lastName")
GROUPS = "groups"
GROUP_SEPARATOR = ";"
# What an export writes besides the profile; an import reads past them unless they are mapped.
IGNORED_BY_DEFAULT = ("id", "status")
CUSTOM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")  # domain.directory's rule
_STANDARD_BY_KEY = {name.casefold(): name for name in STANDARD}

# A cell a spreadsheet would run as a formula (OWASP "CSV injection") is written with a leading
# apostrophe, and read back without it; a value that itself starts with one gets a second.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def escape_cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def unescape_cell(value: str) -> str:
    if value.startswith("'") and value[1:].startswith(_FORMULA_START):
        return value[1:]
    return value


class HeaderError(ValueError):
    """The header cannot be read as a mapping; the message says which column and what to do."""


@dataclass(frozen=True)
class ColumnMap:
    """Column position -> target: a profile attribute, ``groups``, or nothing (ignored)."""

    header: tuple[str, ...]
    targets: tuple[str | None, ...]

    @property
    def has_groups(self) -> bool:
        return GROUPS in self.targets

    def attributes(self) -> list[str]:
        return [t for t in self.targets if t is not None and t != GROUPS]


def default_target(column: str) -> str | None:
    """What a column maps to when it is not named in the mapping: its own name as a profile
    attribute (standard ones whatever the case), ``groups``, or nothing for export's ``id`` and
    ``status``. Raises ``HeaderError`` for a name that cannot be an attribute."""
    key = column.strip().casefold()
    if key in _STANDARD_BY_KEY:
        return _STANDARD_BY_KEY[key]
    if key == GROUPS:
        return GROUPS
    if key in IGNORED_BY_DEFAULT:
        return None
    if CUSTOM_NAME.match(column.strip()):
        return column.strip()
    raise HeaderError(
        f"column {column!r} is not a profile attribute: map it (--map '{column}=employeeNumber', "
        f"say) or leave it out (--map '{column}=')"
    )


def read_header(header: Sequence[str], mapping: Mapping[str, str] | None = None) -> ColumnMap:
    """The column map of ``header``, ``mapping`` (column -> attribute, ``""`` to ignore) first."""
    mapping = dict(mapping or {})
    unknown = sorted(set(mapping) - {c.strip() for c in header})
    if unknown:
        raise HeaderError(f"the mapping names columns the file does not have: {', '.join(unknown)}")
    targets: list[str | None] = []
    for column in header:
        name = column.strip()
        if name in mapping:
            target: str | None = mapping[name].strip() or None
            if target is not None:
                target = default_target(target) or target
        else:
            target = default_target(name)
        targets.append(target)
    seen: dict[str, str] = {}
    for column, target in zip(header, targets, strict=True):
        if target is None:
            continue
        if target in seen:
            raise HeaderError(f"columns {seen[target]!r} and {column!r} both map to {target}")
        seen[target] = column
    if "login" not in seen:
        raise HeaderError("no column maps to login: name one login, or map one (--map 'User=login')")
    return ColumnMap(tuple(header), tuple(targets))


@dataclass(frozen=True)
class RowValues:
    """One row: the login, the profile values it sets (``None``: remove), the groups it names
    (``None``: the file has no groups column)."""

    login: str
    profile: dict[str, str | None] = field(default_factory=dict)
    groups: tuple[str, ...] | None = None


class RowError(ValueError):
    """A row that cannot be read; the message names the column."""


def map_row(columns: ColumnMap, cells: Sequence[str]) -> RowValues:
    if len(cells) != len(columns.header):
        raise RowError(f"{len(cells)} cells where the header has {len(columns.header)} columns")
    profile: dict[str, str | None] = {}
    groups: tuple[str, ...] | None = None
    for target, raw in zip(columns.targets, cells, strict=True):
        if target is None:
            continue
        value = unescape_cell(raw.strip())
        if target == GROUPS:
            names = [name.strip() for name in value.split(GROUP_SEPARATOR)]
            groups = tuple(dict.fromkeys(name for name in names if name))
        else:
            profile[target] = value or None
    login = profile.get("login")
    if not login:
        raise RowError("login is empty")
    return RowValues(login=login, profile=profile, groups=groups)


def export_header(custom: Sequence[str]) -> list[str]:
    """The columns an export writes: login, status, the standard attributes, the custom ones
    (sorted), then groups."""
    return ["login", "status", *STANDARD[1:], *sorted(custom), GROUPS]


def export_row(
    header: Sequence[str], status: str, profile: Mapping[str, object], groups: Sequence[str]
) -> list[str]:
    cells: list[str] = []
    for column in header:
        if column == "status":
            value: object = status
        elif column == GROUPS:
            value = GROUP_SEPARATOR.join(sorted(groups, key=str.casefold))
        else:
            value = profile.get(column)
        cells.append(escape_cell(_as_text(value)))
    return cells


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return GROUP_SEPARATOR.join(str(item) for item in value)
    return str(value)
