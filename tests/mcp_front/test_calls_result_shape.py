"""What call_service does to shape its result cheaply, without changing what the model receives:
the JSON body's final-form rescan (one scan of all its strings first), and an output schema whose
optional fields a client's validator checks for null before it resolves an object's ``$ref``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trustme
from jsonschema import Draft202012Validator
from mcp import Client

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.mcp_front.calls import _scrub_json
from clavis_mcp.mcp_front.models import CallResult
from clavis_mcp.vault import AuditLog, Vault
from demo.echo_upstream import LoopbackHandler
from tests.conftest import SECRET, local_upstream
from tests.mcp_front.test_calls import MARKER, SCRUBBER, render

RESULT: dict[str, Any] = {
    "status": 200, "url": "https://api.example.com/v1/x", "headers": {"content-type": "application/json"},
    "body": {"a": [1, "two"]}, "body_size": 20, "body_limit": 1024, "redactions": 0, "audit_id": "r1",
}  # fmt: skip


def test_json_rescan_scrubs_a_secret_in_any_key_or_value_and_counts_each() -> None:
    body = {"items": [{"token": f"Bearer {SECRET}"}, 3, None], SECRET: {"deep": [[SECRET]]}, "plain": "text"}
    scrubbed, count = _scrub_json(body, SCRUBBER)
    assert scrubbed == {
        "items": [{"token": f"Bearer {MARKER}"}, 3, None],
        MARKER: {"deep": [[MARKER]]},
        "plain": "text",
    }
    assert count == 3


def test_json_rescan_hands_back_a_body_without_a_secret_as_it_is() -> None:
    body = {"items": [{"token": "Bearer other"}, 3.5, True], "k": {"deep": [["x"]]}, "empty": []}
    scrubbed, count = _scrub_json(body, SCRUBBER)
    assert scrubbed is body and count == 0


def test_json_rescan_scrubs_nothing_where_two_strings_each_hold_half_of_a_secret() -> None:
    """Two strings are read apart, so scanning them together must not join them into a spelling."""
    half = len(SECRET) // 2
    body = [SECRET[:half], SECRET[half:]]
    assert _scrub_json(body, SCRUBBER) == (body, 0)


def test_call_result_schema_lists_null_first_for_every_optional_field() -> None:
    properties = CallResult.model_json_schema()["properties"]
    optional = {name: field["anyOf"] for name, field in properties.items() if "anyOf" in field}
    assert {"binary", "redirect", "rate_limit", "audit_id", "approved_by"} <= set(optional)
    assert all(options[0] == {"type": "null"} for options in optional.values()), optional


@pytest.mark.parametrize(
    ("change", "valid"),
    [
        ({}, True),
        ({"rate_limit": {"remaining": 3, "limit": 10}}, True),
        ({"redirect": {"location": "https://x.test/", "followed": False}}, True),
        ({"binary": {"content_type": "image/png", "size": 3, "sha256": "ab"}, "body": None}, True),
        ({"rate_limit": "3 left"}, False),
        ({"redirect": {"location": "https://x.test/"}}, False),
        ({"audit_id": 7}, False),
    ],
    ids=["nulls", "rate-limit", "redirect", "binary", "rate-limit-not-an-object", "redirect-incomplete", "id-not-text"],
)
def test_call_result_schema_accepts_and_refuses_what_it_did_before_its_options_were_reordered(
    change: dict[str, Any], valid: bool
) -> None:
    schema = CallResult.model_json_schema()
    before = {**schema, "properties": {name: _null_last(field) for name, field in schema["properties"].items()}}
    result = {**RESULT, **change}
    assert Draft202012Validator(schema).is_valid(result) is valid
    assert Draft202012Validator(before).is_valid(result) is valid


def _null_last(field: dict[str, Any]) -> dict[str, Any]:
    if "anyOf" not in field:
        return field
    return {**field, "anyOf": sorted(field["anyOf"], key=lambda option: option.get("type") == "null")}


def test_json_whose_string_has_a_lone_surrogate_escape_is_shown_as_its_text() -> None:
    """``"\\ud800"`` parses to a string with no UTF-8 form: scrubbing it raised, and no JSON could
    carry it to the model, so every call to such an endpoint failed. It is shown as text instead."""
    content = b'{"a": "\\ud800 half of a pair", "b": 1}'
    shown, binary, truncated = render(content, "application/json")
    assert (shown, binary, truncated) == (content.decode(), None, False)
    CallResult.model_validate({**RESULT, "body": shown}).model_dump_json()


LONE_SURROGATE = b'{"a": "\\ud800 half of a pair"}'


class LoneSurrogate(LoopbackHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(LONE_SURROGATE)))
        self.end_headers()
        self.wfile.write(LONE_SURROGATE)


@pytest.mark.anyio
async def test_call_service_answers_json_with_a_lone_surrogate_escape_with_its_text(
    vault: Vault, audit: AuditLog, home: Path, upstream_ca: trustme.CA
) -> None:
    with local_upstream(upstream_ca, LoneSurrogate, vault) as port:
        gateway = Gateway(vault, audit, LocalCA(home / "certs"))
        async with Client(build_server(gateway)) as client:
            result = await client.call_tool(
                "call_service", {"service_name": "api", "method": "GET", "url": f"https://127.0.0.1:{port}/x"}
            )
    assert not result.is_error, result.content
    assert result.structured_content["body"] == LONE_SURROGATE.decode()
