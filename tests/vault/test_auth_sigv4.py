"""AWS SigV4 against the signing test suite AWS publishes, as botocore ships it.

The vectors (tests/vault/data/aws4_testsuite, Apache-2.0, see its LICENSE and NOTICE; copied from
botocore 0e6e2404 tests/unit/auth/aws4_testsuite) give a raw request (``.req``), the canonical
request (``.creq``), the string to sign (``.sts``) and the ``Authorization`` header (``.authz``).
Each request goes through the method's ``apply`` as the proxy would hand it over; the canonical
request and string to sign are rebuilt from what ``apply`` left on the request.
"""

from __future__ import annotations

import calendar
import hashlib
import re
import time
from pathlib import Path

import pytest

from clavis_mcp.vault import Secret
from clavis_mcp.vault.auth import CREDENTIAL, OutgoingRequest, sigv4
from clavis_mcp.vault.auth.registry import build, from_json
from clavis_mcp.vault.auth.sigv4 import (
    ACCESS_KEY_ID,
    SESSION_TOKEN,
    SigV4Auth,
    canonical_query,
    canonical_request,
    canonical_uri,
    scope_from_host,
    signed_headers,
    string_to_sign,
)
from clavis_mcp.vault.errors import CannotInject, InvalidService

SUITE = Path(__file__).parent / "data" / "aws4_testsuite"
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
DATE = calendar.timegm((2015, 8, 30, 12, 36, 0))
CASES = sorted(p.parent for p in SUITE.rglob("*.req"))


def parse_req(text: str) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """A raw ``.req``: the request line may hold a space in its path (``get-space``), header values
    may continue on indented lines (``get-header-value-multiline``)."""
    head, _, body = text.partition("\n\n")
    line, *rest = head.split("\n")
    method, _, remainder = line.partition(" ")
    target = remainder.rsplit(" ", 1)[0]
    headers: list[tuple[str, str]] = []
    for raw in rest:
        if not raw:
            continue
        if raw[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + raw.strip())
        else:
            name, _, value = raw.partition(":")
            headers.append((name, value))
    return method, target, headers, body.encode()


def outgoing(method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> OutgoingRequest:
    path, _, query = target.partition("?")
    host = next(v for k, v in headers if k.lower() == "host")
    return OutgoingRequest(method, "https", host, 443, path, list, list(headers),
                           lambda: hashlib.sha256(body).hexdigest(), raw_query=query, body=lambda: body)  # fmt: skip


@pytest.fixture
def fixed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sigv4, "now", lambda: float(DATE))


@pytest.mark.parametrize("case", CASES, ids=[str(c.relative_to(SUITE)) for c in CASES])
def test_the_signer_matches_every_published_vector(case: Path, fixed_time: None) -> None:
    read = {ext: (case / f"{case.name}.{ext}").read_text(encoding="utf-8").replace("\r", "")
            for ext in ("req", "creq", "sts", "authz")}  # fmt: skip
    token = re.search(r"^x-amz-security-token:(.*)$", read["creq"], re.MULTILINE)
    secrets = {CREDENTIAL: Secret(SECRET_KEY), ACCESS_KEY_ID: Secret(ACCESS_KEY)}
    if token:
        secrets[SESSION_TOKEN] = Secret(token.group(1))
    request = outgoing(*parse_req(read["req"]))
    SigV4Auth(region="us-east-1", service="service").apply(request, secrets)

    signed = signed_headers(request.headers)
    payload = request.body_sha256() or ""
    creq = canonical_request(request.method, canonical_uri(request.path, "service"),
                             canonical_query(request.raw_query), signed, payload)  # fmt: skip
    assert creq == read["creq"]
    assert string_to_sign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", creq) == read["sts"]
    assert request.header("Authorization") == read["authz"]


def test_the_suite_holds_every_vector_it_was_copied_with() -> None:
    assert len(CASES) == 34 and (SUITE / "LICENSE").exists() and (SUITE / "NOTICE").exists()


