"""A body decoded differently by the proxy and by its reader (principle 39, with issue 12.8).

mitmproxy's own gzip decoding stops at the end of the first member; readers such as urllib3,
curl and browsers go on through every member. A reflection in a second member was therefore
never scanned, and the body went out as it came. The proxy now decodes what its readers decode
(mitmproxy did read every zstd frame: that row keeps it so).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable

import pytest
import zstandard
from mitmproxy.test import taddons, tflow

from clavis_mcp.addons.flowmeta import REDACTIONS, SERVICE
from clavis_mcp.addons.redact import RedactResponse
from clavis_mcp.vault import Vault, validate_secret
from clavis_mcp.vault.redaction.decoding import decode_body
from tests.conftest import SECRET, make_service


def echo(secret: str) -> bytes:
    return f'{{"k": "{secret}"}}'.encode()


def gzip_members(secret: str) -> bytes:
    return gzip.compress(b'{"ok": true}') + gzip.compress(echo(secret))


def zstd_frames(secret: str) -> bytes:
    return b"".join(zstandard.ZstdCompressor().compress(part) for part in (b"{}", echo(secret)))


SPLIT_BODIES = [("gzip-second-member", "gzip", gzip_members), ("zstd-second-frame", "zstd", zstd_frames)]


@pytest.mark.parametrize(("encoding", "build"), [r[1:] for r in SPLIT_BODIES], ids=[r[0] for r in SPLIT_BODIES])
@pytest.mark.anyio
async def test_secret_in_a_later_member_of_the_body_is_scrubbed(
    vault: Vault, encoding: str, build: Callable[[str], bytes]
) -> None:
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    addon = RedactResponse(vault)
    with taddons.context(addon):
        flow = tflow.tflow(resp=True)
        flow.metadata[SERVICE] = "api"
        assert flow.response is not None
        flow.response.headers["content-encoding"] = encoding
        flow.response.raw_content = build(SECRET)
        await addon.response(flow)
    assert flow.metadata[REDACTIONS] == 1
    sent = decode_body(flow.response.headers.get("content-encoding", ""), flow.response.raw_content or b"", 1 << 20)
    assert SECRET.encode() not in sent and b"[REDACTED:api]" in sent
