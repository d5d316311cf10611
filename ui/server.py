"""Serving the page: a socket on 127.0.0.1 only, a fresh token per run, uvicorn without access logs.

The token reaches the browser in a URL's fragment, which no request carries; the access log stays
off all the same (a page's query holds what the user filters on).
"""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from .app import build_app
from .approvals import ApprovalDesk
from .guard import LaunchCodes
from .source import AuditSource

HOST = "127.0.0.1"


def bind(port: int) -> socket.socket:
    """A listening socket on the loopback; port 0 picks a free one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {HOST}:{port} ({exc.strerror}): choose another --port, or 0") from None
    sock.listen(64)
    return sock


@dataclass(frozen=True, slots=True)
class Page:
    port: int
    token: str
    codes: LaunchCodes

    @property
    def url(self) -> str:
        """What the user opens (again, for a new tab): the token in the fragment, never sent to the server."""
        return f"http://{HOST}:{self.port}/#token={self.token}"

    def launch_url(self) -> str:
        """What a browser's command line gets: a code good once, for a minute, instead of the token."""
        return f"http://{HOST}:{self.port}/#code={self.codes.issue()}"

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"


def server_for(page: Page, source: AuditSource, desk: ApprovalDesk | None = None) -> uvicorn.Server:
    config = uvicorn.Config(
        build_app(source, page.token, page.codes, desk),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        server_header=False,
    )
    return uvicorn.Server(config)


def new_token() -> str:
    return secrets.token_urlsafe(32)


@contextmanager
def running(source: AuditSource, port: int = 0) -> Iterator[Page]:
    """The page served from a thread until the block ends (tests, and anything embedding it)."""
    sock = bind(port)
    page = Page(sock.getsockname()[1], new_token(), LaunchCodes())
    desk = ApprovalDesk(source.home, source.vault, source.vault_lock)
    server = server_for(page, source, desk)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started and thread.is_alive():
            threading.Event().wait(0.02)
        yield page
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        desk.close()
