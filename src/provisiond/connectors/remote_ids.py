"""Remote ids, the app's names for its accounts and groups, as URL path segments.

An id an app returns is put in the path of later requests, which carry the app's credentials:
``../../../../trav-escape/pwned?x=1`` would send them to another resource of the same host.
So an id is accepted only if it is one harmless segment, and is sent percent-encoded.
"""

from __future__ import annotations

from urllib.parse import quote

from provisiond.errors import TerminalError

# Longer ones are not ids any app hands out (GUIDs, numbers, slugs are well under).
REMOTE_ID_MAX = 512


def remote_id_flaw(remote_id: str) -> str | None:
    """Why ``remote_id`` cannot be one path segment of a request, or None if it can."""
    if not remote_id:
        return "it is empty"
    if len(remote_id) > REMOTE_ID_MAX:
        return f"it is longer than {REMOTE_ID_MAX} characters"
    if remote_id in (".", "..") or ".." in remote_id:
        return "it contains '..'"
    for mark in "/\\?#":
        if mark in remote_id:
            return f"it contains {mark!r}"
    if any(not c.isprintable() for c in remote_id):
        return "it contains control characters"
    return None


def check_remote_id(remote_id: str, what: str) -> None:
    """A target's ids become URL paths provisiond sends its credentials to: one that would
    step out of the resource (``../../x?y``) fails the task and is never stored or sent."""
    flaw = remote_id_flaw(remote_id)
    if flaw is not None:
        raise TerminalError(f"{what} answered the id {_shown(remote_id)}, refused: {flaw}")


def segment(remote_id: str) -> str:
    """``remote_id`` as one percent-encoded path segment (RFC 3986 §3.3), checked first: an id
    stored before the check existed is refused here too."""
    flaw = remote_id_flaw(remote_id)
    if flaw is not None:
        raise TerminalError(f"the stored id {_shown(remote_id)} is refused: {flaw}")
    return quote(remote_id, safe="")


def _shown(remote_id: str) -> str:
    return repr("".join(c if c.isprintable() else "?" for c in remote_id[:80]))
