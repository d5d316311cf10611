"""The final sweep (SECURITY-CASES 26), over the whole suite: no test secret in any spelling in a
log line, an audit record or log file, an MCP tool result, captured output or a subprocess's output.

What is searched for: every ``Secret`` a test creates (so the OAuth server's tokens count too),
the shared fixtures' credentials and the test module's own constants named for a credential
(``*SECRET``, ``*KEY``, ``*TOKEN``, and plurals), whether or not the test wrapped any of them in a
``Secret`` (a test that keeps its secret in a subprocess never does). Where: every log record
of the test from any logger (non-propagating ones too; the tests' own httpx agents from WARNING,
as the product keeps httpx), audit and log files under its temporary folder, every tool result
an MCP client received, what ``capsys``/``capfd`` returned to the test and what they kept, and
what ``communicate()`` returned to the test from its subprocesses (not the product's reads of a
secret reference's program); each in every spelling redaction knows, also as
readers decode it (``redact_decoded``). A test that reveals a secret on purpose (get_credentials
under a ``full`` policy, a CLI that prints it when asked) says so with
``@pytest.mark.reveals_secret``: its tool results and outputs are not swept; logs and audit
files have no such exception.
"""

from __future__ import annotations

import asyncio.subprocess
import functools
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import mcp
import pytest

from clavis_mcp.vault import Secret
from clavis_mcp.vault.redaction.redactor import Redactor
from clavis_mcp.vault.redaction.views import redact_decoded

