"""RFC 6455 frames: an incremental parser and a serializer, with permessage-deflate (RFC 7692).

:class:`FrameCodec` is one connection's framing, either side, with no I/O: :meth:`~FrameCodec.feed`
gives it bytes, :meth:`~FrameCodec.next` pulls what they hold one event at a time (a whole
message, a ping, a pong, the peer's close, or a failure with the close code RFC 6455 gives), and
:meth:`~FrameCodec.message` and :meth:`~FrameCodec.control` add a frame's bytes to a list that
the caller writes once for many frames.

Why not wsproto's frames (treadle still uses wsproto to negotiate the opening handshake and
permessage-deflate): its parser is a generator that makes a ``Frame`` and an ``Event`` dataclass
per frame and a UTF-8 incremental decoder per message, and its serializer builds each frame in a
bytearray through the extension hooks. Profiled with py-spy under ``bench/ws_load.py`` (64
connections, 8 small text messages in flight on each), wsproto's receiving and sending took a
third of the server's time and the one write per frame most of the rest; the echo ran at 38k
messages/s. This codec parses a usual frame with a few index operations and makes no object per
frame but its payload (1 us per small message parsed and echoed, against wsproto's 12 us), and
with one write per read (:mod:`treadle.web._websocket_wire`) the echo runs at some 400k
messages/s on the same harness.

What the parser checks (each failure names the close code to send, and nothing after it is parsed):

- a client's frames are masked and a server's are not (§5.1, ``1002``);
- RSV1 only on the first frame of a compressed message when permessage-deflate was agreed, RSV2 and
  RSV3 never (§5.2, RFC 7692 §6; ``1002``); no reserved opcode (§5.2, ``1002``);
- lengths in their shortest form, the 64-bit one with its top bit clear (§5.2, ``1002``);
- control frames unfragmented and at most 125 bytes (§5.5, ``1002``);
- continuation frames only inside a message, and no new message before the last one ended
  (§5.4, ``1002``);
- text is valid UTF-8, checked as each fragment arrives (§8.1, ``1007``), and so is a close reason;
  a close frame's payload is empty or a code a peer may send (§7.4, ``1002``);
- ``maxFrameSize`` against a frame's announced length and ``maxMessageSize`` against the message
  so far (after decompression), before the payload is read (``1009``); a compressed message is
  never inflated further than the bytes it may still grow by, so a compression bomb stops at the
  limit; compressed bytes zlib refuses are ``1007``.

Payloads are unmasked by XOR over whole Python integers (small payloads) or by four strided
``bytes.translate`` passes (large ones), the fastest pure-Python ways measured; the module is
plain typed classes with ``__slots__`` so that mypyc can compile it.
"""

from __future__ import annotations

import codecs
import os
import zlib
from typing import Final

__all__ = [
    "BINARY",
    "CLOSE",
    "FAIL",
    "NEED_DATA",
    "PING",
    "PONG",
    "TEXT",
    "Deflate",
    "FrameCodec",
    "close_payload",
    "unmask",
]

# Opcodes (RFC 6455 §5.2), which are also what FrameCodec.next() returns for each event.
CONTINUATION: Final = 0x0
TEXT: Final = 0x1
BINARY: Final = 0x2
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA
#: next(): the bytes fed so far hold no further event.
NEED_DATA: Final = 0
#: next(): the peer broke the protocol or a limit; ``code`` and ``reason`` say what to send.
FAIL: Final = -1

_FIN: Final = 0x80
_RSV1: Final = 0x40
_RSV_ALL: Final = 0x70
_OPCODE: Final = 0x0F
_MASK_BIT: Final = 0x80
_LENGTH: Final = 0x7F
_LENGTH_16: Final = 126  # the 7-bit length saying "a 16-bit length follows"
_LENGTH_64: Final = 127
_MAX_CONTROL: Final = 125  # §5.5
_MASK_SIZE: Final = 4

# Close codes (RFC 6455 §7.4.1) this module sends.
PROTOCOL_ERROR: Final = 1002
NO_STATUS: Final = 1005
INVALID_DATA: Final = 1007
MESSAGE_TOO_BIG: Final = 1009
# §7.4.1, §7.4.2 and IANA's registry: the codes a peer may put in a close frame.
_REGISTERED_CODES: Final = frozenset(
    (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)
)
_PRIVATE_CODES_FROM: Final = 3000  # 3000-3999 registered by libraries, 4000-4999 private use
_PRIVATE_CODES_TO: Final = 4999
# Codes that only name what happened locally and never travel (§7.4.1): sent as 1000.
_LOCAL_ONLY: Final = frozenset((1004, 1006, 1015))

