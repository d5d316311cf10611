"""AWS SigV4 end to end: boto3 as the agent, with dummy credentials, through the real proxy.

The upstream stands in for STS and S3 on their real names (routed to loopback) and checks each
signature the way AWS does, with botocore's own signer over the headers the request names as
signed, and the real key pair: a request the proxy did not sign right gets AWS's
``SignatureDoesNotMatch``, which boto3 raises.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import boto3
import pytest
import trustme
from botocore.auth import S3SigV4Auth
from botocore.auth import SigV4Auth as BotocoreSigV4
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from clavis_mcp.certs import LocalCA
from clavis_mcp.vault import AuditLog, Vault, parse_hosts, validate_secret
from clavis_mcp.vault.auth.sigv4 import ACCESS_KEY_ID, SESSION_TOKEN, SigV4Auth
from demo.echo_upstream import Received
from tests.conftest import make_service
from tests.proxy.auth_upstream import (
    Answer,
    AuthUpstream,
    auth_upstream,
    headers_of,
    proxy_url_with_credentials,
    routed_proxy,
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ACCESS_KEY = "AKIACLAVISREALKEY042"
SECRET_KEY = "cLaViS/real+secret+key+0123456789abcdefGH"
TOKEN = "IQoJb3JpZ2luX2VjEClavisSessionToken0123456789abcdefghij"
DUMMY_KEY, DUMMY_SECRET, DUMMY_TOKEN = "AKIADUMMYDUMMYDUMMY0", "dummy-secret-key", "dummy-session-token"
STS, S3, BUCKET_HOST = "sts.amazonaws.com", "s3.eu-west-1.amazonaws.com", "clavis-test.s3.eu-west-1.amazonaws.com"
DYNAMODB = "dynamodb.eu-west-1.amazonaws.com"
NAMES = (STS, S3, BUCKET_HOST, DYNAMODB)
AUTHZ = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})"
)
STS_IDENTITY = b"""<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/clavis</Arn><UserId>AIDACLAVIS</UserId>
<Account>123456789012</Account></GetCallerIdentityResult>
<ResponseMetadata><RequestId>0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"""


def signature_problem(received: Received) -> str | None:
    """What AWS would say is wrong with the request's signature, or None if it verifies."""
    headers = headers_of(received)
    match = AUTHZ.fullmatch(headers.get("authorization", ""))
    if match is None:
        return "no SigV4 Authorization header"
    key_id, date, region, service, signed, signature = match.groups()
    if key_id != ACCESS_KEY:
        return f"unknown access key {key_id}"
    if headers.get("x-amz-security-token") != TOKEN:
        return "the security token is not the session's"
    timestamp = headers.get("x-amz-date", "")
    if not timestamp.startswith(date) or abs(time.mktime(time.strptime(timestamp, "%Y%m%dT%H%M%SZ")) - time.mktime(
        time.gmtime()
    )) > 300:  # fmt: skip
        return "the request time is too skewed"
    request = AWSRequest(method=received.method, url=f"https://{headers['host']}{received.path}", data=received.body)
    for name, value in received.headers:
        if name.lower() in signed.split(";"):
            request.headers[name] = value
    request.context["timestamp"] = timestamp
    signer = (S3SigV4Auth if service == "s3" else BotocoreSigV4)(Credentials(ACCESS_KEY, SECRET_KEY, TOKEN),
                                                                 service, region)  # fmt: skip
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return None if expected == signature else "SignatureDoesNotMatch"


