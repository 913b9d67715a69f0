"""Names for ids, both ways: a user's login, a group's or an app's name wherever an id is taken,
and the names, not the ids, in what is printed.

Ids are UUIDs; anything else given for a user or a group is a login or a name, looked up with
the list's search and matched exactly (logins as given, group and app names in any case). The
server takes an app's name itself. ``Names`` maps ids back to names for tables, one list or
one read per kind of thing and id, cached for the command.
"""

from __future__ import annotations

import re

from provisiond.cli.client import MAX_PAGE, Api, ApiError, CliError, path

UUID = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
# The users list's search drops these (they are LIKE wildcards): search by the longest run of
# the other characters, then match the login exactly.
UNSEARCHABLE = re.compile(r"[%_]")


def is_id(ref: str) -> bool:
    return bool(UUID.match(ref))


def user_id(api: Api, ref: str) -> str:
    """The id of the user whose id or login is ``ref``."""
    if is_id(ref):
        return ref
    pieces = [piece for piece in UNSEARCHABLE.split(ref) if piece]
    query = max(pieces, key=len) if pieces else None
    if query is None:
        raise CliError(f"no user with id or login {ref!r}")
    items = api.collect("/users", MAX_PAGE, q=query)["items"]
    exact = [u for u in items if u.get("profile", {}).get("login") == ref]
    if exact:
        return str(exact[0]["id"])  # logins are unique
    near = [
        login for u in items
        if str(login := u.get("profile", {}).get("login", "")).casefold() == ref.casefold()
    ]
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise CliError(f"no user with id or login {ref!r}{hint}")


def group_id(api: Api, ref: str) -> str:
    """The id of the group whose id or name (in any case) is ``ref``."""
    if is_id(ref):
        return ref
    items = api.get("/groups", q=ref)["items"]
    # Group names are unique in any case (the store's name_key): at most one matches.
    for group in items:
        if str(group.get("name", "")).casefold() == ref.casefold():
            return str(group["id"])
    raise CliError(f"no group with id or name {ref!r}")


class Names:
    """Ids to names for printing; an id that cannot be read stays as it is."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self._apps: dict[str, str] | None = None
        self._groups: dict[str, str] | None = None
        self._users: dict[str, str] = {}

    def app(self, app_id: str) -> str:
        if self._apps is None:
            self._apps = {a["id"]: a["name"] for a in self.api.get("/apps")["items"]}
        return self._apps.get(app_id, app_id)

    def group(self, group_id: str) -> str:
        if self._groups is None:
            self._groups = {g["id"]: g["name"] for g in self.api.get("/groups")["items"]}
        return self._groups.get(group_id, group_id)

    def user(self, user_id: str) -> str:
        if user_id not in self._users:
            try:
                user = self.api.get(path("users", user_id))
                self._users[user_id] = str(user.get("profile", {}).get("login") or user_id)
            except ApiError:  # deleted since, or not readable by this token
                self._users[user_id] = user_id
        return self._users[user_id]

    def principal(self, kind: str, principal_id: str) -> str:
        return self.group(principal_id) if kind == "group" else self.user(principal_id)

    def sources(self, text: str) -> str:
        """``assigned via group:<id>, user`` with the groups' names."""
        return SOURCE.sub(lambda m: "group:" + self.group(m.group(1)), text)


SOURCE = re.compile(r"group:([0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})")
