"""Confirmation of destructive actions: the first post shows what will happen, the second does it.

A destructive form posts to its action as ever; without ``confirmed=yes`` (which only the
confirm page's own form carries) the route answers this page instead of acting, so a click, a
replayed form or a page without JavaScript never deprovisions by surprise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.responses import Response

from provisiond.services.impact import Impact
from provisiond.web.context import Console, render


@dataclass(frozen=True)
class Confirmation:
    title: str
    summary: str
    action: str  # the URL the confirming form posts to: the destructive route itself
    button: str
    back: str
    impact: Impact | None = None
    details: tuple[str, ...] = ()
    hidden: dict[str, str] = field(default_factory=dict)


def confirmed(console: Console) -> bool:
    return console.field("confirmed") == "yes"


def ask(console: Console, confirmation: Confirmation) -> Response:
    return render(console.request, "confirm.html", confirm=confirmation)


def deprovisions(impact: Impact) -> str:
    """``"deprovisions 3 accounts"``, the count the confirm page leads with."""
    n = impact.count
    if n == 0:
        return "deprovisions no account"
    return f"deprovisions {n} account{'' if n == 1 else 's'}"
