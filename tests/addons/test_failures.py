from __future__ import annotations

import pytest

from clavis_mcp.addons.failures import CAUSES, classify
from clavis_mcp.mcp_front.failures import FIXES, cause_of

MESSAGES = [
    ("untrusted-certificate", "Certificate verify failed: unable to get local issuer certificate", "error", "tls"),
    ("tls-handshake", "TLS handshake failed: sslv3 alert handshake failure", "error", "tls"),
    (
        "dial-guard-dns",
        "Connection killed: clavis-mcp refused to dial a.example: it does not resolve (OSError)",
        "error",
        "dns",
    ),  # fmt: skip
    ("dial-guard-no-address", "clavis-mcp refused to dial a.example: it resolves to no address", "error", "dns"),
    ("engine-dns", "[Errno -2] Name or service not known", "error", "dns"),
    ("closed-port", "[Errno 111] Connect call failed ([bytes withheld]", "error", "connect"),
    ("unreachable", "[Errno 101] Network is unreachable", "error", "connect"),
    ("connect-timeout", "connection timed out", "error", "upstream timeout"),
    ("client-gone", "Client disconnected.", "error", "client gave up"),
    ("client-closed", "connection closed", "error", "client gave up"),
    ("upstream-closed", "server closed connection", "error", "reset"),
    (
        "cut-body",
        "HTTP/1 protocol error: peer closed connection without sending complete message body",
        "error",
        "reset",
    ),  # fmt: skip
    ("bad-status-line", "Cannot parse HTTP response: [bytes withheld]", "error", "bad response"),
    ("body-size-limit", "Response body exceeds mitmproxy's body_size_limit.", "error", "too large"),
    ("anything-else", "something new", "error", "upstream error"),
    (
        "private-address",
        "clavis-mcp refused to dial a.example: it resolves to the private or loopback address 10.0.0.1",
        "refused",
        "policy",
    ),  # fmt: skip
    ("own-port", "clavis-mcp refused to dial 127.0.0.1:8899: it is clavis-mcp's own proxy port", "refused", "policy"),
]


@pytest.mark.parametrize(("message", "decision", "cause"), [r[1:] for r in MESSAGES], ids=[r[0] for r in MESSAGES])
def test_each_engine_message_is_sorted_into_one_cause(message: str, decision: str, cause: str) -> None:
    failure = classify(message, "injected")
    assert (failure.decision, failure.cause) == (decision, cause)
    if decision == "error":
        assert failure.reason.startswith(f"{cause}: ") and cause_of(failure.reason) == cause


def test_a_failure_never_keeps_the_injected_decision() -> None:
    assert classify("server closed connection", "injected").decision == "error"


def test_every_cause_has_a_fix_the_model_can_act_on() -> None:
    assert set(CAUSES) == set(FIXES)
    assert "CLAVIS_UPSTREAM_CA" in FIXES["tls"]
