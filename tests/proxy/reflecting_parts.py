"""A hostile loopback HTTPS upstream that reflects the credential in the parts of a response a
body-and-header-value scrubber does not look at: the reason phrase, a header name, trailers, a
transfer coding, WebSocket control frames, a secret split across WebSocket messages, and raw
bytes after a ``101`` to a protocol that is not WebSocket.

It writes raw bytes, so each part is exactly what the test names (a real HTTP server library
would not send most of these). One request per connection; what it received is recorded.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import trustme
import wsproto
import wsproto.events
import wsproto.frame_protocol

from demo.echo_upstream import Received

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B65"
Head = tuple[str, str, list[tuple[str, str]]]  # method, path, headers


def credential(headers: list[tuple[str, str]]) -> str:
    for name, value in headers:
        if name.lower() in ("authorization", "x-api-key"):
            return value.removeprefix("Bearer ")
    return "none"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def reason_phrase(secret: str) -> bytes:
    return f"HTTP/1.1 401 Invalid API key {secret}\r\nContent-Length: 2\r\n\r\nno".encode()


def header_name(secret: str) -> bytes:
    """The secret as it is, and lower-cased as an HTTP/2 hop would send it, each in a header name;
    and its base32 and hex lower-cased, which still decode to it."""
    b32, hexed = base64.b32encode(secret.encode()).decode().lower().rstrip("="), secret.encode().hex()
    return (
        f"HTTP/1.1 200 OK\r\nX-Key-{secret}: 1\r\nx-lower-{secret.lower()}: 2\r\nx-b32-{b32}: 4\r\n"
        f"x-hex-{hexed}: 5\r\nX-Kept: 3\r\nContent-Length: 2\r\n\r\nok"
    ).encode()


def transfer_coded(secret: str) -> bytes:
    """``Transfer-Encoding: gzip, chunked``: the body is gzip on the wire with no Content-Encoding."""
    payload = gzip.compress(json.dumps({"echo": secret}).encode())
    cut = len(payload) // 2
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    return head + chunk(payload[:cut]) + chunk(payload[cut:]) + b"0\r\n\r\n"


def trailers(secret: str) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-Echo\r\n\r\n"
    return head + chunk(b"hello ") + chunk(b"world") + f"0\r\nX-Echo: {secret}\r\nX-Count: 2\r\n\r\n".encode()


def upgrade(protocol: str, secret: str) -> bytes:
    """A ``101`` to ``protocol``, then the secret as raw bytes of the new protocol."""
    return f"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n{secret}".encode()


def cut_head(secret: str) -> bytes:
    """A response head cut short (the connection closes after it): the engine's error names the bytes."""
    return f"HTTP/1.1 200 OK\r\nX-Echo: {secret}\r\n".encode()


def bad_status_line(secret: str) -> bytes:
    return f"HTTP/1.1 2x0 {secret}\r\nContent-Length: 0\r\n\r\n".encode()


def body_after_the_end(secret: str) -> bytes:
    """A complete response, then bytes no request asked for: the engine logs what it did not expect."""
    return f'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok{{"echo": "{secret}"}}'.encode()


CLOSING_ROUTES = {"/cut-head": cut_head, "/bad-status": bad_status_line}
RAW_ROUTES: dict[str, Callable[[str], bytes]] = {
    **CLOSING_ROUTES,
    "/after-the-end": body_after_the_end,
    "/reason": reason_phrase,
    "/header-name": header_name,
    "/te-gzip": transfer_coded,
    "/trailers": trailers,
    "/upgrade/tcp": lambda secret: upgrade("tcp", secret),
    "/upgrade/h2c": lambda secret: upgrade("h2c", secret),
}


def websocket_session(conn: ssl.SSLSocket, headers: list[tuple[str, str]], secret: str) -> None:
    """Accept the handshake; send the secret split across two text messages, in a ping and in a
    close reason; wait for the client's pong before closing, so every frame reaches the client."""
    key = next(value for name, value in headers if name.lower() == "sec-websocket-key")
    accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
    conn.sendall(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
    )
    ws = wsproto.Connection(wsproto.ConnectionType.SERVER)
    half = len(secret) // 2
    conn.sendall(ws.send(wsproto.events.TextMessage(f"token part one {secret[:half]}")))
    conn.sendall(ws.send(wsproto.events.TextMessage(f"{secret[half:]} and the rest")))
    conn.sendall(ws.send(wsproto.events.Ping(secret.encode())))
    while not any(isinstance(event, wsproto.events.Pong) for event in _events(conn, ws)):
        pass
    conn.sendall(ws.send(wsproto.events.CloseConnection(code=4001, reason=f"bad key {secret}")))
    for _ in _events(conn, ws):  # until the client's close, or the end of the connection
        pass


def _events(conn: ssl.SSLSocket, ws: wsproto.Connection) -> Iterator[wsproto.events.Event]:
    data = conn.recv(65536)
    ws.receive_data(data or None)
    yield from ws.events()
    if not data:
        raise EOFError


def _read_head(conn: ssl.SSLSocket) -> Head | None:
    raw = b""
    while b"\r\n\r\n" not in raw:
        data = conn.recv(65536)
        if not data:
            return None
        raw += data
    lines = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    fields = [line.split(":", 1) for line in lines[1:]]
    return method, path, [(name.strip(), value.strip()) for name, value in fields]


def _serve(conn: ssl.SSLSocket, received: list[Received]) -> None:
    with conn:
        head = _read_head(conn)
        if head is None:
            return
        method, path, headers = head
        received.append(Received(method, path, headers, b""))
        secret = credential(headers)
        if path == "/ws":
            try:
                websocket_session(conn, headers, secret)
            except (EOFError, OSError, wsproto.utilities.LocalProtocolError):
                pass
            return
        conn.sendall(RAW_ROUTES[path](secret))
        if path in CLOSING_ROUTES:
            return
        try:
            conn.recv(65536)  # hold the connection until the peer has read and closed it
        except OSError:
            pass


@contextmanager
def parts_upstream(leaf: trustme.LeafCert) -> Iterator[tuple[int, list[Received]]]:
    """Serve the routes above with ``leaf``'s certificate; yield the port and what was received."""
    received: list[Received] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw.settimeout(10)
            try:
                conn = context.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError):
                raw.close()
                continue
            threading.Thread(target=_serve, args=(conn, received), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        stop.set()
        thread.join()
        listener.close()
