"""A buffered body is scanned as its reader decodes it whatever its type, and its scan holds up nothing else.

Issue 12 review, points 3 and 5, through the real embedded proxy to HTTPS_PROXY agents:

- ``requests``' ``resp.json()`` ignores ``Content-Type`` and detects UTF-16/32 itself, so an upstream
  that labels a reflection ``application/octet-stream`` or ``image/png`` and writes it in UTF-16, or
  with one ``\\u002d``, had the agent rebuild the secret: decoded views ran for text types only.
- The decoded views of a body cost up to a microsecond per escape, and a kilobyte of brotli decodes
  to megabytes of them: scanned on the event loop, one such body stalled every other flow (and the
  MCP server on the same loop) for seconds. It is scanned in a worker thread now, and past a bound
  on its escapes it is refused instead.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import brotli
import pytest
import requests
import trustme

from clavis_mcp.addons import redact
from clavis_mcp.certs import LocalCA
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import Vault
from demo.echo_upstream import LoopbackHandler
from tests.conftest import PROXY_TOKEN, PROXY_USER, SECRET, local_upstream, proxy_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

HOSTILE_UNIT = b"%2541"  # three views deep (%25 -> %, %41 -> A): the dearest escape to undo
LARGE = 900 * 1024  # under the streaming threshold: a body buffered and scanned whole


def utf16(secret: str) -> bytes:
    return json.dumps({"echo": secret}).encode("utf-16-le")


def one_escaped(secret: str) -> bytes:
    return json.dumps({"echo": secret}).replace("-", "\\u002d", 1).encode()


SPELLINGS: dict[str, Callable[[str], bytes]] = {"utf16": utf16, "one-escaped": one_escaped}


def escapes(count: int) -> bytes:
    """``count`` escapes and nothing else, brotli-compressed: a few hundred bytes on the wire."""
    return brotli.compress(HOSTILE_UNIT * count)


class Handler(LoopbackHandler):
    """``/typed?type=T&spelling=S``: the credential it received, reflected as S under Content-Type T;
    ``/escapes?count=N``: N escapes in JSON's clothing, brotli-compressed; anything else: ``{}``."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        secret = self.headers.get("Authorization", "").removeprefix("Bearer ")
        headers = {"Content-Type": "application/json"}
        match url.path:
            case "/typed":
                headers["Content-Type"] = query["type"]
                body = SPELLINGS[query["spelling"]](secret)
            case "/escapes":
                headers["Content-Encoding"] = "br"
                body = escapes(int(query["count"]))
            case "/large":
                headers["Content-Type"] = "text/plain" + (f"; charset={query['charset']}" if "charset" in query else "")
                body = query["filler"].encode() * LARGE + secret.encode()
            case _:
                body = b"{}"
        self.send_response(200)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def upstream(upstream_ca: trustme.CA, vault: Vault) -> Iterator[int]:
    with local_upstream(upstream_ca, Handler, vault) as port:
        yield port


def requests_get(proxy: EmbeddedProxy, home: Path, url: str) -> requests.Response:
    """An HTTPS_PROXY agent written with ``requests``, as `clavis-mcp env` sets one up."""
    assert proxy.port is not None
    proxy_url = f"http://{PROXY_USER}:{PROXY_TOKEN}@127.0.0.1:{proxy.port}"
    with requests.Session() as session:
        session.trust_env = False
        return session.get(url, proxies={"https": proxy_url}, verify=str(LocalCA(home / "certs").cert_path), timeout=20)


@pytest.mark.parametrize("spelling", list(SPELLINGS))
@pytest.mark.parametrize("content_type", ["application/octet-stream", "application/x-json", "image/png"])
async def test_a_reflection_labelled_as_another_type_is_not_rebuilt_by_resp_json(
    proxy: EmbeddedProxy, home: Path, upstream: int, content_type: str, spelling: str
) -> None:
    url = f"https://127.0.0.1:{upstream}/typed?type={content_type}&spelling={spelling}"
    response = await anyio.to_thread.run_sync(requests_get, proxy, home, url)
    assert response.status_code == 200
    echo = response.json()["echo"]  # what the agent reads: requests guesses UTF-16 and resolves \u escapes
    rebuilt = SECRET in echo  # not in the assertion: a failure must not print the secret
    assert not rebuilt
    assert echo == "[REDACTED:api]"


