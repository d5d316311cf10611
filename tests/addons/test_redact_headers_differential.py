"""scrub_headers against the reference it replaced (two scans: lower-cased names with ``names``,
every name and value with ``redactor``), on seeded random header blocks: the same fields out and
the same count, with both scanning engines and redactors built as responses use them."""

from __future__ import annotations

import random

import pytest
from mitmproxy import http

from clavis_mcp.addons.redact import scrub_headers
from clavis_mcp.vault import validate_secret
from clavis_mcp.vault.redaction.redactor import HyperscanScanner, Redactor, TrieScanner
from clavis_mcp.vault.redaction.service import InPlay, ServiceRedactor, _build

CASES = 5000
SECRETS = ("sk-live-0123456789abcdefABCDEF", "ghp_Ab/Cd+Ef=Gh~1234567890", "xoxb-12345-67890-AbCdEf")


def reference(headers: http.Headers, redactor: Redactor, names: Redactor | None = None) -> int:
    """scrub_headers as it was before one scan of the lower-cased block served both redactors."""
    fields = headers.fields
    in_names = names is not None and names.redact(b"\n".join([name for name, _ in fields]).lower())[1]
    if not in_names and not redactor.redact(b"\n".join([part for field in fields for part in field]))[1]:
        return 0
    kept, count = [], 0
    for name, value in fields:
        if redactor.redact(name)[1] or (names is not None and names.redact(name.lower())[1]):
            count += 1
            continue
        clean, found = redactor.redact(value)
        kept.append((name, clean))
        count += found
    headers.fields = tuple(kept)
    return count


def service_redactor(secret: str, user: str | None, engine: str = "hyperscan") -> ServiceRedactor:
    """The redactors a response of a service with ``secret`` gets (a basic-auth pair derived if
    ``user``): as the proxy builds them, or the same with the ``re`` engine."""
    secrets, derived = (validate_secret(secret),), () if user is None else (f"{user}:{secret}",)
    if engine == "hyperscan":
        return _build("svc", InPlay((), secrets, derived))
    lowered = [value.lower() for value in (secret, *derived)]
    return ServiceRedactor(
        Redactor("svc", secrets, derived, scanner=TrieScanner),
        Redactor("svc", secrets, (*derived, *lowered), scanner=TrieScanner, lower_case=True),
    )


def _recase(rng: random.Random, data: bytes) -> bytes:
    how = rng.randrange(4)
    if how == 0:
        return data
    if how == 1:
        return data.lower()
    if how == 2:
        return data.upper()
    return bytes(b ^ 0x20 if chr(b).isalpha() and rng.random() < 0.5 else b for b in data)


def _part(rng: random.Random, forms: list[bytes], name: bool) -> bytes:
    filler = b"X-Request-Id" if name else b"application/json; charset=utf-8"
    roll = rng.random()
    if roll < 0.55:
        return filler[: rng.randrange(1, len(filler) + 1)]
    form = _recase(rng, rng.choice(forms))
    if roll < 0.75:
        form = form[: rng.randrange(1, len(form) + 1)]  # a part of a form: no secret, or one
    prefix, suffix = (b"x-", b"") if name else (b"k=", b"; Path=/")
    return prefix * rng.randrange(2) + form + suffix * rng.randrange(2)


@pytest.mark.parametrize("engine", ["hyperscan", "re"])
def test_scrub_headers_matches_the_two_scan_reference(engine: str) -> None:
    rng = random.Random(1905 if engine == "re" else 1906)
    built = {(secret, user): service_redactor(secret, user, engine) for secret in SECRETS for user in (None, "admin")}
    found = differ = 0
    for _ in range(CASES):
        values, names = built[rng.choice(list(built))]
        forms = [*values._sorted, *names._sorted]
        fields = [(_part(rng, forms, True), _part(rng, forms, False)) for _ in range(rng.randrange(0, 8))]
        ours, theirs = http.Headers(fields), http.Headers(fields)
        with_names = rng.random() < 0.9
        count = scrub_headers(ours, values, names if with_names else None)
        expected = reference(theirs, values, names if with_names else None)
        found += expected > 0
        differ += (count, ours.fields) != (expected, theirs.fields)
    assert differ == 0
    assert found > CASES // 4  # the cases do hold secrets in names and values


def test_the_names_redactor_holds_every_form_of_the_values_one_in_lower_case() -> None:
    """What lets scrub_headers judge both in one scan of the lower-cased block."""
    for secret in SECRETS:
        for user in (None, "admin"):
            values, names = service_redactor(secret, user)
            assert isinstance(values.scanner, HyperscanScanner)
            assert {form.lower() for form in values._sorted} <= set(names._sorted)
