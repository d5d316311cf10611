from __future__ import annotations

import base64
import importlib.metadata
import importlib.util
import json
import re
import sys
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement

from clavis_mcp.vault import Secret
from clavis_mcp.vault.redaction import redactor as redaction
from clavis_mcp.vault.redaction.redactor import (
    HyperscanScanner,
    Redactor,
    TrieScanner,
    default_scanner,
    forms_of,
    trie_pattern,
)

SECRET = 'sk-live/abc+def=0123456789"quote'
OTHER_SECRET = "ghp_0123456789abcdefABCDEF0123456789"

needs_hyperscan = pytest.mark.skipif(redaction.hyperscan is None, reason="hyperscan is not installed here")
ENGINES = [pytest.param(HyperscanScanner, marks=needs_hyperscan), TrieScanner]
ENGINE_IDS = ["hyperscan", "re"]
engines = pytest.mark.parametrize("engine", ENGINES, ids=ENGINE_IDS)

ENCODINGS = {
    "literal": SECRET.encode(),
    "url": quote(SECRET, safe="").encode(),
    "json": json.dumps(SECRET)[1:-1].encode(),
    "hex": SECRET.encode().hex().encode(),
    "HEX": SECRET.encode().hex().upper().encode(),
    "base64": base64.b64encode(SECRET.encode()),
    "base64url": base64.urlsafe_b64encode(SECRET.encode()),
}


@engines
def test_every_encoding_is_scrubbed(engine: type) -> None:
    redactor = Redactor("svc", [Secret(SECRET)], scanner=engine)
    for name, encoded in ENCODINGS.items():
        out, count = redactor.redact(b"before " + encoded + b" after")
        assert count >= 1, name
        assert b"[REDACTED:svc]" in out, name
        assert SECRET.encode() not in out and encoded not in out, name


@engines
def test_base64_inside_a_larger_blob_at_every_alignment(engine: type) -> None:
    redactor = Redactor("svc", [Secret(SECRET)], scanner=engine)
    for prefix in (b"", b"x", b"xy", b"xyz"):
        blob = base64.b64encode(prefix + b"{" + SECRET.encode() + b"}")
        out, count = redactor.redact(blob)
        assert count == 1, prefix


@engines
def test_basic_auth_pair_is_scrubbed_when_derived(engine: type) -> None:
    pair = f"user:{SECRET}"
    redactor = Redactor("svc", [Secret(SECRET)], derived=[pair], scanner=engine)
    out, count = redactor.redact(b"Basic " + base64.b64encode(pair.encode()))
    assert count >= 1 and base64.b64encode(pair.encode()) not in out


@engines
def test_text_without_secrets_is_untouched(engine: type) -> None:
    redactor = Redactor("svc", [Secret(SECRET)], scanner=engine)
    text = b'{"ok": true, "data": [1, 2, 3]}'
    assert redactor.redact(text) == (text, 0)


def test_forms_never_include_tiny_fragments() -> None:
    assert all(len(form) >= 4 for form in forms_of("abcdefgh"))


@pytest.mark.parametrize(
    "secret",
    ["a/b+c=d~" * 4, "p&ss'w\"rd<x>=1/+ é~!(x)`:@;", "é/+= " * 6],
    ids=["four-kinds-of-punctuation", "many-kinds-of-punctuation", "non-ascii-and-space"],
)
def test_one_secret_has_a_bounded_number_of_forms(secret: str) -> None:
    """Every mixture of escaped kinds is listed only up to MAX_CLASSES kinds: the scanner stays small."""
    forms = forms_of(secret)
    assert len(forms) <= 400
    assert all(b"\0" not in form for form in forms)