@pytest.mark.parametrize(
    ("host", "scope"),
    [
        ("sts.amazonaws.com", ("us-east-1", "sts")),
        ("s3.eu-west-1.amazonaws.com", ("eu-west-1", "s3")),
        ("my-bucket.s3.eu-west-1.amazonaws.com", ("eu-west-1", "s3")),
        ("my.dotted.bucket.s3.us-west-2.amazonaws.com", ("us-west-2", "s3")),
        ("s3.dualstack.ap-south-1.amazonaws.com", ("ap-south-1", "s3")),
        ("s3-eu-west-1.amazonaws.com", ("eu-west-1", "s3")),
        ("s3.amazonaws.com", ("us-east-1", "s3")),
        ("bucket.s3.amazonaws.com", ("us-east-1", "s3")),
        ("dynamodb.us-gov-west-1.amazonaws.com", ("us-gov-west-1", "dynamodb")),
        ("sqs-fips.us-east-1.amazonaws.com", ("us-east-1", "sqs")),
        ("email.eu-central-1.amazonaws.com", ("eu-central-1", "ses")),
        ("abc123.execute-api.us-east-1.amazonaws.com", ("us-east-1", "execute-api")),
        ("iam.amazonaws.com", ("us-east-1", "iam")),
        ("s3.cn-north-1.amazonaws.com.cn", ("cn-north-1", "s3")),
        ("api.example.com", None),
        ("amazonaws.com.evil.test", None),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_region_and_service_are_read_from_the_host(host: str, scope: tuple[str, str] | None) -> None:
    assert scope_from_host(host) == scope


def s3_request(headers: list[tuple[str, str]], body: bytes = b"", query: str = "") -> OutgoingRequest:
    return outgoing("PUT", "/bucket/key" + (f"?{query}" if query else ""),
                    [("Host", "s3.eu-west-1.amazonaws.com"), *headers], body)  # fmt: skip


SECRETS = {CREDENTIAL: Secret(SECRET_KEY), ACCESS_KEY_ID: Secret(ACCESS_KEY)}


def test_s3_gets_the_payload_hash_header_and_the_client_signature_is_replaced(fixed_time: None) -> None:
    request = s3_request([("X-Amz-Content-Sha256", "0" * 64), ("X-Amz-Meta-Colour", "blue")], b"data")
    SigV4Auth().apply(request, SECRETS)
    assert request.header("X-Amz-Content-Sha256") == hashlib.sha256(b"data").hexdigest()  # ours, not the client's
    authz = request.header("Authorization") or ""
    assert "Credential=AKIDEXAMPLE/20150830/eu-west-1/s3/aws4_request" in authz
    assert "x-amz-meta-colour" in authz  # request content is signed, not stripped


@pytest.mark.parametrize("declared", ["UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"])
def test_an_unsigned_payload_the_client_declared_is_kept(declared: str, fixed_time: None) -> None:
    request = s3_request([("X-Amz-Content-Sha256", declared)], b"body")
    SigV4Auth().apply(request, SECRETS)
    assert request.header("X-Amz-Content-Sha256") == declared


def test_a_service_set_to_unsigned_payloads_signs_without_the_body(fixed_time: None) -> None:
    request = s3_request([], b"body")
    SigV4Auth(unsigned_payload=True).apply(request, SECRETS)
    assert request.header("X-Amz-Content-Sha256") == "UNSIGNED-PAYLOAD"


def test_presigning_parameters_of_the_client_are_dropped_from_the_query(fixed_time: None) -> None:
    request = s3_request([], query="X-Amz-Signature=forged&uploads=&X-Amz-Credential=AKIAFAKE%2F1")
    SigV4Auth().apply(request, SECRETS)
    assert request.raw_query == "uploads="


def test_a_streamed_body_without_a_hash_cannot_be_signed() -> None:
    request = OutgoingRequest("PUT", "https", "s3.eu-west-1.amazonaws.com", 443, "/b/k", list, [], lambda: None)
    with pytest.raises(CannotInject, match="UNSIGNED-PAYLOAD"):
        SigV4Auth().apply(request, SECRETS)


def test_a_host_that_names_no_region_needs_one_set_on_the_service() -> None:
    request = OutgoingRequest("GET", "https", "aws.internal.example", 443, "/", list, [], lambda: "")
    with pytest.raises(CannotInject, match="--aws-region"):
        SigV4Auth().apply(request, SECRETS)
    SigV4Auth(region="eu-west-1", service="execute-api").apply(request, SECRETS)


def test_a_service_without_its_key_id_is_refused_not_signed_half() -> None:
    request = s3_request([])
    with pytest.raises(InvalidService, match="access_key_id"):
        SigV4Auth().apply(request, {CREDENTIAL: Secret(SECRET_KEY)})


def chunked(chunks: list[bytes]) -> bytes:
    return b"".join(b"%x;chunk-signature=%s\r\n%s\r\n" % (len(c), b"0" * 64, c) for c in [*chunks, b""])


def test_signed_chunks_are_signed_again_as_botocore_would_verify_them(fixed_time: None) -> None:
    """The chunk signatures chain from the seed signature (AWS's documented example shape)."""
    body = chunked([b"a" * 65536, b"b" * 1024])
    declared = [("X-Amz-Content-Sha256", sigv4.SIGNED_CHUNKS), ("X-Amz-Decoded-Content-Length", "66560")]
    request = s3_request([*declared, ("Content-Length", str(len(body)))], body)
    SigV4Auth().apply(request, SECRETS)
    resent = request.body() or b""
    assert len(resent) == len(body) and request.header("Content-Length") == str(len(body))
    seed = (request.header("Authorization") or "").rsplit("Signature=", 1)[1]
    key = sigv4.signing_key(SECRET_KEY, "20150830", "eu-west-1", "s3")
    previous, scope = seed, "20150830/eu-west-1/s3/aws4_request"
    for size, data in ((65536, b"a" * 65536), (1024, b"b" * 1024), (0, b"")):
        text = "\n".join(("AWS4-HMAC-SHA256-PAYLOAD", "20150830T123600Z", scope, previous,
                          sigv4.EMPTY_SHA256, hashlib.sha256(data).hexdigest()))  # fmt: skip
        previous = sigv4.signature(key, text)
        assert b"%x;chunk-signature=%s\r\n" % (size, previous.encode()) in resent


def test_a_malformed_chunked_body_is_refused(fixed_time: None) -> None:
    request = s3_request([("X-Amz-Content-Sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")], b"zz;nonsense\r\n")
    with pytest.raises(CannotInject, match="malformed"):
        SigV4Auth().apply(request, SECRETS)


def test_the_method_is_stored_and_built_with_its_options() -> None:
    method = build("sigv4", aws_region="eu-west-1", aws_service="s3", unsigned_payload=True)
    assert from_json(method.to_json()) == method
    assert method.options() == {"auth": "sigv4", "aws_region": "eu-west-1", "aws_service": "s3",
                                "unsigned_payload": "true"}  # fmt: skip
    assert SECRET_KEY not in method.describe() and "eu-west-1" in method.describe()
    with pytest.raises(InvalidService, match="region"):
        build("sigv4", aws_region="Europe")


def test_the_session_token_is_sent_and_signed(fixed_time: None) -> None:
    request = s3_request([("X-Amz-Security-Token", "the-agent's-dummy")])
    SigV4Auth().apply(request, {**SECRETS, SESSION_TOKEN: Secret("FwoGZXIvYXdzEXAMPLETOKEN")})
    assert request.header("X-Amz-Security-Token") == "FwoGZXIvYXdzEXAMPLETOKEN"
    assert [v for k, v in request.headers if k.lower() == "x-amz-security-token"] == ["FwoGZXIvYXdzEXAMPLETOKEN"]
    assert "x-amz-security-token" in (request.header("Authorization") or "")
    assert time.time() > DATE
