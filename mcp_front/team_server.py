"""The MCP server of a team client: the four tools answered by the team server (``CLAVIS_API_URL``).

Same specifications as the local server (``tool_specs.py``): a client sees the same names,
schemas and annotations. No vault is opened or created and no proxy is started: the server
injects, redacts and audits, and this process never holds a service's credential (only under a
``full`` reveal policy does get_credentials pass one on, as the server's audited answer). The
server starts without contacting the team server, so ``initialize`` and ``tools/list`` answer
while it is down; each tool then says what is wrong.
"""

from __future__ import annotations

import functools
import json as json_text
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit
from mcp.types import CallToolResult

from clavis_mcp.team.admin_client import clean
from clavis_mcp.vault import Secret
from clavis_mcp.vault.errors import ClavisError

from . import __version__
from .arguments import ClavisServer
from .call_text import as_tool_result, fit_body, sent_size
from .calls import ALLOWED_METHODS, SAFE_METHODS, CallLimits, Target, check_query, returned_headers, split_headers
from .confirm import (
    Answer,
    Approval,
    NotAsked,
    can_ask,
    header_lines,
    judged_call,
    outcome,
    sent_url,
    wire_url,
    write_question,
)
from .models import (
    CallResult,
    CredentialInfo,
    CredentialState,
    CredentialStatus,
    LastCheck,
    RateLimit,
    ServiceInfo,
    ServiceList,
)
from .paging import page
from .ratelimit import rate_limit_of
from .team_client import AUDIT_HEADER, REDACTIONS_HEADER, TeamClient
from .times import expiry_fields
from .tool_specs import TOOLS, ToolFunction

INSTRUCTIONS = """\
clavis-mcp is connected to a team credential server: you never need to see a credential. To
call an API, use call_service with the service name and a full https:// URL on one of the
service's hosts: the team server adds the credential and scrubs it from the response, and
records the call. Use list_services to see what you may use and check_credential_status to see
whether a credential works. Prefer call_service over get_credentials."""


def _epoch(value: object) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


class TeamContext:
    """The lifespan context of a team client: the tools' questions (``confirm.py``) ask through it."""

    def __init__(self, client: TeamClient) -> None:
        self.client = client

    async def confirm_reveal(self, service_name: str, ctx: Context[Any, Any]) -> Elicit[Approval] | NotAsked:
        """Ask the local user before a full reveal, where the server's policy is ``full`` and the client can ask."""
        if not can_ask(ctx):
            return NotAsked(reason="the client cannot ask the user")
        try:
            rows = await self.client.services()
        except ClavisError:
            return NotAsked(reason="the team server did not answer")  # the tool body says why
        row = next((r for r in rows if r.get("name") == service_name), None)
        if row is None or row.get("reveal") != "full":
            return NotAsked(reason="not revealed in full")
        hosts = ", ".join(str(h) for h in row.get("hosts") or [])
        return Elicit(
            f"An AI assistant asks to see the full credential of the team service {service_name!r} "
            f"({clean(str(row.get('connector') or 'generic'))}, for {clean(hosts)}). It will be able to copy it. "
            "Reveal it?",
            Approval,
        )

    async def confirm_write(
        self,
        service_name: str,
        method: str,
        url: str,
        headers: dict[str, str] | None,
        params: dict[str, str] | None,
        body: Any,
        data: str | None,
        ctx: Context[Any, Any],
    ) -> Elicit[Approval] | NotAsked:
        """Ask the local user before a write, where the server marks the service ``confirm_writes``:
        the method judged as the proxy judges it (the request line's and every override, so a GET
        that says DELETE is asked about: the team server has no question of its own), and the
        request as the server is asked to send it (URL with its parameters, the headers as given,
        since the server strips credential headers itself, the body). The call's bounds
        (:func:`checked_call`) hold before anything is asked, as the tool body enforces them."""
        try:
            checked_call(url, headers, params)
        except ClavisError:
            return NotAsked(reason="invalid request")  # the tool body refuses it with the reason
        text = json_text.dumps(body, ensure_ascii=False, separators=(",", ":")) if body is not None else data
        raw = text.encode("utf-8", "surrogatepass") if text is not None else None
        sent = wire_url(url, params)
        typed = {**(headers or {}), "Content-Type": "application/json"} if body is not None else headers or {}
        shown_method, judged = judged_call(method, sent, typed, raw)
        if judged in SAFE_METHODS:
            return NotAsked(reason="a safe method")
        if not can_ask(ctx):
            return NotAsked(reason="the client cannot ask the user")
        try:
            rows = await self.client.services()
        except ClavisError:
            return NotAsked(reason="the team server did not answer")  # the tool body says why
        row = next((r for r in rows if r.get("name") == service_name), None)
        if row is None or row.get("confirm_writes") is not True:
            return NotAsked(reason="the service does not ask before writes")
        question = write_question(
            f"the credential of the team service {service_name!r}", shown_method, judged,
            sent_url(sent, bool(row.get("path_prefixes"))),
            header_lines(headers or {}), text, len(raw or b""),
        )  # fmt: skip
        return Elicit(question, Approval)


