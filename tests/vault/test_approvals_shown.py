"""What the queue keeps of a held request: agent-chosen text escaped (review 6, M2), and the method
a person is shown apart from the method judged, on which a grant is keyed (review 6, M1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clavis_mcp.vault import Vault
from clavis_mcp.vault.approvals import Approvals, most_dangerous, printable

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[2J\r\n\t\x00\x7f", "\\x1b[2J\\x0d\\x0a\\x09\\x00\\x7f"),
        ("\x9b1A\x85", "\\x9b1A\\x85"),
        ("a\u202eb\u202a\u2066c\u2069", "a\\u202eb\\u202a\\u2066c\\u2069"),
        ("zero\u200bwidth\u200f\u2028\u2029\ufeff", "zero\\u200bwidth\\u200f\\u2028\\u2029\\ufeff"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("plain /v1/x?q=é 東京 ok", "plain /v1/x?q=\\xe9 \\u6771\\u4eac ok"),  # every non-ASCII (review 7b, M2)
    ],
)
def test_control_bidi_and_format_characters_are_written_out(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_the_most_dangerous_method_is_judged() -> None:
    assert most_dangerous(["GET", "delete"]) == "DELETE"
    assert most_dangerous(["POST", "GET"]) == "POST"
    assert most_dangerous(["POST", "PATCH", "HEAD"]) == "PATCH"
    assert most_dangerous(["DELETE", "PURGE"]) == "DELETE"  # ties: the first named
    assert most_dangerous(["PUT", "PURGE"]) == "PURGE"  # a method not known here ranks as a DELETE


def test_a_held_request_is_stored_with_its_agent_chosen_text_escaped(tmp_path: Path) -> None:
    vault = Vault.in_memory(tmp_path)
    held = Approvals(vault.store).hold(
        service="echo", agent="bot\u202e", method="DELETE\x1b[K", host="api.example.com",
        url="https://api.example.com/x?\r\x1b[8C=1", preview="{\x1b}", size="2 bytes\x00", timeout=60, now=NOW,
    )  # fmt: skip
    assert (held.agent, held.method, held.judged) == ("bot\\u202e", "DELETE\\x1b[K", "DELETE\\x1b[K")
    assert held.url == "https://api.example.com/x?\\x0d\\x1b[8C=1"
    assert (held.preview, held.size) == ("{\\x1b}", "2 bytes\\x00")
    vault.close()


def test_a_grant_is_keyed_on_the_judged_method_not_the_one_on_the_request_line(tmp_path: Path) -> None:
    vault = Vault.in_memory(tmp_path)
    queue = Approvals(vault.store)
    shown = "POST (X-HTTP-Method-Override: DELETE)"
    held = queue.hold(service="echo", agent="bot", method=shown, judged="DELETE", host="api.example.com",
                      url="https://api.example.com/x", preview="", timeout=60, now=NOW)  # fmt: skip
    queue.decide(held.id, approve=True, by="ui", minutes=5, now=NOW + 1)
    assert queue.granted("echo", "bot", "DELETE", "api.example.com", now=NOW + 2) is not None
    assert queue.granted("echo", "bot", "POST", "api.example.com", now=NOW + 2) is None
    vault.close()
