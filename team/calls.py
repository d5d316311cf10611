"""The SDK's endpoints: call, proxy, tokens, check and verify, over the replica's pipeline.

Each checks the caller's scope and the request before anything leaves (a URL off the service's
hosts is a 400 here, and the proxy's destination check would refuse it again), sends through
the egress, and shapes the answer as the ``clavis`` SDK 0.2.4 parses it: ``body`` is only ever a
string, an object, an array or null; the remaining quota travels in ``X-RateLimit-Remaining``,
never as a JSON key; a 429 carries an integer ``Retry-After``.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from clavis_mcp.vault import Service
from clavis_mcp.vault.auth.base import CREDENTIAL
from clavis_mcp.vault.connectors import load_catalog
from clavis_mcp.vault.errors import ApiRefused, InvalidService, UnknownService
from clavis_mcp.vault.hosts import canonical_host
from clavis_mcp.vault.limits.ratelimit_parse import parse_rate_limits

from .budgets import charge
from .egress import Answer
from .keys import Principal
from .oauth import refresh_if_due
from .replica import Replica

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def service_for(replica: Replica, principal: Principal, name: str) -> Service:
    """The service if the caller may use it: 403 outside its scope, 404 if unknown."""
    if not SERVICE_NAME.fullmatch(name):
        raise ApiRefused(400, f"invalid service name {name!r}")
    if not principal.may_use(name):
        replica.audit.append(source=principal.name, service=name, decision="refused", reason="outside the key's scope")
        raise ApiRefused(403, f"this key may not use the service {name!r}; ask an admin for a key scoped to it")
    replica.mirror.sync()
    if name in replica.mirror.unavailable:  # after the scope check: said only to who may use it
        raise ApiRefused(503, replica.mirror.unavailable[name])
    try:
        return replica.mirror.vault.snapshot().service(name)
    except UnknownService as exc:
        known = [n for n in exc.known if principal.may_use(n)]
        raise ApiRefused(404, f"unknown service {name!r}; known services: {', '.join(known) or 'none'}") from None


def _obj(body: dict[str, Any], key: str, kinds: tuple[type, ...]) -> Any:
    value = body.get(key)
    if value is not None and not isinstance(value, kinds):
        raise ApiRefused(400, f"{key!r} must be {' or '.join(k.__name__ for k in kinds)} or null")
    return value


def _method(body: dict[str, Any]) -> str:
    method = str(body.get("method") or "").upper()
    if method not in METHODS:
        raise ApiRefused(400, f"method must be one of {', '.join(sorted(METHODS))}")
    return method


def _check_url(service: Service, url: str) -> None:
    try:
        parsed = httpx.URL(url)
        host = canonical_host(parsed.host)
    except (httpx.InvalidURL, ValueError, InvalidService):
        raise ApiRefused(400, f"cannot read the URL {url!r}: give an absolute https:// URL") from None
    if parsed.scheme not in ("https", "http") or not parsed.is_absolute_url:
        raise ApiRefused(400, "the URL must be absolute and https:// (http:// only where the service allows it)")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not service.owns_canonical(host, port, parsed.scheme):
        hosts = ", ".join(str(r) for r in service.hosts)
        raise ApiRefused(400, f"{parsed.scheme}://{host}:{port} is not a host of {service.name!r} (its hosts: {hosts})")


def base_url(service: Service) -> str:
    rule = next((r for r in service.hosts if not r.wildcard), None)
    if rule is None:
        raise ApiRefused(400, f"service {service.name!r} has only wildcard hosts; use /v1/call with a full URL")
    return f"https://{rule}"


async def call(
    replica: Replica, principal: Principal, name: str, body: dict[str, Any]
) -> tuple[dict[str, Any], Answer]:
    service = service_for(replica, principal, name)
    method, url = _method(body), body.get("url")
    if not isinstance(url, str):
        raise ApiRefused(400, "'url' must be the full URL to call, on one of the service's hosts")
    _check_url(service, url)
    return await _send(replica, principal, service, method, url, body, json_key="json")


async def proxy(
    replica: Replica, principal: Principal, name: str, body: dict[str, Any]
) -> tuple[dict[str, Any], Answer]:
    service = service_for(replica, principal, name)
    method, path = _method(body), body.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ApiRefused(400, "'path' must be the API path on the service, starting with '/'")
    url = base_url(service) + path
    _check_url(service, url)
    return await _send(replica, principal, service, method, url, body, json_key="body")


async def _send(
    replica: Replica, principal: Principal, service: Service, method: str, url: str, body: dict[str, Any], json_key: str
) -> tuple[dict[str, Any], Answer]:
    params = _obj(body, "params", (dict,))
    headers = _obj(body, "headers", (dict,))
    payload = body.get(json_key)
    data = _obj(body, "data", (dict, str)) if json_key == "json" else None
    if payload is not None and data is not None:
        raise ApiRefused(400, "give 'json' or 'data', not both")
    kwargs: dict[str, Any] = {}
    if params:
        kwargs["params"] = {str(k): v if isinstance(v, list) else str(v) for k, v in params.items()}
    if headers:
        kwargs["headers"] = {str(k): str(v) for k, v in headers.items()}
    if payload is not None:
        kwargs["json"] = payload
    elif isinstance(data, dict):
        kwargs["data"] = {str(k): str(v) for k, v in data.items()}
    elif isinstance(data, str):
        kwargs["content"] = data.encode()
    # Before a refresh: a used-up budget sends nothing, not even to the token endpoint.
    charge(replica, service, method, url, **kwargs)
    if await refresh_if_due(replica, service.name) is not None:
        replica.mirror.sync()  # the new access token (this replica's refresh or another's), before injection
    answer = await replica.egress.send(principal.name, service.name, method, url, **kwargs)
    if answer.refused is not None:
        raise refusal(answer)
    if answer.status == 429:  # the provider's limit: the SDK's RateLimitError, with whole seconds to wait
        wait = retry_after_seconds(answer.retry_after)
        raise ApiRefused(429, f"{service.name!r} is rate-limited by its provider; retry in {wait} s",
                         {"Retry-After": str(wait)})  # fmt: skip
    replica.store.touch(service.name)
    envelope = {"status_code": answer.status, "headers": dict(answer.headers), "body": render_body(answer)}
    return envelope, answer


def refusal(answer: Answer) -> ApiRefused:
    """The proxy's refusal, in the API's terms."""
    reason = answer.refused or "refused"
    if answer.status == 429:
        return ApiRefused(429, reason, {"Retry-After": str(retry_after_seconds(answer.retry_after))})
    if answer.status in (401, 503):  # an OAuth token could not be obtained or refreshed
        return ApiRefused(503, f"the credential is unavailable: {reason}")
    if answer.status == 502:
        return ApiRefused(502, reason)
    return ApiRefused(403, f"refused by policy: {reason}")


def retry_after_seconds(value: str | None, now: float | None = None) -> int:
    """An integer count of seconds from either form of Retry-After (the SDK reads only integers)."""
    if not value:
        return 1
    try:
        return max(math.ceil(float(value)), 0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return 1
    return max(math.ceil(when - (time.time() if now is None else now)), 0)


def render_body(answer: Answer) -> str | dict[str, Any] | list[Any] | None:
    """A JSON object or array stays one; any other body (a bare number, true, text) is a string."""
    if not answer.body:
        return None
    text = answer.body.decode("utf-8", errors="replace")
    if "json" in answer.content_type.lower():
        try:
            value = json.loads(text)
        except ValueError:
            return text
        if isinstance(value, (dict, list)):
            return value
    return text


def remaining(replica: Replica, name: str) -> int | None:
    seen = replica.store.rate_limits(name)
    if seen is None:
        return None
    parsed = parse_rate_limits(seen[0], seen[1])
    return parsed.remaining if parsed is not None else None


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch is not None else None


def _expires_in(service: Service) -> int | None:
    return max(int(service.expires_at - time.time()), 0) if service.expires_at is not None else None


def token(replica: Replica, principal: Principal, name: str) -> tuple[dict[str, Any], str]:
    """The credential itself, only under a ``full`` reveal policy (audited), and its audit id; 403 otherwise.

    Only a credential that goes on the wire as stored is handed out: a GitHub App's private key
    (which mints installation tokens) or a signing key (AWS SigV4, HMAC) never is. The installation
    token is exchanged on the replica's loop, which this synchronous route does not reach."""
    service = service_for(replica, principal, name)
    if service.reveal != "full":
        replica.audit.append(source=principal.name, service=name, action="reveal", decision="refused",
                             reason=f"reveal policy is {service.reveal}")  # fmt: skip
        raise ApiRefused(
            403,
            f"the credential of {name!r} is not handed out (reveal policy: {service.reveal}); "
            f"send the request through POST /v1/call/{name} or /v1/proxy/{name} instead",
        )
    if service.auth.revealed_field != CREDENTIAL:
        replica.audit.append(source=principal.name, service=name, action="reveal", decision="refused",
                             reason="the stored key is not what is sent")  # fmt: skip
        raise ApiRefused(
            403,
            f"the stored key of {name!r} is never handed out: it signs requests or mints short-lived tokens "
            f"({service.auth.describe()}); send the request through POST /v1/call/{name} or /v1/proxy/{name} instead",
        )
    secret = replica.mirror.vault.snapshot().secrets[name]
    audit_id = replica.audit.append(source=principal.name, service=name, action="reveal", decision="revealed")
    return {
        "service_name": name,
        "token_type": "bearer",
        "access_token": secret.reveal(),
        "expires_at": _iso(service.expires_at),
        "rate_limit_remaining": remaining(replica, name),
    }, audit_id


