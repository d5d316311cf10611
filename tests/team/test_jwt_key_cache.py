"""JWT public keys, with a real OpenBao (review finding L2): a token naming a key version nobody has
seen makes a replica look the keys up only if that version is newer than every known one, at most
once an interval, and never holds a request (the event loop) for long while it does."""

from __future__ import annotations

import base64
import json
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

pytestmark = pytest.mark.e2e

INTERVAL = 1.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Deployment:
    def __init__(self, team: Bootstrap, openbao: OpenBao) -> None:
        prefix = team.env["CLAVIS_TEAM_BAO_PREFIX"]
        self.root = Bao(openbao.addr, openbao.root_token)
        self.transit, self.issuer = f"{prefix}-transit", f"clavis-team:{prefix}"

    def token(self, kid: str) -> str:
        """A token signed by the key's latest version, whatever version its header names."""
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": "a@example.test", "role": "admin", "iat": now, "exp": now + 600}
        signing_input = f"{b64(json.dumps({'alg': 'EdDSA', 'kid': kid}).encode())}.{b64(json.dumps(claims).encode())}"
        _, signature = self.root.sign(self.transit, "jwt", signing_input.encode())
        return f"{signing_input}.{b64(signature)}"

    def rotate(self) -> str:
        """Rotate the signing key in OpenBao; the kid of the new version."""
        self.root.request("POST", f"{self.transit}/keys/jwt/rotate", {})
        return f"jwt:v{max(self.root.public_keys(self.transit, 'jwt'))}"


@pytest.fixture
def deployment(team: Bootstrap, openbao: OpenBao) -> Iterator[Deployment]:
    found = Deployment(team, openbao)
    yield found
    found.root.close()


def test_a_new_key_version_is_looked_up_at_most_once_an_interval_and_an_older_one_never(
    deployment: Deployment,
) -> None:
    tokens = Tokens(deployment.root, deployment.transit, deployment.issuer, refetch_every=INTERVAL)
    assert tokens.claims(deployment.token("jwt:v1")) is not None  # the first look-up
    assert tokens.claims(deployment.token("jwt:v77")) is None  # made up, and within the interval: no look-up
    by_v2 = deployment.token(deployment.rotate())
    assert tokens.claims(by_v2) is None  # still within it: v2 is not known yet
    time.sleep(INTERVAL + 0.1)
    assert tokens.claims(deployment.token("jwt:v0")) is None  # below the newest known: not looked up ...
    v3 = deployment.rotate()
    assert tokens.claims(deployment.token(v3)) is not None  # ... so the interval was left for this one
    assert tokens.claims(by_v2) is not None  # learnt with it


@pytest.fixture
def silent_openbao() -> Iterator[str]:
    """An address that accepts connections and never answers, as a stuck OpenBao would."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for conn in held:
        conn.close()


def test_a_stuck_openbao_holds_a_request_for_at_most_the_fetch_wait(
    deployment: Deployment, silent_openbao: str
) -> None:
    stuck = Bao(silent_openbao, "no-token")
    tokens = Tokens(stuck, deployment.transit, deployment.issuer)
    started = time.monotonic()
    assert tokens.claims(deployment.token("jwt:v1")) is None
    assert time.monotonic() - started < identity.KEY_FETCH_WAIT + 1.0 < TIMEOUT
    stuck.close()
