"""The four tools as a client sees them, declared once for both servers.

The real server (``server.py``) and the one that answers when the vault cannot be opened
(``unavailable.py``) must show the same tools, in the same order, with the same titles,
descriptions, annotations and schemas: a client, and a user who approved a tool by what it
declares, must not see the tools change because the vault was locked when the server started.

A specification is written as MCPServer reads a tool: a signature whose parameters (with
their ``Field`` constraints) are the input schema, whose docstring is the description and
whose return type is the output schema. Its ``Resolve`` parameters are the questions the tool
may put to the user first (``confirm.py``); they are filled by the SDK and never shown, and
skipped where ``unasked`` tells from the raw arguments that nothing would be asked. A server
registers a body for each specification; the body is called with the arguments by name and
cannot change what the client sees.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from mcp.server.mcpserver.resolve import Resolve
from mcp.types import ToolAnnotations
from pydantic import Field

from .arguments import ClavisServer, Unasked
from .confirm import Answer, confirm_reveal, confirm_write, write_unasked
from .models import CallResult, CredentialInfo, CredentialStatus, ServiceList
from .paging import DEFAULT_LIMIT, MAX_LIMIT

type ToolFunction = Callable[..., Awaitable[Any]]

ServiceName = Annotated[
    str,
    Field(
        description="Name of the service, as list_services shows it.",
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
    ),
]
Method = Annotated[
    str,
    Field(
        description="HTTP method, in any case: GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS; "
        "the service's method policy may allow fewer.",
        min_length=1,
        max_length=16,
    ),
]

# Per-item bounds on call_service's headers and params, so a schema-checking client refuses a huge
# one before it is sent; their totals are checked by calls.split_headers and calls.check_query.
HeaderName = Annotated[str, Field(min_length=1, max_length=256)]
HeaderValue = Annotated[str, Field(max_length=8192)]
ParamName = Annotated[str, Field(max_length=1024)]
ParamValue = Annotated[str, Field(max_length=16384)]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool's name, title, description, annotations, input and output schemas."""

    signature: ToolFunction
    title: str
    annotations: ToolAnnotations
    unasked: Unasked | None = None  # True when none of the tool's questions would be asked

    @property
    def name(self) -> str:
        return self.signature.__name__

    def register(self, server: ClavisServer[Any], body: ToolFunction) -> None:
        """Add ``body`` to ``server`` as this tool, shown with this specification's signature."""

        @functools.wraps(self.signature)  # MCPServer reads the schemas through __wrapped__
        async def tool(**arguments: Any) -> Any:
            return await body(**arguments)

        server.add_tool(tool, name=self.name, title=self.title, annotations=self.annotations)
        if self.unasked is not None:
            server.ask_only_when_needed(self.name, self.unasked)


def tool_spec(
    title: str,
    *,
    read_only: bool,
    destructive: bool,
    idempotent: bool,
    open_world: bool,
    unasked: Unasked | None = None,
) -> Callable[[ToolFunction], ToolSpec]:
    """Declare a specification from a signature. The annotations repeat the title: clients older than
    the 2025-06-18 protocol read it there."""

    def declare(signature: ToolFunction) -> ToolSpec:
        annotations = ToolAnnotations(
            title=title, read_only_hint=read_only, destructive_hint=destructive, idempotent_hint=idempotent,
            open_world_hint=open_world,
        )  # fmt: skip
        return ToolSpec(signature, title, annotations, unasked)

    return declare


@tool_spec("List services", read_only=True, destructive=False, idempotent=True, open_world=False)
async def list_services(
    limit: Annotated[
        int, Field(description="Most services to return in this page (1-1000).", ge=1, le=MAX_LIMIT)
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Field(
            description="next_cursor from the previous page, unchanged; leave out for the first page.", max_length=400
        ),
    ] = None,
    match: Annotated[
        str | None,
        Field(description="Only services whose name contains this text (any case).", max_length=64),
    ] = None,
) -> ServiceList:
    """List the services whose credentials this vault holds: names, hosts, allowed methods, state,
    expiry and last use. Never a credential value.

    Sorted by name, in pages of up to limit (default 100): while next_cursor is set, call again
    with cursor=next_cursor for the next page; total counts every match. To find one service,
    pass part of its name as match."""
    raise NotImplementedError  # a specification: each server registers its own body


@tool_spec("Get credentials", read_only=False, destructive=False, idempotent=True, open_world=False)
async def get_credentials(
    service_name: ServiceName,
    confirmation: Annotated[Answer, Resolve(confirm_reveal)],
) -> CredentialInfo:
    """Show a service's credential as its reveal policy allows: masked (the last four characters
    of a long credential, nothing of a short one; a keyed fingerprint; expiry) by default, the
    full value only where the user allowed it.

    Prefer call_service, which uses the credential without exposing it. Every use is audited."""
    raise NotImplementedError


@tool_spec("Check credential status", read_only=True, destructive=False, idempotent=False, open_world=True)
async def check_credential_status(
    service_name: ServiceName,
    live: Annotated[
        bool,
        Field(description="Also send the service's cheap probe request through the proxy and record the result."),
    ] = False,
) -> CredentialStatus:
    """Report whether a service's credential is usable: state (valid, invalid, expired,
    reauth_required, locked, unknown), expiry, the last live check and the latest rate-limit figures."""
    raise NotImplementedError


@tool_spec(
    "Call a service", read_only=False, destructive=True, idempotent=False, open_world=True, unasked=write_unasked
)
async def call_service(
    service_name: ServiceName,
    method: Method,
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
        dict[HeaderName, HeaderValue] | None,
        Field(
            description="Extra request headers, at most 16 KiB in all. Authorization, Host, Cookie and proxy "
            "headers are ignored.",
            max_length=64,
        ),
    ] = None,
    params: Annotated[
        dict[ParamName, ParamValue] | None,
        Field(
            description="Query parameters added to the URL; the URL's path and query, percent-encoded, at most 40 KiB.",
            max_length=256,
        ),
    ] = None,
    json: Annotated[Any, Field(description="JSON request body (do not combine with data).")] = None,
    data: Annotated[str | None, Field(description="Raw text request body (do not combine with json).")] = None,
) -> CallResult:
    """Call an API with a stored credential, added at egress; the response comes back redacted,
    with allowlisted headers, the body (parsed JSON or text, cut at the size limit; binary bodies
    summarised), the rate-limit figures, the redaction count and the audit id."""
    raise NotImplementedError


TOOLS: tuple[ToolSpec, ...] = (list_services, get_credentials, check_credential_status, call_service)
"""In the order clients list them."""
