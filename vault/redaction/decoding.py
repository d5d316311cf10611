"""Bounded decoding of HTTP content codings: no body expands past the bound its reader sets.

A kilobyte of brotli can hold a gigabyte of zeros (a decompression bomb), so nothing here
decodes a body whole. A decoder works in steps of about :data:`STEP` bytes of output (zlib's
``max_length`` with ``unconsumed_tail``, brotli's ``output_buffer_limit``) and stops at the
budget its caller gives each call, after handing over exactly that many bytes. zstandard has
no ``max_length`` for data that arrives in pieces: its output goes through a writer that
stops the decoder once the budget is passed, so a zstd step is bounded by the budget rather
than by STEP, and its window is held to the 8 MB an HTTP sender may use (RFC 8878 §3.1.1.1.2).

It decodes what a client would, so that what the proxy scans is what the client reads: every
member of a gzip body, every zstd frame. What it cannot decode whole (an unknown or chained
coding, garbage, data after the end, a body that ends before its coding does) is an error
(:class:`~.errors.DecodeError`, :class:`~.errors.DecodedTooLarge`; the tree is in :mod:`.errors`).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator, Mapping
from typing import Protocol

import brotli
import zstandard

from ..errors import DecodedTooLarge, DecodeError, InvalidDecodeLimit

STEP = 1024 * 1024  # output asked of a codec at a time
DEFAULT_MAX_DECODED = 64 * 1024 * 1024
MAX_DECODED_ENV = "CLAVIS_MAX_DECODED_BYTES"
ZSTD_MAX_WINDOW = 8 * 1024 * 1024
IDENTITY = frozenset({"", "identity"})


def max_decoded_from_env(env: Mapping[str, str] | None = None) -> int:
    """The most one response may decode to: :data:`DEFAULT_MAX_DECODED` unless the environment says."""
    raw = (os.environ if env is None else env).get(MAX_DECODED_ENV, "")
    if not raw:
        return DEFAULT_MAX_DECODED
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise InvalidDecodeLimit(f"{MAX_DECODED_ENV}={raw!r} is not a positive number of bytes; unset it or give one")
    return value


def is_identity(encoding: str) -> bool:
    return encoding.strip().lower() in IDENTITY


class _Codec(Protocol):
    def feed(self, data: bytes, limit: int) -> Iterator[bytes]:
        """Decoded pieces of ``data``; stops soon after more than ``limit`` bytes came out."""
        ...

    def ended(self) -> bool:
        """Whether the input so far is a complete body in this coding."""
        ...


class _Identity:
    def feed(self, data: bytes, limit: int) -> Iterator[bytes]:
        yield data

    def ended(self) -> bool:
        return True


class _Zlib:
    """gzip (every member) or deflate (one stream, zlib-wrapped or raw, as sent in practice)."""

    def __init__(self, wbits: int | None) -> None:
        self._wbits = wbits  # None: deflate, told apart by its first bytes
        self._d: zlib._Decompress | None = None

    def feed(self, data: bytes, limit: int) -> Iterator[bytes]:
        left = limit
        while True:
            d = self._decompressor(data)
            ask = min(STEP, left + 1)
            out = d.decompress(data, ask)
            if out:
                left -= len(out)
                yield out
                if left < 0:
                    return
            if d.eof:
                data = d.unused_data
                if not data:
                    return
                continue
            data = d.unconsumed_tail
            if not data and len(out) < ask:
                return

    def _decompressor(self, data: bytes) -> zlib._Decompress:
        if self._d is None or self._d.eof:
            if self._d is not None and self._wbits is None:
                raise DecodeError("the deflate body goes on after its end")
            self._d = zlib.decompressobj(self._wbits if self._wbits is not None else _deflate_wbits(data))
        return self._d

    def ended(self) -> bool:
        return self._d is not None and self._d.eof


def _deflate_wbits(head: bytes) -> int:
    """zlib-wrapped when the first two bytes are a valid zlib header, raw deflate otherwise."""
    wrapped = head[0] & 0x0F == 8 and (len(head) < 2 or (head[0] << 8 | head[1]) % 31 == 0)
    return zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS


class _BrotliDecompressor(Protocol):
    """What is used of ``brotli.Decompressor`` (the brotli package ships no types)."""

    def process(self, data: bytes, output_buffer_limit: int) -> bytes: ...

    def can_accept_more_data(self) -> bool: ...

    def is_finished(self) -> bool: ...


class _Brotli:
    def __init__(self) -> None:
        self._d: _BrotliDecompressor = brotli.Decompressor()

    def feed(self, data: bytes, limit: int) -> Iterator[bytes]:
        left = limit
        out = self._d.process(data, output_buffer_limit=min(STEP, left + 1))
        while True:
            if out:
                left -= len(out)
                yield out
                if left < 0:
                    return
            elif self._d.can_accept_more_data():
                return
            out = self._d.process(b"", output_buffer_limit=min(STEP, left + 1))

    def ended(self) -> bool:
        return self._d.is_finished()


class _Full(Exception):
    """Raised through zstandard's writer to stop the decoder once the budget is passed."""


