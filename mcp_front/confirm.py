"""Asking the user before a full reveal or a write, where the client can ask (elicitation).

The questions are SDK resolvers (``Resolve``), which work on both protocol paths: a
standalone ``elicitation/create`` request on handshake connections, an input-required round
on 2026-07-28 ones. A resolver returns ``NotAsked`` when there is nothing to ask or the
client cannot ask, and the service's policy alone decides. The question is written by the
server from the validated request; the form only asks yes or no, so no secret ever travels
through it.

The resolvers are part of the tools' specifications (``tool_specs.py``), which the server
without a vault shares: there they find no gateway and ask nothing.

Most calls ask nothing (a GET, a service that does not confirm writes, a client that cannot
ask), and that is known from the raw arguments: ``write_unasked`` says so, and the server then
runs call_service with ``UNASKED`` as its answer instead of through the SDK's resolution.
"""

from __future__ import annotations

import json as json_text
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Elicit
from pydantic import BaseModel, Field

from clavis_mcp.vault import Service, Vault
from clavis_mcp.vault.errors import ClavisError
from clavis_mcp.vault.policy import ServicePolicy, policies_as_of
from clavis_mcp.vault.proxy_headers import header_key

from .gateway import MCP_CLIENT, Gateway
from .service_call import prepare_call


class Approval(BaseModel):
    approve: bool = Field(description="Yes to go ahead, no to refuse.")


class NotAsked(BaseModel):
    """The user was not asked: nothing needs asking, or the client cannot ask."""

    reason: str


Answer = ElicitationResult[Approval]
UNASKED: Answer = AcceptedElicitation[Any].model_construct(data=NotAsked(reason="nothing to ask"))
"""The answer of a question not asked, as the SDK hands a resolver's ``NotAsked`` to the tool."""


