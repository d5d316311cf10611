"""JWT public keys while OpenBao is slow (re-review finding N5): the look-up on the event loop never
waits for the lock a fetch in flight would hold, so each request waits at most KEY_FETCH_WAIT.

OpenBao is the real one, slowed by a loopback TCP relay that holds each of its answers back."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from clavis_mcp.team import identity
from clavis_mcp.team.bao import TIMEOUT, Bao
from clavis_mcp.team.bootstrap import Bootstrap
from clavis_mcp.team.engines import OpenBao
from clavis_mcp.team.identity import Tokens

from .test_jwt_key_cache import Deployment

pytestmark = pytest.mark.e2e

DELAY = 4.0  # more than twice KEY_FETCH_WAIT, less than the client's TIMEOUT


def _pipe(source: socket.socket, sink: socket.socket, delay: float) -> None:
    try:
        while chunk := source.recv(65536):
            time.sleep(delay)
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        sink.close()


@pytest.fixture
def slow_openbao(openbao: OpenBao) -> Iterator[str]:
    """The address of a relay to the real OpenBao that sends each of its answers DELAY seconds late."""
    listener = socket.create_server(("127.0.0.1", 0))
    target = openbao.addr.removeprefix("http://").rstrip("/").rsplit(":", 1)

    def accept() -> None:
        while True:
            try:
                client = listener.accept()[0]
            except OSError:
                return
            upstream = socket.create_connection((target[0], int(target[1])))
            threading.Thread(target=_pipe, args=(client, upstream, 0.0), daemon=True).start()
            threading.Thread(target=_pipe, args=(upstream, client, DELAY), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_a_look_up_after_a_slow_fetch_began_waits_no_longer_than_the_fetch_wait(
    team: Bootstrap, openbao: OpenBao, slow_openbao: str
) -> None:
    """n4: the second look-up used to wait for the first fetch's lock, then for a fetch of its own."""
    assert DELAY < TIMEOUT
    deployment = Deployment(team, openbao)
    slow = Bao(slow_openbao, openbao.root_token)
    tokens = Tokens(slow, deployment.transit, deployment.issuer, refetch_every=0.0)
    token = deployment.token("jwt:v1")
    began = time.monotonic()
    waits = []
    for _ in range(2):
        started = time.monotonic()
        assert tokens.claims(token) is None  # the fetch is still on its way
        waits.append(time.monotonic() - started)
    assert max(waits) < identity.KEY_FETCH_WAIT + 0.5, waits
    time.sleep(max(DELAY + 1.0 - (time.monotonic() - began), 0))
    started = time.monotonic()
    assert tokens.claims(token) is not None  # the keys were kept when they came
    assert time.monotonic() - started < 0.5
    slow.close()
    deployment.root.close()