def check(replica: Replica, principal: Principal, name: str) -> dict[str, Any]:
    """State from what is stored; no upstream contact."""
    service = service_for(replica, principal, name)
    expires_in = _expires_in(service)
    valid = expires_in is None or expires_in > 0
    result: dict[str, Any] = {
        "service": name,
        "valid": valid,
        "status": "valid" if valid else "expired",
        "expires_in": expires_in,
        "rate_limit_remaining": remaining(replica, name),
        "last_used": _iso(replica.store.last_used(name)),
    }
    if not valid:
        result["error"] = "the credential has expired; rotate it with PUT /v1/admin/services/{name}/secret"
    return result


async def verify(replica: Replica, principal: Principal, name: str) -> tuple[dict[str, Any], Answer]:
    """A live probe through the pipeline: the connector's probe request, or GET / for generic services."""
    service = service_for(replica, principal, name)
    connector = load_catalog().get(service.connector)
    probe = connector.probe if connector is not None else None
    method, path = (probe.method, probe.path) if probe is not None else ("GET", "/")
    url = base_url(service) + path
    charge(replica, service, method, url)  # a probe uses the credential against the provider: the budget counts it
    answer = await replica.egress.send(principal.name, name, method, url)
    if answer.refused is not None:
        raise refusal(answer)
    if answer.status == 429:
        raise ApiRefused(503, f"{name!r} is rate-limited by its provider; try again later")
    return {
        "valid": 200 <= answer.status < 300,
        "verified_at": datetime.now(UTC).isoformat(),
        "expires_in": _expires_in(service),
        "rate_limit_remaining": remaining(replica, name),
    }, answer
