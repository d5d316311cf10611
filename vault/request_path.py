"""The path a server resolves from a request's path, as the proxy's path policy judges and sends it.

A path is judged after the normalisation a server would apply (``%2e`` decoded, ``.`` and
``..`` segments resolved, repeated slashes merged), and the normalised path is what is sent:
judging one spelling and forwarding another is how path filters are bypassed. Spellings that
some server reads differently from us are refused outright rather than guessed at (see
``_REFUSED_SPELLINGS``). Pure and in the vault, so the proxy (``addons.request_policy``) and the
MCP front's question before a write, which shows the path as it will be sent, read it alike.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote, unquote_to_bytes

# Checked on the path as received, in this order; the first that matches is the reason given.
_REFUSED_SPELLINGS = (
    (re.compile(r"[\x00-\x20\x7f]"), "a space or control character; percent-encode it"),
    (re.compile(r"%2f|%5c|\\", re.IGNORECASE), "an encoded ('%2f', '%5c') or backslash separator; use '/'"),
    (re.compile(r"%(?![0-9a-f]{2})", re.IGNORECASE), "a '%' that starts no two-digit escape (such as "
     "'%u002e'); write '%' as '%25'"),
    (re.compile(r"%25[0-9a-f]{2}", re.IGNORECASE), "a double-encoded character ('%25' then an escape, such as "
     "'%252e'), which a server that decodes twice reads as another character; encode the path once"),
    (re.compile(r";|%3b", re.IGNORECASE), "a path parameter (';'), which servlet containers cut off before "
     "resolving '..' (so '..;' is '..'); send the path without ';'"),
)  # fmt: skip
_ENCODED_DOT = re.compile(r"%2e", re.IGNORECASE)
_DECODED_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DOT_LIKE = re.compile(r"[.\s]*\.[.\s]*")
_SIGNIFICANT = frozenset("./\\;%")
# Not changed by NFKC, but turned into '/' or '\\' by the "best fit" conversions of Windows servers.
_BEST_FIT_SEPARATORS = frozenset("\u2044\u2215\u2216\u29f5")


def normalise_path(path: str) -> str:
    """The path part (no query) a server would resolve; ValueError for spellings servers read differently."""
    if not path.startswith("/"):
        raise ValueError(f"path {path!r} must start with '/'")
    for pattern, reason in _REFUSED_SPELLINGS:
        if pattern.search(path):
            raise ValueError(f"the path contains {reason}")
    _check_decoded(path)
    segments: list[str] = []
    parts = _ENCODED_DOT.sub(".", path).split("/")[1:]
    for index, segment in enumerate(parts):
        last = index == len(parts) - 1
        if segment == "..":
            if segments:
                segments.pop()
            if last:
                segments.append("")
        elif segment == ".":
            if last:
                segments.append("")
        elif "." in segment and _DOT_LIKE.fullmatch(unquote(segment)):
            raise ValueError(f"the path has a segment of dots and spaces ({segment!r}) that servers may trim to "
                             "'..'; write '.' or '..' plainly")  # fmt: skip
        elif segment or last:
            segments.append(segment)
    return "/" + "/".join(segments)


def _check_decoded(path: str) -> None:
    """The path as a server reads it once decoded: valid UTF-8 (overlong forms such as ``%c0%ae``
    are '.' to lax decoders), no control characters, no look-alike of a separator or a dot."""
    try:
        decoded = unquote_to_bytes(path.encode("utf-8", "surrogateescape")).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the path is not valid UTF-8 once decoded (overlong forms such as '%c0%ae' read as '.' "
                         "on some servers); encode it as UTF-8") from None  # fmt: skip
    if _DECODED_CONTROL.search(decoded):
        raise ValueError("the path contains an encoded control character ('%00'-'%1f', '%7f'), which servers "
                         "strip or stop at; leave it out")  # fmt: skip
    for char in "" if decoded.isascii() else decoded:
        if not char.isascii() and _reads_as_significant(char):
            raise ValueError(f"the path contains U+{ord(char):04X}, which servers that normalise Unicode read as "
                             "'.', '/', '\\', ';' or '%'; use the ASCII character")  # fmt: skip


def _reads_as_significant(char: str) -> bool:
    return char in _BEST_FIT_SEPARATORS or not _SIGNIFICANT.isdisjoint(unicodedata.normalize("NFKC", char))
