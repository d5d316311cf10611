"""call_service end to end: validate, send through the proxy, follow same-origin redirects, shape the result.

Every refusal (service, URL, method, headers, body size) happens before the first byte
leaves. What comes back is already redacted by the proxy; here it is bounded (body limit,
binary summary), filtered (header allowlist) and scrubbed once more as the model will read it
(body, header values, the URL and a redirect's location), before the model sees it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clavis_mcp.vault import Service
from clavis_mcp.vault.errors import CallFailed, CallRefused

from .call_text import fit_body
from .calls import (
    SAFE_METHODS,
    CallLimits,
    Target,
    check_query,
    check_target,
    redirect_target,
    render_body,
    request_body,
    shown_headers,
    split_headers,
)
from .failures import audit_note, failure_message
from .gateway import Fetched, Gateway
from .models import CallResult, Redirect
from .ratelimit import rate_limit_of

# the approval stage's reasons (addons/approval.py): "approved by cli for 10 min (request …)",
# "approved by page (like request …, for a while)", "approved by the user when the MCP client asked …"
_APPROVED = re.compile(r"approved by (.+?)(?: for \d+ min)? \((?:like )?request ")
_ELICITED = "approved by the user when the MCP client asked"


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """A request that passed every check, ready to send (and to describe to the user)."""

    service: Service
    method: str
    target: Target
    headers: dict[str, str]
    ignored_headers: list[str]
    params: dict[str, str] | None
    body: dict[str, Any]
    raw_body: bytes | None


def prepare_call(
    service: Service,
    method: str,
    url: str,
    headers: dict[str, str] | None,
    params: dict[str, str] | None,
    json_body: Any,
    data: str | None,
    limits: CallLimits,
) -> PreparedCall:
    target = check_target(service, method, url)
    check_query(target, params)
    kept, ignored = split_headers(headers)
    body, raw = request_body(json_body, data, limits)
    if "headers" in body:
        kept = {**{k: v for k, v in kept.items() if k.lower() != "content-type"}, **body.pop("headers")}
    return PreparedCall(service, method.upper(), target, kept, ignored, params or None, body, raw)


async def perform_call(gateway: Gateway, call: PreparedCall) -> CallResult:
    limits = gateway.limits
    target, method, body, params = call.target, call.method, call.body, call.params
    unfollowed: str | None = None  # the location of a redirect not followed
    approved_by: str | None = None  # who let a held request go, from the first hop that waited
    for _ in range(limits.max_redirects + 1):
        fetched = await _send(gateway, call, method, target, params, body)
        approved_by = approved_by or approver(fetched.record)
        location = fetched.header("location")
        following = redirect_target(call.service, target, fetched.status, location)
        if following is None:
            if fetched.status in (301, 302, 303, 307, 308) and location:
                unfollowed = location
            break
        target, params = following, None
        if fetched.status == 303 or (fetched.status in (301, 302) and method not in SAFE_METHODS):
            method, body = "GET", {}
    else:
        unfollowed = location or ""
    return _result(fetched, limits, unfollowed, call.ignored_headers, approved_by)


def approver(record: Mapping[str, Any] | None) -> str | None:
    """Who approved the request of ``record`` (its reason, as the approval stage wrote it), if anyone."""
    reason = (record or {}).get("reason")
    if not isinstance(reason, str):
        return None
    if reason.startswith(_ELICITED):
        return "the user (the MCP client asked)"
    match = _APPROVED.match(reason)
    return match[1] if match else None


async def _send(
    gateway: Gateway,
    call: PreparedCall,
    method: str,
    target: Target,
    params: dict[str, str] | None,
    body: dict[str, Any],
) -> Fetched:
    fetched = await gateway.fetch(call.service.name, method, target.url, headers=call.headers, params=params, **body)
    record = fetched.record
    if fetched.failed_in_clavis:  # the engine answered a failure itself: no provider status to show
        raise CallFailed(failure_message(call.service.name, target.host, record))
    if fetched.refused or (record is not None and record.get("decision") == "refused"):
        reason = fetched.refused or (record or {}).get("reason")
        raise CallRefused(f"the clavis proxy refused the request: {reason}{audit_note(record)}")
    return fetched


def _result(
    fetched: Fetched, limits: CallLimits, unfollowed: str | None, ignored: list[str], approved_by: str | None
) -> CallResult:
    """The tool's answer, with everything the upstream chose (body, headers, the URL a redirect led
    to, a redirect's location) scrubbed as the model reads it; every redaction is counted."""
    scrubber = fetched.scrubber
    headers, in_headers = shown_headers(fetched.headers, scrubber)
    url, in_url = scrubber.value(fetched.url)
    redirect, in_location = None, 0
    if unfollowed is not None:
        location, in_location = scrubber.value(unfollowed)
        redirect = Redirect(location=location, followed=False)
    content_type = fetched.header("content-type") or ""
    body, binary, truncated, in_body = render_body(
        fetched.head, fetched.size, fetched.sha256, content_type, limits.max_response_body, scrubber, fetched.beyond
    )
    body, cut = fit_body(body, limits.max_response_body)  # the limit counts the body as the model receives it
    return CallResult(
        status=fetched.status,
        url=url,
        headers=headers,
        body=body,
        binary=binary,
        body_truncated=truncated or cut or not fetched.complete,
        body_size=fetched.size,
        body_limit=limits.max_response_body,
        redirect=redirect,
        rate_limit=rate_limit_of(fetched.headers, fetched.received_at),
        redactions=fetched.redactions + in_headers + in_url + in_location + in_body,
        audit_id=fetched.audit_id,
        approved_by=approved_by,
        ignored_headers=ignored,
    )
