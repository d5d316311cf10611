"""The parts of a response mitmproxy relays past every hook are brought back in reach."""

from __future__ import annotations

import h11
import pytest
import wsproto
import wsproto.events
from h11._receivebuffer import ReceiveBuffer
from mitmproxy.proxy.layers import websocket
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.test import tflow

from clavis_mcp.addons import engine_gaps


@pytest.fixture(autouse=True)
def installed() -> None:
    engine_gaps.install()


def _read(reader: _http1.TBodyReader, raw: bytes) -> list[h11.Data | h11.EndOfMessage]:
    buf = ReceiveBuffer()
    buf += raw
    events = []
    while (event := reader(buf)) is not None:
        events.append(event)
        if isinstance(event, h11.EndOfMessage):
            break
    return events


def test_a_chunked_body_with_trailers_ends_without_them() -> None:
    events = _read(_http1.make_body_reader(None), b"5\r\nhello\r\n0\r\nX-Echo: sk-secret\r\nX-Count: 2\r\n\r\n")
    assert [bytes(e.data) for e in events if isinstance(e, h11.Data)] == [b"hello"]
    assert isinstance(events[-1], h11.EndOfMessage) and list(events[-1].headers) == []


def test_other_bodies_are_read_by_the_engines_own_readers() -> None:
    assert _read(_http1.make_body_reader(5), b"hello")[0].data == b"hello"
    assert type(_http1.make_body_reader(-1)).__name__ == "Http10Reader"


def _engine_side_with(frames: list[wsproto.events.Event]) -> websocket.WebsocketConnection:
    """The engine's connection to an upstream that sent ``frames``."""
    engine_side = websocket.WebsocketConnection(wsproto.ConnectionType.CLIENT, conn=tflow.tserver_conn())
    upstream = wsproto.Connection(wsproto.ConnectionType.SERVER)
    for frame in frames:
        engine_side.receive_data(upstream.send(frame))
    return engine_side


def test_control_frames_pass_the_scrubber_registered_for_their_connection() -> None:
    engine_side = _engine_side_with(
        [wsproto.events.Ping(b"ping"), wsproto.events.TextMessage("message"), wsproto.events.CloseConnection(1000, "x")]
    )
    seen: list[wsproto.events.Event] = []

    def scrub(event: wsproto.events.Event) -> wsproto.events.Event:
        seen.append(event)
        return wsproto.events.Ping(b"scrubbed") if isinstance(event, wsproto.events.Ping) else event

    engine_gaps.scrub_control_frames(engine_side.conn, scrub)
    events = list(engine_side.events())
    assert events[0] == wsproto.events.Ping(b"scrubbed")
    assert isinstance(events[1], wsproto.events.TextMessage)  # messages go through the websocket_message hook
    assert seen == [wsproto.events.Ping(b"ping"), wsproto.events.CloseConnection(1000, "x")]


def test_a_connection_without_a_scrubber_is_left_alone() -> None:
    engine_side = _engine_side_with([wsproto.events.Ping(b"ping")])
    assert list(engine_side.events()) == [wsproto.events.Ping(b"ping")]


@pytest.mark.parametrize(
    ("upgrade", "version", "websocket_upgrade"),
    [("websocket", "13", True), ("WebSocket", "13", True), ("tcp", "13", False), ("h2c", "", False),
     ("websocket", "", False)],
    ids=["websocket", "websocket-any-case", "tcp", "h2c", "websocket-without-version"],
)  # fmt: skip
def test_which_switches_are_websocket_upgrades(upgrade: str, version: str, websocket_upgrade: bool) -> None:
    flow = tflow.tflow(resp=True)
    assert flow.response is not None
    flow.response.status_code = 101
    flow.response.headers["upgrade"] = upgrade
    if version:
        flow.request.headers["sec-websocket-version"] = version
    assert engine_gaps.is_websocket_upgrade(flow.request, flow.response) is websocket_upgrade


def test_install_is_idempotent_and_refuses_a_mitmproxy_that_moved_its_internals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine_gaps.install()  # a second time: still the engine's readers underneath, not ours twice
    assert _read(_http1.make_body_reader(2), b"ok")[0].data == b"ok"
    assert websocket.WebsocketConnection.__name__ == "_ScrubbedWebsocketConnection"
    monkeypatch.delattr(_http1, "make_body_reader")
    with pytest.raises(RuntimeError, match="moved the layer internals"):
        engine_gaps.install()


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("unexpected server response: b'HTTP/1.1 200 OK\\r\\nX-Echo: sk-x'",
         "unexpected server response: [bytes withheld]"),
        ("Cannot parse HTTP response: Bad HTTP response line: b\"HTTP/1.1 2x0 sk-x\"",
         "Cannot parse HTTP response: Bad HTTP response line: [bytes withheld]"),
        ("Received invalid content-length header: 'sk-x' from server",
         "Received invalid content-length header: [bytes withheld]"),
        ("Response body exceeds mitmproxy's body_size_limit.", "Response body exceeds mitmproxy's body_size_limit."),
        ("server closed connection", "server closed connection"),
    ],
    ids=["bytes-repr", "bytes-repr-double-quoted", "str-repr", "an-apostrophe-is-no-quote", "nothing-quoted"],
)  # fmt: skip
def test_the_engines_error_texts_withhold_what_they_quote(message: str, shown: str) -> None:
    assert engine_gaps.without_quoted_bytes(message) == shown
    assert b"sk-x" not in _http1.format_error(502, message)