MIN_SWEPT_LENGTH = 12  # shorter test values ("abc") would be found in ordinary text
MAX_SWEPT_LENGTH = 512  # a PEM private key is a credential too, but its forms would be a large scanner
SHARED_SECRETS = {
    "tests.conftest": ("SECRET", "OTHER_SECRET"),
    "tests.proxy.conftest": ("SECRET_A", "SECRET_B"),
    "tests.oauth_server": ("CLIENT_SECRET",),
}
CREDENTIAL_NAME = re.compile(r"(?:^|_)(?:SECRET|KEY|TOKEN)S?$")
NOT_SWEPT = frozenset({"PROXY_TOKEN"})  # the agent's proxy credential: `env` and `run` hand it out by design
AGENT_LOGGERS = ("httpx", "httpcore")  # the tests' own agents log the URLs they send, secrets included
CAPTURED_OUTPUT = ("Captured stdout", "Captured stderr")  # report sections; the captured log is swept as records
SWEPT_FILES = ("audit*", "*.log", "*.jsonl", "*.out", "*.err")
STDLIB = str(Path(subprocess.__file__).parent)
KEPT_OUTPUT = pytest.StashKey[dict[str, str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reveals_secret: the test reveals a secret in a tool result or its output on purpose"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Keep what the capture kept of the set-up and the call (what the test did not read itself),
    for the sweep at teardown."""
    report: pytest.TestReport = yield
    kept = item.stash.setdefault(KEPT_OUTPUT, {})
    kept.update(
        (title, text) for title, text in report.sections if title.startswith(("Captured stdout", "Captured stderr"))
    )
    return report


def _result_text(result: Any) -> str:
    parts = [json.dumps(getattr(result, "structured_content", None), ensure_ascii=False, default=str)]
    parts += [getattr(block, "text", "") or "" for block in getattr(result, "content", [])]
    return "\n".join(parts)


def _as_text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value if isinstance(value, str) else ""


def swept_values(value: object) -> list[str]:
    """The credential strings a constant holds: itself, or the members of a tuple, list, set or dict."""
    items: Iterable[object] = (value,)
    if isinstance(value, dict):
        items = value.values()
    elif isinstance(value, (tuple, list, set, frozenset)):
        items = value
    return [v for v in items if isinstance(v, str) and MIN_SWEPT_LENGTH <= len(v) <= MAX_SWEPT_LENGTH]


def known_secrets(module: ModuleType | None) -> set[str]:
    """The shared fixtures' credentials (of the modules the run imported) and the test module's own."""
    found: set[str] = set()
    for name, constants in SHARED_SECRETS.items():
        shared = sys.modules.get(name)
        for constant in constants if shared is not None else ():
            found |= set(swept_values(getattr(shared, constant, None)))
    for name, value in vars(module).items() if module is not None else ():
        if CREDENTIAL_NAME.search(name) and name not in NOT_SWEPT:
            found |= set(swept_values(value))
    return found


def log_text(records: Iterable[logging.LogRecord]) -> str:
    """Every record, formatted with its exception; the tests' own httpx agents only from WARNING."""
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    kept = (r for r in records if r.levelno >= logging.WARNING or not r.name.startswith(AGENT_LOGGERS))
    return "\n".join(formatter.format(r) for r in kept)


def captured_log(caplog: pytest.LogCaptureFixture) -> str:
    """What ``caplog`` captured of the test so far (set-up, call, and the teardown of the fixtures
    already torn down), as :func:`log_text` formats it. (``caplog.text`` in a fixture's teardown
    holds only the teardown's records: the handler is reset per phase.)"""
    return log_text(r for when in ("setup", "call", "teardown") for r in caplog.get_records(when))


def started_by_a_test() -> bool:
    """Whether the ``communicate()`` being recorded was called, through the standard library, from
    anything but the product: it reads secrets from programs itself (``op``, ``pass``: references)."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(STDLIB):
        frame = frame.f_back
    return frame is None or not str(frame.f_globals.get("__name__", "")).startswith("clavis_mcp.")


@functools.lru_cache(maxsize=64)
def _redactor(secrets: frozenset[str]) -> Redactor:
    return Redactor("sweep", [], derived=sorted(secrets))


@pytest.fixture(autouse=True)
def leak_sweep(request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:  # fmt: skip
    created: set[str] = set()
    records: list[logging.LogRecord] = []
    outputs: list[str] = []
    original_init = Secret.__init__
    original_call_tool = mcp.Client.call_tool
    original_call_handlers = logging.Logger.callHandlers
    original_readouterr = pytest.CaptureFixture.readouterr
    original_communicate = subprocess.Popen.communicate
    original_async_communicate = asyncio.subprocess.Process.communicate

    def remembering_init(self: Secret, value: str, *args: Any, **kwargs: Any) -> None:
        original_init(self, value, *args, **kwargs)
        if isinstance(value, str) and len(value) >= MIN_SWEPT_LENGTH:
            created.add(value)

    async def recording_call_tool(self: mcp.Client, *args: Any, **kwargs: Any) -> Any:
        result = await original_call_tool(self, *args, **kwargs)
        outputs.append(_result_text(result))
        return result

    def recording_call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
        records.append(record)  # every logger's records, whether or not they propagate to the capture
        original_call_handlers(self, record)

    def recording_readouterr(self: pytest.CaptureFixture[Any]) -> Any:
        captured = original_readouterr(self)
        outputs.extend(_as_text(part) for part in captured)
        return captured

    def recording_communicate(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> Any:
        out = original_communicate(self, *args, **kwargs)
        if started_by_a_test():
            outputs.extend(_as_text(part) for part in out)
        return out

    async def recording_async_communicate(self: asyncio.subprocess.Process, *args: Any, **kwargs: Any) -> Any:
        out = await original_async_communicate(self, *args, **kwargs)
        if started_by_a_test():
            outputs.extend(_as_text(part) for part in out)
        return out

    monkeypatch.setattr(Secret, "__init__", remembering_init)
    monkeypatch.setattr(mcp.Client, "call_tool", recording_call_tool)
    monkeypatch.setattr(logging.Logger, "callHandlers", recording_call_handlers)
    monkeypatch.setattr(pytest.CaptureFixture, "readouterr", recording_readouterr)
    monkeypatch.setattr(subprocess.Popen, "communicate", recording_communicate)
    monkeypatch.setattr(asyncio.subprocess.Process, "communicate", recording_async_communicate)
    caplog.set_level(logging.INFO)
    yield
    secrets = frozenset(created | known_secrets(getattr(request, "module", None)))
    if not secrets:
        return
    places = {"log": log_text(records).encode("utf-8", "surrogateescape")}
    files = {p for pattern in SWEPT_FILES for p in tmp_path.rglob(pattern) if p.is_file()}
    places |= {str(p.relative_to(tmp_path)): p.read_bytes() for p in files}
    if request.node.get_closest_marker("reveals_secret") is None:
        outputs.extend(request.node.stash.get(KEPT_OUTPUT, {}).values())
        where = "output {} (a tool result, captured or subprocess output)"
        places |= {where.format(i + 1): text.encode("utf-8", "surrogateescape") for i, text in enumerate(outputs)}
    leaks = sorted(where for where, data in places.items() if redact_decoded(_redactor(secrets), data)[1])
    assert not leaks, f"a test secret (in some spelling) was found in: {', '.join(leaks)}"
