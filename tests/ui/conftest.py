"""A vault with a known audit log, and the page served on 127.0.0.1 from a thread."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clavis_mcp.ui.guard import SESSION_HEADER
from clavis_mcp.ui.server import Page, running
from clavis_mcp.ui.source import AuditSource
from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.limits import ratelimits
from tests.conftest import make_service

# The known log: (agent, service, decision, status, bytes, duration_ms, reason) and how many of each.
KNOWN = [
    (("mcp", "openai", "injected", 200, 1000, 10, None), 5),
    (("ci-bot", "openai", "injected", 200, 500, 30, None), 2),
    (("ci-bot", "openai", "error", 502, 0, 90, "upstream TLS failed"), 1),
    (("ci-bot", "github", "refused", 403, 0, None, "method POST not allowed"), 3),
    (("mcp", "github", "refused", 421, 0, None, "Host differs from the CONNECT target"), 1),
    (("ci-bot", None, "passed", None, 0, None, None), 2),
]
TOTAL = sum(n for _, n in KNOWN)  # 14
BY_DECISION = {"injected": 7, "error": 1, "refused": 4, "passed": 2}


def write_known(log: AuditLog) -> None:
    for (agent, service, decision, status, size, duration, reason), n in KNOWN:
        for i in range(n):
            host = {"openai": "api.openai.com", "github": "api.github.com"}.get(str(service), "example.org")
            log.append(source=agent, service=service, method="POST" if decision == "refused" else "GET",
                       scheme="https", host=host, port=443, path=f"/v1/item/{i}", status=status, bytes=size,
                       duration_ms=duration, decision=decision, reason=reason)  # fmt: skip


@pytest.fixture
def known_log(vault: Vault, audit: AuditLog) -> AuditLog:
    vault.add_service(make_service("openai", "api.openai.com"), _secret())
    vault.add_service(make_service("github", "api.github.com"), _secret())
    ratelimits.record(vault, "openai", {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "123",
                                        "x-ratelimit-reset-requests": "30s"}, time.time())  # fmt: skip
    write_known(audit)
    return audit


def _secret() -> object:
    from clavis_mcp.vault import validate_secret

    return validate_secret("sk-ui-tests-" + "0123456789abcdef" * 2)


@pytest.fixture
def page(home: Path, vault: Vault, known_log: AuditLog) -> Iterator[Page]:
    with running(AuditSource(home, vault)) as served:
        yield served


@pytest.fixture
def client(page: Page) -> Iterator[httpx.Client]:
    """A client that sends the page's session header, as the page's script does."""
    with httpx.Client(base_url=page.origin, headers={SESSION_HEADER: page.token}, trust_env=False) as c:
        yield c
