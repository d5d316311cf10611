"""call_service's rules: what a request may look like before it leaves, and what comes back.

Pure functions, so every refusal is decided before any network traffic and is table-tested.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from clavis_mcp.vault import Service, canonical_host
from clavis_mcp.vault.errors import CallRefused, LimitsError
from clavis_mcp.vault.method_overrides import ambiguous_body_headers
from clavis_mcp.vault.proxy_headers import header_key, is_internal
from clavis_mcp.vault.redaction.content_types import declared_charset, is_text
from clavis_mcp.vault.redaction.spellings import MIN_FORM_LENGTH

if TYPE_CHECKING:  # loaded with the proxy, or with the first call, off the start-up path
    import httpx

    from clavis_mcp.vault.redaction.redactor import Redactor
    from clavis_mcp.vault.redaction.service import ServiceRedactor

    from .models import BinaryBody

ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# x-real-ip and true-client-ip: the proxy strips them too (addons/inject.py ALWAYS_STRIPPED); ignored, and said so.
CONTROLLED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "host", "cookie", "forwarded", "via", "connection",
     "transfer-encoding", "content-length", "te", "upgrade", "trailer", "keep-alive", "expect",
     "x-real-ip", "true-client-ip"}
)  # fmt: skip
CONTROLLED_PREFIXES = ("x-clavis-", "x-forwarded-", "proxy-")
RETURNED_HEADERS = frozenset(
    {"content-type", "content-length", "content-encoding", "location", "retry-after", "x-request-id",
     "request-id", "x-github-request-id", "openai-processing-ms", "ratelimit", "ratelimit-policy", "etag",
     "last-modified", "link"}
)  # fmt: skip
RETURNED_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "ratelimit-")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field names
_CONTROL = re.compile(r"[\x00-\x20\x7f]")  # spaces and control characters, refused in a URL
_FIELD_VALUE = re.compile(r"[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*|")  # visible ASCII, inner spaces and tabs
# What the model may put in a request's head, below the proxy front's bound on a head
# (proxy/base_url_front.HEAD_MAX, 64 KiB) with room for the fields clavis-mcp adds, so that no
# request passes these checks only for the front to refuse it unread (431) as it leaves.
MAX_HEADER_BYTES = 16 * 1024  # the model's headers: names, values and a separator each
MAX_TARGET_BYTES = 40 * 1024  # the URL's path and query as sent: percent-encoded, ``params`` merged


LIMIT_ENV = {
    "max_request_body": "CLAVIS_MAX_REQUEST_BYTES",
    "max_response_body": "CLAVIS_MAX_RESPONSE_BYTES",
    "timeout": "CLAVIS_CALL_TIMEOUT",
}


@dataclass(frozen=True, slots=True)
class CallLimits:
    """Bounds on one call_service request, so neither the model's context nor the process is flooded.

    ``max_response_body`` is what the model gets; ``max_download`` is what is read at all (the
    rest of a larger body is not fetched, and its size is reported as at least that much).
    """

    max_request_body: int = 1024 * 1024
    max_response_body: int = 256 * 1024
    max_download: int = 64 * 1024 * 1024
    timeout: float = 45.0  # below the 60 s common MCP clients wait, so our message reaches the model first
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

    def refused(problem: str) -> CallRefused:
        hosts = ", ".join(str(rule) for rule in service.hosts)
        return CallRefused(f"{problem}; service {service.name!r} accepts https:// URLs on: {hosts}")

    if _CONTROL.search(url):
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
    if _as_sent(url, refused) != (host, port):
        raise refused(
            f"the url's host {parts.hostname!r} is read as another host by the HTTP client that sends it; "
            "write it in ASCII letters, digits, '-' and '.' (an international name as punycode, xn--…)"
        )
    if not service.owns(host, port, parts.scheme):
        raise refused(f"{parts.scheme}://{host}:{port} is not a host of service {service.name!r}")
    return Target(url=url.split("#", 1)[0], scheme=parts.scheme, host=host, port=port)


def _as_sent(url: str, refused: Callable[[str], CallRefused]) -> tuple[str | None, int]:
    """The canonical host and port of ``url`` as httpx reads it when it sends the request.

    What is judged must be what is sent: Python's IDNA codec (2003) and httpx's (2008) map some
    hosts differently (``ß``, full-width letters, a soft hyphen), and httpx refuses some URLs our
    parse accepts, which would otherwise fail only as the request leaves."""
    import httpx  # loaded with the gateway's first call; kept off the start-up path

    try:
        sent = httpx.URL(url)
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        problem = str(exc).split(":", 1)[0]  # httpx's kind of problem, without the URL it quotes
        raise refused(
            f"the url cannot be sent as written ({problem}): write its host in ASCII letters, digits, '-' and '.' "
            "(an international name as punycode, xn--…)"
        ) from None
    _check_length(sent)
    try:
        host: str | None = canonical_host(sent.raw_host.decode("ascii"))
    except ValueError:
        host = None
    return host, sent.port or (443 if sent.scheme == "https" else 80)


def check_query(target: Target, params: Mapping[str, str] | None) -> None:
    """Refuse ``params`` that, merged into the query of ``target`` (checked alone by check_target)
    as httpx sends it, make it exceed ``MAX_TARGET_BYTES`` or unsendable."""
    if not params:
        return
    import httpx  # loaded by check_target

    try:
        sent = httpx.URL(target.url).copy_merge_params(dict(params))
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        problem = str(exc).split(":", 1)[0]
        raise CallRefused(
            f"the url and params cannot be sent together ({problem}); their path and query may take "
            f"{MAX_TARGET_BYTES} bytes as sent: send fewer or shorter params, or put the data in the body"
        ) from None
    _check_length(sent)


def _check_length(sent: httpx.URL) -> None:
    if len(sent.raw_path) > MAX_TARGET_BYTES:
        raise CallRefused(
            f"the url's path and query take {len(sent.raw_path)} bytes as sent (percent-encoded, params merged); "
            f"the limit is {MAX_TARGET_BYTES}: send fewer or shorter params, or put the data in the body"
        )


def split_headers(headers: Mapping[str, str] | None) -> tuple[dict[str, str], list[str]]:
    """Keep the model's headers except those the proxy controls; report the ignored ones.

    A kept header must be one HTTP field as it goes on the wire: a token for a name, printable
    ASCII for a value (surrounding spaces dropped, as HTTP parsers drop them). Together they take
    at most ``MAX_HEADER_BYTES``."""
    size = sum(len(name) + len(value) + 4 for name, value in (headers or {}).items())
    if size > MAX_HEADER_BYTES:
        raise CallRefused(
            f"the headers take {size} bytes; the limit is {MAX_HEADER_BYTES}: send fewer or shorter headers, "
            "or put the data in the body"
        )
    kept: dict[str, str] = {}
    ignored: list[str] = []
    for name, value in (headers or {}).items():
        key = header_key(name)  # as a server may read it: ``Authorization_`` and ``Host.`` are controlled too
        if key in CONTROLLED_HEADERS or key.startswith(CONTROLLED_PREFIXES) or is_internal(key):
            ignored.append(name)
        elif any(c in name + value for c in "\r\n\0") or not name.strip() or ":" in name:
            raise CallRefused(f"header {name!r} contains a line break, NUL or colon; send one plain header per entry")
        elif not _TOKEN.fullmatch(name):
            raise CallRefused(f"header name {name!r} is not an HTTP token; use letters, digits and - only")
        elif not _FIELD_VALUE.fullmatch(value := value.strip(" \t")):
            raise CallRefused(f"the value of header {name!r} is not printable ASCII; encode it (e.g. percent-encoding)")
        else:
            kept[name] = value
    if why := ambiguous_body_headers(kept.items()):  # the proxy would refuse it as it left (400)
        raise CallRefused(f"{why}: send one Content-Type naming one media type, and at most one Content-Encoding")
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


def returned_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    selected: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if key in RETURNED_HEADERS or key.startswith(RETURNED_PREFIXES):
            selected[key] = value
    return selected


@dataclass(frozen=True, slots=True)
class Scrubber:
    """The redactors of every secret that may be in one response, for what the model reads of it.

    The proxy scrubbed the response for the secret it injected, but only for listed spellings where
    it streams (headers, long bodies, event streams). The model's view is scrubbed again as its
    readers decode it, for that secret (taken before the request left) and for the service's secret
    as it is once the answer is read: a 401 refreshes an OAuth token, a rotation may land mid-call.
    """

    values: tuple[Redactor, ...]
    names: tuple[Redactor, ...]  # the same secrets in lower case, for header names

    @classmethod
    def of(cls, *redactors: ServiceRedactor) -> Scrubber:
        unique = list(dict.fromkeys(redactors))  # the same secret before and after: one scan
        return cls(tuple(r.values for r in unique), tuple(r.names for r in unique))

    @property
    def longest(self) -> int:
        """The longest listed spelling: how far a spelling begun before a cut may run past it."""
        return max((r.longest for r in self.values), default=0)

    def scan(self, data: bytes, charset: str | None = None) -> tuple[bytes, int]:
        """``data`` scrubbed as bytes and as its readers decode it (escapes, UTF-16/32, ``charset``)."""
        from clavis_mcp.vault.redaction.views import redact_decoded

        count = 0
        for redactor in self.values:
            data, found = redact_decoded(redactor, data, charset)
            count += found
        return data, count

    def text(self, text: str) -> tuple[str, int]:
        """``text`` scrubbed in its final form (a JSON string after its escapes are resolved)."""
        count = 0
        for redactor in self.values:
            text, found = redactor.redact_text(text)
            count += found
        return text, count

    def value(self, text: str) -> tuple[str, int]:
        """A header value or URL as the model may read it: scrubbed as text and in every decoded view."""
        data, count = self.scan(text.encode("utf-8", "surrogateescape"))
        return data.decode("utf-8", "surrogateescape"), count

    def in_name(self, name: str) -> int:
        """How many spellings a header name holds, in lower case (an HTTP/2 hop lower-cases names)."""
        from clavis_mcp.vault.redaction.views import redact_decoded

        data = name.lower().encode("utf-8", "surrogateescape")
        return sum(redact_decoded(redactor, data)[1] for redactor in self.names)

    def held_back(self, data: bytes) -> int:
        """How many bytes at the end of ``data`` could begin a listed spelling."""
        return max((r.held_back(data) for r in self.values), default=0)

    @property
    def marker_length(self) -> int:
        return max((len(r.marker) for r in self.values), default=0)


def shown_headers(headers: list[tuple[str, str]], scrubber: Scrubber) -> tuple[dict[str, str], int]:
    """The allowlisted headers as the model may read them, and the count of what was scrubbed: each
    value scrubbed in every decoded view (``Location: …?k=sk%2Dlive-…``, ``Link: <…sk&#45;live-…>``
    pass the proxy's scrub of listed spellings), and a field whose name holds a secret dropped, as
    the proxy drops one (a marker is no header name, and such a field tells the model nothing)."""
    selected = returned_headers(headers)
    if not scrubber.in_name("\n".join(selected)) and not scrubber.value("\n".join(selected.values()))[1]:
        return selected, 0  # one scan of all names and one of all values find nothing, as they almost always do
    shown: dict[str, str] = {}
    count = 0
    for name, value in selected.items():
        if in_name := scrubber.in_name(name):
            count += in_name
            continue
        shown[name], found = scrubber.value(value)
        count += found
    return shown, count


def render_body(
    head: bytes,
    size: int,
    digest: str,
    content_type: str,
    limit: int,
    scrubber: Scrubber,
    beyond: bytes = b"",
) -> tuple[Any, BinaryBody | None, bool, int]:
    """(body, binary summary, truncated, redactions) from the first bytes of a response.

    The proxy scrubbed the bytes; the model reads what they decode to. So the bytes are scrubbed
    again as their readers decode them (escapes of every kind, UTF-16/32, the declared charset:
    :func:`~vault.redaction_views.redact_decoded`), text is decoded only as UTF-8 (no UTF-16/32
    detection, no NUL-laced text), and the result is scrubbed once more in its final form: JSON
    strings after their escapes are resolved, text as it is shown. JSON is parsed when it is JSON,
    whole and every string of it has a UTF-8 form; text is returned up to ``limit`` bytes (cut as
    :func:`cut_body` says); anything else is summarised by type, size and SHA-256. ``beyond`` is
    what follows ``head`` in a longer body. A binary body's summary quotes ``content_type``
    scrubbed as a header value is (and counted): the upstream wrote it.
    """
    charset = declared_charset(content_type)
    truncated = size > limit
    if truncated:
        head, count = cut_body(head, beyond, limit, scrubber, charset)
    else:
        head, count = scrubber.scan(head, charset)
    if size and not _readable_text(head[:limit], content_type):
        from .models import BinaryBody  # pydantic models: ~8 ms that CallLimits.from_env() would pay before serving

        shown_type, in_type = scrubber.value(content_type or "unknown")  # the upstream's text, as the header is
        return None, BinaryBody(content_type=shown_type, size=size, sha256=digest), False, count + in_type
    if "json" in content_type.lower() and not truncated:
        try:
            body, rescrubbed = _scrub_json(json.loads(head.decode("utf-8")), scrubber)
        except ValueError:  # not JSON, or a string with a lone surrogate escape (it has no UTF-8 form)
            pass
        else:
            return body, None, False, count + rescrubbed
    text, rescrubbed = scrubber.text(head[:limit].decode("utf-8", errors="replace"))
    return text, None, truncated, count + rescrubbed


def cut_body(
    head: bytes, beyond: bytes, limit: int, scrubber: Scrubber, charset: str | None = None
) -> tuple[bytes, int]:
    """The first ``limit`` bytes of a longer body, scrubbed, and the count; never most of a secret.

    A spelling that begins before the cut and ends after it is whole in neither part: ``head`` is
    scanned together with ``beyond`` (the bytes after it, as far as such a spelling may run) and
    shown up to where it ended, or up to the marker of a spelling that ran past its end. A cut
    that would still end in the start of a listed spelling (whose end lies further than ``beyond``
    reaches) ends before it.
    """
    scanned, count = scrubber.scan(head + beyond, charset)
    if scanned.endswith(beyond):  # nothing was found after the head: it ends where it ended
        shown = scanned[: len(scanned) - len(beyond)]
    else:  # something was: the two scans agree up to a spelling that ran past the head, if one did
        alone, _ = scrubber.scan(head, charset)
        same = _common_prefix(alone, scanned)
        shown = alone if same == len(alone) else scanned[: same + scrubber.marker_length]
    shown = shown[:limit]
    fragment = scrubber.held_back(shown)
    return (shown[:-fragment] if fragment >= MIN_FORM_LENGTH else shown), count


def _common_prefix(a: bytes, b: bytes) -> int:
    """How many bytes ``a`` and ``b`` begin with in common: a binary search of slice comparisons
    (each a memcmp), not a Python loop over a quarter of a megabyte."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _scrub_json(value: Any, scrubber: Scrubber) -> tuple[Any, int]:
    """``value`` with every string (keys too) scrubbed as the model will read it; and the count.

    All the strings are scanned first as one text: every spelling is a literal, so one found in
    any string is found there too. Almost always nothing is, and ``value`` is returned as it is
    instead of being rebuilt a string at a time."""
    strings: list[str] = []
    _collect_strings(value, strings)
    if not scrubber.text("\n".join(strings))[1]:
        return value, 0
    return _scrub_each(value, scrubber)


def _collect_strings(value: Any, into: list[str]) -> None:
    if isinstance(value, str):
        into.append(value)
    elif isinstance(value, list):
        for item in value:
            _collect_strings(item, into)
    elif isinstance(value, dict):
        for key, item in value.items():
            into.append(key)
            _collect_strings(item, into)


def _scrub_each(value: Any, scrubber: Scrubber) -> tuple[Any, int]:
    if isinstance(value, str):
        return scrubber.text(value)
    if isinstance(value, list):
        items = [_scrub_each(item, scrubber) for item in value]
        return [item for item, _ in items], sum(count for _, count in items)
    if isinstance(value, dict):
        pairs = [(_scrub_each(k, scrubber), _scrub_each(v, scrubber)) for k, v in value.items()]
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
