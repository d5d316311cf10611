"""The streaming egress: an agent's request, as it came, through the replica's pipeline, streamed both ways.

`clavis-mcp proxy` on a team client terminates the agent's TLS locally and sends each request
here (any method on ``/v1/egress``, the destination in ``X-Clavis-Target``), holding no secret.
The service is the one that owns the destination (host, port, path), as for an HTTPS_PROXY
agent; the caller's scope and the service's team budget are checked before anything leaves (a
service outside the scope is answered as a host no service owns, so the refusal does not name
what /v1/services hides); the embedded proxy injects, redacts (streamed bodies and event streams
included) and audits. Neither body is buffered here, so server-sent events and large uploads
flow as they are produced.
"""

from __future__ import annotations

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from clavis_mcp.vault.errors import ApiRefused, InvalidService
from clavis_mcp.vault.hosts import canonical_host
from clavis_mcp.vault.proxy_headers import AUDIT_ID_HEADER, SELECT_HEADER, is_internal

from .budgets import charge
from .keys import Principal
from .oauth import refresh_if_due
from .replica import Replica

TARGET_HEADER = "X-Clavis-Target"
NOT_YOURS = (
    f"no service this key may use owns the {TARGET_HEADER} URL; if the team has a credential for it, "
    "ask an admin for a key scoped to that service"
)
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "authorization",
     "proxy-authorization", "proxy-connection"}
)  # fmt: skip


def _target(request: Request) -> tuple[str, str, int, str, str]:
    raw = request.headers.get(TARGET_HEADER, "")
    try:
        url = httpx.URL(raw)
        host = canonical_host(url.host)
    except (httpx.InvalidURL, ValueError, InvalidService):
        raise ApiRefused(400, f"{TARGET_HEADER} must be the absolute https:// URL the agent asked for") from None
    if url.scheme not in ("https", "http") or not url.is_absolute_url:
        raise ApiRefused(400, f"{TARGET_HEADER} must be the absolute https:// URL the agent asked for")
    port = url.port or (443 if url.scheme == "https" else 80)
    return raw, url.scheme, port, host, url.raw_path.decode("ascii", "replace").split("?")[0] or "/"


async def egress(replica: Replica, principal: Principal, request: Request) -> Response:
    target, scheme, port, host, path = _target(request)
    replica.mirror.sync()
    service = replica.mirror.vault.snapshot().owner_of(host, port, scheme, path)
    if service is not None and not principal.may_use(service.name):
        replica.audit.append(source=principal.name, service=service.name, decision="refused",
                             reason="outside the key's scope")  # fmt: skip
        service = None
    if service is None:
        raise ApiRefused(403, NOT_YOURS)
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP
               and not is_internal(k)]  # fmt: skip
    charge(replica, service, request.method, target, headers=headers)
    if await refresh_if_due(replica, service.name) is not None:
        replica.mirror.sync()
    client = replica.egress.client_for(principal.name)
    outgoing = client.build_request(request.method, target, headers=headers, content=request.stream())
    outgoing.headers[SELECT_HEADER] = service.name
    try:
        response = await client.send(outgoing, stream=True)
    except httpx.HTTPError as exc:
        raise ApiRefused(502, f"the provider could not be reached ({type(exc).__name__})") from None
    back = [(k, v) for k, v in response.headers.multi_items()
            if k.lower() not in HOP_BY_HOP and not is_internal(k)]  # fmt: skip
    audit_id = response.headers.get(AUDIT_ID_HEADER)
    if audit_id:
        back.append((AUDIT_ID_HEADER, audit_id))
    answer = StreamingResponse(response.aiter_raw(), response.status_code, background=BackgroundTask(response.aclose))
    answer.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in back]
    return answer
