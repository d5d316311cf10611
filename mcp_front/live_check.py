"""check_credential_status live=true: the service's cheap probe request, sent through the proxy.

The probe is the service's own (``clavis-mcp mcp-settings NAME --probe``) or its connector's.
Its answer decides a state (2xx valid, 401/403 invalid, anything else unknown) and brings
fresh rate-limit figures; a provider that does not answer leaves the state unknown rather
than failing the tool.
"""

from __future__ import annotations

import time

from clavis_mcp.vault import Service, Vault
from clavis_mcp.vault.connectors import Probe, load_catalog
from clavis_mcp.vault.errors import CallFailed, CallRefused

from .gateway import Gateway
from .models import CredentialState, LastCheck, RateLimit
from .ratelimit import rate_limit_of
from .settings import load_settings, probe_text
from .times import iso


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


async def live_check(gateway: Gateway, service: Service, probe: Probe) -> tuple[LastCheck, RateLimit | None]:
    """Send ``probe`` for ``service``; what its answer says of the credential, and the rate limit it showed."""
    now = time.time()
    try:
        body = {"content": probe.body, "headers": {"Content-Type": "application/json"}} if probe.body else {}
        fetched = await gateway.fetch(service.name, probe.method, probe_url(service, probe), **body)
    except CallFailed as exc:
        reason = f"no answer from the provider: {exc}"
        return LastCheck(checked_at=iso(now) or "", state="unknown", detail=reason), None
    if fetched.refused:
        raise CallRefused(f"the clavis proxy refused the probe: {fetched.refused}")
    state: CredentialState = (
        "valid" if 200 <= fetched.status < 300 else "invalid" if fetched.status in (401, 403) else "unknown"
    )
    reason = f"{probe_text(probe)} answered {fetched.status}"
    snapshot = rate_limit_of(fetched.headers, fetched.received_at)
    return LastCheck(checked_at=iso(now) or "", state=state, status=fetched.status, detail=reason), snapshot
