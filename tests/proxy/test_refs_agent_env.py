"""`clavis-mcp env` makes botocore trust the proxy's CA even when the user's shell already sets
AWS_CA_BUNDLE (botocore then ignores REQUESTS_CA_BUNDLE), so an AWS client sent through the proxy
for an ``aws-sm://`` or SigV4 service verifies the proxy's certificate instead of failing."""

from __future__ import annotations

from pathlib import Path

import botocore.session
import pytest

from clavis_mcp.proxy.agent_env import agent_exports


def test_botocore_uses_the_proxy_bundle_over_an_aws_ca_bundle_already_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", "/etc/corporate-ca.pem")
    for name, value in agent_exports("http://a:b@127.0.0.1:1", Path("/clavis/bundle.pem")):
        monkeypatch.setenv(name, value)
    assert botocore.session.Session().get_config_variable("ca_bundle") == "/clavis/bundle.pem"