#: RFC 7692 §7.2.1: the tail a compressor's flush ends with, left off on the wire.
_DEFLATE_TAIL: Final = b"\x00\x00\xff\xff"
# Our compressor's window and memory level: 2**(12+2) + 2**(5+9) bytes, some 32 KiB, where
# zlib's defaults (15, 8) take 256 KiB per connection. A smaller window than agreed is always
# valid (RFC 7692 §7.1.2); the websockets library makes the same choice.
_OUT_WINDOW_BITS: Final = 12
_OUT_MEM_LEVEL: Final = 5

# Unmasking: below this many bytes one XOR of two integers is fastest; above it, four strided
# translate passes (some 2.5 times faster than the integers at 1 MiB).
_SMALL_PAYLOAD: Final = 1024
_XOR_TABLES: list[bytes] = []  # _XOR_TABLES[k]: each byte XOR k; built on first large payload

_Utf8Decoder: Final = codecs.getincrementaldecoder("utf-8")

# Two-byte heads of whole unmasked text and binary frames of fewer than 126 bytes (a server's
# usual frame): a lookup instead of building the head each time.
_TEXT_HEADS: Final = tuple(bytes((_FIN | TEXT, n)) for n in range(_LENGTH_16))
_BINARY_HEADS: Final = tuple(bytes((_FIN | BINARY, n)) for n in range(_LENGTH_16))


def unmask(data: bytes, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (RFC 6455 §5.3): masks and unmasks."""
    n = len(data)
    if n <= _SMALL_PAYLOAD:
        words = (n + 3) >> 2
        key = int.from_bytes(mask * words, "little")
        return (int.from_bytes(data, "little") ^ key).to_bytes(words << 2, "little")[:n]
    tables = _XOR_TABLES
    if not tables:
        tables.extend(bytes(i ^ k for i in range(256)) for k in range(256))
    out = bytearray(data)
    for j in range(_MASK_SIZE):
        out[j::_MASK_SIZE] = out[j::_MASK_SIZE].translate(tables[mask[j]])
    return bytes(out)


def close_payload(code: int, reason: str) -> bytes:
    """The payload of a close frame with ``code`` and ``reason`` (RFC 6455 §5.5.1).

    ``1005`` (no status) gives an empty payload; codes that never travel (``1004``, ``1006``,
    ``1015``) become ``1000``; the reason is cut to fit 125 bytes, on a character boundary.
    """
    if code == NO_STATUS:
        return b""
    if code in _LOCAL_ONLY:
        code = 1000
    text = reason.encode("utf-8")
    if len(text) > _MAX_CONTROL - 2:
        text = text[: _MAX_CONTROL - 2].decode("utf-8", "ignore").encode("utf-8")
    return code.to_bytes(2, "big") + text


class _Failure(Exception):
    """Raised inside the parser: the connection must be failed with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Deflate:
    """permessage-deflate (RFC 7692) as agreed in the handshake, one connection's state.

    Args:
        in_bits: The window the peer compresses with (``client_max_window_bits`` on a
            server): the inflater's.
        in_reset: Whether the peer resets its compressor after each message (its
            ``no_context_takeover``): the inflater is then reset too.
        out_bits: The most our compressor may use (``server_max_window_bits`` on a server).
        out_reset: Whether we must reset our compressor after each message.
    """

    __slots__ = ("_deflater", "_in_bits", "_in_reset", "_inflater", "_out_bits", "_out_reset")

    def __init__(self, in_bits: int, in_reset: bool, out_bits: int, out_reset: bool) -> None:
        self._in_bits = in_bits
        self._in_reset = in_reset
        self._out_bits = min(out_bits, _OUT_WINDOW_BITS)
        self._out_reset = out_reset
        self._inflater: zlib._Decompress | None = None
        self._deflater: zlib._Compress | None = None

    def inflate(self, data: bytes, room: int, last: bool) -> bytes:
        """Decompress a frame's payload, never to more than ``room`` bytes.

        Args:
            data: The payload.
            room: How many bytes the message may still grow by.
            last: Whether this frame ends the message (its tail is then added).

        Raises:
            _Failure: ``1009`` past ``room``, ``1007`` for bytes zlib refuses.
        """
        inflater = self._inflater
        if inflater is None:
            inflater = self._inflater = zlib.decompressobj(-self._in_bits)
        try:
            # One byte more than the room tells "exactly the limit" from "over it".
            out = inflater.decompress(data, room + 1)
            if last and len(out) <= room:
                out += inflater.decompress(_DEFLATE_TAIL, room + 1 - len(out))
        except zlib.error:
            raise _Failure(INVALID_DATA, "invalid compressed data") from None
        if len(out) > room:
            raise _Failure(MESSAGE_TOO_BIG, "message too big")
        if last and self._in_reset:
            self._inflater = None
        return out

    def compress(self, data: bytes) -> bytes:
        """Compress one whole message's payload (the tail left off, RFC 7692 §7.2.1)."""
        deflater = self._deflater
        if deflater is None:
            deflater = self._deflater = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self._out_bits, _OUT_MEM_LEVEL
            )
        out = deflater.compress(data) + deflater.flush(zlib.Z_SYNC_FLUSH)
        if self._out_reset:
            self._deflater = None
        return out[:-4] if out.endswith(_DEFLATE_TAIL) else out


