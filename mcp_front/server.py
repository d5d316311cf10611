"""The MCP server: four tools over the vault and the embedded proxy.

Thin by design: validation and formatting only. Secrets are handled by the proxy at egress;
no tool result or error message carries one (get_credentials under a ``full`` policy is the
single, audited exception).
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Annotated, Any, Literal

import httpx
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from vault import Service
from vault.errors import ClavisError

from .calls import check_target, render_body, returned_headers, split_headers
from .gateway import Gateway, proxy_facts
from .models import CallResult, CredentialInfo, CredentialState, CredentialStatus, ServiceInfo, ServiceList

INSTRUCTIONS = """\
clavis-mcp holds API credentials so you never need to see them. To call an API, use
call_service with the service name and a full https:// URL on one of the service's hosts:
the credential is added on the way out and scrubbed from the response. Use list_services to
see what is available. Prefer call_service over get_credentials, which only shows a masked
form unless the user has allowed full reveal for that service."""


def _tool_errors[**P, R](fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn our anticipated errors into tool errors the model can read and act on."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except ClavisError as exc:
            raise ToolError(str(exc)) from None

    return wrapper


def credential_state(service: Service, now: float | None = None) -> CredentialState:
    """What the vault alone can tell: expired or not. Validity needs a live check with the provider."""
    now = time.time() if now is None else now
    if service.expires_at is not None and service.expires_at <= now:
        return "expired"
    return "unknown"


def service_info(service: Service) -> ServiceInfo:
    return ServiceInfo(
        name=service.name,
        connector=service.connector,
        auth_method=service.auth.describe(),
        hosts=[str(rule) for rule in service.hosts],
        local=service.local,
        reveal_policy=service.reveal,
        state=credential_state(service),
        expires_at=service.expires_at,
    )


def build_server(gateway: Gateway) -> MCPServer[None]:
    """The server with its tools bound to ``gateway``; tests pass a gateway over a temporary vault."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[None]) -> AsyncIterator[None]:
        try:
            yield None
        finally:
            await gateway.aclose()

    server: MCPServer[None] = MCPServer(
        name="clavis-mcp",
        version=version("clavis-mcp"),
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level="WARNING",
    )
    vault = gateway.vault

    @server.tool(
        title="List services",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    @_tool_errors
    async def list_services() -> ServiceList:
        """List the services whose credentials this vault holds: names, hosts and state, never values."""
        return ServiceList(services=[service_info(s) for s in vault.list_services()])

    @server.tool(
        title="Get credentials",
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False),
    )
    @_tool_errors
    async def get_credentials(
        service_name: Annotated[str, Field(description="Name of the service, as list_services shows it.")],
    ) -> CredentialInfo:
        """Show a service's credential as its reveal policy allows: masked by default.

        Prefer call_service, which uses the credential without exposing it."""
        service = vault.get_service(service_name)
        if service.reveal == "never":
            raise ToolError(
                f"the credential of {service_name!r} is never revealed; use call_service to make requests with it"
            )
        if credential_state(service) == "expired":
            raise ToolError(f"the credential of {service_name!r} has expired; rotate it with: clavis-mcp rotate")
        secret = vault.secret(service_name)
        value = None
        if service.reveal == "full":
            gateway.audit.append(source="mcp", service=service_name, action="reveal", decision="revealed")
            value = secret.reveal()
        return CredentialInfo(
            service_name=service_name,
            reveal_policy=service.reveal,
            masked=secret.masked(),
            fingerprint=secret.fingerprint,
            token_type=service.auth.kind,
            expires_at=service.expires_at,
            value=value,
        )

    @server.tool(
        title="Check credential status",
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    @_tool_errors
    async def check_credential_status(
        service_name: Annotated[str, Field(description="Name of the service, as list_services shows it.")],
    ) -> CredentialStatus:
        """Report whether a service's credential is usable: present, decryptable, not expired."""
        service = vault.get_service(service_name)
        vault.secret(service_name)  # raises if missing or failing its integrity check
        state = credential_state(service)
        detail = {
            "expired": "the credential has expired; rotate it with: clavis-mcp rotate",
            "unknown": "stored and intact in the vault; not yet verified with the provider",
        }[state]
        return CredentialStatus(service_name=service_name, state=state, expires_at=service.expires_at, detail=detail)

    @server.tool(
        title="Call a service",
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=True),
    )
    @_tool_errors
    async def call_service(
        service_name: Annotated[str, Field(description="Name of the service whose credential to use.")],
        method: Annotated[
            Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], Field(description="HTTP method.")
        ],
        url: Annotated[str, Field(description="Absolute https:// URL on one of the service's hosts.")],
        headers: Annotated[dict[str, str] | None, Field(description="Extra request headers.")] = None,
        params: Annotated[dict[str, str] | None, Field(description="Query parameters.")] = None,
        json: Annotated[Any, Field(description="JSON request body.")] = None,
        data: Annotated[str | None, Field(description="Raw request body (text).")] = None,
    ) -> CallResult:
        """Call an API with a stored credential, added at egress; the response comes back redacted."""
        service = vault.get_service(service_name)
        target = check_target(service, method, url)
        kept, ignored = split_headers(headers)
        if json is not None and data is not None:
            raise ToolError("give either json or data, not both")
        body: dict[str, Any] = {"json": json} if json is not None else {"content": data} if data else {}
        try:
            response = await gateway.request(service_name, method, target.url, headers=kept, params=params, **body)
        except httpx.ProxyError as exc:
            raise ToolError(f"the clavis proxy refused the connection ({exc}); check the service's hosts") from None
        except httpx.TimeoutException:
            raise ToolError(f"{target.host} did not answer in time; try again later") from None
        except httpx.TransportError as exc:
            raise ToolError(f"could not reach {target.host}: {type(exc).__name__}") from None
        audit_id, redactions, refused = proxy_facts(response)
        if refused:
            raise ToolError(f"the clavis proxy refused the request: {refused}")
        content = response.content
        rendered, truncated = render_body(content, response.headers.get("content-type", ""))
        return CallResult(
            status=response.status_code,
            headers=returned_headers(list(response.headers.items())),
            body=rendered,
            body_truncated=truncated,
            body_size=len(content),
            redactions=redactions,
            audit_id=audit_id,
            ignored_headers=ignored,
        )

    return server
