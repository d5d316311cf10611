"""proxy/base_url.py's request-target split and key check against the code they replaced, on
seeded random targets and keys: the same splits, the same errors, the same agent found."""

from __future__ import annotations

import hashlib
import hmac
import random
import re

from clavis_mcp.proxy.base_url import AGENT_PREFIX, SERVICE_PREFIX, Target, agent_of, parse_target

CASES = 20_000
_NAME_END = re.compile("[/?]")


def reference_parse_target(path: str) -> Target | None:
    """parse_target as it was, with a regular expression finding the end of the service's name."""
    key = None
    if path.startswith(AGENT_PREFIX):
        key, sep, path = path[len(AGENT_PREFIX) :].partition("/")
        path = "/" + path
        if not key or not sep or not path.startswith(SERVICE_PREFIX):
            raise ValueError("an agent-key URL is /a/<agent key>/s/<service>/<path>")
    elif not path.startswith(SERVICE_PREFIX):
        return None
    rest = path[len(SERVICE_PREFIX) :]
    end = _NAME_END.search(rest)
    cut = end.start() if end else len(rest)
    name, rest = rest[:cut], rest[cut:]
    service, _, host = name.partition("@")
    if not service:
        raise ValueError("a base-URL request is /s/<service>/<path>: the service name is missing")
    if not rest.startswith("/"):
        rest = "/" + rest
    return Target(key, service, host, rest)


def _outcome(parse: object, path: str) -> object:
    try:
        return parse(path)  # type: ignore[operator]
    except ValueError as exc:
        return ("ValueError", str(exc))


def test_parse_target_splits_as_the_reference_did() -> None:
    rng = random.Random(1907)
    pieces = ["/", "?", "@", "s", "a", "svc", "host:8443", "%2F", "#", "&", "=", "v1", "", "/s/", "/a/", "k3y"]
    splits = refused = differ = 0
    for _ in range(CASES):
        head = rng.choice(["/s/"] * 4 + ["/a/k3y/s/"] * 2 + ["/a/", "/a//s/", "/a/k3y/", "/", "/x/", ""])
        path = head + "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 8)))
        ours, theirs = _outcome(parse_target, path), _outcome(reference_parse_target, path)
        differ += ours != theirs
        splits += isinstance(theirs, Target)
        refused += isinstance(theirs, tuple)
    assert differ == 0
    assert splits > CASES // 4 and refused > CASES // 20


def reference_agent(key: str, tokens: dict[str, str]) -> str | None:
    """The key check as it was: SHA-256 digests compared in constant time against every token."""
    wanted = hashlib.sha256(key.encode()).digest()
    found = None
    for name, token in tokens.items():
        if hmac.compare_digest(wanted, hashlib.sha256(token.encode()).digest()) and token:
            found = name
    return found


def test_the_key_check_finds_the_agent_the_reference_found() -> None:
    rng = random.Random(1908)
    alphabet = "abcXYZ019-_.~ é"
    differ = matched = 0
    for _ in range(CASES // 4):
        tokens = {f"agent{i}": "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12))) for i in range(4)}
        key = rng.choice([*tokens.values(), "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 12)))])
        expected = reference_agent(key, tokens)
        differ += agent_of(key, tokens) != expected
        matched += expected is not None
    assert differ == 0
    assert matched > CASES // 8
