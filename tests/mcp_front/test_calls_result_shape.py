"""What call_service does to shape its result cheaply, without changing what the model receives:
the JSON body's final-form rescan (one scan of all its strings first), and an output schema without
``$ref`` or ``anyOf`` that a client's validator checks in fewer steps, with pydantic's verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from mcp import Client
from pydantic import ConfigDict

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.mcp_front.calls import _scrub_json
from clavis_mcp.mcp_front.models import CallResult, RateLimit
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


def _pydantic_schema() -> dict[str, Any]:
    """CallResult's schema as pydantic writes it (``anyOf`` with null, nested models behind ``$ref``):
    the schema call_service published before, up to the order of its options."""

    class Published(CallResult):
        model_config = ConfigDict(json_schema_extra=None, title="CallResult")

    return Published.model_json_schema()


LEAN, REFERENCE = CallResult.model_json_schema(), _pydantic_schema()


def _descriptions(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        own = [schema["description"]] if isinstance(schema.get("description"), str) else []
        return own + [d for value in schema.values() for d in _descriptions(value)]
    return [d for value in schema for d in _descriptions(value)] if isinstance(schema, list) else []


def test_call_result_schema_has_no_reference_or_alternatives_and_keeps_every_description() -> None:
    text = json.dumps(LEAN)
    assert "$ref" not in text and "$defs" not in text and "anyOf" not in text
    lean = " ".join(_descriptions(LEAN))
    assert all(description in lean for description in _descriptions(REFERENCE))
    assert LEAN["properties"]["audit_id"]["type"] == ["null", "string"]
    assert LEAN["properties"]["rate_limit"]["properties"]["remaining"]["type"] == ["null", "integer"]


@pytest.mark.anyio
async def test_call_service_publishes_the_lean_schema(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert tools["call_service"].output_schema == LEAN


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
        ({"rate_limit": {"remaining": "3"}}, False),
        ({"binary": []}, False),
    ],
    ids=[
        "nulls",
        "rate-limit",
        "redirect",
        "binary",
        "rate-limit-not-an-object",
        "redirect-incomplete",
        "id-not-text",
        "remaining-not-a-number",
        "binary-an-array",
    ],  # fmt: skip
)
def test_call_result_schema_accepts_and_refuses_what_pydantics_schema_does(change: dict[str, Any], valid: bool) -> None:
    result = {**RESULT, **change}
    assert Draft202012Validator(LEAN).is_valid(result) is valid
    assert Draft202012Validator(REFERENCE).is_valid(result) is valid


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def _near(typed: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly values of the field's type (null included where it is optional), about one in twenty any
    JSON (a draw of 0-19 hitting a middle value: Hypothesis favours the ends of a range)."""
    return st.integers(0, 19).flatmap(lambda draw: JSON if draw == 7 else typed)


def _object(fields: dict[str, st.SearchStrategy[Any]], optional: set[str] = frozenset()) -> st.SearchStrategy[Any]:
    """Objects with ``fields``, the ``optional`` ones sometimes left out, and one in ten missing a
    field; sometimes with extra members."""
    required = {name: kind for name, kind in fields.items() if name not in optional}
    left_out = {name: kind for name, kind in fields.items() if name in optional}

    def build(own: dict[str, Any], extra: dict[str, Any], drop: int | None) -> dict[str, Any]:
        if drop is not None and own:
            own.pop(sorted(own)[drop % len(own)])
        return {**extra, **own}

    drops = st.integers(0, 9).flatmap(lambda draw: st.integers(0, 15) if draw == 7 else st.none())
    extras = st.dictionaries(st.text(max_size=4), JSON, max_size=2)
    return st.builds(build, st.fixed_dictionaries(required, optional=left_out), extras, drops)


INTEGER = st.integers() | st.integers(-3, 3).map(float)  # 2.0 is an integer to JSON Schema
NUMBER = INTEGER | st.floats()
TEXT = st.text(max_size=6)
RESULTS = _object(
    {
        "status": _near(INTEGER), "url": _near(TEXT), "headers": _near(st.dictionaries(TEXT, _near(TEXT), max_size=3)),
        "body": JSON, "body_truncated": _near(st.booleans()), "body_size": _near(INTEGER),
        "body_limit": _near(INTEGER), "redactions": _near(INTEGER), "audit_id": _near(st.none() | TEXT),
        "approved_by": _near(st.none() | TEXT), "ignored_headers": _near(st.lists(_near(TEXT), max_size=3)),
        "binary": _near(st.none() | _object({"content_type": _near(TEXT), "size": _near(INTEGER),
                                               "sha256": _near(TEXT)})),
        "redirect": _near(st.none() | _object({"location": _near(TEXT), "followed": _near(st.booleans())})),
        "rate_limit": _near(st.none() | _object({
            name: _near(st.none() | kind) for name, kind in (
                ("remaining", NUMBER), ("limit", INTEGER), ("reset_at", TEXT), ("resets", TEXT),
                ("seconds_to_reset", NUMBER), ("header", TEXT), ("observed_at", TEXT))
        }, optional=set(RateLimit.model_fields))),
    },
    optional={"binary", "body_truncated", "redirect", "rate_limit", "audit_id", "approved_by", "ignored_headers"},
)  # fmt: skip
LEAN_CHECK, REFERENCE_CHECK = Draft202012Validator(LEAN), Draft202012Validator(REFERENCE)


@settings(max_examples=5000)
@given(RESULTS)
def test_call_result_schema_gives_pydantics_verdict_on_any_result(result: dict[str, Any]) -> None:
    """The differential: valid and invalid results alike, the same verdict from both schemas."""
    assert LEAN_CHECK.is_valid(result) is REFERENCE_CHECK.is_valid(result)


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
