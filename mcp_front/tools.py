"""The bodies of the four tools of the real server, each given the gateway it works through.

What a client sees of each tool (its schemas, description, annotations) is in
``tool_specs.py``; these functions receive the validated arguments by name, plus the user's
answer where the tool asked one (``confirm.py``). Errors the model can act on are raised as
``ClavisError`` (the server turns them into tool errors) or ``ToolError``; none carries a secret.
"""

from __future__ import annotations

import time
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult

from clavis_mcp.vault import Service, Vault
from clavis_mcp.vault.errors import CallRefused
from clavis_mcp.vault.oauth import state as oauth_store
from clavis_mcp.vault.policy import load_policies

from .call_text import as_tool_result
from .calls import allowed_methods
from .confirm import Answer, outcome
from .credentials import CHECK_ACTION, Usage, credential_state, expires_at, fresh_credential, usage_by_service
from .gateway import Gateway
from .live_check import live_check, probe_for
from .models import CredentialInfo, CredentialStatus, ServiceInfo, ServiceList
from .paging import page
from .ratelimit import recorded_rate_limit
from .service_call import perform_call, prepare_call
from .times import expiry_fields, iso, relative
from .tool_specs import ToolFunction

REVEALED, MASKED = "revealed", "masked"  # get_credentials' decisions: the value was shown, or only its mask


def service_info(vault: Vault, service: Service, usage: Usage, confirm_writes: bool) -> ServiceInfo:
    return ServiceInfo(
        name=service.name,
        connector=service.connector,
        auth_method=service.auth.describe(),
        hosts=[str(rule) for rule in service.hosts],
        allowed_methods=list(allowed_methods(service)),
        allowed_paths=list(service.path_prefixes) or ["/"],
        local=service.local,
        reveal_policy=service.reveal,
        confirm_writes=confirm_writes,
        state=credential_state(vault, service, usage)[0],
        **expiry_fields(expires_at(vault, service)),
        last_used_at=iso(usage.last_used_at),
        last_used=None if usage.last_used_at is None else relative(usage.last_used_at),
    )


async def list_services(gateway: Gateway, limit: int, cursor: str | None, match: str | None) -> ServiceList:
    """Read from the listing, not the proxy's snapshot: listing decrypts no secret. The upgrade of
    services stored before OAuth was an auth method runs first, so each method reads as it will.
    Only the page's services are looked up: their policies in one read, their use in one query."""
    vault = gateway.vault
    oauth_store.ensure_schema(vault)
    names, total, next_cursor = page(vault.service_names(), str, limit, cursor, match)
    services = vault.services(names)  # a service removed meanwhile is left out
    usage, policies = usage_by_service(gateway.audit, names), load_policies(vault, names)
    return ServiceList(
        services=[service_info(vault, s, usage[s.name], policies[s.name].confirm_writes) for s in services],
        total=total,
        next_cursor=next_cursor,
    )


async def get_credentials(gateway: Gateway, service_name: str, confirmation: Answer) -> CredentialInfo:
    vault, audit = gateway.vault, gateway.audit
    service = vault.get_service(service_name)
    if service.reveal == "never":
        audit.append(source="mcp", service=service_name, action="reveal", decision="refused",
                     reason="reveal policy never")  # fmt: skip
        raise ToolError(
            f"the credential of {service_name!r} is never revealed; use call_service to make requests with it"
        )
    if service.reveal == "full" and service.auth.revealed_field is None:
        audit.append(source="mcp", service=service_name, action="reveal", decision="refused",
                     reason="a signing key is never revealed")  # fmt: skip
        raise ToolError(
            f"{service_name!r} signs each request with its stored key ({service.auth.describe()}): no token exists "
            "to show, and the key itself is never revealed; use call_service to make requests with it"
        )
    secret = await fresh_credential(vault, service, audit)  # what goes on the wire: never a key that mints tokens
    value = None
    if service.reveal == "full":
        if outcome(confirmation) is False:
            audit.append(source="mcp", service=service_name, action="reveal", decision="refused",
                         reason="the user declined")  # fmt: skip
            raise ToolError(f"the user declined to reveal the credential of {service_name!r}; use call_service instead")
        value = secret.reveal()
    decision = REVEALED if value is not None else MASKED  # the closed set of decisions, docs/audit.md
    audit.append(source="mcp", service=service_name, action="reveal", decision=decision)
    return CredentialInfo(
        service_name=service_name,
        reveal_policy=service.reveal,
        masked=secret.masked(),
        fingerprint=secret.fingerprint,
        token_type=service.auth.kind,
        state=credential_state(vault, service, _usage_of(gateway, service_name))[0],
        **expiry_fields(expires_at(vault, service)),
        value=value,
    )


async def check_credential_status(gateway: Gateway, service_name: str, live: bool) -> CredentialStatus:
    vault = gateway.vault
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
        check, rate_limit = await live_check(gateway, service, probe)
        gateway.audit.append(source="mcp", service=service_name, action=CHECK_ACTION, decision=check.state,
                             status=check.status, reason=check.detail)  # fmt: skip
    usage = _usage_of(gateway, service_name)
    state, meaning = credential_state(vault, service, usage)
    now = time.time()
    expiry = expires_at(vault, service)
    return CredentialStatus(
        service_name=service_name,
        state=state,
        **expiry_fields(expiry, now),
        seconds_to_expiry=None if expiry is None else round(expiry - now, 3),
        detail=meaning,
        last_check=usage.last_check,
        rate_limit=rate_limit or recorded_rate_limit(vault, service_name),
    )


async def call_service(
    gateway: Gateway,
    service_name: str,
    method: str,
    url: str,
    confirmation: Answer,
    headers: dict[str, str] | None,
    params: dict[str, str] | None,
    json: Any,
    data: str | None,
) -> CallToolResult:
    service = gateway.vault.get_service(service_name)
    call = prepare_call(service, method, url, headers, params, json, data, gateway.limits)
    if outcome(confirmation) is False:
        gateway.audit.append(source="mcp", service=service_name, action="call", method=call.method,
                             host=call.target.host, port=call.target.port, decision="refused",
                             reason="the user declined")  # fmt: skip
        raise ToolError(f"the user declined this {call.method} request to {service_name!r}; it was not sent")
    with gateway.elicited(outcome(confirmation) is True):  # accepted: the proxy does not hold it again
        return as_tool_result(await perform_call(gateway, call))


def _usage_of(gateway: Gateway, name: str) -> Usage:
    return usage_by_service(gateway.audit, [name])[name]


BODIES: dict[str, ToolFunction] = {
    "list_services": list_services,
    "get_credentials": get_credentials,
    "check_credential_status": check_credential_status,
    "call_service": call_service,
}
"""Each tool's body by the name of its specification."""