def checked_call(url: str, headers: dict[str, str] | None, params: dict[str, str] | None) -> None:
    """The local server's bounds on the headers (size, printable ASCII, one field each) and on the
    query with ``params`` merged (its length as sent), so a team call is no larger than a local one
    and its question stays bounded; CallRefused says what to change."""
    split_headers(headers)
    check_query(Target(url, "", "", 0), params)


def _service(row: dict[str, Any], now: float) -> ServiceInfo:
    expires = _epoch(row.get("expires_at"))
    reveal = row.get("reveal")
    return ServiceInfo(
        name=str(row.get("name")),
        connector=str(row.get("connector") or "generic"),
        auth_method=str(row.get("auth") or ""),
        hosts=[str(h) for h in row.get("hosts") or []],
        allowed_methods=[str(m) for m in row.get("methods") or []] or list(ALLOWED_METHODS),
        allowed_paths=[str(p) for p in row.get("path_prefixes") or []] or ["/"],
        local=bool(row.get("local")),
        reveal_policy=reveal if reveal in ("never", "masked", "full") else "masked",
        confirm_writes=row.get("confirm_writes") is True,
        state="expired" if expires is not None and expires <= now else "valid",
        **expiry_fields(expires, now),
    )


async def list_services(client: TeamClient, limit: int, cursor: str | None, match: str | None) -> ServiceList:
    """The team API sends every service the key may use: paged here, as the local server pages."""
    now = time.time()
    rows = sorted(await client.services(), key=_row_name)
    chosen, total, next_cursor = page(rows, _row_name, limit, cursor, match)
    return ServiceList(services=[_service(row, now) for row in chosen], total=total, next_cursor=next_cursor)


def _row_name(row: dict[str, Any]) -> str:
    return str(row.get("name"))


async def get_credentials(client: TeamClient, service_name: str, confirmation: Answer) -> CallToolResult:
    if outcome(confirmation) is False:  # asked locally: the server was not even asked for the value
        raise ToolError(f"the user declined to reveal the credential of {service_name!r}; use call_service instead")
    try:
        reply = await client.token(service_name)
    except ClavisError as exc:
        if getattr(exc, "status", None) == 403:
            raise ToolError(
                f"{exc}. Use call_service for {service_name!r} instead: the team server adds the credential "
                "to the request without showing it to you"
            ) from None
        raise
    value = str(reply.data.get("access_token") or "")
    secret = Secret(value)
    expires = _epoch(reply.data.get("expires_at"))
    info = CredentialInfo(
        service_name=service_name, reveal_policy="full", masked=secret.masked(), fingerprint=secret.fingerprint,
        token_type=str(reply.data.get("token_type") or "bearer"), state="valid", **expiry_fields(expires),
        value=value,
    )  # fmt: skip
    return _with_audit(info.model_dump(mode="json"), f"credential of {service_name!r} revealed", reply.headers)


async def check_credential_status(client: TeamClient, service_name: str, live: bool) -> CallToolResult:
    now = time.time()
    checked = await client.check(service_name)
    expires_in = checked.get("expires_in")
    expires = now + float(expires_in) if isinstance(expires_in, int | float) else None
    state: CredentialState = "expired" if checked.get("status") == "expired" else "valid"
    detail = clean(str(checked.get("error") or "")) or (
        "the team server holds a credential for this service and it has not expired" if state == "valid" else ""
    )
    last_check, headers = None, None
    if live:
        reply = await client.verify(service_name)
        headers, ok = reply.headers, bool(reply.data.get("valid"))
        state = "valid" if ok else "invalid"
        detail = "the provider accepted the credential" if ok else "the provider refused the credential"
        last_check = LastCheck(checked_at=str(reply.data.get("verified_at") or ""), state=state, detail=detail)
        checked = {**checked, **{k: v for k, v in reply.data.items() if k == "rate_limit_remaining"}}
    left = checked.get("rate_limit_remaining")
    status = CredentialStatus(
        service_name=service_name, state=state, **expiry_fields(expires, now),
        seconds_to_expiry=None if expires is None else round(expires - now, 3), detail=detail,
        last_check=last_check, rate_limit=RateLimit(remaining=left) if isinstance(left, int) else None,
    )  # fmt: skip
    return _with_audit(status.model_dump(mode="json"), f"{service_name}: {state}", headers)


