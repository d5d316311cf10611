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
import re
import string
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Elicit
from pydantic import BaseModel, Field

from clavis_mcp.vault import Service, Vault
from clavis_mcp.vault.errors import ClavisError
from clavis_mcp.vault.method_overrides import OVERRIDE_HEADERS, UNREADABLE, judged_method
from clavis_mcp.vault.policy import ServicePolicy, policies_as_of
from clavis_mcp.vault.proxy_headers import header_key
from clavis_mcp.vault.request_path import normalise_path
from clavis_mcp.vault.visible_text import visible

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


QUESTION_BOUND = 8 * 1024  # characters: the question's length whatever the request (LOW-2)
METHOD_SHOWN = 40  # characters of the judged method, in the summary
HOST_SHOWN = 100
OVERRIDES_SHOWN = 200  # of the method with its overrides
URL_SHOWN = 1000
HEADERS_SHOWN = 16  # headers listed; the rest are counted
HEADER_SHOWN = 160
BODY_SHOWN = 600
# Each bound counts escaped characters, so text that escapes long (\U000e0041) cannot exceed it.


def write_question(
    credential: str, method: str, judged: str, url: str, headers: list[str], body: str | None, size: int
) -> str:
    """The question before a write, of bounded length (:data:`QUESTION_BOUND`): a summary first
    (the method judged, as the proxy judges it, the host and the sizes), then the request as it will
    be sent, every part the assistant chose shown :func:`quoted` and cut, with its count, at a
    bound, so nothing in it can pass for this text or push "Allow it?" out of sight. ``method``
    is the request line's method with its overrides (``GET (X-HTTP-Method-Override: DELETE)``);
    ``headers`` are :func:`header_lines`."""
    line, _, overrides = method.partition(" ")
    plain = unreserved_decoded(url)
    host = urlsplit(url).netloc if "://" in url else ""
    listed = [f"- {header}" for header in headers[:HEADERS_SHOWN]] or ["- none"]
    if len(headers) > HEADERS_SHOWN:
        listed.append(f"- and {len(headers) - HEADERS_SHOWN} more headers, not shown")
    return "\n".join([
        f"An AI assistant wants to send a {labelled('', judged, METHOD_SHOWN)} request to "
        f"{labelled('', host, HOST_SHOWN)} with {credential} (URL of {len(url)} characters, {len(headers)} headers, "
        f"body of {size} bytes). What the assistant chose is between backquotes, with line breaks, backquotes "
        "and every character other than printable ASCII written as \\ escapes.",
        "",
        *([labelled("Method: ", method, OVERRIDES_SHOWN)] if overrides else []),
        labelled("Request: ", f"{line} {url}", URL_SHOWN),
        *([labelled("Which reads as: ", f"{line} {plain}", URL_SHOWN)] if plain != url else []),
        "Headers:",
        *listed,
        "Body: none" if body is None else labelled(f"Body, {size} bytes: ", body, BODY_SHOWN),
        "",
        "Allow it?",
    ])  # fmt: skip


def unreserved_decoded(url: str) -> str:
    """``url`` with percent-encoded unreserved characters (RFC 3986: letters, digits, ``-._~``)
    decoded: every server reads ``%70%72%6f%64`` as ``prod``, but a person does not."""
    return _ENCODED.sub(lambda m: chr(int(m[1], 16)) if chr(int(m[1], 16)) in _UNRESERVED else m[0], url)


_ENCODED = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")


