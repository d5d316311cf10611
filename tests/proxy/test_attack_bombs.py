"""Decompression bombs through the embedded proxy (issue 12 point 8, SECURITY-CASES principle 44).

The proxy decodes a body to scan it. It used to decode a buffered body whole (mitmproxy's
``get_content``) and each streamed chunk whole, however far it expanded. End-to-end bombs run in
a fresh process (:mod:`tests.bomb_worker`) that reports its peak RSS before and after; the
rules of the streamed body are shown on the addon itself with mitmproxy's test flows.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trustme
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from clavis_mcp.addons.flowmeta import DECISION, REASON, SERVICE
from clavis_mcp.addons.redact import RedactResponse
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from clavis_mcp.vault.errors import InvalidDecodeLimit
from clavis_mcp.vault.redaction.decoding import DEFAULT_MAX_DECODED, MAX_DECODED_ENV
from tests.bombs import MIB, BombUpstream, bomb, bomb_service, run_worker
from tests.conftest import SECRET, make_service

MEMORY_ALLOWED_MIB = 2 * DEFAULT_MAX_DECODED / MIB  # the bound, and as much again for the allocator and a copy


@pytest.fixture
def api(vault: Vault, upstream_ca: trustme.CA) -> Iterator[BombUpstream]:
    with bomb_service(vault, upstream_ca) as server:
        yield server


def last_record(vault: Vault) -> dict[str, object]:
    return list(AuditLog.for_vault(vault).records())[-1]


def test_gzip_bomb_through_the_proxy_is_refused_with_a_reason(api: BombUpstream, vault: Vault) -> None:
    """Half a megabyte of gzip (512 MiB decoded), with its length: a body the proxy buffers and
    scans whole. It decodes no more than its bound, then refuses with a reason the agent can read."""
    assert len(bomb("gzip", 512)) < 1024 * 1024  # under the streaming threshold: buffered
    report = run_worker("agent", api.url("/small"), api.url("/bomb/gzip/512"))
    assert report["warm"]["status"] == 200
    outcome = report["bomb"]
    assert outcome["status"] == 502
    assert outcome["refused"].startswith("the gzip body decodes to more than 64 MiB")
    assert MAX_DECODED_ENV in outcome["refused"]
    assert report["peak_mib"] - report["baseline_mib"] < MEMORY_ALLOWED_MIB, report
    record = last_record(vault)
    assert record["decision"] == "refused" and "decodes to more than 64 MiB" in str(record["reason"])


def test_streamed_bomb_is_decoded_with_a_bound(api: BombUpstream, vault: Vault) -> None:
    """A gigabyte of brotli as a stream of unknown length: the proxy streams it, decoding each
    read within the bound. The read that breaks it is not passed on and the connection is cut, so
    the agent sees a broken body, not a short one that looks whole."""
    report = run_worker("agent", api.url("/small"), api.url("/stream/br/1024"))
    outcome = report["bomb"]
    assert (outcome["status"], outcome["error"], outcome["encoding"]) == (200, "RemoteProtocolError", None)
    assert outcome["received"] <= DEFAULT_MAX_DECODED
    assert report["peak_mib"] - report["baseline_mib"] < MEMORY_ALLOWED_MIB, report
    assert "the br body decodes to more than 64 MiB; the rest was withheld" in str(last_record(vault)["reason"])


# -- the addon's rules, on test flows ----------------------------------------------------------


def streamed_flow(encoding: str) -> http.HTTPFlow:
    flow = tflow.tflow(resp=True)
    flow.metadata[SERVICE] = "api"
    assert flow.response is not None
    flow.response.headers.clear()
    flow.response.headers.update({"content-type": "text/event-stream", "content-encoding": encoding})
    return flow


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
@pytest.mark.anyio
async def test_streamed_read_past_the_bound_ends_the_body_and_cuts_the_flow(vault: Vault, encoding: str) -> None:
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    addon = RedactResponse(vault, max_decoded=MIB)
    with taddons.context(addon):
        flow = streamed_flow(encoding)
        addon.responseheaders(flow)
        assert flow.response is not None and callable(flow.response.stream)
        assert flow.response.stream(bomb(encoding, 8)) == []  # nothing of the read that broke the bound
        assert flow.response.stream(b"more of the upstream's body") == []  # read and dropped
        assert flow.response.stream(b"") == []
        await addon.response(flow)
    assert flow.error is not None and flow.error.msg == flow.error.KILLED_MESSAGE
    assert flow.metadata[REASON].startswith(f"the {encoding} body decodes to more than 1 MiB; the rest was withheld")
    assert flow.metadata[DECISION] == "error"  # audited as an error, not as a whole response


@pytest.mark.anyio
async def test_streamed_body_cut_short_is_not_passed_as_whole(vault: Vault) -> None:
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    addon = RedactResponse(vault, max_decoded=MIB)
    with taddons.context(addon):
        flow = streamed_flow("gzip")
        addon.responseheaders(flow)
        assert flow.response is not None and callable(flow.response.stream)
        assert flow.response.stream(bomb("gzip", 1)[:500]) != []  # what decoded so far goes on, scrubbed
        assert flow.response.stream(b"") == []  # the end came before the gzip trailer
        await addon.response(flow)
    assert flow.error is not None and "ends before its coding does" in flow.metadata[REASON]


@pytest.mark.anyio
async def test_the_bound_is_read_from_the_environment(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    monkeypatch.setenv(MAX_DECODED_ENV, str(2 * MIB))
    addon = RedactResponse(vault)
    with taddons.context(addon):
        flows = {size: tflow.tflow(resp=True) for size in (1, 3)}
        for size, flow in flows.items():
            flow.metadata[SERVICE] = "api"
            assert flow.response is not None
            flow.response.headers["content-encoding"] = "br"
            flow.response.raw_content = bomb("br", size)
            await addon.response(flow)
    assert flows[1].response is not None and flows[1].response.status_code == 200
    assert flows[3].response is not None and flows[3].response.status_code == 502
    assert "decodes to more than 2 MiB" in flows[3].metadata[REASON]
    monkeypatch.setenv(MAX_DECODED_ENV, "lots")
    with pytest.raises(InvalidDecodeLimit, match="not a positive number of bytes"):
        RedactResponse(vault)