async def call_service(
    client: TeamClient,
    limits: CallLimits,
    service_name: str,
    method: str,
    url: str,
    confirmation: Answer,
    headers: dict[str, str] | None,
    params: dict[str, str] | None,
    json: Any,
    data: str | None,
) -> CallToolResult:
    if json is not None and data is not None:
        raise ToolError("give json or data, not both")
    if outcome(confirmation) is False:  # asked locally: the team server was not called
        raise ToolError(f"the user declined this {method.upper()} request to {service_name!r}; it was not sent")
    checked_call(url, headers, params)  # a CallRefused is a ClavisError: the tool error says what to change
    body = {"method": method.upper(), "url": url, "headers": headers, "params": params, "json": json, "data": data}
    reply = await client.call(service_name, {k: v for k, v in body.items() if v is not None})
    envelope = reply.data if isinstance(reply.data, dict) else {}
    got = envelope.get("headers")
    items = [(str(k), str(v)) for k, v in got.items()] if isinstance(got, dict) else []
    answer, cut = fit_body(envelope.get("body"), limits.max_response_body)
    result = CallResult(
        status=int(envelope.get("status_code") or 0),
        url=url,
        headers=returned_headers(items),
        body=answer,
        body_truncated=cut,
        body_size=sent_size(envelope.get("body")) if envelope.get("body") is not None else 0,
        body_limit=limits.max_response_body,
        rate_limit=rate_limit_of(items, time.time()),
        redactions=int(reply.headers.get(REDACTIONS_HEADER, "0") or 0),
        audit_id=reply.headers.get(AUDIT_HEADER),
    )
    return as_tool_result(result)


def _with_audit(structured: dict[str, Any], line: str, headers: Any) -> CallToolResult:
    """The structured answer, and a text line naming the server's audit record where it sent one."""
    from mcp.types import TextContent

    audit_id = headers.get(AUDIT_HEADER) if headers is not None else None
    text = f"{line}; audit id {audit_id}" if audit_id else line
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def _tool_errors(fn: Callable[..., Awaitable[Any]]) -> ToolFunction:
    @functools.wraps(fn)
    async def wrapper(**kwargs: Any) -> Any:
        try:
            return await fn(**kwargs)
        except ClavisError as exc:
            raise ToolError(str(exc)) from None

    return wrapper


def build_team_server(client: TeamClient, limits: CallLimits | None = None) -> ClavisServer[TeamContext]:
    """The four tools over ``client``; nothing is contacted until a tool is called."""
    limits = limits or CallLimits.from_env()

    @asynccontextmanager
    async def lifespan(_: MCPServer[TeamContext]) -> AsyncIterator[TeamContext]:
        try:
            yield TeamContext(client)
        finally:
            await client.aclose()

    server: ClavisServer[TeamContext] = ClavisServer(
        name="clavis-mcp", title=f"clavis-mcp (team server {client.url})", version=__version__,
        instructions=INSTRUCTIONS, lifespan=lifespan, log_level="WARNING",
    )  # fmt: skip
    bodies: dict[str, Callable[..., Awaitable[Any]]] = {
        "list_services": functools.partial(list_services, client),
        "get_credentials": functools.partial(get_credentials, client),
        "check_credential_status": functools.partial(check_credential_status, client),
        "call_service": functools.partial(call_service, client, limits),
    }
    for spec in TOOLS:
        spec.register(server, _tool_errors(bodies[spec.name]))
    return server


def team_server_from_env() -> ClavisServer[Any]:
    """The team client's server, or, if its settings are wrong, one whose tools all say what to fix."""
    import sys

    try:
        return build_team_server(TeamClient.from_env(), CallLimits.from_env())
    except ClavisError as exc:
        reason = (
            f"clavis-mcp cannot use the team server: {exc}. Fix it in this MCP server's configuration, then restart it"
        )
    print(f"clavis-mcp: {reason}", file=sys.stderr)
    server: ClavisServer[None] = ClavisServer(
        name="clavis-mcp", title="clavis-mcp (team server misconfigured)", version=__version__,
        instructions=reason, log_level="WARNING",
    )  # fmt: skip

    async def report(**_: Any) -> Any:
        raise ToolError(reason)

    for spec in TOOLS:
        spec.register(server, report)
    return server
