"""Services: a named credential, how it is injected, and where it may go.

Modelled as the small Go proxies do: who may use it (the vault's clients), how it is
injected (:class:`AuthSpec`), which hosts it is valid for (:class:`HostRule`). Validation
lives here so that every entry point (CLI, import, tests) refuses the same bad input.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field, replace
from typing import Literal

from .errors import InvalidService
from .hosts import HostRule, canonical_host, parse_host_rule
from .secret import Secret

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_METHOD = re.compile(r"^[A-Z]{1,20}$")
_QUERY_PARAM = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
PLACEHOLDER = "{secret}"

AuthKind = Literal["header", "basic", "query"]
RevealPolicy = Literal["never", "masked", "full"]


@dataclass(frozen=True, slots=True)
class AuthSpec:
    """How a secret is put on a request.

    ``header``: header ``name`` set to ``template`` with ``{secret}`` replaced.
    ``basic``: ``Authorization: Basic base64(template)``, the template being ``user:{secret}``
    or ``{secret}:`` (the key as user name, as Stripe does).
    ``query``: query parameter ``name`` set to the secret.

    ``extra_headers`` are fixed, non-secret headers the provider requires next to the
    credential (``anthropic-version: 2023-06-01``); the proxy sets them with the credential.
    """

    kind: AuthKind
    name: str
    template: str = PLACEHOLDER
    extra_headers: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        match self.kind:
            case "header":
                return f"header {self.name}: {self.template}"
            case "basic":
                return f"basic auth {self.template}"
            case "query":
                return f"query parameter {self.name}"

    @property
    def header_name(self) -> str | None:
        """The request header this auth writes, if any."""
        return {"header": self.name, "basic": "Authorization", "query": None}[self.kind]

    def header_value(self, secret: Secret) -> str:
        if self.kind == "basic":
            pair = self.template.replace(PLACEHOLDER, secret.reveal()).encode()
            return "Basic " + base64.b64encode(pair).decode("ascii")
        return self.template.replace(PLACEHOLDER, secret.reveal())


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    auth: AuthSpec
    hosts: tuple[HostRule, ...]
    connector: str = "generic"
    local: bool = False
    allow_http: bool = False
    reveal: RevealPolicy = "masked"
    methods: tuple[str, ...] = ()  # allowed HTTP methods, upper case; empty: all
    path_prefixes: tuple[str, ...] = ()  # allowed path prefixes, normalised; empty: all
    created_at: float = 0.0
    expires_at: float | None = None
    rotated_at: float | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def owns(self, host: str, port: int, scheme: str = "https") -> bool:
        """Whether a request to ``scheme://host:port`` may carry this service's credential."""
        try:
            host = canonical_host(host)
        except ValueError:
            return False
        return self.owns_canonical(host, port, scheme)

    def owns_canonical(self, host: str, port: int, scheme: str = "https") -> bool:
        """:meth:`owns` for a host already in canonical form (the proxy's per-request path)."""
        if scheme != "https" and not (scheme == "http" and self.allow_http):
            return False
        default_port = 443 if scheme == "https" else 80
        return any(rule.matches(host, port, default_port) for rule in self.hosts)

    @property
    def effective_prefixes(self) -> tuple[str, ...]:
        """The path prefixes this service claims on its hosts; no restriction claims ``/``."""
        return self.path_prefixes or ("/",)

    def prefix_for(self, path: str) -> str | None:
        """The longest of this service's path prefixes that covers ``path`` (already normalised)."""
        covering = [p for p in self.effective_prefixes if prefix_covers(p, path)]
        return max(covering, key=len) if covering else None


