"""call_service's rules: what a request may look like before it leaves, and what comes back.

Pure functions, so every refusal is decided before any network traffic and is table-tested.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from clavis_mcp.vault import Service, canonical_host
from clavis_mcp.vault.content_types import declared_charset, is_text
from clavis_mcp.vault.errors import ClavisError

from .models import BinaryBody

if TYPE_CHECKING:
    from clavis_mcp.vault.redaction import Redactor  # loaded with the proxy, off the start-up path

ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CONTROLLED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "host", "cookie", "forwarded", "via", "connection",
     "transfer-encoding", "content-length", "te", "upgrade", "trailer", "keep-alive", "expect"}
)  # fmt: skip
CONTROLLED_PREFIXES = ("x-clavis-", "x-forwarded-", "proxy-")
RETURNED_HEADERS = frozenset(
    {"content-type", "content-length", "content-encoding", "location", "retry-after", "x-request-id",
     "request-id", "x-github-request-id", "openai-processing-ms", "ratelimit", "ratelimit-policy", "etag",
     "last-modified", "link"}
)  # fmt: skip
RETURNED_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "ratelimit-")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


LIMIT_ENV = {
    "max_request_body": "CLAVIS_MAX_REQUEST_BYTES",
    "max_response_body": "CLAVIS_MAX_RESPONSE_BYTES",
    "timeout": "CLAVIS_CALL_TIMEOUT",
}


class CallRefused(ClavisError):
    """The request was refused before leaving; the message says what is allowed."""


class LimitsError(ClavisError):
    """A configured limit (environment variable) is not a usable number."""


@dataclass(frozen=True, slots=True)
class CallLimits:
    """Bounds on one call_service request, so neither the model's context nor the process is flooded.

    ``max_response_body`` is what the model gets; ``max_download`` is what is read at all (the
    rest of a larger body is not fetched, and its size is reported as at least that much).
    """

    max_request_body: int = 1024 * 1024
    max_response_body: int = 256 * 1024
    max_download: int = 64 * 1024 * 1024
    timeout: float = 60.0
    max_redirects: int = 5

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CallLimits:
        """Defaults, overridden by the environment variables named in ``LIMIT_ENV``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field, name in LIMIT_ENV.items():
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            try:
                value = float(raw) if field == "timeout" else int(raw)
            except ValueError:
                raise LimitsError(f"{name}={raw!r} is not a number; unset it or give a positive number") from None
            if value <= 0:
                raise LimitsError(f"{name}={raw!r} must be positive; unset it or give a positive number")
            values[field] = value
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


def allowed_methods(service: Service) -> tuple[str, ...]:
    """The service's method policy; an empty policy allows every method call_service knows."""
    return tuple(m for m in ALLOWED_METHODS if not service.methods or m in service.methods)


def check_method(service: Service, method: str) -> str:
    method = method.upper()
    if method not in ALLOWED_METHODS:
        raise CallRefused(f"method {method!r} is not allowed; use one of {', '.join(ALLOWED_METHODS)}")
    allowed = allowed_methods(service)
    if method not in allowed:
        raise CallRefused(
            f"service {service.name!r} does not allow {method}; its method policy allows: {', '.join(allowed)}"
        )
    return method


def check_target(service: Service, method: str, url: str) -> Target:
    """Refuse anything but an absolute http(s) URL on one of the service's hosts."""
    check_method(service, method)
    hosts = ", ".join(str(rule) for rule in service.hosts)

    def refused(problem: str) -> CallRefused:
        return CallRefused(f"{problem}; service {service.name!r} accepts https:// URLs on: {hosts}")

    if any(ord(c) < 0x21 or c == "\x7f" for c in url):
        raise refused("malformed URL (spaces or control characters)")
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
    return Target(url=url.split("#", 1)[0], scheme=parts.scheme, host=host, port=port)


def split_headers(headers: Mapping[str, str] | None) -> tuple[dict[str, str], list[str]]:
    """Keep the model's headers except those the proxy controls; report the ignored ones."""
    kept: dict[str, str] = {}
    ignored: list[str] = []
    for name, value in (headers or {}).items():
        key = name.lower()
        if key in CONTROLLED_HEADERS or key.startswith(CONTROLLED_PREFIXES):
            ignored.append(name)
        elif any(c in name + value for c in "\r\n\0") or not name.strip() or ":" in name:
            raise CallRefused(f"header {name!r} contains a line break, NUL or colon; send one plain header per entry")
        else:
            kept[name] = value
    return kept, ignored


