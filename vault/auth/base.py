"""The shape of an auth method: one strategy per way of putting a credential on a request.

As tokenizer's processors and httpx's ``Auth.auth_flow`` do it, a method is handed the request
as it will leave, after every other stage has changed it (headers stripped, ``Accept-Encoding``
narrowed), so a method that signs the request (method, path, query, headers, body hash) signs
what the upstream receives. The proxy builds the :class:`OutgoingRequest` from mitmproxy's
request and writes it back; nothing here imports mitmproxy.

A method also says what it must never let back out (:meth:`AuthMethod.redaction_values`), which
client headers it owns (:meth:`AuthMethod.credential_headers`), and how it is stored
(:meth:`AuthMethod.to_json`, whose ``kind`` picks the class in :mod:`.registry`).
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, ClassVar, Self

from ..errors import InvalidService
from ..secret import Secret

PLACEHOLDER = "{secret}"
CREDENTIAL = "credential"  # the secret field every method injects from
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_template(template: str) -> str:
    if template.count(PLACEHOLDER) != 1:
        raise InvalidService("a template must contain {secret} exactly once")
    if CONTROL.search(template):
        raise InvalidService("a template must not contain control characters (CR, LF, ...)")
    return template


def validate_header_name(name: str) -> str:
    if not HEADER_NAME.fullmatch(name):
        raise InvalidService(f"invalid header name {name!r}")
    return name


def validate_extra_headers(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Fixed non-secret headers: valid names, no control characters, no credential placeholder."""
    result = []
    for name, value in headers.items():
        if not HEADER_NAME.fullmatch(name) or CONTROL.search(value) or PLACEHOLDER in value:
            raise InvalidService(f"fixed header {name!r} must be a valid name with a plain value (no {{secret}})")
        if name.lower() in ("authorization", "proxy-authorization", "host", "cookie"):
            raise InvalidService(f"{name} cannot be a fixed header; it is set by the auth method or the proxy")
        result.append((name, value))
    return tuple(result)


