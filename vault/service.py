"""Services: a named credential, how it is injected, and where it may go.

Modelled as the small Go proxies do: who may use it (the vault's clients), how it is
injected (an :class:`~vault.auth.AuthMethod`), which hosts it is valid for (:class:`HostRule`). Validation
lives here so that every entry point (CLI, import, tests) refuses the same bad input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .auth.base import CONTROL as _CONTROL
from .auth.base import PLACEHOLDER as PLACEHOLDER
from .auth.base import AuthMethod
from .auth.base import validate_extra_headers as validate_extra_headers
from .auth.base import validate_template as validate_template
from .auth.header import parse_header_template as parse_header_template
from .auth.registry import BUILDERS, build, from_fields
from .errors import InvalidService
from .hosts import HostRule, canonical_host, parse_host_rule
from .secret import Secret

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_METHOD = re.compile(r"^[A-Z]{1,20}$")

RevealPolicy = Literal["never", "masked", "full"]

# A method from the stored format's four fields (kind, name, template, extra_headers): the name
# older callers and tests build one by.
AuthSpec = from_fields
AUTH_CHOICES = tuple(BUILDERS)


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    auth: AuthMethod
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
    if not NAME_PATTERN.fullmatch(name):
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
        if "%" in parsed[-1].host:  # kept loadable in stored definitions: such a service never dialled
            raise InvalidService(
                f"host rule {rule!r} names an IPv6 zone id ('%...'), which a request's host never carries; "
                "register the address without it"
            )
    return tuple(dict.fromkeys(parsed))


def normalise_methods(methods: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Upper-case HTTP method tokens, without duplicates; CONNECT and TRACE are never allowed."""
    result = []
    for method in methods:
        upper = method.strip().upper()
        if not _METHOD.fullmatch(upper):
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


def validate_secret(value: str) -> Secret:
    """Refuse values that would split a header or vanish in transit."""
    if not value:
        raise InvalidService("the secret is empty")
    if _CONTROL.search(value):
        raise InvalidService("the secret contains control characters (CR, LF, tab, ...); check what you pasted")
    if value != value.strip():
        raise InvalidService("the secret has leading or trailing spaces; check what you pasted")
    return Secret(value)


def build_auth(
    kind: str,
    *,
    header: str | None = None,
    template: str | None = None,
    param: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> AuthMethod:
    """The one way the CLI, the connector catalog and imports turn an auth description into a method."""
    return build(kind, header=header, template=template, param=param, extra_headers=extra_headers)


def validated(service: Service) -> Service:
    """The registration check every entry point passes through (CLI, import, OAuth, tests).

    Re-validates what the helpers above produce, so a Service built by hand cannot store a
    template with CR/LF, an unnormalised path prefix or a bad method.
    """
    validate_name(service.name)
    if not service.hosts:
        raise InvalidService(f"service {service.name!r} needs at least one host")
    service.auth.validate()
    if service.reveal not in ("never", "masked", "full"):
        raise InvalidService(f"reveal policy must be never, masked or full, not {service.reveal!r}")
    return replace(
        service,
        methods=normalise_methods(service.methods),
        path_prefixes=normalise_path_prefixes(service.path_prefixes),
    )


def service_definition(service: Service) -> dict[str, Any]:
    """A service as the vault stores it (JSON-ready, without its name, which is the key): the one
    form the local store, exports and the team server's definitions share."""
    return {
        "connector": service.connector,
        "auth": service.auth.to_json(),
        "hosts": [str(rule) for rule in service.hosts],
        "local": service.local,
        "allow_http": service.allow_http,
        "reveal": service.reveal,
        "methods": list(service.methods),
        "path_prefixes": list(service.path_prefixes),
        "created_at": service.created_at,
        "expires_at": service.expires_at,
        "rotated_at": service.rotated_at,
    }
