"""A recorded time no date can hold never makes a tool fail: it is shown raw, or said to be unknown.

Review 6, L2: a recorded ``x-ratelimit-reset: 99999999999999`` would have made
``check_credential_status`` fail with ``ValueError: year 3170843 is out of range``.
"""

from __future__ import annotations

import pytest
from mcp import Client

from clavis_mcp.mcp_front.times import expiry_fields, iso
from clavis_mcp.vault import Vault, validate_secret
from clavis_mcp.vault.limits import ratelimits
from tests.conftest import SECRET, make_service

NOW = 1_800_000_000.0


@pytest.mark.anyio
async def test_check_credential_status_answers_after_an_upstream_announced_a_far_reset(
    client: Client, vault: Vault
) -> None:
    vault.add_service(make_service("api", "api.example.test"), validate_secret(SECRET))
    headers = {"x-ratelimit-limit": "60", "x-ratelimit-remaining": "59", "x-ratelimit-reset": "99999999999999"}
    ratelimits.record(vault, "api", headers, NOW)
    result = await client.call_tool("check_credential_status", {"service_name": "api"})
    assert not result.is_error
    limit = result.structured_content["rate_limit"]
    assert (limit["remaining"], limit["limit"], limit["reset_at"], limit["resets"]) == (59, 60, None, None)


@pytest.mark.anyio
async def test_check_credential_status_shows_a_recorded_time_no_date_holds_as_its_figure(
    client: Client, vault: Vault
) -> None:
    vault.add_service(make_service("api", "api.example.test"), validate_secret(SECRET))
    ratelimits.record(vault, "api", {"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "1s"}, 1e20)
    result = await client.call_tool("check_credential_status", {"service_name": "api"})
    assert not result.is_error
    limit = result.structured_content["rate_limit"]
    assert (limit["remaining"], limit["observed_at"], limit["reset_at"]) == (3, "1e+20", "1e+20")


OUT_OF_RANGE = [
    ("far-future", 1e20, "1e+20", "expires in 1157407407386574 days", False),
    ("far-past", -1e20, "-1e+20", "expired 1157407407428241 days ago", True),
    ("infinite", float("inf"), "inf", "expires at an unknown time", False),
    ("not-a-number", float("nan"), "nan", "expired at an unknown time", False),
]


@pytest.mark.parametrize(
    ("when", "shown", "phrase", "expired"), [r[1:] for r in OUT_OF_RANGE], ids=[r[0] for r in OUT_OF_RANGE]
)
def test_a_time_no_date_holds_is_shown_raw_and_said_in_words_without_failing(
    when: float, shown: str, phrase: str, expired: bool
) -> None:
    assert iso(when) == shown
    assert expiry_fields(when, NOW) == {"expires_at": shown, "expiry": phrase, "expired": expired}
