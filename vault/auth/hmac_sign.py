"""HMAC request signing in the common shape: a header carrying ``HMAC-SHA256(key, canonical string)``,
the canonical string built from parts of the finished request and a timestamp.

Configured per service, since every provider picks its own parts and names: which header
carries the signature (and in what template, ``v1={signature}`` or
``HMAC key={key_id}, ts={timestamp}, sig={signature}``), which header carries the timestamp and in
what format, the parts of the canonical string and their separator, hex or base64, and whether
the stored key is text, base64 or hex. The key is the service's ``credential``; the key id is not
secret and is stored with the method. A signature is no secret (it is good for one request).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, ClassVar, Self

from ..errors import CannotInject, InvalidService
from ..secret import Secret
from .base import (
    CONTROL,
    CREDENTIAL,
    AuthMethod,
    OutgoingRequest,
    stored_extra_headers,
    validate_extra_headers,
    validate_header_name,
)

PARTS = ("method", "path", "query", "target", "host", "timestamp", "body", "body_sha256", "key_id")
TIMESTAMP_FORMATS = ("unix", "unix_ms", "iso8601", "http")
ENCODINGS = ("hex", "base64")
KEY_FORMATS = ("text", "base64", "hex")
TEMPLATE_NAMES = re.compile(r"\{(\w+)\}")
DEFAULT_PARTS = ("timestamp", "method", "path", "query", "body_sha256")


def _known[T: (bytes, str)](value: T | None) -> T:
    if value is None:
        raise CannotInject("the signature covers the body, which is streamed; send it whole")
    return value


def now() -> float:
    """The signing time (a module function, so tests can fix it)."""
    return time.time()


def format_timestamp(moment: float, form: str) -> str:
    match form:
        case "unix_ms":
            return str(int(moment * 1000))
        case "iso8601":
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
        case "http":
            return formatdate(moment, usegmt=True)
    return str(int(moment))


def key_bytes(secret: Secret, form: str) -> bytes:
    value = secret.reveal()
    try:
        if form == "base64":
            return base64.b64decode(value, validate=True)
        if form == "hex":
            return bytes.fromhex(value)
    except (binascii.Error, ValueError):
        raise InvalidService(
            f"the stored HMAC key is not valid {form}; rotate it with the key as the provider gave it"
        ) from None
    return value.encode()


@dataclass(frozen=True, slots=True)
class HmacAuth(AuthMethod):
    kind: ClassVar[str] = "hmac"
    revealed_field: ClassVar[str | None] = None  # the key signs; no token exists to show
    header: str = "X-Signature"
    template: str = "{signature}"
    parts: tuple[str, ...] = DEFAULT_PARTS
    separator: str = "\n"
    timestamp_header: str = "X-Timestamp"
    timestamp_format: str = "unix"
    encoding: str = "hex"
    key_format: str = "text"
    key_id: str = ""
    key_id_header: str = ""
    extra_headers: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        signed = "+".join(part.replace("header:", "") for part in self.parts)
        return f"HMAC-SHA256 signature in {self.header} over {signed} ({self.encoding})"

    def canonical(self, request: OutgoingRequest, timestamp: str) -> bytes:
        """The string to sign: the parts in order, joined by the separator (bytes: a body need not be text)."""
        pieces: list[bytes] = []
        for part in self.parts:
            if part.startswith("header:"):
                pieces.append((request.header(part.removeprefix("header:")) or "").encode())
                continue
            match part:
                case "method":
                    pieces.append(request.method.upper().encode())
                case "path":
                    pieces.append(request.path.encode())
                case "query":
                    pieces.append(request.raw_query.encode())
                case "target":
                    pieces.append((request.path + ("?" + request.raw_query if request.raw_query else "")).encode())
                case "host":
                    pieces.append(request.host.encode())
                case "timestamp":
                    pieces.append(timestamp.encode())
                case "body":
                    pieces.append(_known(request.body()))
                case "body_sha256":
                    pieces.append(_known(request.body_sha256()).encode())
                case "key_id":
                    pieces.append(self.key_id.encode())
        return self.separator.encode().join(pieces)

    def apply(self, request: OutgoingRequest, secrets: Mapping[str, Secret]) -> None:
        timestamp = format_timestamp(now(), self.timestamp_format)
        ours = list(self.extra_headers)
        if self.timestamp_header:
            ours.append((self.timestamp_header, timestamp))
        if self.key_id_header:
            ours.append((self.key_id_header, self.key_id))
        request.set_headers(ours)  # first, so a part that names one of these headers reads our value
        digest = hmac.new(key_bytes(secrets[CREDENTIAL], self.key_format), self.canonical(request, timestamp),
                          hashlib.sha256).digest()  # fmt: skip
        signature = digest.hex() if self.encoding == "hex" else base64.b64encode(digest).decode()
        values = {"signature": signature, "timestamp": timestamp, "key_id": self.key_id}
        request.set_headers([(self.header, TEMPLATE_NAMES.sub(lambda m: values[m.group(1)], self.template))])

    def credential_headers(self) -> tuple[str, ...]:
        return tuple(h for h in (self.header, self.timestamp_header, self.key_id_header) if h)

    def options(self) -> dict[str, Any]:
        return {"auth": "hmac", "hmac_header": self.header, "hmac_template": self.template,
                "hmac_parts": ",".join(self.parts), "hmac_separator": self.separator,
                "hmac_timestamp_header": self.timestamp_header, "hmac_timestamp_format": self.timestamp_format,
                "hmac_encoding": self.encoding, "hmac_key_format": self.key_format, "hmac_key_id": self.key_id,
                "hmac_key_id_header": self.key_id_header}  # fmt: skip

    def validate(self) -> Self:
        validate_header_name(self.header)
        for name in (self.timestamp_header, self.key_id_header):
            if name:
                validate_header_name(name)
        names = TEMPLATE_NAMES.findall(self.template)
        if "signature" not in names or set(names) - {"signature", "timestamp", "key_id"}:
            raise InvalidService("an HMAC header template holds {signature} and may hold {timestamp}, {key_id}")
        if CONTROL.search(self.template + self.key_id) or "\r" in self.separator:
            raise InvalidService("HMAC template and key id must not contain control characters")
        unknown = [p for p in self.parts if p not in PARTS and not p.startswith("header:")]
        if not self.parts or unknown:
            raise InvalidService(f"unknown HMAC canonical parts {unknown}; use {', '.join(PARTS)} or header:NAME")
        for part in self.parts:
            if part.startswith("header:"):
                validate_header_name(part.removeprefix("header:"))
        for value, allowed, what in ((self.timestamp_format, TIMESTAMP_FORMATS, "timestamp format"),
                                     (self.encoding, ENCODINGS, "signature encoding"),
                                     (self.key_format, KEY_FORMATS, "key format")):  # fmt: skip
            if value not in allowed:
                raise InvalidService(f"HMAC {what} must be one of {', '.join(allowed)}, not {value!r}")
        if self.key_id_header and not self.key_id:
            raise InvalidService("an HMAC key-id header needs the key id (--hmac-key-id)")
        validate_extra_headers(dict(self.extra_headers))
        return self

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "header": self.header, "template": self.template, "parts": list(self.parts),
                "separator": self.separator, "timestamp_header": self.timestamp_header,
                "timestamp_format": self.timestamp_format, "encoding": self.encoding, "key_format": self.key_format,
                "key_id": self.key_id, "key_id_header": self.key_id_header,
                "extra_headers": [list(pair) for pair in self.extra_headers]}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(header=str(data["header"]), template=str(data["template"]),
                   parts=tuple(str(p) for p in data["parts"]), separator=str(data["separator"]),
                   timestamp_header=str(data["timestamp_header"]), timestamp_format=str(data["timestamp_format"]),
                   encoding=str(data["encoding"]), key_format=str(data["key_format"]), key_id=str(data["key_id"]),
                   key_id_header=str(data["key_id_header"]), extra_headers=stored_extra_headers(data))  # fmt: skip


def build_hmac(
    *,
    hmac_header: str | None = None,
    hmac_template: str | None = None,
    hmac_parts: str | None = None,
    hmac_separator: str | None = None,
    hmac_timestamp_header: str | None = None,
    hmac_timestamp_format: str | None = None,
    hmac_encoding: str | None = None,
    hmac_key_format: str | None = None,
    hmac_key_id: str | None = None,
    hmac_key_id_header: str | None = None,
    **_: object,
) -> HmacAuth:
    """``--auth hmac`` and its ``--hmac-*`` options; a separator is given with escapes (``\\n``)."""
    separator = "\n" if hmac_separator is None else hmac_separator.encode().decode("unicode_escape")
    parts = tuple(p.strip() for p in hmac_parts.split(",") if p.strip()) if hmac_parts else DEFAULT_PARTS
    return HmacAuth(
        header=hmac_header or "X-Signature",
        template=hmac_template or "{signature}",
        parts=parts,
        separator=separator,
        timestamp_header="X-Timestamp" if hmac_timestamp_header is None else hmac_timestamp_header,
        timestamp_format=hmac_timestamp_format or "unix",
        encoding=hmac_encoding or "hex",
        key_format=hmac_key_format or "text",
        key_id=hmac_key_id or "",
        key_id_header=hmac_key_id_header or "",
    ).validate()