def sent_url(url: str, path_policy: bool) -> str:
    """``url`` (as httpx sends it) as the proxy sends it on: where the service limits its paths, the
    path normalised (``..`` resolved, repeated slashes merged) as the path policy forwards it. A
    path the policy refuses is shown as given: it is never sent."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url)) if "://" in url else ""
    path, sep, query = url.removeprefix(origin).partition("?")
    if not path_policy or not origin or not url.startswith(origin):
        return url
    try:
        return origin + normalise_path(path or "/") + sep + query
    except ValueError:
        return url


def labelled(label: str, text: str, bound: int) -> str:
    """``label`` and ``text`` :func:`quoted`; where that would take more than ``bound`` characters,
    its first characters that fit, saying before them how many of how many."""
    pieces: list[str] = []
    length = 0
    for c in text:
        piece = _ESCAPES.get(c) or visible(c)
        if length + len(piece) > bound:
            cut = f"its first {len(pieces)} of {len(text)} characters (the rest not shown): "
            return f"{label}{cut}`{''.join(pieces)}`"
        pieces.append(piece)
        length += len(piece)
    return f"{label}`{''.join(pieces)}`"


def quoted(text: str) -> str:
    """``text`` between backquotes, as :func:`~vault.visible_text.visible` shows it (everything
    but printable ASCII escaped), with a backslash doubled, line breaks as ``\\n``, and a
    backquote as ``\\u0060``: where a client renders Markdown, any backquote (even one after a
    backslash) would end the code span."""
    return "`" + visible(text, _ESCAPES) + "`"


_ESCAPES = {"\\": "\\\\", "`": "\\u0060", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


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
    """Each header quoted as ``Name: value`` and cut at :data:`HEADER_SHOWN`; one that ``replaced``
    says clavis-mcp sets is marked so."""
    return [
        labelled("", f"{name}: {value}", HEADER_SHOWN) + (" (clavis-mcp replaces it)" if replaced(name) else "")
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
    arguments as it would judge them validated: the client cannot ask, the policy asks about no
    method, or it does not ask about this one and nothing in the call could name another (an
    override header, a body, a query that spells ``method`` or percent-encodes). Anything else (a
    team client, an argument of the wrong type, a vault that cannot answer) is left to the
    resolver, which decides as it always did."""
    try:
        gateway = ctx.request_context.lifespan_context
        service_name, method = arguments.get("service_name"), arguments.get("method")
        if not isinstance(gateway, Gateway) or not isinstance(service_name, str) or not isinstance(method, str):
            return False
        policy = approval_policy(gateway.vault, service_name)
        if not can_ask(ctx) or not policy.needs_approval(MCP_CLIENT, UNREADABLE):
            return True
        return not policy.needs_approval(MCP_CLIENT, method) and not _may_override(arguments)
    except Exception:  # the resolver meets it again, and handles it as it always did
        return False


def _may_override(arguments: Mapping[str, Any]) -> bool:
    headers, params = arguments.get("headers") or {}, arguments.get("params") or {}
    if not isinstance(headers, dict) or not isinstance(params, dict):
        return True
    if arguments.get("json") is not None or arguments.get("data") is not None:
        return True
    if any(header_key(str(name)) in OVERRIDE_HEADERS for name in headers):
        return True
    query = str(arguments.get("url", "")).partition("?")[2] + " ".join(map(str, params))
    return "%" in query or "method" in query.lower()


def judged_call(method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> tuple[str, str]:
    """The method shown and the method judged, read from the request as the proxy's approval stage
    reads it (``addons.approval.requested_method``): the request line's and every override in the
    headers, the query as sent (``url``) and the body, so a GET that says DELETE is asked about."""
    named = {name.lower(): value for name, value in headers.items()}
    return judged_method(
        method, headers.items(), urlsplit(url).query, named.get("content-type", ""),
        named.get("content-encoding", ""), body,
    )  # fmt: skip


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
        policy = approval_policy(gateway.vault, service_name)
        if not policy.needs_approval(MCP_CLIENT, UNREADABLE):
            return NotAsked(reason="the service's approval policy does not ask about this request")
        service = gateway.vault.get_service(service_name)
        call = prepare_call(service, method, url, headers, params, json, data, gateway.limits)
    except ClavisError:
        return NotAsked(reason="invalid request")  # the tool body refuses it with the reason
    url_shown = sent_url(wire_url(call.target.url, call.params), bool(service.path_prefixes))
    shown_method, judged = judged_call(call.method, url_shown, call.headers, call.raw_body)
    if not policy.needs_approval(MCP_CLIENT, judged):
        return NotAsked(reason="the service's approval policy does not ask about this request")
    if not can_ask(ctx):
        return NotAsked(reason="the client cannot ask the user")
    body = None if call.raw_body is None else call.raw_body.decode("utf-8", "replace")
    headers_shown = header_lines(call.headers, sets_header(service))
    question = write_question(f"the credential of {service.name!r}", shown_method, judged, url_shown, headers_shown,
                              body, len(call.raw_body or b""))  # fmt: skip
    return Elicit(question, Approval)


def sets_header(service: Service) -> Callable[[str], bool]:
    """Whether the proxy replaces a header of this name: the credential's, in any spelling (as its
    strip plan reads them), or a fixed header of the service's (any case)."""
    credential = {header_key(name) for name in service.auth.credential_headers()}
    fixed = {name.lower() for name, _ in service.auth.extra_headers}
    return lambda name: header_key(name) in credential or name.lower() in fixed
