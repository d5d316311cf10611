"""Services: a named credential, how it is injected, and where it may go.

Modelled as the small Go proxies do: who may use it (the vault's clients), how it is
injected (:class:`AuthSpec`), which hosts it is valid for (:class:`HostRule`). Validation
lives here so that every entry point (CLI, import, tests) refuses the same bad input.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Literal

from .errors import InvalidService
from .hosts import HostRule, canonical_host, parse_host_rule
from .secret import Secret

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
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
    """

    kind: AuthKind
    name: str
    template: str = PLACEHOLDER

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
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def owns(self, host: str, port: int, scheme: str = "https") -> bool:
        """Whether a request to ``scheme://host:port`` may carry this service's credential."""
        if scheme != "https" and not (scheme == "http" and self.allow_http):
            return False
        try:
            host = canonical_host(host)
        except ValueError:
            return False
        default_port = 443 if scheme == "https" else 80
        return any(rule.matches(host, port, default_port) for rule in self.hosts)


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


def validate_secret(value: str) -> Secret:
    """Refuse values that would split a header or vanish in transit."""
    if not value:
        raise InvalidService("the secret is empty")
    if _CONTROL.search(value):
        raise InvalidService("the secret contains control characters (CR, LF, tab, ...); check what you pasted")
    if value != value.strip():
        raise InvalidService("the secret has leading or trailing spaces; check what you pasted")
    return Secret(value)
