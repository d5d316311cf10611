"""Review F2 follow-up through call_service: one character of the credential escaped among plain
ones (C octal, a JavaScript identity escape, a zero-padded character reference, quoted-printable)
in the body the model is shown. No listed spelling holds it, and the decoded views call_service
reads the body in did not decode those escapes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trustme
from mcp import Client

from clavis_mcp.vault import Vault
from tests.conftest import local_upstream
from tests.proxy.test_attack_views_review import ONE_ESCAPED, Reflecting

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def upstream(upstream_ca: trustme.CA, vault: Vault) -> Iterator[int]:
    with local_upstream(upstream_ca, Reflecting, vault) as port:
        yield port


async def test_call_service_shows_the_model_no_secret_with_one_character_in_a_program_text_or_mail_escape(
    client: Client, upstream: int
) -> None:
    for how in ONE_ESCAPED:
        url = f"https://127.0.0.1:{upstream}/reflect?how={how}"
        result = await client.call_tool("call_service", {"service_name": "api", "method": "GET", "url": url})
        structured = result.structured_content
        assert structured is not None and not result.is_error, how
        redacted = structured["body"] == {"error": "invalid key [REDACTED:api]"}
        assert redacted and structured["redactions"] >= 1, how  # a failure must not print the secret