class FrameCodec:
    """One connection's frames, either side: parse what arrives, serialize what is sent.

    Args:
        client: Whether this is the client's side (frames sent are masked, frames received
            must not be).
        max_frame: The largest payload a received frame may announce (``1009`` beyond).
        max_message: The largest message received, after decompression (``1009`` beyond).
        deflate: The agreed permessage-deflate, or None.

    Attributes:
        text: The message of the last :data:`TEXT` event.
        data: The payload of the last :data:`BINARY`, :data:`PING` or :data:`PONG` event.
        code: The close code of the last :data:`CLOSE` event (``1005`` when the frame had
            none), or the one to fail with after :data:`FAIL`.
        reason: The reason text beside ``code``.
    """

    __slots__ = (
        "_buf",
        "_client",
        "_compressed",
        "_decoder",
        "_deflate",
        "_done",
        "_held",
        "_held_size",
        "_max_frame",
        "_max_message",
        "_message",
        "_need",
        "_parts",
        "_pos",
        "_size",
        "_texts",
        "code",
        "data",
        "reason",
        "text",
    )

    def __init__(
        self, client: bool, max_frame: int, max_message: int, deflate: Deflate | None = None
    ) -> None:
        self._client = client
        self._max_frame = max_frame
        self._max_message = max_message
        self._deflate = deflate
        self._buf = b""  # bytes fed, parsed up to _pos
        self._pos = 0
        # A frame longer than what was fed: the bytes it needs from _pos, and the pieces fed
        # meanwhile (joined once it is all there, not at every read).
        self._need = 0
        self._held: list[bytes] | None = None
        self._held_size = 0
        self._done = False  # after the peer's close or a failure nothing more is parsed
        # The message being received in fragments: its opcode (0: none) and what came so far.
        self._message = 0
        self._compressed = False  # (its first frame had RSV1)
        self._size = 0  # bytes of it so far, decompressed
        self._parts: list[bytes] | None = None  # binary fragments
        self._texts: list[str] | None = None  # text fragments, decoded as they came
        self._decoder: codecs.IncrementalDecoder | None = None
        self.text = ""
        self.data = b""
        self.code = 0
        self.reason = ""

    # -- receiving ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Add bytes received; then call :meth:`next` until it returns :data:`NEED_DATA`."""
        if self._done:
            return
        if type(data) is not bytes:
            data = bytes(data)
        held = self._held
        if held is not None:  # waiting for a long frame's end
            held.append(data)
            self._held_size += len(data)
            if self._held_size < self._need:
                return
            self._held = None
            self._buf = b"".join(held)
        elif self._pos < len(self._buf):
            self._buf = self._buf[self._pos :] + data
        else:
            self._buf = data
        self._pos = 0

    def next(self) -> int:
        """The next event in the bytes fed: an opcode, :data:`NEED_DATA` or :data:`FAIL`.

        :data:`TEXT` (a whole message, in ``text``), :data:`BINARY`, :data:`PING`,
        :data:`PONG` (in ``data``), :data:`CLOSE` (``code``, ``reason``; nothing is parsed
        after it), or :data:`FAIL` (``code`` and ``reason`` to close with; nothing is parsed
        after it either).
        """
        while True:  # (once per frame until an event: fragments only add to the message)
            buf = self._buf
            pos = self._pos
            if len(buf) - pos < 2 or self._held is not None:
                return NEED_DATA
            first = buf[pos]
            second = buf[pos + 1]
            length = second & _LENGTH
            at = pos + 2
            if length >= _LENGTH_16:
                try:
                    length, at = self._long_length(buf, pos, length)
                except _Failure as failure:
                    return self._fail(failure)
                if at < 0:
                    return NEED_DATA
            if second & _MASK_BIT:
                if self._client:
                    return self._fail(_Failure(PROTOCOL_ERROR, "masked frame from the server"))
                at += _MASK_SIZE
            elif not self._client:
                return self._fail(_Failure(PROTOCOL_ERROR, "unmasked frame from a client"))
            # The usual frame, a whole text or binary message with no extension bit, is
            # checked here; every other frame in _check_header.
            usual = (first == _FIN | TEXT or first == _FIN | BINARY) and self._message == 0
            if not usual:
                try:
                    self._check_header(first, length)
                except _Failure as failure:
                    return self._fail(failure)
            elif length > self._max_frame or length > self._max_message:
                return self._fail(_Failure(MESSAGE_TOO_BIG, "message too big"))
            end = at + length
            if end > len(buf):
                self._wait(end - pos)
                return NEED_DATA
            self._pos = end
            payload = buf[at:end]
            if not self._client:
                payload = unmask(payload, buf[at - _MASK_SIZE : at])
            if usual:
                if first == _FIN | BINARY:
                    self.data = payload
                    return BINARY
                try:
                    self.text = payload.decode()
                except UnicodeDecodeError:
                    return self._fail(_Failure(INVALID_DATA, "invalid UTF-8 in a text message"))
                return TEXT
            try:
                kind = self._event(first, payload)
            except _Failure as failure:
                return self._fail(failure)
            if kind != NEED_DATA:
                return kind

    def _long_length(self, buf: bytes, pos: int, length: int) -> tuple[int, int]:
        """A 16- or 64-bit length and where the mask or payload starts; ``at`` -1: not here."""
        if length == _LENGTH_16:
            if len(buf) - pos < 4:
                return 0, -1
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            if length < _LENGTH_16:
                raise _Failure(PROTOCOL_ERROR, "frame length not in its shortest form")
            return length, pos + 4
        if len(buf) - pos < 10:
            return 0, -1
        length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
        if length >> 63:
            raise _Failure(PROTOCOL_ERROR, "64-bit frame length with its top bit set")
        if length <= 0xFFFF:
            raise _Failure(PROTOCOL_ERROR, "frame length not in its shortest form")
        return length, pos + 10

    def _check_header(self, first: int, length: int) -> None:
        """Check a frame's head before its payload is read (all but the usual frame)."""
        opcode = first & _OPCODE
        rsv = first & _RSV_ALL
        if opcode >= CLOSE:
            if opcode > PONG:
                raise _Failure(PROTOCOL_ERROR, "reserved opcode")
            if rsv:
                raise _Failure(PROTOCOL_ERROR, "reserved bit on a control frame")
            if not first & _FIN:
                raise _Failure(PROTOCOL_ERROR, "fragmented control frame")
            if length > _MAX_CONTROL:
                raise _Failure(PROTOCOL_ERROR, "control frame over 125 bytes")
            return
        if opcode > BINARY:
            raise _Failure(PROTOCOL_ERROR, "reserved opcode")
        if opcode == CONTINUATION:
            if self._message == 0:
                raise _Failure(PROTOCOL_ERROR, "continuation frame without a message")
            if rsv:  # (RFC 7692 §6.1: RSV1 on a message's first frame only)
                raise _Failure(PROTOCOL_ERROR, "reserved bit on a continuation frame")
            compressed = self._compressed
        else:
            if self._message != 0:
                raise _Failure(PROTOCOL_ERROR, "new message before the last one ended")
            if rsv and (rsv != _RSV1 or self._deflate is None):
                raise _Failure(PROTOCOL_ERROR, "reserved bit without an extension")
            compressed = rsv != 0
        if length > self._max_frame:
            raise _Failure(MESSAGE_TOO_BIG, "frame too big")
        # A compressed message is counted as it inflates (see Deflate.inflate).
        if not compressed and self._size + length > self._max_message:
            raise _Failure(MESSAGE_TOO_BIG, "message too big")

    def _event(self, first: int, payload: bytes) -> int:
        """Act on a whole frame other than the usual one: its event, or NEED_DATA when it
        was a fragment that only adds to the message."""
        opcode = first & _OPCODE
        fin = first & _FIN != 0
        if opcode >= CLOSE:
            if opcode == CLOSE:
                self._close(payload)
                return CLOSE
            self.data = payload
            return opcode
        if opcode != CONTINUATION:  # a message begins
            self._message = opcode
            self._compressed = first & _RSV1 != 0
        if self._compressed:
            assert self._deflate is not None
            payload = self._deflate.inflate(payload, self._max_message - self._size, fin)
        self._size += len(payload)
        if self._message == TEXT:
            return self._text_fragment(payload, fin)
        parts = self._parts
        if not fin:
            if parts is None:
                self._parts = [payload]
            else:
                parts.append(payload)
            return NEED_DATA
        if parts is not None:
            parts.append(payload)
            payload = b"".join(parts)
        self._end_message()
        self.data = payload
        return BINARY

    def _text_fragment(self, payload: bytes, fin: bool) -> int:
        decoder = self._decoder
        if fin and decoder is None:  # a whole message in one frame (compressed, say)
            try:
                self.text = payload.decode()
            except UnicodeDecodeError:
                raise _Failure(INVALID_DATA, "invalid UTF-8 in a text message") from None
            self._end_message()
            return TEXT
        if decoder is None:
            decoder = self._decoder = _Utf8Decoder()
            self._texts = []
        texts = self._texts
        assert texts is not None
        try:
            texts.append(decoder.decode(payload, fin))
        except UnicodeDecodeError:
            raise _Failure(INVALID_DATA, "invalid UTF-8 in a text message") from None
        if not fin:
            return NEED_DATA
        self.text = "".join(texts)
        self._end_message()
        return TEXT

    def _end_message(self) -> None:
        self._message = 0
        self._compressed = False
        self._size = 0
        self._parts = None
        self._texts = None
        self._decoder = None

    def _close(self, payload: bytes) -> None:
        self._done = True  # (RFC 6455 §5.5.1: nothing the peer sends after it counts)
        self._buf = b""
        self._pos = 0
        if not payload:
            self.code, self.reason = NO_STATUS, ""
            return
        if len(payload) == 1:
            raise _Failure(PROTOCOL_ERROR, "close frame with a 1-byte payload")
        code = (payload[0] << 8) | payload[1]
        if code not in _REGISTERED_CODES and not _PRIVATE_CODES_FROM <= code <= _PRIVATE_CODES_TO:
            raise _Failure(PROTOCOL_ERROR, "close code a peer may not send")
        try:
            self.reason = payload[2:].decode()
        except UnicodeDecodeError:
            raise _Failure(INVALID_DATA, "invalid UTF-8 in a close reason") from None
        self.code = code

    def _wait(self, need: int) -> None:
        """The frame at ``_pos`` needs ``need`` bytes: hold further reads until they came."""
        buf = self._buf[self._pos :]
        self._buf = b""
        self._pos = 0
        self._need = need
        self._held = [buf]
        self._held_size = len(buf)

    def _fail(self, failure: _Failure) -> int:
        self._done = True
        self._buf = b""
        self._pos = 0
        self._held = None
        self._parts = self._texts = None
        self._decoder = None
        self.code, self.reason = failure.code, failure.reason
        return FAIL

    # -- sending -----------------------------------------------------------------------------

    def message(self, out: list[bytes], opcode: int, payload: bytes) -> None:
        """Add one whole ``TEXT`` or ``BINARY`` message's frame to ``out`` (compressed when
        permessage-deflate was agreed, masked on a client)."""
        first = _FIN | opcode
        deflate = self._deflate
        if deflate is not None:
            payload = deflate.compress(payload)
            first |= _RSV1
        elif not self._client and len(payload) < _LENGTH_16:
            out.append((_TEXT_HEADS if opcode == TEXT else _BINARY_HEADS)[len(payload)])
            out.append(payload)
            return
        self._frame(out, first, payload)

    def control(self, out: list[bytes], opcode: int, payload: bytes) -> None:
        """Add a ``PING``, ``PONG`` or ``CLOSE`` frame to ``out`` (at most 125 bytes).

        Raises:
            ValueError: The payload is over 125 bytes.
        """
        if len(payload) > _MAX_CONTROL:
            raise ValueError(f"a control frame's payload is at most 125 bytes, not {len(payload)}")
        self._frame(out, _FIN | opcode, payload)

    def _frame(self, out: list[bytes], first: int, payload: bytes) -> None:
        n = len(payload)
        mask_bit = _MASK_BIT if self._client else 0
        if n < _LENGTH_16:
            head = bytes((first, mask_bit | n))
        elif n <= 0xFFFF:
            head = bytes((first, mask_bit | _LENGTH_16)) + n.to_bytes(2, "big")
        else:
            head = bytes((first, mask_bit | _LENGTH_64)) + n.to_bytes(8, "big")
        if self._client:
            mask = os.urandom(_MASK_SIZE)  # §5.3: unpredictable, from a strong source
            out.append(head + mask)
            out.append(unmask(payload, mask))
        else:
            out.append(head)
            out.append(payload)
