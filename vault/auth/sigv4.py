"""AWS Signature Version 4: the proxy signs the finished request with the stored key pair.

The agent's own signature (made with dummy credentials) is dropped: ``Authorization``,
``X-Amz-Date`` and ``X-Amz-Security-Token`` in every spelling, and the presigning parameters of
the query. Other ``X-Amz-*`` headers are the request's content (``X-Amz-Target`` names a DynamoDB
operation, ``X-Amz-Meta-*`` is object metadata) and are signed as sent. The payload hash is the
body's, unless the client declared ``UNSIGNED-PAYLOAD`` or an unsigned streaming body (which S3
allows), or the service is set to unsigned payloads; a body streamed with signed chunks
(``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``) has every chunk signature recomputed.

Fields: ``credential`` is the secret access key, ``access_key_id`` the key id, ``session_token``
(optional) the temporary credentials' token. Region and signing name come from the host
(``s3.eu-west-1.amazonaws.com``, ``sts.amazonaws.com``) unless set on the service.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self
from urllib.parse import quote, unquote

from ..errors import CannotInject, InvalidService
from ..secret import Secret
from .base import CREDENTIAL, AuthMethod, OutgoingRequest, stored_extra_headers, validate_extra_headers
from .fields import require

ACCESS_KEY_ID = "access_key_id"
SESSION_TOKEN = "session_token"
ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED = "UNSIGNED-PAYLOAD"
UNSIGNED_DECLARATIONS = (UNSIGNED, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
SIGNED_CHUNKS = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
# Never signed (as botocore): hop-by-hop headers a hop may drop or rewrite, and tracing headers.
UNSIGNED_HEADERS = frozenset(
    {"authorization", "baggage", "connection", "expect", "keep-alive", "proxy-authenticate", "proxy-authorization",
     "proxy-connection", "te", "traceparent", "tracestate", "trailer", "transfer-encoding", "upgrade", "user-agent",
     "x-amzn-trace-id"}
)  # fmt: skip
PRESIGN_PARAMS = frozenset(
    {"x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-expires", "x-amz-signedheaders", "x-amz-signature",
     "x-amz-security-token"}
)  # fmt: skip
REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
AWS_SUFFIXES = (".amazonaws.com.cn", ".amazonaws.com", ".api.aws")
# Endpoint prefixes whose signing name differs (botocore's endpoint data has the full list).
SIGNING_NAMES = {"email": "ses", "s3-external-1": "s3", "data.iot": "iotdata", "data-ats.iot": "iotdata",
                 "runtime.sagemaker": "sagemaker", "streams.dynamodb": "dynamodb", "runtime.lex": "lex",
                 "execute-api": "execute-api", "s3-control": "s3"}  # fmt: skip


def scope_from_host(host: str) -> tuple[str, str] | None:
    """(region, signing name) of an AWS endpoint host, or None if the host does not say.

    ``sts.amazonaws.com`` is global (us-east-1); ``bucket.s3.eu-west-1.amazonaws.com``,
    ``s3.dualstack.eu-west-1.amazonaws.com``, ``s3-eu-west-1.amazonaws.com`` (the older dash form),
    ``sqs-fips.us-east-1.amazonaws.com`` and ``abc.execute-api.us-east-1.amazonaws.com`` are read
    as AWS names them.
    """
    host = host.lower().rstrip(".")
    suffix = next((s for s in AWS_SUFFIXES if host.endswith(s)), None)
    if suffix is None:
        return None
    labels = host[: -len(suffix)].split(".")
    region = next((label for label in reversed(labels) if REGION.match(label)), None)
    if region is None:
        legacy = re.match(r"^s3-(.+)$", labels[-1])
        if legacy and REGION.match(legacy.group(1)):
            return legacy.group(1), "s3"
        return "us-east-1" if suffix != ".amazonaws.com.cn" else "cn-north-1", _signing_name(labels)
    before = labels[: labels.index(region)]
    before = [label for label in before if label not in ("dualstack", "fips")]
    return (region, _signing_name(before)) if before else None


def _signing_name(labels: list[str]) -> str:
    for width in (2, 1):
        joined = ".".join(labels[-width:])
        if len(labels) >= width and joined in SIGNING_NAMES:
            return SIGNING_NAMES[joined]
    name = labels[-1].removesuffix("-fips")
    return "s3" if "s3" in labels else name


def remove_dot_segments(path: str) -> str:
    """RFC 3986 dot-segment removal, and empty segments dropped (what AWS services expect)."""
    if not path:
        return "/"
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    trailing = "/" if path.endswith("/") and kept else ""
    return ("/" if path.startswith("/") else "") + "/".join(kept) + trailing


def canonical_uri(path: str, service: str) -> str:
    """S3 signs the path as sent; every other service its normalised form, encoded once more."""
    if service == "s3":
        return path or "/"
    return quote(remove_dot_segments(path), safe="/~")


def canonical_query(raw_query: str) -> str:
    pairs = []
    for item in raw_query.split("&") if raw_query else ():
        key, _, value = item.partition("=")
        pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def signed_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased names to their canonical values (trimmed, inner runs of spaces made one, repeats
    joined with commas), for every header that is signed."""
    signed: dict[str, list[str]] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered not in UNSIGNED_HEADERS:
            signed.setdefault(lowered, []).append(" ".join(value.split()))
    return {name: ",".join(values) for name, values in sorted(signed.items())}


