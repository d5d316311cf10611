"""The layers between the CLI and the addons hand a ProxyConfig on whole and name none of its fields.

So a new cross-cutting option (an approval callback, a passthrough rule) is one field of the
config, read by one addon: the gateway, the embedded proxy and the standalone proxy do not change.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path

import pytest
import trustme
from mcp import Client

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.proxy.standalone import serve_until_signalled
from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.proxy_config import ProxyConfig
from tests.bombs import MIB, BombUpstream, bomb_service

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "builder",
    [Gateway.__init__, EmbeddedProxy.__init__, serve_until_signalled],
    ids=["gateway", "embedded-proxy", "standalone-proxy"],
)
def test_no_layer_between_takes_a_config_field_as_its_own_parameter(builder: Callable[..., object]) -> None:
    parameters = set(inspect.signature(builder).parameters)
    assert "config" in parameters
    assert not parameters & {field.name for field in fields(ProxyConfig)}


@pytest.fixture
def api(vault: Vault, upstream_ca: trustme.CA) -> Iterator[BombUpstream]:
    with bomb_service(vault, upstream_ca) as server:
        yield server


async def test_a_config_field_the_gateway_never_names_reaches_the_proxy_s_addon(
    vault: Vault, audit: AuditLog, home: Path, api: BombUpstream
) -> None:
    """The decode bound, set on the config the gateway is given, is the one the embedded proxy's
    redactor applies: two MiB of brotli are refused at one."""
    gateway = Gateway(vault, audit, LocalCA(home / "certs"), config=ProxyConfig(max_decoded=MIB))
    async with Client(build_server(gateway)) as session:
        result = await session.call_tool(
            "call_service", {"service_name": "api", "method": "GET", "url": api.url("/bomb/br/2")}
        )
    text = " ".join(getattr(part, "text", "") for part in result.content)
    assert result.is_error and "the br body decodes to more than 1 MiB" in text