@engines
@settings(max_examples=200, deadline=None)
@given(
    secret=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=12, max_size=48),
    before=st.binary(max_size=64),
    after=st.binary(max_size=64),
    encoding=st.sampled_from(["literal", "url", "json", "hex", "base64", "base64url"]),
)
def test_no_encoding_of_a_random_secret_survives(
    engine: type, secret: str, before: bytes, after: bytes, encoding: str
) -> None:
    encoded = {
        "literal": secret.encode(),
        "url": quote(secret, safe="").encode(),
        "json": json.dumps(secret)[1:-1].encode(),
        "hex": secret.encode().hex().encode(),
        "base64": base64.b64encode(before + secret.encode() + after),
        "base64url": base64.urlsafe_b64encode(before + secret.encode() + after),
    }[encoding]
    data = before + encoded + after if encoding not in ("base64", "base64url") else encoded
    out, count = Redactor("svc", [Secret(secret)], scanner=engine).redact(data)
    assert count >= 1
    assert secret.encode() not in out


def _encodings_of(secret: str, before: bytes, after: bytes) -> dict[str, bytes]:
    """Each encoding as it would appear in a body: base64 forms inside a larger blob."""
    return {
        "literal": secret.encode(),
        "url": quote(secret, safe="").encode(),
        "json": json.dumps(secret)[1:-1].encode(),
        "hex": secret.encode().hex().encode(),
        "HEX": secret.encode().hex().upper().encode(),
        "base64": base64.b64encode(before + secret.encode() + after),
        "base64url": base64.urlsafe_b64encode(before + secret.encode() + after),
    }


