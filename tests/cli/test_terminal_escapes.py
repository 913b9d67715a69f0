"""Server values reach the terminal without the control sequences a terminal would act on.

A directory value is whatever a SCIM source or an admin typed; printed raw, ``ESC ] 52`` writes
the admin's clipboard and ``ESC [ 2 J`` clears the screen. Tables, fields, sentences and error
messages print such values inert; ``--json`` keeps them exact.
"""

from __future__ import annotations

import json
import time

import httpx
from hypothesis import given
from hypothesis import strategies as st
from rich.text import Text

from provisiond.cli.output import printable, printable_text
from tests.cli.conftest import Run, ok
from tests.e2e.conftest import person

CLIPBOARD = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07"
CLEAR = "\x1b[2J"
C1_CSI = "\x9b31m"
HOSTILE = f"Love{CLIPBOARD}lace{CLEAR}{C1_CSI}\x7f\r\nFORGED ROW"


def controls_in(text: str) -> list[str]:
    return sorted({c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F})


def test_a_hostile_last_name_prints_inert_in_tables_fields_and_sentences(
    cli: Run, api: httpx.Client
) -> None:
    login = f"mallory.{time.monotonic_ns()}"
    body = {"profile": {**person(login)["profile"], "lastName": HOSTILE}}
    created = api.post("/users", json=body)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]

    for args in (("users", "list", "--q", login), ("users", "get", user_id)):
        output = ok(cli(*args)).stdout
        assert controls_in(output) == [], (args, output)
        assert "52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==" in output  # visible, not acted on
        assert "\nFORGED ROW" not in output  # the value stays on its own row

    # JSON stays exact: a JSON reader gets the value back byte for byte.
    shown = ok(cli("--json", "users", "get", user_id)).stdout
    assert controls_in(shown) == []
    assert json.loads(shown)["profile"]["lastName"] == HOSTILE


def test_an_error_message_from_the_server_prints_inert(cli: Run) -> None:
    result = cli("users", "get", f"nobody{CLEAR}{CLIPBOARD}")
    assert result.exit_code == 1
    assert controls_in(result.output) == []


@given(st.text(alphabet=st.characters(max_codepoint=0x1FF)))
def test_printable_keeps_exactly_the_characters_that_are_not_controls(value: str) -> None:
    cleaned = printable(value)
    assert controls_in(cleaned) == [] and "\n" not in cleaned
    assert cleaned == "".join(c for c in value if not (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F))


def test_printable_text_keeps_styles() -> None:
    text = Text("ok ", style="green") + Text(f"x{CLEAR}y", style="red")
    cleaned = printable_text(text)
    assert cleaned.plain == "ok x[2Jy"
    assert [(s.start, s.end, str(s.style)) for s in cleaned.spans] == [(3, 8, "red")]