def can_ask(ctx: Context[Any, Any]) -> bool:
    """Whether the client declared form elicitation (a bare ``elicitation: {}`` counts as form)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def reveal_question(service: Service) -> str:
    return (
        f"An AI assistant asks to see {service.auth.revealed_as} of service {service.name!r} "
        f"({service.connector}, for {', '.join(str(h) for h in service.hosts)}). It will be able to copy it. "
        "Reveal it?"
    )


BODY_SHOWN = 600  # characters of a body shown in the question


def write_question(credential: str, method: str, url: str, headers: list[str], body: str | None, size: int) -> str:
    """The question before a write: the request as it will be sent, every part the assistant chose
    shown :func:`quoted`, so nothing in it can pass for this text; the body's size before the body,
    whose end is cut (with the count) rather than pushed out of sight."""
    listed = "\n".join(f"- {header}" for header in headers) if headers else "- none"
    if body is None:
        shown = "Body: none"
    elif len(body) > BODY_SHOWN:
        cut = f"its first {BODY_SHOWN} of {len(body)} characters, the rest not shown"
        shown = f"Body, {size} bytes; {cut}: {quoted(body[:BODY_SHOWN])}"
    else:
        shown = f"Body, {size} bytes: {quoted(body)}"
    return (
        f"An AI assistant wants to send this request with {credential}. What the assistant chose is "
        "between backquotes, with line breaks, invisible characters and backquotes written as \\ escapes.\n\n"
        f"Request: {quoted(f'{method} {url}')}\nHeaders:\n{listed}\n{shown}\n\nAllow it?"
    )


def quoted(text: str) -> str:
    """``text`` between backquotes, with everything that could end the quote, break the line,
    reorder or hide text written as a ``\\`` escape: backslash, backquote, controls, format
    characters (bidi, zero-width), line and paragraph separators, spaces other than U+0020. A
    backquote becomes ``\\u0060``: where a client renders Markdown, any backquote (even one after
    a backslash) would end the code span."""
    return "`" + "".join(_ESCAPES.get(c) or (_escape(c) if _hidden(c) else c) for c in text) + "`"


_ESCAPES = {"\\": "\\\\", "`": "\\u0060", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})


def _hidden(c: str) -> bool:
    return c != " " and unicodedata.category(c) in _HIDDEN


def _escape(c: str) -> str:
    return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"


def wire_url(url: str, params: Mapping[str, str] | None) -> str:
    """The URL as httpx sends it (``params`` merged into the query, percent-encoded, no fragment),
    as the gateway and the team server build it; one httpx cannot read is shown as given, with
    its parameters, since the user is asked all the same."""
    import httpx  # loaded by the gateway before any call is sent; kept off the start-up path

    try:
        target = httpx.URL(url)
        if params:
            target = target.copy_merge_params(dict(params))
        return str(target.copy_with(fragment=None))
    except (httpx.InvalidURL, ValueError):  # UnicodeError among them
        return f"{url} with the query parameters {json_text.dumps(params, ensure_ascii=False)}" if params else url


def header_lines(headers: Mapping[str, str], replaced: Callable[[str], bool] = lambda _: False) -> list[str]:
    """Each header quoted as ``Name: value``; one that ``replaced`` says clavis-mcp sets is marked so."""
    return [
        quoted(f"{name}: {value}") + (" (clavis-mcp replaces it)" if replaced(name) else "")
        for name, value in headers.items()
    ]


def approval_policy(vault: Vault, service_name: str) -> ServicePolicy:
    """The service's policy as of the proxy's snapshot, the one its approval stage reads: read once
    per vault change, not once per call (a policy change moves the change counter). A service
    without one, or none of that name (the tool body names the known ones), asks nothing."""
    return policies_as_of(vault, vault.snapshot()).get(service_name) or ServicePolicy()


def outcome(answer: Answer | AcceptedElicitation[Any]) -> bool | None:
    """True if approved, False if declined or cancelled, None if the user was not asked."""
    if isinstance(answer, AcceptedElicitation):
        if isinstance(answer.data, NotAsked):
            return None
        return isinstance(answer.data, Approval) and answer.data.approve
    return False


def write_unasked(arguments: Mapping[str, Any], ctx: Context[Any, Any]) -> bool:
    """Whether :func:`confirm_write` would certainly not ask about this call, judged from its raw
    arguments as it would judge them validated: the client cannot ask, or the policy does not ask
    about this method. Anything else (a team client, an argument of the wrong type, a vault that
    cannot answer) is left to the resolver, which decides as it always did."""
    try:
        gateway = ctx.request_context.lifespan_context
        service_name, method = arguments.get("service_name"), arguments.get("method")
        if not isinstance(gateway, Gateway) or not isinstance(service_name, str) or not isinstance(method, str):
            return False
        return not can_ask(ctx) or not approval_policy(gateway.vault, service_name).needs_approval(MCP_CLIENT, method)
    except Exception:  # the resolver meets it again, and handles it as it always did
        return False


async def confirm_reveal(service_name: str, ctx: Context[Any, Any]) -> Elicit[Approval] | NotAsked:
    """Ask before a full reveal, where the policy is ``full`` and the client can ask."""
    gateway = ctx.request_context.lifespan_context
    if hasattr(gateway, "confirm_reveal"):  # a team client (team_server.TeamContext): the server's policy
        return await gateway.confirm_reveal(service_name, ctx)  # type: ignore[no-any-return]
    if not isinstance(gateway, Gateway):
        return NotAsked(reason="no vault is open")  # the tool body says why
    try:
        service = gateway.vault.get_service(service_name)
    except ClavisError:
        return NotAsked(reason="unknown service")  # the tool body reports it
    if service.reveal != "full":
        return NotAsked(reason=f"reveal policy {service.reveal}")
    if service.auth.revealed_field is None:
        return NotAsked(reason="a signing key is never revealed")  # the tool refuses: no question to ask
    if not can_ask(ctx):
        return NotAsked(reason="the client cannot ask the user")
    return Elicit(reveal_question(service), Approval)


async def confirm_write(
    service_name: str,
    method: str,
    url: str,
    headers: dict[str, str] | None,
    params: dict[str, str] | None,
    json: Any,
    data: str | None,
    ctx: Context[Any, Any],
) -> Elicit[Approval] | NotAsked:
    """Ask before a write, where the service asks for it, the request is valid and the client can ask."""
    gateway = ctx.request_context.lifespan_context
    if hasattr(gateway, "confirm_write"):  # a team client (team_server.TeamContext): the server's policy
        return await gateway.confirm_write(service_name, method, url, headers, params, json, data, ctx)  # type: ignore[no-any-return]
    if not isinstance(gateway, Gateway):
        return NotAsked(reason="no vault is open")  # the tool body says why
    try:
        if not approval_policy(gateway.vault, service_name).needs_approval(MCP_CLIENT, method):
            return NotAsked(reason="the service's approval policy does not ask about this request")
        service = gateway.vault.get_service(service_name)
        call = prepare_call(service, method, url, headers, params, json, data, gateway.limits)
    except ClavisError:
        return NotAsked(reason="invalid request")  # the tool body refuses it with the reason
    if not can_ask(ctx):
        return NotAsked(reason="the client cannot ask the user")
    body = None if call.raw_body is None else call.raw_body.decode("utf-8", "replace")
    url_shown = wire_url(call.target.url, call.params)
    headers_shown = header_lines(call.headers, sets_header(service))
    question = write_question(f"the credential of {service.name!r}", call.method, url_shown, headers_shown, body,
                              len(call.raw_body or b""))  # fmt: skip
    return Elicit(question, Approval)


def sets_header(service: Service) -> Callable[[str], bool]:
    """Whether the proxy replaces a header of this name: the credential's, in any spelling (as its
    strip plan reads them), or a fixed header of the service's (any case)."""
    credential = {header_key(name) for name in service.auth.credential_headers()}
    fixed = {name.lower() for name, _ in service.auth.extra_headers}
    return lambda name: header_key(name) in credential or name.lower() in fixed
