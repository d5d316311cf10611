"""Agent-chosen text as a person can read it whole: every character outside printable ASCII escaped.

Used wherever a person judges text an agent chose: the MCP client's question before a write
(``mcp_front.confirm.quoted``) and the approval queue (:func:`vault.approvals.printable`), so
both show a request the same way.

The rule is an allowlist, U+0020 to U+007E shown as themselves and everything else written as
``\\xNN``, ``\\uXXXX`` or ``\\UXXXXXXXX``, because a denylist of "invisible" characters never
ends: beyond controls, bidi and zero-width format characters there are variation selectors
(U+FE00-FE0F, U+E0100-E01EF, enough to spell any bytes in what displays as one letter), other
default-ignorable characters (U+034F, U+180B-180D, U+17B4), blank letters (U+3164, U+115F,
U+FFA0, U+2800), stacking combining marks, and look-alikes of the backquote that closes a quote
(U+FF40, U+02CB, U+1FEF), and each Unicode version adds more. The cost, text in other scripts
shown as escapes, is acceptable in a question whose point is that nothing is hidden.
"""

from __future__ import annotations

_PRINTABLE_ASCII = frozenset(map(chr, range(0x20, 0x7F)))


def visible(text: str, escapes: dict[str, str] | None = None) -> str:
    """``text`` with every character outside printable ASCII escaped, and those in ``escapes``
    (such as the quote a caller wraps it in) written as given there."""
    extra = escapes or {}
    return "".join(extra.get(c) or (c if c in _PRINTABLE_ASCII else _escaped(c)) for c in text)


def _escaped(c: str) -> str:
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
