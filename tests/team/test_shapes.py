"""Pure decisions of the team API, as tables: Retry-After to whole seconds, what becomes the
SDK's ``body``, budgets, and the Merkle root the audit checkpoints sign."""

from __future__ import annotations

import email.utils

import pytest

from clavis_mcp.team.audit import merkle_root
from clavis_mcp.team.budgets import parse_budget
from clavis_mcp.team.calls import render_body, retry_after_seconds
from clavis_mcp.team.egress import Answer
from clavis_mcp.vault.errors import ApiRefused

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, 1),
        ("", 1),
        ("30", 30),
        ("2.1", 3),
        ("-5", 0),
        (email.utils.formatdate(NOW + 42, usegmt=True), 42),
        (email.utils.formatdate(NOW - 42, usegmt=True), 0),
        ("soon", 1),
    ],
    ids=["absent", "empty", "seconds", "fraction-up", "negative", "http-date", "past-date", "garbage"],
)
def test_retry_after_is_always_whole_seconds(value: str | None, seconds: int) -> None:
    assert retry_after_seconds(value, now=NOW) == seconds


def answer(body: bytes, content_type: str) -> Answer:
    return Answer(200, [], body, content_type, None, None, 0, None, None)


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"", "application/json", None),
        (b'{"a": 1}', "application/json", {"a": 1}),
        (b"[1, 2]", "application/json; charset=utf-8", [1, 2]),
        (b"42", "application/json", "42"),
        (b"true", "application/json", "true"),
        (b'"text"', "application/json", '"text"'),
        (b"null", "application/json", "null"),
        (b"{broken", "application/json", "{broken"),
        (b'{"a": 1}', "text/plain", '{"a": 1}'),
        (b"\xff\xfe", "application/octet-stream", "\ufffd\ufffd"),
    ],
    ids=["empty", "object", "array", "number", "bool", "string", "null", "broken", "text", "binary"],
)
def test_the_body_is_only_ever_a_string_an_object_an_array_or_null(
    body: bytes, content_type: str, expected: object
) -> None:
    assert render_body(answer(body, content_type)) == expected


@pytest.mark.parametrize(
    ("definition", "budget"),
    [
        ({}, None),
        ({"budget": {"max_requests": 5, "period_seconds": 60}}, (5, 60.0)),
    ],
    ids=["none", "five-a-minute"],
)
def test_budgets_parse(definition: dict[str, object], budget: tuple[int, float] | None) -> None:
    assert parse_budget(definition) == budget


@pytest.mark.parametrize(
    "budget",
    [{"max_requests": 0, "period_seconds": 60}, {"max_requests": 5}, {"max_requests": "x", "period_seconds": 1}, 7],
    ids=["zero", "no-period", "not-a-number", "not-an-object"],
)
def test_bad_budgets_are_400s(budget: object) -> None:
    with pytest.raises(ApiRefused) as refused:
        parse_budget({"budget": budget})
    assert refused.value.status == 400


def test_the_merkle_root_covers_every_head_and_its_order() -> None:
    heads = {"a": [3, "m3"], "b": [7, "m7"], "c": [1, "m1"]}
    root = merkle_root(heads)
    assert root == merkle_root(dict(reversed(list(heads.items()))))  # chains are sorted, not taken as given
    assert root != merkle_root({**heads, "b": [6, "m6"]})  # a cut chain
    assert root != merkle_root({k: v for k, v in heads.items() if k != "c"})  # a dropped chain
    assert root != merkle_root({**heads, "a": [3, "forged"]})  # a forked one