class _Collector:
    """The writer zstandard decodes into: keeps pieces up to the budget and one past it."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.left = 0

    def write(self, data: bytes) -> int:
        self.pieces.append(bytes(data))
        self.left -= len(data)
        if self.left < 0:
            raise _Full
        return len(data)


class _Zstd:
    """Every frame; a body cut inside a frame is not noticed (the writer does not say where frames end)."""

    def __init__(self) -> None:
        self._out = _Collector()
        decompressor = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        # zstandard's stub asks for IO[bytes]; the writer only calls write() (and flush() where there is one)
        self._writer = decompressor.stream_writer(
            self._out,  # type: ignore[arg-type]
            write_size=STEP,
            write_return_read=True,
        )

    def feed(self, data: bytes, limit: int) -> Iterator[bytes]:
        self._out.left = limit
        try:
            self._writer.write(data)
        except _Full:
            pass
        pieces, self._out.pieces = self._out.pieces, []
        yield from pieces

    def ended(self) -> bool:
        return True


def _codec(encoding: str) -> _Codec:
    match encoding:
        case "identity":
            return _Identity()
        case "gzip" | "x-gzip":
            return _Zlib(16 + zlib.MAX_WBITS)
        case "deflate":
            return _Zlib(None)
        case "br":
            return _Brotli()
        case "zstd":
            return _Zstd()
    # the name is not repeated: it is upstream text, and error messages reach the model
    raise DecodeError("the body has a content coding clavis-mcp does not decode (it decodes gzip, deflate, br, zstd)")


class BoundedDecoder:
    """Decodes one body piece by piece; no call gives more than the budget its caller sets.

    Past the budget a call hands over exactly the budget, raises :class:`DecodedTooLarge`, and
    the decoder is spent: a body that broke a bound, or failed to decode, is not decoded further.
    """

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding.strip().lower() or "identity"
        self._codec = _codec(self.encoding)
        self._fed = False
        self._spent = False

    def decode(self, data: bytes, budget: int) -> Iterator[bytes]:
        """The pieces ``data`` decodes to, at most ``budget`` bytes together."""
        if self._spent:
            raise DecodeError(f"the {self.encoding} body already failed to decode")
        if not data:
            return
        self._fed = True
        left = budget
        try:
            for piece in self._codec.feed(data, budget):
                if len(piece) > left:
                    self._spent = True
                    if left:
                        yield piece[:left]
                    raise DecodedTooLarge(self.encoding, budget)
                left -= len(piece)
                yield piece
        except (zlib.error, brotli.error, zstandard.ZstdError) as exc:
            self._spent = True
            raise DecodeError(f"the body is not valid {self.encoding} ({exc})") from None
        except DecodeError:
            self._spent = True
            raise

    def finish(self) -> None:
        """Refuse a body that ended before its coding did (cut short); an empty body is whole."""
        if self._fed and not self._codec.ended():
            raise DecodeError(f"the {self.encoding} body ends before its coding does (cut short)")


def decode_body(encoding: str, data: bytes, limit: int) -> bytes:
    """A whole body decoded, at most ``limit`` bytes; an identity body is returned as it is
    (it expands nothing, and it is already in memory)."""
    if is_identity(encoding):
        return data
    decoder = BoundedDecoder(encoding)
    body = b"".join(decoder.decode(data, limit))  # one piece is returned as it is, not copied
    decoder.finish()
    return body
