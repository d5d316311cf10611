"""Login limits against a real team server (OpenBao, PostgreSQL, uvicorn workers): a concurrent
burst checks no more passwords than the limit, the limit is per account and client address, a
stranger's burst does not lock the real user out, and X-Forwarded-For is not believed.

Other client addresses are other loopback addresses (127.0.0.2, ...), bound as the source."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from clavis_mcp.team.bootstrap import Bootstrap
from clavis_mcp.team.identity import MAX_FAILURES, MAX_NETWORK_FAILURES

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, TeamServer, assert_nothing_leaked, start_server, stop_server

pytestmark = pytest.mark.e2e

USER, STRANGER, OTHER = "127.0.0.1", "127.0.0.2", "127.0.0.3"
BURST = 200


def login(server: TeamServer, source: str, password: str, email: str = ADMIN_EMAIL, **headers: str) -> int:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=server.url, transport=transport, timeout=120, trust_env=False) as client:
        answer = client.post("/v1/auth/login", json={"email": email, "password": password}, headers=headers)
    if answer.status_code == 429:
        assert answer.headers["Retry-After"].isdigit() and answer.json()["detail"]
    return answer.status_code


async def burst(server: TeamServer, source: str) -> list[int]:
    transport = httpx.AsyncHTTPTransport(local_address=source, limits=httpx.Limits(max_connections=BURST))
    async with httpx.AsyncClient(base_url=server.url, transport=transport, timeout=600, trust_env=False) as client:
        answers = await asyncio.gather(
            *(
                client.post("/v1/auth/login", json={"email": ADMIN_EMAIL, "password": f"guess-{i}-xxxxxxxx"})
                for i in range(BURST)
            )
        )
    return [a.status_code for a in answers]


@pytest.fixture
def four_workers(tmp_path: Path, team: Bootstrap, upstream_ca: trustme.CA) -> Iterator[TeamServer]:
    srv = start_server(tmp_path, team, upstream_ca, workers=4)
    yield srv
    stop_server(srv.process)
    assert_nothing_leaked(srv, team)


def test_a_concurrent_burst_checks_at_most_the_limit_and_the_real_user_still_logs_in(
    four_workers: TeamServer,
) -> None:
    statuses = asyncio.run(burst(four_workers, STRANGER))
    assert statuses.count(401) + statuses.count(429) == BURST, sorted(set(statuses))
    assert statuses.count(401) == MAX_FAILURES  # a 401 is a password that was checked
    assert login(four_workers, STRANGER, ADMIN_PASSWORD) == 429  # the stranger's address is over its limit
    assert login(four_workers, USER, ADMIN_PASSWORD) == 200  # the admin, from their own address, is not


def test_a_second_address_is_not_locked_by_the_first_addresses_failures(server: TeamServer) -> None:
    guesses = [login(server, STRANGER, f"guess-{i}-xxxxxxxx") for i in range(MAX_FAILURES + 1)]
    assert guesses == [401] * MAX_FAILURES + [429]
    assert login(server, OTHER, "another-guess-xxxx") == 401  # its guess is checked, not refused
    assert login(server, OTHER, ADMIN_PASSWORD) == 200
    assert login(server, STRANGER, ADMIN_PASSWORD) == 429


def test_one_address_spraying_many_accounts_is_limited_too(server: TeamServer) -> None:
    accounts = [f"user{i}@example.test" for i in range(MAX_NETWORK_FAILURES)]
    assert all(login(server, STRANGER, "spray-password-1", email) == 401 for email in accounts)
    assert login(server, STRANGER, "spray-password-1", "fresh@example.test") == 429
    assert login(server, USER, ADMIN_PASSWORD) == 200


def test_x_forwarded_for_from_an_untrusted_peer_is_not_believed(server: TeamServer) -> None:
    """Without CLAVIS_TEAM_TRUSTED_PROXIES the peer is the address, even a loopback peer (uvicorn
    believes X-Forwarded-For from 127.0.0.1 by default)."""
    statuses = [
        login(server, USER, f"guess-{i}-xxxxxxxx", **{"X-Forwarded-For": f"198.51.100.{i}"})
        for i in range(MAX_FAILURES + 1)
    ]
    assert statuses == [401] * MAX_FAILURES + [429]
    assert login(server, OTHER, ADMIN_PASSWORD) == 200