@engines
@settings(max_examples=300, deadline=None)
@given(
    secret=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=12, max_size=48),
    before=st.binary(max_size=64),
    after=st.binary(max_size=64),
    encoding=st.sampled_from(["literal", "url", "json", "hex", "HEX", "base64", "base64url"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_no_encoding_survives_a_stream_split_at_random_chunk_boundaries(
    engine: type, secret: str, before: bytes, after: bytes, encoding: str, cuts: list[int]
) -> None:
    encoded = _encodings_of(secret, before, after)[encoding]
    body = encoded if encoding.startswith("base64") else before + encoded + after
    bounds = sorted({0, len(body), *(c for c in cuts if c < len(body))})
    chunks = [body[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    scrubber = Redactor("svc", [Secret(secret)], scanner=engine).stream()
    out = b"".join(scrubber.feed(chunk) for chunk in chunks) + scrubber.flush()
    assert scrubber.count >= 1
    assert secret.encode() not in out
    for form in forms_of(secret):
        assert form not in out


@engines
def test_streamed_output_equals_whole_body_redaction(engine: type) -> None:
    redactor = Redactor("svc", [Secret(SECRET)], scanner=engine)
    body = b"data: " + SECRET.encode() + b"\n\n" + b"x" * 5000 + base64.b64encode(SECRET.encode()) + b"\n"
    scrubber = redactor.stream()
    streamed = b"".join(scrubber.feed(body[i : i + 7]) for i in range(0, len(body), 7)) + scrubber.flush()
    assert streamed == redactor.redact(body)[0]
    assert scrubber.count == 2


@engines
def test_a_stream_holds_back_no_more_than_the_window(engine: type) -> None:
    redactor = Redactor("svc", [Secret(SECRET)], scanner=engine)
    scrubber = redactor.stream()
    sent = emitted = 0
    for _ in range(100):
        sent += 1000
        emitted += len(scrubber.feed(b"x" * 1000))
        assert sent - emitted <= redactor.longest - 1
    assert emitted + len(scrubber.flush()) == sent


@engines
def test_a_stream_passes_on_ordinary_text_at_once_and_holds_only_a_possible_start(engine: type) -> None:
    scrubber = Redactor("svc", [Secret(SECRET)], scanner=engine).stream()
    assert scrubber.feed(b"data: hello\n\n") == b"data: hello\n\n"
    assert scrubber.feed(b"data: " + SECRET.encode()[:5]) == b"data: "
    assert scrubber.feed(SECRET.encode()[5:] + b"\n\n") == b"[REDACTED:svc]\n\n"
    assert scrubber.flush() == b"" and scrubber.count == 1


@settings(max_examples=300, deadline=None)
@given(
    forms=st.sets(
        st.binary(min_size=1, max_size=6).map(lambda b: bytes(c % 3 + 97 for c in b)), min_size=1, max_size=6
    ),
    data=st.binary(max_size=80).map(lambda b: bytes(c % 4 + 97 for c in b)),
)
def test_trie_pattern_matches_like_a_longest_first_alternation(forms: set[bytes], data: bytes) -> None:
    """The factored pattern must scrub exactly what the plain alternation (longest first) scrubs."""
    flat = re.compile(b"|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))
    assert re.compile(trie_pattern(forms)).subn(b"X", data) == flat.subn(b"X", data)


# -- the two engines: hyperscan and the re trie find the same spans ----------------------------


def _no_hand_over(forms: set[bytes], window: int = HyperscanScanner.WINDOW) -> HyperscanScanner:
    """Hyperscan that never hands a dense body to re, scanning in windows of ``window`` bytes."""
    scanner = HyperscanScanner(forms)
    scanner.DENSE = 1e9
    scanner.WINDOW = window
    return scanner


_SECRETS = st.one_of(
    st.text(alphabet="ab", min_size=2, max_size=12),  # periodic: occurrences overlap
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=4, max_size=24),
    st.text(alphabet=st.characters(min_codepoint=1, exclude_categories=("Cs",)), min_size=2, max_size=8),
)


def _pieces(secrets: list[str], forms: list[bytes]) -> st.SearchStrategy[bytes]:
    """Bits of a body: forms whole, cut short and repeated, secrets inside base64, and ordinary text."""
    form = st.sampled_from(forms)
    raw = st.sampled_from([s.encode() for s in secrets])
    embedded = st.tuples(st.binary(max_size=3), raw, st.binary(max_size=3)).map(b"".join)
    return st.one_of(
        form,
        form.flatmap(lambda f: st.integers(1, len(f) - 1).map(lambda k: f[:k])),
        form.map(lambda f: f * 3),
        embedded.map(base64.b64encode),
        embedded.map(base64.urlsafe_b64encode),
        st.binary(max_size=16),
        st.binary(max_size=24).map(base64.b64encode),
        st.binary(max_size=12).map(lambda b: b.hex().encode()),
        st.text(max_size=12).map(lambda t: json.dumps(t).encode()),
    )


@needs_hyperscan
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_hyperscan_and_re_find_the_same_spans_and_give_the_same_output(data: st.DataObject) -> None:
    secrets = data.draw(st.lists(_SECRETS, min_size=1, max_size=3))
    extend = data.draw(st.sampled_from(["none", "longer", "shorter"]))
    if extend == "longer":  # a secret whose forms start with another's
        secrets.append(secrets[0] + data.draw(st.text(alphabet="abc=+/", min_size=1, max_size=6)))
    elif extend == "shorter" and len(secrets[0]) > 3:
        secrets.append(secrets[0][: data.draw(st.integers(2, len(secrets[0]) - 1))])
    forms: set[bytes] = set().union(*(forms_of(s) for s in secrets))
    if not forms:
        return
    body = b"".join(data.draw(st.lists(_pieces(secrets, sorted(forms)), max_size=12)))
    expected = TrieScanner(forms).spans(body)
    assert _no_hand_over(forms).spans(body) == expected
    assert _no_hand_over(forms, window=data.draw(st.integers(1, 64))).spans(body) == expected
    assert HyperscanScanner(forms).spans(body) == expected

    fast, slow = (Redactor("svc", map(Secret, secrets), scanner=engine) for engine in (HyperscanScanner, TrieScanner))
    assert fast.redact(body) == slow.redact(body)
    cuts = sorted({0, len(body), *data.draw(st.lists(st.integers(0, len(body)), max_size=6))})
    streamed = []
    for redactor in (fast, slow):
        scrubber = redactor.stream()
        out = b"".join(scrubber.feed(body[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)) + scrubber.flush()
        streamed.append((out, scrubber.count))
    assert streamed[0] == streamed[1]


@needs_hyperscan
@pytest.mark.parametrize(
    ("secret", "body"),
    [("a" * 32, b"a" * 300_000 + b"b"), ("ab" * 8, b"x" + b"ab" * 150_000)],
    ids=["run-of-one-byte", "run-of-two-bytes"],
)
def test_a_body_dense_with_overlapping_occurrences_is_scrubbed_exactly_as_re_does(secret: str, body: bytes) -> None:
    forms = forms_of(secret)
    expected = TrieScanner(forms).spans(body)
    assert len(expected) == len(body) // len(secret)
    assert _no_hand_over(forms).spans(body) == expected
    scanner = HyperscanScanner(forms)
    assert scanner.spans(body) == expected
    assert scanner._trie is not None, "a dense body is handed to re, which steps over each match"


@needs_hyperscan
def test_an_ordinary_body_is_scanned_by_hyperscan_alone() -> None:
    scanner = HyperscanScanner(forms_of(SECRET))
    body = (b"lorem ipsum " * 1000 + SECRET.encode()) * 20
    assert len(scanner.spans(body)) == 20
    assert scanner._trie is None


# -- which engine is used ----------------------------------------------------------------------


def test_hyperscan_is_installed_and_used_wherever_pyproject_declares_it() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    declared = [Requirement(d) for d in pyproject["project"]["dependencies"] if Requirement(d).name == "hyperscan"]
    assert declared, "pyproject.toml declares hyperscan"
    wanted = [r for r in declared if r.marker is None or r.marker.evaluate()]
    if not wanted:
        pytest.skip("pyproject.toml does not install hyperscan on this platform")
    assert redaction.hyperscan is not None
    assert wanted[0].specifier.contains(importlib.metadata.version("hyperscan"))
    assert isinstance(Redactor("svc", [Secret(SECRET)]).scanner, HyperscanScanner)


def test_the_re_engine_is_used_when_hyperscan_cannot_be_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hyperscan", None)  # makes `import hyperscan` raise ImportError
    name = "clavis_mcp.vault.redaction._redactor_without_hyperscan"
    spec = importlib.util.spec_from_file_location(name, redaction.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.hyperscan is None
    redactor = module.Redactor("svc", [Secret(SECRET)])
    assert isinstance(redactor.scanner, module.TrieScanner)
    assert redactor.redact(b"<" + ENCODINGS["url"] + b">") == (b"<[REDACTED:svc]>", 1)


@needs_hyperscan
def test_the_re_engine_is_used_when_hyperscan_cannot_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(forms: set[bytes]) -> HyperscanScanner:
        raise redaction.hyperscan.ArchitectureError("this CPU is not supported")

    monkeypatch.setattr(redaction, "HyperscanScanner", unsupported)
    redactor = Redactor("svc", [Secret(SECRET)])
    assert isinstance(redactor.scanner, TrieScanner)
    assert redactor.redact(SECRET.encode()) == (b"[REDACTED:svc]", 1)


@needs_hyperscan
def test_a_secret_with_a_nul_byte_is_scrubbed_by_re_since_hyperscan_would_cut_it_short() -> None:
    secret = "abc\0defghijk"
    with pytest.raises(ValueError):
        HyperscanScanner(forms_of(secret))
    assert isinstance(default_scanner(forms_of(secret)), TrieScanner)
    assert Redactor("svc", [Secret(secret)]).redact(b"<abc\0defghijk>") == (b"<[REDACTED:svc]>", 1)


def test_a_redactor_with_nothing_to_scrub_passes_bodies_and_streams_through() -> None:
    redactor = Redactor("svc", [])
    assert redactor.scanner is None
    assert redactor.redact(b"anything") == (b"anything", 0)
    scrubber = redactor.stream()
    assert scrubber.feed(b"any") + scrubber.feed(b"thing") + scrubber.flush() == b"anything"


# -- threads -----------------------------------------------------------------------------------


@engines
def test_several_threads_redacting_with_one_redactor_at_once_get_correct_results(engine: type) -> None:
    """Hyperscan releases the GIL while it scans, so these threads really do scan at the same time."""
    secrets = [Secret(SECRET), Secret(OTHER_SECRET)]
    redactor = Redactor("svc", secrets, scanner=engine)
    threads, rounds = 4, 20
    bodies = [
        b"".join(
            [b"%d lorem ipsum " % i * 60_000, ENCODINGS["url"], b"x" * i, OTHER_SECRET.encode().hex().encode()]
            + [ENCODINGS["json"]] * 2
        )
        for i in range(threads)
    ]
    expected = [Redactor("svc", secrets, scanner=TrieScanner).redact(body) for body in bodies]
    assert [count for _, count in expected] == [4] * threads
    start = threading.Barrier(threads)

    def work(i: int) -> int:
        start.wait()
        correct = 0
        for n in range(rounds):
            if n % 2:
                scrubber = redactor.stream()
                body = bodies[i]
                out = b"".join(scrubber.feed(body[at : at + 65536]) for at in range(0, len(body), 65536))
                correct += (out + scrubber.flush(), scrubber.count) == expected[i]
            else:
                correct += redactor.redact(bodies[i]) == expected[i]
        return correct

    with ThreadPoolExecutor(threads) as pool:
        assert list(pool.map(work, range(threads))) == [rounds] * threads


@engines
def test_a_secret_that_begins_with_another_is_caught_whole_at_every_chunk_boundary(engine: type) -> None:
    short = "sk-live-0123456789"
    long = short + "-rest-of-the-longer-token"
    redactor = Redactor("svc", [Secret(short), Secret(long)], scanner=engine)
    body = b"a=" + long.encode() + b"&b=" + short.encode() + b"!"
    expected = b"a=[REDACTED:svc]&b=[REDACTED:svc]!"
    assert redactor.redact(body) == (expected, 2)
    for cut in range(1, len(body)):
        scrubber = redactor.stream()
        streamed = scrubber.feed(body[:cut]) + scrubber.feed(body[cut:]) + scrubber.flush()
        assert (streamed, scrubber.count) == (expected, 2), cut


@settings(max_examples=300, deadline=None)
@given(
    secrets=st.lists(st.text('abc-_/+=%"', min_size=4, max_size=12), min_size=1, max_size=3),
    data=st.binary(max_size=60).map(lambda b: bytes(b"abcYWJj2%-_&#;\\u06x"[c % 19] for c in b)),
)
def test_held_back_is_the_longest_tail_that_could_begin_a_form(secrets: list[str], data: bytes) -> None:
    """Long forms (every character escaped) begin with "%", "&" or "\\" and are looked for further back."""
    redactor = Redactor("svc", [Secret(s) for s in secrets], scanner=TrieScanner)
    forms = set().union(*(forms_of(s) for s in secrets))
    expected = max(
        (size for size in range(1, min(len(data), redactor.longest - 1) + 1)
         if any(form.startswith(data[-size:]) for form in forms)),
        default=0,
    )  # fmt: skip
    assert redactor.held_back(data) == expected


def test_every_form_alone_is_scrubbed_and_shorter_data_is_left_unscanned() -> None:
    secret = Secret("sk-live-0123456789abcdefXYZ")
    r = Redactor("svc", [secret])
    shortest = min(forms_of(secret.reveal()), key=len)
    assert r.redact(shortest) == (r.marker, 1)  # the shortest form is as long as data can be and still hold one
    assert all(r.redact(form)[1] == 1 for form in forms_of(secret.reveal()))
    assert r.redact(shortest[:-1]) == (shortest[:-1], 0)


def test_a_chunk_ending_in_a_byte_no_form_has_holds_nothing_back() -> None:
    redactor = Redactor("svc", [Secret(SECRET)])
    assert redactor.held_back(b"data: " + SECRET.encode()[:10]) == 10  # could be the secret's beginning
    assert redactor.held_back(b"data: " + SECRET.encode()[:10] + b"\n\n") == 0  # an event's end: no form has "\n"