def canonical_request(
    method: str, uri: str, query: str, headers: Mapping[str, str], payload_hash: str
) -> str:  # fmt: skip
    lines = "".join(f"{name}:{value}\n" for name, value in headers.items())
    return "\n".join((method.upper(), uri, query, lines, ";".join(headers), payload_hash))


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def string_to_sign(timestamp: str, scope: str, canonical: str) -> str:
    return "\n".join((ALGORITHM, timestamp, scope, hashlib.sha256(canonical.encode()).hexdigest()))


def signature(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def resign_chunks(body: bytes, key: bytes, timestamp: str, scope: str, seed: str) -> bytes:
    """An ``aws-chunked`` body with every ``chunk-signature`` recomputed from ``seed`` (the request's
    signature), each chained to the one before, as S3 checks them; the same length as before."""
    out, at, previous = bytearray(), 0, seed
    while True:
        end = body.find(b"\r\n", at)
        match = re.fullmatch(rb"([0-9a-fA-F]+);chunk-signature=[0-9a-f]{64}", body[at:end]) if end >= 0 else None
        if match is None:
            raise CannotInject("the aws-chunked body is malformed; send it unsigned (UNSIGNED-PAYLOAD) instead")
        size = int(match.group(1), 16)
        data = body[end + 2 : end + 2 + size]
        if len(data) != size or body[end + 2 + size : end + 4 + size] != b"\r\n":
            raise CannotInject("an aws-chunked chunk is shorter than its declared size")
        text = "\n".join((ALGORITHM + "-PAYLOAD", timestamp, scope, previous, EMPTY_SHA256,
                          hashlib.sha256(data).hexdigest()))  # fmt: skip
        previous = signature(key, text)
        out += match.group(1) + b";chunk-signature=" + previous.encode() + b"\r\n" + data + b"\r\n"
        at = end + 4 + size
        if size == 0:
            if at != len(body):
                raise CannotInject("the aws-chunked body has bytes after its last chunk (trailers are not re-signed)")
            return bytes(out)


def now() -> float:
    """The signing time (a module function, so the published vectors can fix it)."""
    return time.time()


def utc_timestamp(moment: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(moment))


@dataclass(frozen=True, slots=True)
class SigV4Auth(AuthMethod):
    """``region``/``service`` empty: read from the host. ``unsigned_payload``: sign ``UNSIGNED-PAYLOAD``
    instead of hashing the body (only where the service accepts it, as S3 does over HTTPS)."""

    kind: ClassVar[str] = "sigv4"
    revealed_field: ClassVar[str | None] = None  # the key signs; no token exists to show
    region: str = ""
    service: str = ""
    unsigned_payload: bool = False
    extra_headers: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        where = f"region {self.region or '(from host)'}, service {self.service or '(from host)'}"
        return f"AWS SigV4 ({where}{', unsigned payload' if self.unsigned_payload else ''})"

    def secret_fields(self) -> tuple[str, ...]:
        return (CREDENTIAL, ACCESS_KEY_ID, SESSION_TOKEN)

    def optional_fields(self) -> tuple[str, ...]:
        return (SESSION_TOKEN,)

    def credential_headers(self) -> tuple[str, ...]:
        return ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")

    def scope_for(self, host: str) -> tuple[str, str]:
        found = scope_from_host(host)
        region = self.region or (found[0] if found else "")
        service = self.service or (found[1] if found else "")
        if not region or not service:
            raise CannotInject(
                f"cannot tell the AWS region and service from host {host!r}; set them on the service "
                "(clavis-mcp edit NAME --aws-region REGION --aws-service NAME)"
            )
        return region, service

    def apply(self, request: OutgoingRequest, secrets: Mapping[str, Secret]) -> None:
        require(secrets, (CREDENTIAL, ACCESS_KEY_ID), "AWS SigV4")
        region, service = self.scope_for(request.host)
        timestamp = utc_timestamp(now())
        declared = request.header("X-Amz-Content-Sha256")
        kept = [item for item in request.raw_query.split("&") if item]
        presigned = [item for item in kept if unquote(item.partition("=")[0]).lower() in PRESIGN_PARAMS]
        if presigned:
            request.set_raw_query("&".join(item for item in kept if item not in presigned))
        ours = [*self.extra_headers, ("X-Amz-Date", timestamp)]
        if SESSION_TOKEN in secrets:
            ours.append(("X-Amz-Security-Token", secrets[SESSION_TOKEN].reveal()))
        payload = self.payload_hash(request, declared)
        if declared is not None or service == "s3" or payload == UNSIGNED:
            ours.append(("X-Amz-Content-Sha256", payload))
        request.set_headers(ours)
        headers = signed_headers(request.headers)
        if "host" not in headers:  # HTTP/2: the authority stands for Host
            default = 443 if request.scheme == "https" else 80
            headers = dict(sorted({**headers, "host": _authority(request.host, request.port, default)}.items()))
        canonical = canonical_request(request.method, canonical_uri(request.path, service),
                                      canonical_query(request.raw_query), headers, payload)  # fmt: skip
        date = timestamp[:8]
        scope = f"{date}/{region}/{service}/aws4_request"
        key = signing_key(secrets[CREDENTIAL].reveal(), date, region, service)
        seed = signature(key, string_to_sign(timestamp, scope, canonical))
        if payload == SIGNED_CHUNKS:
            request.set_body(resign_chunks(request.body() or b"", key, timestamp, scope, seed))
        credential = f"{secrets[ACCESS_KEY_ID].reveal()}/{scope}"
        authorization = f"{ALGORITHM} Credential={credential}, SignedHeaders={';'.join(headers)}, Signature={seed}"
        request.set_headers([("Authorization", authorization)])

    def payload_hash(self, request: OutgoingRequest, declared: str | None) -> str:
        if declared in UNSIGNED_DECLARATIONS or (declared is None and self.unsigned_payload):
            return UNSIGNED if declared is None else declared
        if declared == SIGNED_CHUNKS:
            return SIGNED_CHUNKS
        if declared is not None and declared.startswith("STREAMING-"):
            raise CannotInject(f"a {declared} body cannot be re-signed here; send it unsigned (UNSIGNED-PAYLOAD)")
        digest = request.body_sha256()
        if digest is None:
            raise CannotInject("the body is streamed, so its hash is unknown; send it with UNSIGNED-PAYLOAD")
        return digest

    def options(self) -> dict[str, str]:
        options = {"auth": "sigv4"}
        if self.region:
            options["aws_region"] = self.region
        if self.service:
            options["aws_service"] = self.service
        if self.unsigned_payload:
            options["unsigned_payload"] = "true"
        return options

    def validate(self) -> Self:
        if self.region and not REGION.fullmatch(self.region):
            raise InvalidService(f"AWS region {self.region!r} does not look like eu-west-1")
        if self.service and not NAME.fullmatch(self.service):
            raise InvalidService(f"AWS service signing name {self.service!r} must be like s3, sts or execute-api")
        validate_extra_headers(dict(self.extra_headers))
        return self

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "region": self.region, "service": self.service,
                "unsigned_payload": self.unsigned_payload,
                "extra_headers": [list(pair) for pair in self.extra_headers]}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(region=str(data.get("region", "")), service=str(data.get("service", "")),
                   unsigned_payload=bool(data.get("unsigned_payload", False)),
                   extra_headers=stored_extra_headers(data))  # fmt: skip


def _authority(host: str, port: int, default: int) -> str:
    host = f"[{host}]" if ":" in host else host
    return host if port == default else f"{host}:{port}"


def build_sigv4(
    *, aws_region: str | None = None, aws_service: str | None = None, unsigned_payload: bool | str = False, **_: object
) -> SigV4Auth:
    unsigned = unsigned_payload is True or str(unsigned_payload).lower() in ("true", "yes", "1")
    return SigV4Auth(region=aws_region or "", service=aws_service or "", unsigned_payload=unsigned).validate()
