"""The MCP server: four tools over the vault and the embedded proxy.

Thin by design: validation and formatting only. Secrets are handled by the proxy at egress;
no tool result or error message carries one (get_credentials under a ``full`` policy is the
single, audited exception). The tools are declared in a fixed order, which is the order
clients list them in.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.types import ToolAnnotations
from pydantic import Field

from clavis_mcp.vault import Service, Vault, oauth_store
from clavis_mcp.vault.connectors import Probe, load_catalog
from clavis_mcp.vault.errors import ClavisError

from . import __version__
from .calls import SAFE_METHODS, CallRefused, allowed_methods, body_preview
from .confirm import Answer, Approval, NotAsked, can_ask, outcome, reveal_question, write_question
from .credentials import CHECK_ACTION, Usage, credential_state, fresh_credential, usage_by_service
from .gateway import Gateway, GatewayError
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
from .ratelimit import rate_limit_of, recorded_rate_limit
from .service_call import perform_call, prepare_call
from .settings import load_settings, probe_text

INSTRUCTIONS = """\
clavis-mcp holds API credentials so you never need to see them. To call an API, use
call_service with the service name and a full https:// URL on one of the service's hosts:
the credential is added on the way out and scrubbed from the response. Use list_services to
see what is available and check_credential_status to see whether a credential works and how
much of its rate limit is left. Always prefer call_service over get_credentials:
get_credentials shows only a masked form unless the user has allowed full reveal for that
service, and a revealed key can leak through your context."""

SERVICE_NAME = Annotated[
    str,
    Field(
        description="Name of the service, as list_services shows it.",
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
    ),
]
METHOD = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _tool_errors[**P, R](fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn our anticipated errors into tool errors the model can read and act on."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except ClavisError as exc:
            raise ToolError(str(exc)) from None

    return wrapper


def service_info(vault: Vault, service: Service, usage: Usage, confirm_writes: bool) -> ServiceInfo:
    return ServiceInfo(
        name=service.name,
        connector=service.connector,
        auth_method=oauth_store.describe_auth(vault, service),
        hosts=[str(rule) for rule in service.hosts],
        allowed_methods=list(allowed_methods(service)),
        allowed_paths=list(service.path_prefixes) or ["/"],
        local=service.local,
        reveal_policy=service.reveal,
        confirm_writes=confirm_writes,
        state=credential_state(vault, service, usage)[0],
        expires_at=service.expires_at,
        last_used_at=usage.last_used_at,
    )


def probe_for(vault: Vault, service: Service) -> Probe | None:
    """The service's own probe if one is set, else its connector's (from the catalog)."""
    own = load_settings(vault, service.name).probe
    if own is not None:
        return own
    found = load_catalog(vault.home).get(service.connector)
    return found.probe if found is not None else None


def probe_url(service: Service, probe: Probe) -> str:
    """The probe's path on the service's first exact host (wildcard rules name no host to call)."""
    rule = next((r for r in service.hosts if not r.wildcard), None)
    if rule is None:
        raise CallRefused(f"service {service.name!r} has only wildcard hosts; a live check needs an exact host")
    return f"https://{rule}{probe.path}"


async def confirm_reveal(service_name: str, ctx: Context[Gateway, Any]) -> Elicit[Approval] | NotAsked:
    """Ask before a full reveal, where the policy is ``full`` and the client can ask."""
    vault = ctx.request_context.lifespan_context.vault
    try:
        service = vault.get_service(service_name)
    except ClavisError:
        return NotAsked(reason="unknown service")  # the tool body reports it
    if service.reveal != "full":
        return NotAsked(reason=f"reveal policy {service.reveal}")
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
    ctx: Context[Gateway, Any],
) -> Elicit[Approval] | NotAsked:
    """Ask before a write, where the service asks for it, the request is valid and the client can ask."""
    gateway = ctx.request_context.lifespan_context
    vault = gateway.vault
    if method.upper() in SAFE_METHODS:
        return NotAsked(reason="not a write")
    try:
        service = vault.get_service(service_name)
        if not load_settings(vault, service_name).confirm_writes:
            return NotAsked(reason="the service does not ask for confirmation of writes")
        call = prepare_call(service, method, url, headers, params, json, data, gateway.limits)
    except ClavisError:
        return NotAsked(reason="invalid request")  # the tool body refuses it with the reason
    if not can_ask(ctx):
        return NotAsked(reason="the client cannot ask the user")
    return Elicit(write_question(service, call.method, call.display_url, body_preview(call.raw_body)), Approval)


def build_server(gateway: Gateway) -> MCPServer[Gateway]:
    """The server with its tools bound to ``gateway``; tests pass a gateway over a temporary vault."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[Gateway]) -> AsyncIterator[Gateway]:
        try:
            yield gateway
        finally:
            await gateway.aclose()

    server: MCPServer[Gateway] = MCPServer(
        name="clavis-mcp",
        title="clavis-mcp credential vault",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level="WARNING",
    )
    vault, audit = gateway.vault, gateway.audit

    def usage_of(name: str) -> Usage:
        return usage_by_service(audit, [name])[name]

    @server.tool(
        title="List services",
        annotations=ToolAnnotations(
            title="List services", read_only_hint=True, destructive_hint=False, idempotent_hint=True,
            open_world_hint=False,
        ),
    )  # fmt: skip
    @_tool_errors
    async def list_services() -> ServiceList:
        """List the services whose credentials this vault holds: names, hosts, allowed methods, state,
        expiry and last use. Never a credential value."""
        services = vault.list_services()
        usage = usage_by_service(audit, [s.name for s in services])
        return ServiceList(
            services=[
                service_info(vault, s, usage[s.name], load_settings(vault, s.name).confirm_writes) for s in services
            ]
        )

    @server.tool(
        title="Get credentials",
        annotations=ToolAnnotations(
            title="Get credentials", read_only_hint=False, destructive_hint=False, idempotent_hint=True,
            open_world_hint=False,
        ),
    )  # fmt: skip
    @_tool_errors
    async def get_credentials(
        service_name: SERVICE_NAME,
        confirmation: Annotated[Answer, Resolve(confirm_reveal)],
    ) -> CredentialInfo:
        """Show a service's credential as its reveal policy allows: masked (the last four characters
        of a long credential, nothing of a short one; a keyed fingerprint; expiry) by default, the
        full value only where the user allowed it.

        Prefer call_service, which uses the credential without exposing it. Every use is audited."""
        service = vault.get_service(service_name)
        if service.reveal == "never":
            audit.append(source="mcp", service=service_name, action="reveal", decision="refused",
                         reason="reveal policy never")  # fmt: skip
            raise ToolError(
                f"the credential of {service_name!r} is never revealed; use call_service to make requests with it"
            )
        secret = await fresh_credential(vault, service, audit)
        value = None
        if service.reveal == "full":
            if outcome(confirmation) is False:
                audit.append(source="mcp", service=service_name, action="reveal", decision="refused",
                             reason="the user declined")  # fmt: skip
                raise ToolError(
                    f"the user declined to reveal the credential of {service_name!r}; use call_service instead"
                )
            value = secret.reveal()
        audit.append(source="mcp", service=service_name, action="reveal", decision=service.reveal)
        return CredentialInfo(
            service_name=service_name,
            reveal_policy=service.reveal,
            masked=secret.masked(),
            fingerprint=secret.fingerprint,
            token_type=service.auth.kind,
            state=credential_state(vault, service, usage_of(service_name))[0],
            expires_at=service.expires_at,
            value=value,
        )

    @server.tool(
        title="Check credential status",
        annotations=ToolAnnotations(
            title="Check credential status", read_only_hint=True, destructive_hint=False, idempotent_hint=False,
            open_world_hint=True,
        ),
    )  # fmt: skip
    @_tool_errors
    async def check_credential_status(
        service_name: SERVICE_NAME,
        live: Annotated[
            bool,
            Field(description="Also send the service's cheap probe request through the proxy and record the result."),
        ] = False,
    ) -> CredentialStatus:
        """Report whether a service's credential is usable: state (valid, invalid, expired,
        reauth_required, locked, unknown), expiry, the last live check and the latest rate-limit figures."""
        service = vault.get_service(service_name)
        vault.secret(service_name)  # raises if missing or failing its integrity check
        rate_limit = None
        if live:
            probe = probe_for(vault, service)
            if probe is None:
                raise CallRefused(
                    f"no probe request is set for {service_name!r}, so it cannot be checked live; "
                    f"the user can set one with: clavis-mcp mcp-settings {service_name} --probe 'GET /v1/models'"
                )
            check, rate_limit = await _live_check(service, probe)
            audit.append(source="mcp", service=service_name, action=CHECK_ACTION, decision=check.state,
                         status=check.status, reason=check.detail)  # fmt: skip
        usage = usage_of(service_name)
        state, meaning = credential_state(vault, service, usage)
        now = time.time()
        return CredentialStatus(
            service_name=service_name,
            state=state,
            expires_at=service.expires_at,
            seconds_to_expiry=None if service.expires_at is None else round(service.expires_at - now, 3),
            detail=meaning,
            last_check=usage.last_check,
            rate_limit=rate_limit or recorded_rate_limit(vault, service_name),
        )

    async def _live_check(service: Service, probe: Probe) -> tuple[LastCheck, RateLimit | None]:
        now = time.time()
        try:
            body = {"content": probe.body, "headers": {"Content-Type": "application/json"}} if probe.body else {}
            fetched = await gateway.fetch(service.name, probe.method, probe_url(service, probe), **body)
        except (TimeoutError, GatewayError) as exc:
            reason = f"no answer from the provider ({type(exc).__name__})"
            return LastCheck(checked_at=now, state="unknown", detail=reason), None
        if fetched.refused:
            raise CallRefused(f"the clavis proxy refused the probe: {fetched.refused}")
        state: CredentialState = (
            "valid" if 200 <= fetched.status < 300 else "invalid" if fetched.status in (401, 403) else "unknown"
        )
        reason = f"{probe_text(probe)} answered {fetched.status}"
        snapshot = rate_limit_of(fetched.headers, fetched.received_at)
        return LastCheck(checked_at=now, state=state, status=fetched.status, detail=reason), snapshot

    @server.tool(
        title="Call a service",
        annotations=ToolAnnotations(
            title="Call a service", read_only_hint=False, destructive_hint=True, idempotent_hint=False,
            open_world_hint=True,
        ),
    )  # fmt: skip
    @_tool_errors
    async def call_service(
        service_name: SERVICE_NAME,
        method: Annotated[METHOD, Field(description="HTTP method; the service's method policy may allow fewer.")],
        url: Annotated[
            str,
            Field(
                description="Absolute https:// URL on one of the service's hosts (see list_services).",
                min_length=8,
                max_length=8192,
            ),
        ],
        confirmation: Annotated[Answer, Resolve(confirm_write)],
        headers: Annotated[
            dict[str, str] | None,
            Field(description="Extra request headers. Authorization, Host, Cookie and proxy headers are ignored."),
        ] = None,
        params: Annotated[dict[str, str] | None, Field(description="Query parameters added to the URL.")] = None,
        json: Annotated[Any, Field(description="JSON request body (do not combine with data).")] = None,
        data: Annotated[str | None, Field(description="Raw text request body (do not combine with json).")] = None,
    ) -> CallResult:
        """Call an API with a stored credential, added at egress; the response comes back redacted,
        with allowlisted headers, the body (parsed JSON or text, cut at the size limit; binary bodies
        summarised), the rate-limit figures, the redaction count and the audit id."""
        service = vault.get_service(service_name)
        call = prepare_call(service, method, url, headers, params, json, data, gateway.limits)
        if outcome(confirmation) is False:
            audit.append(source="mcp", service=service_name, action="call", method=call.method,
                         host=call.target.host, port=call.target.port, decision="refused",
                         reason="the user declined")  # fmt: skip
            raise ToolError(f"the user declined this {call.method} request to {service_name!r}; it was not sent")
        return await perform_call(gateway, call)

    return server
