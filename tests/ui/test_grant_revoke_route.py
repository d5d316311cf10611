"""The page's Revoke of a live grant (review 6, L4) is a state change like an approval: it needs the
session, the CSRF token and the page's Origin, ends the grant and is audited as the page's."""

from __future__ import annotations

from pathlib import Path

import httpx

from clavis_mcp.ui.guard import csrf_token
from clavis_mcp.ui.server import Page
from clavis_mcp.vault import AuditLog
from clavis_mcp.vault.approvals import Approvals


def test_a_revocation_needs_the_csrf_token_and_the_pages_origin_and_is_audited_as_the_pages(
    client: httpx.Client, page: Page, home: Path, known_log: AuditLog
) -> None:
    queue = Approvals(home)
    held = queue.hold(service="openai", agent="ci-bot", method="DELETE", host="api.openai.com",
                      url="https://api.openai.com/v1/files/x", preview="", timeout=60)  # fmt: skip
    queue.decide(held.id, approve=True, by="cli", minutes=5)
    listed = client.get("/approvals.json").json()["grants"]
    assert [(g["held_id"], g["method"], g["host"], g["minutes_left"]) for g in listed] == [
        (held.id, "DELETE", "api.openai.com", 5)
    ]
    forged = [
        {"Origin": "http://evil.example", "X-CSRF-Token": csrf_token(page.token)},  # another site
        {"Origin": page.origin},  # a form: no header
        {"X-CSRF-Token": csrf_token(page.token)},  # no Origin
    ]
    for headers in forged:
        assert client.post(f"/grants/{held.id}/revoke", headers=headers).status_code == 403, headers
    assert queue.granted("openai", "ci-bot", "DELETE", "api.openai.com") is not None

    good = {"Origin": page.origin, "X-CSRF-Token": csrf_token(page.token)}
    answer = client.post(f"/grants/{held.id}/revoke", headers=good)
    assert answer.status_code == 200 and answer.json()["revoked"]["held_id"] == held.id
    assert queue.granted("openai", "ci-bot", "DELETE", "api.openai.com") is None
    assert client.get("/approvals.json").json()["grants"] == []
    (record,) = [r for r in known_log.records() if r.get("action") == "grant-revoke"]
    assert (record["source"], record["service"], record["method"], record["decision"]) == (
        "ui", "openai", "DELETE", "revoked"
    )  # fmt: skip
    again = client.post(f"/grants/{held.id}/revoke", headers=good)
    assert again.status_code == 409 and "no live grant" in again.json()["error"]
    queue.close()
