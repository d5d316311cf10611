"""What a model receives of a call_service result: the body once, within the limit, and a short text.

MCPServer would put the whole result, body included, in the text part as JSON as well as in the
structured content, so a body at the limit reached the model twice (a 256 KiB body made a
527 KB result). Here the structured content carries the body and the text part is a one-line
summary; and the limit counts the body as it is sent (JSON-escaped), not as it was read.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.types import CallToolResult, TextContent

from .models import CallResult

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` without an encoder made per call."""


def sent_size(value: Any) -> int:
    """Bytes ``value`` takes in the JSON the model receives (a string's own quotes not counted)."""
    size = len(_COMPACT(value).encode())
    return size - 2 if isinstance(value, str) else size


def fit_body(body: Any, limit: int) -> tuple[Any, bool]:
    """``body`` cut so that what is sent of it stays within ``limit`` bytes; whether it was cut.

    Text is cut at the longest prefix whose JSON form fits (escapes count: a body of control
    characters grows six-fold); parsed JSON that does not fit is sent as its compact text, cut."""
    if body is None or sent_size(body) <= limit:
        return body, False
    text = body if isinstance(body, str) else _COMPACT(body)
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits
        middle = (low + high + 1) // 2
        if sent_size(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low], True


def summary(result: CallResult) -> str:
    """One line for the text part: status, URL, what the body is and where it is, redactions, audit id."""
    parts = [f"HTTP {result.status} from {result.url}"]
    content_type = result.headers.get("content-type")
    if result.binary is not None:
        parts.append(f"binary body ({result.binary.content_type}, {result.body_size} bytes, summarised)")
    elif result.body_size:
        cut = f", cut to {result.body_limit} bytes" if result.body_truncated else ""
        parts.append(f"{content_type or 'body'} of {result.body_size} bytes{cut}: see body in the structured result")
    else:
        parts.append("no body")
    if result.redirect is not None:
        parts.append(f"redirect to {result.redirect.location} not followed")
    if result.rate_limit is not None and result.rate_limit.remaining is not None:
        resets = f", {result.rate_limit.resets}" if result.rate_limit.resets else ""
        parts.append(f"rate limit: {result.rate_limit.remaining} left{resets}")
    if result.approved_by:
        parts.append(f"approved by {result.approved_by}")
    parts.append(f"{result.redactions} secret(s) redacted")
    if result.audit_id:
        parts.append(f"audit id {result.audit_id}")
    return "; ".join(parts)


def as_tool_result(result: CallResult) -> CallToolResult:
    """The result with its body once (structured) and a summary as text."""
    return CallToolResult(
        content=[TextContent(type="text", text=summary(result))],
        structured_content=result.model_dump(mode="json"),
    )