def aws(received: Received) -> Answer:
    """STS and S3 as far as the tests need them, behind the signature check."""
    host = headers_of(received)["host"]
    problem = signature_problem(received)
    if problem is not None:
        error = f"<Error><Code>SignatureDoesNotMatch</Code><Message>{problem}</Message></Error>"
        body = f"<ErrorResponse>{error}<RequestId>1</RequestId></ErrorResponse>" if host == STS else error
        return 403, [("Content-Type", "text/xml")], body.encode()
    if host == STS:
        return 200, [("Content-Type", "text/xml")], STS_IDENTITY
    if host == DYNAMODB:
        return 200, [("Content-Type", "application/x-amz-json-1.0")], b'{"TableNames": ["clavis"]}'
    if received.method == "GET" and "list-type=2" in received.path:
        listing = "<ListBucketResult><Name>clavis-test</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated>"
        return 200, [("Content-Type", "application/xml")], (listing + "</ListBucketResult>").encode()
    if received.method == "PUT":
        return 200, [("ETag", '"0123456789abcdef0123456789abcdef"')], b""
    # GET: an object whose content happens to hold the secret key and token, as a careless API echoes them
    return 200, [("Content-Type", "text/plain")], f"key={SECRET_KEY} token={TOKEN}".encode()


@pytest.fixture
def upstream(upstream_ca: trustme.CA) -> Iterator[AuthUpstream]:
    with auth_upstream(upstream_ca, NAMES, aws) as server:
        yield server


@pytest.fixture
def aws_vault(vault: Vault) -> Vault:
    service = replace(make_service("aws", *NAMES), auth=SigV4Auth())
    vault.add_service(service, validate_secret(SECRET_KEY))
    vault.set_secret("aws", ACCESS_KEY_ID, validate_secret(ACCESS_KEY))
    vault.set_secret("aws", SESSION_TOKEN, validate_secret(TOKEN))
    return vault


@pytest.fixture(autouse=True)
def no_aws_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in (
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_CA_BUNDLE",
    ):  # botocore prefers AWS_CA_BUNDLE (set on this machine) to REQUESTS_CA_BUNDLE
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def client(service: str, proxy_url: str, home: Path, **kwargs: Any) -> Any:
    """A boto3 client that holds only dummy credentials, sending through the proxy."""
    session = boto3.session.Session(aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_SECRET,
                                    aws_session_token=DUMMY_TOKEN)  # fmt: skip
    config = Config(proxies={"https": proxy_url}, retries={"max_attempts": 1, "mode": "standard"},
                    connect_timeout=10, read_timeout=20, **kwargs.pop("config", {}))  # fmt: skip
    return session.client(service, config=config, verify=str(LocalCA(home / "certs").cert_path), **kwargs)