def with_headers(headers: list[tuple[str, str]], ours: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` without any copy (in any case) of a header in ``ours``, followed by ours (a later
    one of ours replaces an earlier one of the same name): one rebuild of the list, not one per header."""
    replaced = {name.lower(): (name, value) for name, value in ours}
    return [pair for pair in headers if pair[0].lower() not in replaced] + list(replaced.values())


class OutgoingRequest:
    """The request as it will leave the proxy, for a method to put its credential on.

    ``path`` is the path without the query, as sent (percent-encoding kept); ``raw_query`` the
    query string as sent (without ``?``); ``query`` the decoded items in order, parsed only if a
    method reads them; ``headers`` the header fields in order (names as sent). ``body()`` gives the
    body as sent (None when streamed), ``body_sha256()`` its hex SHA-256. A query changed through
    :meth:`set_query` is re-encoded; one set through :meth:`set_raw_query` is sent as given; an
    untouched one keeps its original bytes. :meth:`set_path` and :meth:`set_body` change the path
    and the body (Content-Length follows); ``shown_path`` is the path as records may show it.
    """

    __slots__ = ("_body", "_body_sha256", "_query", "_read_body", "_read_query", "body_changed", "headers", "host",
                 "method", "path", "port", "query_changed", "raw_query", "raw_query_changed", "scheme",
                 "shown_path")  # fmt: skip

    def __init__(
        self,
        method: str,
        scheme: str,
        host: str,
        port: int,
        path: str,
        query: Callable[[], list[tuple[str, str]]],
        headers: list[tuple[str, str]],
        body_sha256: Callable[[], str | None],
        *,
        raw_query: str = "",
        body: Callable[[], bytes | None] = lambda: None,
    ) -> None:
        self.method, self.scheme, self.host, self.port, self.path = method, scheme, host, port, path
        self._read_query = query
        self._query: list[tuple[str, str]] | None = None
        self.headers = headers
        self._body_sha256 = body_sha256
        self._read_body = body
        self._body: bytes | None = None
        self.query_changed = False
        self.raw_query = raw_query
        self.raw_query_changed = False
        self.body_changed = False
        self.shown_path: str | None = None

    @property
    def query(self) -> list[tuple[str, str]]:
        if self._query is None:
            self._query = self._read_query()
        return self._query

    def body(self) -> bytes | None:
        return self._body if self.body_changed else self._read_body()

    def body_sha256(self) -> str | None:
        if self.body_changed:
            return hashlib.sha256(self._body or b"").hexdigest()
        return self._body_sha256()

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)

    def set_headers(self, ours: Iterable[tuple[str, str]]) -> None:
        """Set ``ours`` (see :func:`with_headers`); refuses a value that would split a header."""
        ours = list(ours)
        if any(CONTROL.search(value) for _, value in ours):
            raise InvalidService("a credential header value contains control characters")
        self.headers = with_headers(self.headers, ours)

    def remove_headers(self, names: Iterable[str]) -> None:
        lowered = {name.lower() for name in names}
        self.headers = [pair for pair in self.headers if pair[0].lower() not in lowered]

    def set_query(self, items: list[tuple[str, str]]) -> None:
        self._query = items
        self.query_changed = True

    def set_raw_query(self, raw: str) -> None:
        """Send ``raw`` (already percent-encoded) as the query string, byte for byte."""
        self.raw_query = raw
        self.raw_query_changed = True

    def set_path(self, path: str, shown: str) -> None:
        """Send ``path``; records (the audit log) show ``shown``, which must not hold a secret."""
        if CONTROL.search(path) or not path.startswith("/") or "?" in path or "#" in path:
            raise InvalidService("a credential path must be a plain absolute path")
        self.path, self.shown_path = path, shown

    def set_body(self, body: bytes) -> None:
        """Send ``body``; its Content-Length is set to match (a chunked body stays chunked)."""
        self._body, self.body_changed = body, True
        if self.header("Transfer-Encoding") is None:
            self.headers = with_headers(self.headers, [("Content-Length", str(len(body)))])


class AuthMethod(ABC):
    """One way of authenticating. Subclasses are frozen dataclasses registered by ``kind``."""

    __slots__ = ()
    kind: ClassVar[str]
    extra_headers: tuple[tuple[str, str], ...]
    revealed_field: ClassVar[str | None] = CREDENTIAL
    """The secret field get_credentials may show: the value that goes on the wire. A method that
    trades its stored key for a short-lived token names the token; one whose key only signs (what
    is sent is derived from the key, which is worth every future request) names none."""
    revealed_as: ClassVar[str] = "the full credential"
    """What a full reveal hands out, in the words of the question put to the user."""

    @abstractmethod
    def describe(self) -> str:
        """What the method does, for people and the model; never holds a secret."""

    def secret_fields(self) -> tuple[str, ...]:
        """The named secrets this method uses; all of them are redacted from responses."""
        return (CREDENTIAL,)

    def optional_fields(self) -> tuple[str, ...]:
        """Those of :meth:`secret_fields` a service may go without (an AWS session token)."""
        return ()

    @abstractmethod
    def apply(self, request: OutgoingRequest, secrets: Mapping[str, Secret]) -> None:
        """Put the credential (and any fixed headers) on the finished request."""

    def redaction_values(self, secrets: Mapping[str, Secret]) -> list[str]:
        """Values derived from the secrets that would betray them (a built header, a basic pair)."""
        return []

    def credential_headers(self) -> tuple[str, ...]:
        """Headers this method sets: the client's own copies are stripped in every spelling."""
        return ()

    def with_extra_headers(self, headers: tuple[tuple[str, str], ...]) -> Self:
        """The same method with other fixed headers (``--fixed-header``, a connector's defaults)."""
        return replace(self, extra_headers=headers)  # type: ignore[type-var]  # subclasses are dataclasses

    def options(self) -> dict[str, str]:
        """The ``--auth`` choice and options that build this method again (an export table's fields)."""
        return {"auth": self.kind}

    @abstractmethod
    def validate(self) -> Self:
        """Raise InvalidService when a field could not be injected safely; return self."""

    @abstractmethod
    def to_json(self) -> dict[str, Any]:
        """The stored form; ``kind`` selects the class that reads it back."""

    @classmethod
    @abstractmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """Read the stored form (older vaults' too); raise KeyError/TypeError/ValueError if damaged."""


def stored_form(kind: str, name: str, template: str, extra_headers: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The stored auth object of the methods that keep these four fields (docs/vault-format.md)."""
    return {"kind": kind, "name": name, "template": template, "extra_headers": [list(pair) for pair in extra_headers]}


def stored_extra_headers(data: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in data.get("extra_headers", ()))