def request_body(json_body: Any, data: str | None, limits: CallLimits) -> tuple[dict[str, Any], bytes | None]:
    """The httpx keyword for the body, and its bytes (for the size check and the confirmation preview)."""
    if json_body is not None and data is not None:
        raise CallRefused("give either json or data, not both")
    if json_body is not None:
        raw = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode()
        keyword: dict[str, Any] = {"content": raw, "headers": {"Content-Type": "application/json"}}
    elif data is not None:
        raw = data.encode()
        keyword = {"content": raw}
    else:
        return {}, None
    if len(raw) > limits.max_request_body:
        raise CallRefused(
            f"the request body is {len(raw)} bytes; the limit is {limits.max_request_body} "
            "(set CLAVIS_MAX_REQUEST_BYTES to change it)"
        )
    return keyword, raw


def body_preview(raw: bytes | None, limit: int = 600) -> str:
    """What the user is shown of a body before approving a write: the start, and its size."""
    if not raw:
        return "(no body)"
    text = raw[:limit].decode("utf-8", errors="replace")
    return text if len(raw) <= limit else f"{text}… ({len(raw)} bytes in all)"


def returned_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    selected: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if key in RETURNED_HEADERS or key.startswith(RETURNED_PREFIXES):
            selected[key] = value
    return selected


def render_body(
    head: bytes, size: int, digest: str, content_type: str, limit: int, redactor: Redactor
) -> tuple[Any, BinaryBody | None, bool, int]:
    """(body, binary summary, truncated, redactions) from the first bytes of a response.

    The proxy scrubbed the bytes; the model reads what they decode to. So the bytes are scrubbed
    again as their readers decode them (escapes of every kind, UTF-16/32, the declared charset:
    :func:`~vault.redaction_views.redact_decoded`), text is decoded only as UTF-8 (no UTF-16/32
    detection, no NUL-laced text), and the result is scrubbed once more in its final form: JSON
    strings after their escapes are resolved, text as it is shown. JSON is parsed when it is JSON and
    whole; text is returned up to ``limit`` bytes; anything else is summarised by type, size
    and SHA-256.
    """
    from clavis_mcp.vault.redaction_views import redact_decoded  # loaded with the proxy, off the start-up path

    head, count = redact_decoded(redactor, head, declared_charset(content_type))
    if size and not _readable_text(head[:limit], content_type):
        return None, BinaryBody(content_type=content_type or "unknown", size=size, sha256=digest), False, count
    truncated = size > limit
    if "json" in content_type.lower() and not truncated:
        try:
            parsed = json.loads(head.decode("utf-8"))
        except ValueError:
            pass
        else:
            body, rescrubbed = _scrub_json(parsed, redactor)
            return body, None, False, count + rescrubbed
    text, rescrubbed = redactor.redact_text(head[:limit].decode("utf-8", errors="replace"))
    return text, None, truncated, count + rescrubbed


def _scrub_json(value: Any, redactor: Redactor) -> tuple[Any, int]:
    """``value`` with every string (keys too) scrubbed as the model will read it; and the count."""
    if isinstance(value, str):
        return redactor.redact_text(value)
    if isinstance(value, list):
        items = [_scrub_json(item, redactor) for item in value]
        return [item for item, _ in items], sum(count for _, count in items)
    if isinstance(value, dict):
        pairs = [(_scrub_json(k, redactor), _scrub_json(v, redactor)) for k, v in value.items()]
        return {k: v for (k, _), (v, _) in pairs}, sum(kc + vc for (_, kc), (_, vc) in pairs)
    return value, 0


def _readable_text(data: bytes, content_type: str) -> bool:
    """Text the model may read: a text type, UTF-8 (a character cut at the end allowed), no NUL."""
    if not is_text(content_type) or b"\0" in data:
        return False
    if declared_charset(content_type) not in (None, "utf-8", "utf8", "us-ascii", "ascii"):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(data) - 3 and exc.reason == "unexpected end of data"
    return True


def redirect_target(service: Service, current: Target, status: int, location: str | None) -> Target | None:
    """The next hop of a redirect that stays on the same origin; None for anything else."""
    if status not in REDIRECT_STATUSES or not location:
        return None
    try:
        following = check_target(service, "GET", urljoin(current.url, location))
    except CallRefused:
        return None
    return following if following.origin == current.origin else None