async def test_boto3_with_dummy_credentials_calls_sts_signed_by_the_proxy(
    aws_vault: Vault, audit: AuditLog, home: Path, upstream: AuthUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As an agent started with `clavis-mcp env`: HTTPS_PROXY and the CA bundle from the environment."""
    async with routed_proxy(aws_vault, audit, home, NAMES, upstream.port) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy_url_with_credentials(proxy))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(LocalCA(home / "certs").cert_path))
        session = boto3.session.Session(aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_SECRET,
                                        aws_session_token=DUMMY_TOKEN)  # fmt: skip
        sts = session.client("sts", region_name="us-east-1", endpoint_url=f"https://{STS}",
                             config=Config(retries={"max_attempts": 1, "mode": "standard"}))  # fmt: skip
        identity = await anyio.to_thread.run_sync(sts.get_caller_identity)
    assert identity["Account"] == "123456789012"
    [received] = upstream.received
    assert signature_problem(received) is None
    blob = repr(received)
    assert DUMMY_KEY not in blob and DUMMY_SECRET not in blob and DUMMY_TOKEN not in blob
    assert SECRET_KEY not in blob  # the secret key signs; it never travels
    assert [k for k, _ in received.headers if k.lower() == "authorization"] == ["Authorization"]


BODY = b"hello " * 1000
UPLOADS = {
    "streamed-with-trailer": ({}, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),  # botocore's default for PutObject
    "body-hash": (
        {"request_checksum_calculation": "when_required", "s3": {"payload_signing_enabled": True}},
        hashlib.sha256(BODY).hexdigest(),
    ),
}


@pytest.mark.parametrize("upload", UPLOADS)
async def test_boto3_puts_and_gets_an_s3_object_and_the_echoed_secrets_come_back_redacted(
    upload: str, aws_vault: Vault, audit: AuditLog, home: Path, upstream: AuthUpstream
) -> None:
    config, payload = UPLOADS[upload]
    async with routed_proxy(aws_vault, audit, home, NAMES, upstream.port) as proxy:
        s3 = client("s3", proxy_url_with_credentials(proxy), home, region_name="eu-west-1", config=config)
        key = "a b/ü.txt"
        put = await anyio.to_thread.run_sync(
            lambda: s3.put_object(Bucket="clavis-test", Key=key, Body=BODY, Metadata={"colour": "blue"})
        )
        got = await anyio.to_thread.run_sync(lambda: s3.get_object(Bucket="clavis-test", Key=key))
        content = got["Body"].read()
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert SECRET_KEY.encode() not in content and TOKEN.encode() not in content
    assert b"[REDACTED:aws]" in content
    put_seen, get_seen = upstream.received
    assert headers_of(put_seen)["host"] == BUCKET_HOST and headers_of(put_seen)["x-amz-meta-colour"] == "blue"
    assert headers_of(put_seen)["x-amz-content-sha256"] == payload
    assert signature_problem(put_seen) is None and signature_problem(get_seen) is None


async def test_a_signature_made_with_the_wrong_key_is_refused_by_the_verifying_upstream(
    vault: Vault, audit: AuditLog, home: Path, upstream: AuthUpstream
) -> None:
    """The check above is not a formality: the same request signed with another secret key fails."""
    service = replace(make_service("aws", *NAMES), auth=SigV4Auth())
    vault.add_service(service, validate_secret("not-the-real-secret-key-0123456789"))
    vault.set_secret("aws", ACCESS_KEY_ID, validate_secret(ACCESS_KEY))
    vault.set_secret("aws", SESSION_TOKEN, validate_secret(TOKEN))
    async with routed_proxy(vault, audit, home, NAMES, upstream.port) as proxy:
        sts = client("sts", proxy_url_with_credentials(proxy), home, region_name="us-east-1",
                     endpoint_url=f"https://{STS}")  # fmt: skip
        with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
            await anyio.to_thread.run_sync(sts.get_caller_identity)


async def test_a_query_with_reserved_characters_and_a_json_protocol_call_verify(
    aws_vault: Vault, audit: AuditLog, home: Path, upstream: AuthUpstream
) -> None:
    """S3 ListObjectsV2 with a prefix that needs encoding (space, +, /, non-ASCII, =), and DynamoDB,
    whose operation travels in the signed X-Amz-Target header."""
    async with routed_proxy(aws_vault, audit, home, NAMES, upstream.port) as proxy:
        s3 = client("s3", proxy_url_with_credentials(proxy), home, region_name="eu-west-1")
        listing = await anyio.to_thread.run_sync(
            lambda: s3.list_objects_v2(Bucket="clavis-test", Prefix="a b+c/\u00fc=&x", Delimiter="/")
        )
        dynamodb = client("dynamodb", proxy_url_with_credentials(proxy), home, region_name="eu-west-1")
        tables = await anyio.to_thread.run_sync(dynamodb.list_tables)
    assert listing["KeyCount"] == 0 and tables["TableNames"] == ["clavis"]
    listed, called = upstream.received
    assert "prefix=a%20b%2Bc%2F%C3%BC%3D%26x" in listed.path
    assert headers_of(called)["x-amz-target"] == "DynamoDB_20120810.ListTables"
    assert "x-amz-target" in headers_of(called)["authorization"]
    assert signature_problem(listed) is None and signature_problem(called) is None


def test_the_hosts_of_the_test_are_valid_host_rules() -> None:
    assert len(parse_hosts(list(NAMES))) == len(NAMES)
