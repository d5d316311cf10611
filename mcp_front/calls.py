"""call_service's rules: what a request may look like before it leaves, and what comes back.

Pure functions, so every refusal is decided before any network traffic and is table-tested.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from vault import Service, canonical_host
from vault.errors import ClavisError

ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
CONTROLLED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "host", "cookie", "forwarded", "via", "connection",
     "transfer-encoding", "content-length", "te", "upgrade"}
)  # fmt: skip
CONTROLLED_PREFIXES = ("x-clavis-", "x-forwarded-", "proxy-")
RETURNED_HEADERS = frozenset(
    {"content-type", "content-length", "location", "retry-after", "x-request-id", "request-id",
     "x-github-request-id", "openai-processing-ms", "ratelimit", "ratelimit-policy"}
)  # fmt: skip
RETURNED_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "ratelimit-")
MAX_RESPONSE_BODY = 256 * 1024


class CallRefused(ClavisError):
    """The request was refused before leaving; the message says what is allowed."""


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    host: str
    port: int


def check_target(service: Service, method: str, url: str) -> Target:
    """Refuse anything but an absolute http(s) URL on one of the service's hosts."""
    method = method.upper()
    if method not in ALLOWED_METHODS:
        raise CallRefused(f"method {method!r} is not allowed; use one of {', '.join(ALLOWED_METHODS)}")
    hosts = ", ".join(str(rule) for rule in service.hosts)

    def refused(problem: str) -> CallRefused:
        return CallRefused(f"{problem}; service {service.name!r} accepts https:// URLs on: {hosts}")

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise refused(f"malformed URL ({exc})") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise refused("only absolute https:// URLs are allowed")
    if parts.scheme == "http" and not service.allow_http:
        raise refused("plain http:// is not allowed for this service")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise refused("URLs with user information (user@host) are not allowed")
    try:
        host = canonical_host(parts.hostname)
    except ValueError as exc:
        raise refused(f"malformed host in URL ({exc})") from None
    port = port or (443 if parts.scheme == "https" else 80)
    if not service.owns(host, port, parts.scheme):
        raise refused(f"{parts.scheme}://{host}:{port} is not a host of service {service.name!r}")
    return Target(url=url.split("#", 1)[0], host=host, port=port)


def split_headers(headers: dict[str, str] | None) -> tuple[dict[str, str], list[str]]:
    """Keep the model's headers except those the proxy controls; report the ignored ones."""
    kept: dict[str, str] = {}
    ignored: list[str] = []
    for name, value in (headers or {}).items():
        key = name.lower()
        if key in CONTROLLED_HEADERS or key.startswith(CONTROLLED_PREFIXES):
            ignored.append(name)
        elif any(c in value for c in "\r\n\0"):
            raise CallRefused(f"header {name!r} contains a line break or NUL")
        else:
            kept[name] = value
    return kept, ignored


def returned_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    selected: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if key in RETURNED_HEADERS or key.startswith(RETURNED_PREFIXES):
            selected[key] = value
    return selected


def render_body(content: bytes, content_type: str, limit: int = MAX_RESPONSE_BODY) -> tuple[object, bool]:
    """JSON parsed when it is JSON and whole; text otherwise; truncated at ``limit`` bytes."""
    truncated = len(content) > limit
    if "json" in content_type.lower() and not truncated:
        try:
            return json.loads(content), False
        except ValueError:
            pass
    text = content[:limit].decode("utf-8", errors="replace")
    return text, truncated
