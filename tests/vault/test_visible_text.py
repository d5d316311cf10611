"""Agent-chosen text shown to a person (the approval queue, the MCP client's question) keeps
nothing invisible or look-alike: everything but printable ASCII is escaped (review 7b, M2)."""

from __future__ import annotations

import pytest

from clavis_mcp.vault.approvals import printable

CASES = [
    ("variation-selectors", "LGTM\ufe00\ufe0f\U000e0100\U000e01ef", "LGTM\\ufe00\\ufe0f\\U000e0100\\U000e01ef"),
    ("default-ignorables", "a\u034fb\u180bc\u180dd\u17b4e\u17b5", "a\\u034fb\\u180bc\\u180dd\\u17b4e\\u17b5"),
    ("blank-letters", "x\u3164\u115f\u1160\uffa0\u2800y", "x\\u3164\\u115f\\u1160\\uffa0\\u2800y"),
    ("combining-marks", "Z\u0351\u0300\u20dd", "Z\\u0351\\u0300\\u20dd"),
    ("backquote-look-alikes", "\uff40\u02cb\u1fef", "\\uff40\\u02cb\\u1fef"),
    ("letters-of-other-scripts", "é東\U0001f600", "\\xe9\\u6771\\U0001f600"),
    ("controls-and-bidi", "\x1b[2J\u202e\u2028", "\\x1b[2J\\u202e\\u2028"),
    ("printable-ascii-kept", " !~azAZ09`\\", " !~azAZ09`\\"),
]


@pytest.mark.parametrize(("text", "shown"), [(t, s) for _, t, s in CASES], ids=[i for i, _, _ in CASES])
def test_every_character_outside_printable_ascii_is_written_as_an_escape(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_nothing_outside_printable_ascii_survives_whatever_the_character() -> None:
    every = "".join(chr(code) for code in range(0x110000) if not 0xD800 <= code < 0xE000)
    shown = printable(every)
    assert shown.isascii() and all(" " <= c <= "~" for c in shown)