def prefix_covers(prefix: str, path: str) -> bool:
    """Segment-wise: ``/v1`` covers ``/v1`` and ``/v1/models`` but not ``/v10``."""
    path = path.split("?", 1)[0] or "/"
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def validate_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise InvalidService(
            f"invalid service name {name!r}: use 1-64 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def parse_hosts(rules: list[str] | tuple[str, ...]) -> tuple[HostRule, ...]:
    if not rules:
        raise InvalidService("a service needs at least one host (--host api.example.com)")
    parsed = []
    for rule in rules:
        try:
            parsed.append(parse_host_rule(rule))
        except ValueError as exc:
            raise InvalidService(str(exc)) from None
    return tuple(dict.fromkeys(parsed))


def parse_header_template(text: str) -> AuthSpec:
    """Parse ``'Name: value with {secret}'`` into a header AuthSpec, or raise InvalidService."""
    name, sep, template = text.partition(":")
    name, template = name.strip(), template.strip()
    if not sep or not _HEADER_NAME.match(name):
        raise InvalidService(f"header template {text!r} must look like 'Authorization: Bearer {{secret}}'")
    validate_template(template)
    return AuthSpec(kind="header", name=name, template=template)


def validate_template(template: str) -> str:
    if template.count(PLACEHOLDER) != 1:
        raise InvalidService("a template must contain {secret} exactly once")
    if _CONTROL.search(template):
        raise InvalidService("a template must not contain control characters (CR, LF, ...)")
    return template


def normalise_methods(methods: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Upper-case HTTP method tokens, without duplicates; CONNECT and TRACE are never allowed."""
    result = []
    for method in methods:
        upper = method.strip().upper()
        if not _METHOD.match(upper):
            raise InvalidService(f"invalid HTTP method {method!r}; use names such as GET or POST")
        if upper in ("CONNECT", "TRACE", "TRACK"):
            raise InvalidService(f"method {upper} cannot be allowed for a service")
        result.append(upper)
    return tuple(dict.fromkeys(result))


def normalise_path_prefix(text: str) -> str:
    """One spelling per prefix: absolute, no dot segments, no encoding, no trailing slash.

    Anything ambiguous (``%2e``, ``//``, ``..``, a query) is refused rather than guessed, so the
    prefix the user registered is the one the proxy compares against normalised paths.
    """
    if not text.startswith("/"):
        raise InvalidService(f"path prefix {text!r} must start with '/', e.g. /v1/")
    if _CONTROL.search(text) or any(c in text for c in "?#%\\ "):
        raise InvalidService(f"path prefix {text!r} must be a plain path (no query, '%', '\\', spaces)")
    body = text[1:].removesuffix("/")
    segments = body.split("/") if body else []
    if any(seg in ("", ".", "..") for seg in segments):
        raise InvalidService(f"path prefix {text!r} has an empty, '.' or '..' segment; write it plainly")
    return "/" + "/".join(segments)


def normalise_path_prefixes(prefixes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(normalise_path_prefix(p) for p in prefixes))


def validate_extra_headers(headers: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """Fixed non-secret headers: valid names, no control characters, no credential placeholder."""
    result = []
    for name, value in headers.items():
        if not _HEADER_NAME.match(name) or _CONTROL.search(value) or PLACEHOLDER in value:
            raise InvalidService(f"fixed header {name!r} must be a valid name with a plain value (no {{secret}})")
        if name.lower() in ("authorization", "proxy-authorization", "host", "cookie"):
            raise InvalidService(f"{name} cannot be a fixed header; it is set by the auth method or the proxy")
        result.append((name, value))
    return tuple(result)


def validate_secret(value: str) -> Secret:
    """Refuse values that would split a header or vanish in transit."""
    if not value:
        raise InvalidService("the secret is empty")
    if _CONTROL.search(value):
        raise InvalidService("the secret contains control characters (CR, LF, tab, ...); check what you pasted")
    if value != value.strip():
        raise InvalidService("the secret has leading or trailing spaces; check what you pasted")
    return Secret(value)


AUTH_CHOICES = ("bearer", "header", "basic", "query")


def build_auth(
    kind: str,
    *,
    header: str | None = None,
    template: str | None = None,
    param: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> AuthSpec:
    """The one way the CLI, the connector catalog and imports turn an auth description into an AuthSpec."""
    match kind:
        case "bearer":
            auth = AuthSpec(
                kind="header", name="Authorization", template=validate_template(template or "Bearer {secret}")
            )
        case "header":
            auth = parse_header_template(f"{header or 'Authorization'}: {template or PLACEHOLDER}")
        case "basic":
            auth = AuthSpec(kind="basic", name="Authorization", template=validate_template(template or "{secret}:"))
            if ":" not in auth.template:
                raise InvalidService("a basic-auth template is 'user:{secret}' or '{secret}:' (the key as user name)")
        case "query":
            if not param or not _QUERY_PARAM.match(param):
                raise InvalidService(f"query auth needs a parameter name such as 'key' or 'api_key', not {param!r}")
            auth = AuthSpec(kind="query", name=param)
        case _:
            raise InvalidService(f"unknown auth method {kind!r}; choose one of: {', '.join(AUTH_CHOICES)}")
    return replace(auth, extra_headers=validate_extra_headers(extra_headers or {}))


def validated(service: Service) -> Service:
    """The registration check every entry point passes through (CLI, import, OAuth, tests).

    Re-validates what the helpers above produce, so a Service built by hand cannot store a
    template with CR/LF, an unnormalised path prefix or a bad method.
    """
    validate_name(service.name)
    if not service.hosts:
        raise InvalidService(f"service {service.name!r} needs at least one host")
    auth = service.auth
    if auth.kind in ("header", "basic"):
        validate_template(auth.template)
        if not _HEADER_NAME.match(auth.name):
            raise InvalidService(f"invalid header name {auth.name!r}")
    elif auth.kind == "query" and not _QUERY_PARAM.match(auth.name):
        raise InvalidService(f"invalid query parameter name {auth.name!r}")
    validate_extra_headers(dict(auth.extra_headers))
    if service.reveal not in ("never", "masked", "full"):
        raise InvalidService(f"reveal policy must be never, masked or full, not {service.reveal!r}")
    return replace(
        service,
        methods=normalise_methods(service.methods),
        path_prefixes=normalise_path_prefixes(service.path_prefixes),
    )
