"""Decompression bombs sent to call_service (issue 12 point 8, SECURITY-CASES principle 44).

About a kilobyte of brotli that decodes to a gigabyte used to raise the MCP server's memory by
two to three gigabytes per call: the embedded proxy decoded the whole body to scan it, and
httpx decoded it again in the gateway before the download bound applied. Each bomb runs in a
fresh process (:mod:`tests.bomb_worker`), which reports its peak RSS before and after.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trustme

from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.redaction.decoding import DEFAULT_MAX_DECODED, MAX_DECODED_ENV
from tests.bomb_worker import GATEWAY_DOWNLOAD
from tests.bombs import MIB, BombUpstream, bomb, bomb_service, run_worker

pytestmark = pytest.mark.e2e
BOMB_MIB = 1024  # what the issue sent: 1 GiB of zeros, about a kilobyte of brotli
# what a bomb may add to the peak: the proxy's bound, and as much again for the allocator and a copy
MEMORY_ALLOWED_MIB = 2 * DEFAULT_MAX_DECODED / MIB


@pytest.fixture
def api(vault: Vault, upstream_ca: trustme.CA) -> Iterator[BombUpstream]:
    with bomb_service(vault, upstream_ca) as server:
        yield server


def test_brotli_bomb_to_call_service_is_refused_without_blowing_memory(api: BombUpstream, vault: Vault) -> None:
    """The proxy decodes at most CLAVIS_MAX_DECODED_BYTES of a body it must scan whole, then
    refuses it with a reason the model can act on; nothing decodes the rest."""
    assert len(bomb("br", BOMB_MIB)) < 2048
    report = run_worker("call_service", api.url("/small"), api.url(f"/bomb/br/{BOMB_MIB}"))
    assert not report["warm"]["is_error"]
    outcome = report["bomb"]
    assert outcome["is_error"]
    assert "the br body decodes to more than 64 MiB" in outcome["text"] and MAX_DECODED_ENV in outcome["text"]
    assert report["peak_mib"] - report["baseline_mib"] < MEMORY_ALLOWED_MIB, report
    record = list(AuditLog.for_vault(vault).records())[-1]
    assert record["decision"] == "refused" and "decodes to more than 64 MiB" in record["reason"]


def test_brotli_bomb_past_the_proxy_is_truncated_by_the_gateway_without_blowing_memory(api: BombUpstream) -> None:
    """Behind the proxy's bound, the gateway reads the raw body and decodes it itself, stopping at
    its download bound: httpx would decode each chunk whole first. Driven without the proxy in
    front, as if the proxy's bound had been raised past what this answer decodes to."""
    report = run_worker("gateway", api.url("/small"), api.url(f"/bomb/br/{BOMB_MIB}"))
    outcome = report["bomb"]
    assert (outcome["status"], outcome["size"], outcome["complete"]) == (200, GATEWAY_DOWNLOAD, False)
    assert report["peak_mib"] - report["baseline_mib"] < 4 * GATEWAY_DOWNLOAD / MIB, report


def test_streamed_brotli_bomb_to_call_service_is_cut_without_blowing_memory(api: BombUpstream) -> None:
    """The same bomb as a server-sent-event stream, which the proxy streams: it stops at the read
    that breaks its bound and cuts the connection; the tool error says where to look."""
    report = run_worker("call_service", api.url("/small"), api.url(f"/stream/br/{BOMB_MIB}"))
    outcome = report["bomb"]
    assert outcome["is_error"] and "could not complete the call" in outcome["text"], outcome["text"]
    assert "withheld" in outcome["text"] and "audit id" in outcome["text"]
    assert report["peak_mib"] - report["baseline_mib"] < MEMORY_ALLOWED_MIB, report
