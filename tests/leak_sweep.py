"""The final sweep (SECURITY-CASES 26), over the whole suite: no test secret in any spelling in a
log line, an audit record or an MCP tool result.

Every ``Secret`` a test creates is remembered (so the OAuth server's tokens count too, not
only the constants), every tool result an MCP client receives is kept, and after each test the
captured log, the audit files under its temporary folder and those results are scanned for
every spelling redaction knows, also as their readers decode them (``redact_decoded``). A test
that reveals a secret in a tool result on purpose (get_credentials under a ``full`` policy)
says so with ``@pytest.mark.reveals_secret``; logs and audit files have no such exception.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp
import pytest

from clavis_mcp.vault import Secret
from clavis_mcp.vault.redaction.redactor import Redactor
from clavis_mcp.vault.redaction.views import redact_decoded

MIN_SWEPT_LENGTH = 12  # shorter test values ("abc") would be found in ordinary text


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reveals_secret: the test reveals a secret in a tool result on purpose")


def _result_text(result: Any) -> str:
    parts = [json.dumps(getattr(result, "structured_content", None), ensure_ascii=False, default=str)]
    parts += [getattr(block, "text", "") or "" for block in getattr(result, "content", [])]
    return "\n".join(parts)


AGENT_LOGGERS = ("httpx", "httpcore")  # the tests' own agents log the URLs they send, secrets included


def captured_log(caplog: pytest.LogCaptureFixture) -> str:
    """Every record of the test so far (setup, call, and the teardown of the fixtures already torn
    down: a proxy's shutdown), formatted with its exception, but the agents'. (``caplog.text``
    in a fixture's teardown holds only the teardown's records: the handler is reset per phase.)
    The product keeps httpx at WARNING, where it logs no URL."""
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    records = [r for when in ("setup", "call", "teardown") for r in caplog.get_records(when)]
    return "\n".join(formatter.format(r) for r in records if not r.name.startswith(AGENT_LOGGERS))


@pytest.fixture(autouse=True)
def leak_sweep(request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:  # fmt: skip
    created: set[str] = set()
    results: list[str] = []
    original_init = Secret.__init__
    original_call_tool = mcp.Client.call_tool

    def remembering_init(self: Secret, value: str, *args: Any, **kwargs: Any) -> None:
        original_init(self, value, *args, **kwargs)
        if isinstance(value, str) and len(value) >= MIN_SWEPT_LENGTH:
            created.add(value)

    async def recording_call_tool(self: mcp.Client, *args: Any, **kwargs: Any) -> Any:
        result = await original_call_tool(self, *args, **kwargs)
        results.append(_result_text(result))
        return result

    monkeypatch.setattr(Secret, "__init__", remembering_init)
    monkeypatch.setattr(mcp.Client, "call_tool", recording_call_tool)
    caplog.set_level(logging.INFO)
    yield
    if not created:
        return
    places = {"log": captured_log(caplog).encode("utf-8", "surrogateescape")}
    places |= {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("audit*") if p.is_file()}
    if request.node.get_closest_marker("reveals_secret") is None:
        places |= {f"tool result {i + 1}": text.encode() for i, text in enumerate(results)}
    redactor = Redactor("sweep", [], derived=sorted(created))
    leaks = sorted(where for where, data in places.items() if redact_decoded(redactor, data)[1])
    assert not leaks, f"a test secret (in some spelling) was found in: {', '.join(leaks)}"
