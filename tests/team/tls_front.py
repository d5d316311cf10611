"""A TLS front on 127.0.0.1 for the team server, as a deployment puts one (a load balancer, a
reverse proxy): it terminates TLS with a trustme certificate and relays bytes to the server's
plain HTTP port. Its backend can be changed (the server stopped, another started) while its own
address stays the same, which is what a client sees of a server going down and coming back."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import trustme


class TlsFront:
    def __init__(self, ca: trustme.CA, backend: int) -> None:
        self.backend = backend
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(self._context)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stopped:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            client = self._context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.backend), timeout=5)
        except OSError:
            client.close()  # the server is down: the client sees the connection closed
            return
        upstream.settimeout(None)
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        _pump(client, upstream)

    def stop(self) -> None:
        self._stopped = True
        with suppress(OSError):
            self._listener.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with suppress(OSError):
                sock.close()


@contextmanager
def tls_front(ca: trustme.CA, backend: int) -> Iterator[TlsFront]:
    front = TlsFront(ca, backend)
    try:
        yield front
    finally:
        front.stop()