class Gate:
    """Holds the proxy's scan of the hostile body (in whichever thread it runs) until the test opens
    the gate, so "while it is being scanned" is a fact of the test, not a matter of timing."""

    def __init__(self, scan: Callable[..., tuple[bytes, int]]) -> None:
        self._scan = scan
        self.entered, self.opened, self.finished = threading.Event(), threading.Event(), threading.Event()

    def __call__(self, redactor: object, data: bytes, charset: str | None = None) -> tuple[bytes, int]:
        if HOSTILE_UNIT * 4 not in data:
            return self._scan(redactor, data, charset)
        self.entered.set()
        self.opened.wait(15)  # on the event loop (before the fix) nothing can open it: it gives up
        try:
            return self._scan(redactor, data, charset)
        finally:
            self.finished.set()


async def test_a_body_of_escapes_being_scanned_does_not_hold_up_another_request(
    proxy: EmbeddedProxy, home: Path, upstream: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(redact.redact_decoded)
    monkeypatch.setattr(redact, "redact_decoded", gate)
    base = f"https://127.0.0.1:{upstream}"
    with anyio.fail_after(60):
        async with proxy_client(proxy, home) as hostile_agent, proxy_client(proxy, home) as other_agent:
            async with anyio.create_task_group() as tasks:
                hostile: list[int] = []

                async def fetch_hostile() -> None:
                    hostile.append((await hostile_agent.get(f"{base}/escapes?count=200000")).status_code)

                tasks.start_soon(fetch_hostile)
                await anyio.to_thread.run_sync(gate.entered.wait, 15)
                assert gate.entered.is_set(), "the hostile body never reached the scan"
                other = await other_agent.get(f"{base}/small")
                scanning_while_answered = not gate.finished.is_set()
                gate.opened.set()
    assert other.status_code == 200 and other.json() == {}
    assert scanning_while_answered, "the other request waited for the hostile body's scan"
    assert hostile == [200]


async def test_a_body_of_more_escapes_than_the_bound_is_refused(
    proxy: EmbeddedProxy, home: Path, upstream: int
) -> None:
    count = 2_000_000  # past the bound (a million): ten megabytes decoded from 37 bytes of brotli
    with anyio.fail_after(60):
        async with proxy_client(proxy, home) as client:
            response = await client.get(f"https://127.0.0.1:{upstream}/escapes?count={count}")
    assert response.status_code == 502
    assert HOSTILE_UNIT not in response.content
    reason = response.headers["x-clavis-refused"]
    assert f"holds {count} bytes that may begin an escape" in reason and "Ask for less" in reason


LARGE_BODIES = {  # query, and whether the scan goes to a worker thread
    "plain": ("filler=x", False),
    "with-escapes": ("filler=%25", True),
    "declared-utf-16": ("filler=x&charset=utf-16", True),  # transcoded first: a decoder may cost more
    "declared-punycode": ("filler=x&charset=punycode", False),  # keeps ASCII as it is: not transcoded
}


@pytest.mark.parametrize(("query", "in_a_thread"), list(LARGE_BODIES.values()), ids=list(LARGE_BODIES))
async def test_a_large_body_without_escapes_is_scanned_on_the_loop_and_one_with_them_in_a_thread(
    proxy: EmbeddedProxy, home: Path, upstream: int, monkeypatch: pytest.MonkeyPatch, query: str, in_a_thread: bool
) -> None:
    """Only escapes and transcoding make a scan dear (up to a microsecond per escape; a quadratic
    decoder such as punycode's took 42 s for 1 MiB on the loop): a body without either costs a byte
    scan (0.2 ms per MiB), less than a worker thread. Either way, redacted."""
    threaded: list[int] = []
    in_thread = redact.scrub_whole

    def scrub_whole(*args: Any) -> tuple[bytes, int]:
        threaded.append(1)
        return in_thread(*args)

    monkeypatch.setattr(redact, "scrub_whole", scrub_whole)
    with anyio.fail_after(60):
        async with proxy_client(proxy, home) as client:
            response = await client.get(f"https://127.0.0.1:{upstream}/large?{query}")
    assert response.status_code == 200
    assert response.content.endswith(b"[REDACTED:api]") and len(response.content) == LARGE + len(b"[REDACTED:api]")
    assert bool(threaded) is in_a_thread
