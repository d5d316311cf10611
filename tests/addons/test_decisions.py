"""The decisions of the request path are a closed set, and docs/audit.md is its list.

Every decision the proxy's stages and the MCP tools write, as a literal or through the constants
they share, must be in the table of docs/audit.md, and every cause an ``error`` record's reason
starts with must be in the table of causes: a reviewer filtering ``--decision`` or a reason
reads what the code writes.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from clavis_mcp.addons.client_auth import CHALLENGE
from clavis_mcp.addons.failures import CAUSES
from clavis_mcp.addons.token_exchange import ACTION as EXCHANGE
from clavis_mcp.addons.token_exchange import EXCHANGED, FAILED
from clavis_mcp.mcp_front.tools import MASKED, REVEALED
from clavis_mcp.vault.audit.log import ERROR, INJECTED, PASSED, REFUSED

REPO = Path(__file__).resolve().parents[2]
AUDIT_DOC = (REPO / "docs" / "audit.md").read_text(encoding="utf-8")
CHECK_STATES = {"valid", "invalid", "unknown"}  # live_check.py: what a probe's answer says


def table_after(heading: str) -> list[str]:
    """The first cells of the first table after ``heading``."""
    lines = AUDIT_DOC[AUDIT_DOC.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line.split("|")[1])
    return rows


def documented(cells: list[str]) -> set[str]:
    return {value for cell in cells for value in re.findall(r"`([^`]+)`", cell)}


DECISIONS = documented(table_after("### Decisions of the request path")) - {
    "action",
    "check",
    EXCHANGE,
}  # "with `action` `check`", "with `action` `token-exchange`"
DOCUMENTED_CAUSES = documented(table_after("| cause | what happened |"))


def literal_decisions(folder: str) -> set[str]:
    """Strings written as a decision in ``folder``: ``decision="x"`` and ``...[DECISION] = "x"``."""
    found: set[str] = set()
    for path in (REPO / folder).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "decision" and isinstance(node.value, ast.Constant):
                found.add(node.value.value)
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Subscript) and ast.unparse(target.slice) == "DECISION":
                        found.add(node.value.value)
    return found


def test_every_decision_the_request_path_writes_is_documented() -> None:
    written = literal_decisions("addons") | literal_decisions("mcp_front")
    written |= {INJECTED, PASSED, REFUSED, ERROR, CHALLENGE, REVEALED, MASKED, EXCHANGED, FAILED} | CHECK_STATES
    assert written <= DECISIONS, written - DECISIONS


def test_the_documented_set_is_no_larger_than_what_is_written() -> None:
    assert (
        DECISIONS == {INJECTED, PASSED, REFUSED, ERROR, CHALLENGE, REVEALED, MASKED, EXCHANGED, FAILED} | CHECK_STATES
    )


def test_every_cause_of_an_error_is_documented() -> None:
    assert set(CAUSES) == DOCUMENTED_CAUSES
