"""Lines the MCP SDK's stdio transport would drop without a reply, answered here instead.

The SDK (mcp 2.3) validates each stdin line with pydantic and, when that fails, hands the
exception to the server loop, which logs it and answers nothing: a parse error, a message that
is not a JSON-RPC object, a request whose arguments nest deeper than pydantic's JSON parser goes
(about 200 levels) or that holds a lone surrogate escape (``"\\ud800"``) never gets a reply, so
the client waits until its own timeout. JSON-RPC 2.0 wants an error for each of them. So every
line is screened first: a valid message goes on unchanged; lone surrogates are replaced by
U+FFFD and the message goes on (the tool then says what is wrong with the argument); anything
else gets its error reply here, with the request's id when one can be read.

A request whose id is neither a string nor an integer (``3.5``, ``true``, ``null``, an object)
passes the SDK's validation as a notification (pydantic drops the id), so the server would run
nothing and answer nothing: it gets ``-32600`` with id null here, as JSON-RPC 2.0 asks for an
invalid request whose id cannot be used.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import mcp_types as types

PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS = -32700, -32600, -32602
MAX_DEPTH = 128  # far below what any tool needs, and below the SDK's parser's limit
_LEADING_ID = re.compile(r'\s*\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"id"\s*:\s*(-?\d{1,18}|"(?:[^"\\]|\\.){0,200}")')
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_BAD_ID = "Invalid Request: a request's id must be a string or an integer; send it again with one"


@dataclass(frozen=True, slots=True)
class Screened:
    forward: types.JSONRPCMessage | None = None  # the message to hand the SDK, validated as its transport does
    reply: str | None = None  # the error reply to write instead
    request_id: types.RequestId | None = None  # a forwarded request's id, to know when it is answered


def screen(line: str) -> Screened:
    if not line.strip():
        return Screened()
    try:
        message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValueError:
        forward, answer = _screen_invalid(line)
        if forward is None:
            return Screened(reply=answer)
        message = types.jsonrpc_message_adapter.validate_json(forward, by_name=False)
    if isinstance(message, types.JSONRPCRequest):
        return Screened(forward=message, request_id=message.id)
    if isinstance(message, types.JSONRPCNotification) and "id" in json.loads(line):
        return Screened(reply=reply(None, INVALID_REQUEST, _BAD_ID))  # a request with an id the SDK dropped
    return Screened(forward=message)


def _screen_invalid(line: str) -> tuple[str | None, str | None]:
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return None, reply(_leading_id(line), PARSE_ERROR, "Parse error: the line is not one complete JSON value")
    if not isinstance(message, dict):
        return None, reply(None, INVALID_REQUEST, "Invalid Request: a message is one JSON-RPC object")
    request_id = message.get("id")
    if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
        if "method" in message and "id" in message:
            return None, reply(None, INVALID_REQUEST, _BAD_ID)
        request_id = None
    if "method" not in message and request_id is None:
        return None, None if ("result" in message or "error" in message) else reply(
            None, INVALID_REQUEST, "Invalid Request: no method"
        )
    if _depth(message) > MAX_DEPTH:
        if request_id is None:
            return None, None  # a notification gets no reply, even an error
        return None, reply(request_id, INVALID_PARAMS, f"Invalid params: nested deeper than {MAX_DEPTH} levels")
    cleaned = _without_surrogates(message)
    try:
        types.jsonrpc_message_adapter.validate_python(cleaned, by_name=False)
    except ValueError:
        if request_id is None:
            return None, None
        return None, reply(request_id, INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 request this server knows")
    return json.dumps(cleaned, ensure_ascii=False), None


def reply(request_id: str | int | None, code: int, message: str) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})


def _leading_id(line: str) -> str | int | None:
    """The id of a request too broken to parse, when it is written first (as clients write it)."""
    found = _LEADING_ID.match(line)
    if found is None:
        return None
    try:
        value = json.loads(found.group(1))
    except ValueError:
        return None
    return value if isinstance(value, (str, int)) else None


def _depth(value: Any) -> int:
    """How deep ``value`` nests, without recursion (it may nest past Python's own limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def _without_surrogates(value: Any) -> Any:
    """``value`` with every lone surrogate in a string (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value
