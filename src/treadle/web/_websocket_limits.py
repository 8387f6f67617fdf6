"""What a WebSocket connection accepts, and the two wsproto extensions that enforce it.

:class:`WebSocketLimits` holds every limit and timer of a connection; its defaults are on
for every connection (a Twisted program gets them without asking).

wsproto streams a frame's payload as it arrives, so nothing below buffers a whole frame; but
it neither bounds a message nor the output of its permessage-deflate decompressor, so one
small compressed frame could inflate to gigabytes in a single call (a compression bomb).
Two extensions, which are wsproto's only hooks on every frame, close that gap:

- :class:`MessageGuard`, never negotiated (no name a client can offer) and always on, sees
  each frame's header (its length, against ``maxFrameSize``) and every payload byte after
  decompression (the message so far, against ``maxMessageSize``);
- :class:`BoundedDeflate`, permessage-deflate (RFC 7692) as wsproto negotiates it, whose
  inbound side never asks zlib for more than the message may still grow by, and whose
  outbound side keeps a small compressor (see its docstring for the memory figures).

Either answers ``1009`` (message too big) through wsproto, which turns it into a close.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Final

from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason, Opcode, RsvBits

__all__ = ["BoundedDeflate", "MessageGuard", "WebSocketLimits"]

#: 1 MiB: the websockets library's default too (aiohttp allows 4 MiB, uvicorn 16 MiB).
DEFAULT_MAX_MESSAGE_SIZE: Final = 1 << 20
#: A frame is never larger than the message it belongs to, once decompressed.
DEFAULT_MAX_FRAME_SIZE: Final = 1 << 20
#: Bytes sent but not yet taken by the peer before the connection is dropped: four messages
#: of the largest size, for code that ignores the backpressure below.
DEFAULT_MAX_QUEUED_BYTES: Final = 4 << 20
#: Where backpressure starts (producers paused, ``await ws.send`` waits): asyncio's default.
DEFAULT_WRITE_HIGH_WATER: Final = 64 * 1024
#: The websockets library and uvicorn ping every 20 s and wait 20 s for the answer.
DEFAULT_PING_INTERVAL: Final = 20.0
DEFAULT_PONG_TIMEOUT: Final = 20.0
#: How long a close frame waits for the peer's (websockets: 10 s), and a client for its
#: handshake's answer.
DEFAULT_CLOSE_TIMEOUT: Final = 10.0
DEFAULT_OPEN_TIMEOUT: Final = 10.0

_NO_RSV: Final = RsvBits(False, False, False)
_RSV1: Final = RsvBits(True, False, False)
# Our compressor's window and memory level: 2**(12+2) + 2**(5+9) bytes, some 32 KiB, where
# zlib's defaults (15, 8) take 256 KiB per connection. A smaller window than negotiated is
# always valid (RFC 7692 §7.1.2); the websockets library makes the same choice.
_OUT_WINDOW_BITS: Final = 12
_OUT_MEM_LEVEL: Final = 5
_TAIL: Final = b"\x00\x00\xff\xff"


@dataclass(frozen=True, slots=True)
class WebSocketLimits:
    """The limits and timers of WebSocket connections (all on by default).

    Attributes:
        maxMessageSize: Bytes of one received message, after decompression; more closes
            the connection with ``1009``.
        maxFrameSize: Payload bytes of one received frame, as announced in its header;
            more closes with ``1009`` before any of it is read.
        maxQueuedBytes: Bytes sent but not yet taken by the peer; more drops the connection
            (a peer that reads nothing while the program ignores backpressure).
        writeHighWater: Bytes queued at which a producer attached with
            ``attachProducer`` is paused (and ``await ws.send`` waits), until the queue
            drains to a quarter of it.
        pingInterval: Seconds of silence from the peer after which a ping is sent (None:
            never).
        pongTimeout: Seconds the peer has to answer that ping with anything; then the
            connection closes with ``1011`` and is dropped.
        closeTimeout: Seconds a close frame waits for the peer's before the connection is
            dropped anyway.
        openTimeout: Seconds a client waits for the answer to its opening handshake.
        compression: Whether permessage-deflate is negotiated when the peer offers it
            (clients offer it when true).
    """

    maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE
    maxFrameSize: int = DEFAULT_MAX_FRAME_SIZE
    maxQueuedBytes: int = DEFAULT_MAX_QUEUED_BYTES
    writeHighWater: int = DEFAULT_WRITE_HIGH_WATER
    pingInterval: float | None = DEFAULT_PING_INTERVAL
    pongTimeout: float = DEFAULT_PONG_TIMEOUT
    closeTimeout: float = DEFAULT_CLOSE_TIMEOUT
    openTimeout: float = DEFAULT_OPEN_TIMEOUT
    compression: bool = True


class MessageGuard(Extension):
    """Counts each received frame and message against the limits; never negotiated.

    Put it last among a connection's extensions: its payload hook then sees the bytes
    after decompression.
    """

    name = "x-treadle-message-guard"  # (never offered, and refused if a peer offers it)

    def __init__(self, max_frame: int, max_message: int) -> None:
        self.max_frame = max_frame
        self.max_message = max_message
        #: Bytes of the message being received so far (after decompression).
        self.received = 0
        self._control = False

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool:
        return False

    def accept(self, offer: str) -> None:
        return None

    def remaining(self) -> int:
        """How many more bytes the message being received may grow by."""
        return self.max_message - self.received

    def frame_inbound_header(
        self, proto: Any, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        if payload_length > self.max_frame:
            return CloseReason.MESSAGE_TOO_BIG
        self._control = opcode.iscontrol()
        return _NO_RSV

    def frame_inbound_payload_data(self, proto: Any, data: bytes) -> bytes | CloseReason:
        if not self._control:
            self.received += len(data)
            if self.received > self.max_message:
                return CloseReason.MESSAGE_TOO_BIG
        return data

    def frame_inbound_complete(self, proto: Any, fin: bool) -> None:
        if fin and not self._control:
            self.received = 0


class BoundedDeflate(PerMessageDeflate):
    """permessage-deflate with decompression bounded by the message limit.

    Negotiation is wsproto's. Inbound, zlib is never asked for more than the message may
    still grow by (plus one byte, to tell "exactly the limit" from "over it"). Outbound,
    the compressor is a small one (see ``_OUT_WINDOW_BITS``), kept between messages unless
    the peer asked for no context takeover.

    Args:
        guard: The connection's :class:`MessageGuard`, whose count this shares.
        server: Whether this is the server's side.
    """

    def __init__(self, guard: MessageGuard, server: bool) -> None:
        super().__init__()
        self._guard = guard
        self._server = server
        self._inflater: Any = None  # zlib decompressobj while the peer keeps its context
        self._deflater: Any = None
        self._in_compressed: bool | None = None  # the message being received (its first frame)
        self._in_data = False  # the frame being received is a data frame

    def frame_inbound_header(
        self, proto: Any, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        control = opcode.iscontrol()
        if rsv.rsv1 and (control or opcode is Opcode.CONTINUATION):
            return CloseReason.PROTOCOL_ERROR  # RFC 7692 §6: RSV1 on a message's first frame only
        if control:
            self._in_data = False
            return _RSV1
        self._in_data = True
        if opcode is not Opcode.CONTINUATION:
            self._in_compressed = rsv.rsv1
            if rsv.rsv1 and self._inflater is None:
                bits = self.client_max_window_bits if self._server else self.server_max_window_bits
                self._inflater = zlib.decompressobj(-bits)
        return _RSV1

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        room = self._guard.remaining()
        try:
            out: bytes = self._inflater.decompress(data, room + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if len(out) > room:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_payload_data(self, proto: Any, data: bytes) -> bytes | CloseReason:
        if not (self._in_data and self._in_compressed):
            return data
        return self._inflate(data)

    def frame_inbound_complete(self, proto: Any, fin: bool) -> bytes | CloseReason | None:
        if not (fin and self._in_data):
            return None
        compressed, self._in_compressed = self._in_compressed, None
        if not compressed:
            return None
        out = self._inflate(_TAIL)
        if isinstance(out, CloseReason):
            return out
        # These last bytes skip the guard's payload hook: count them here.
        self._guard.received += len(out)
        takeover_off = (
            self.client_no_context_takeover if self._server else self.server_no_context_takeover
        )
        if takeover_off:
            self._inflater = None
        return out

    def frame_outbound(
        self, proto: Any, opcode: Opcode, rsv: RsvBits, data: bytes, fin: bool
    ) -> tuple[RsvBits, bytes]:
        if opcode.iscontrol():
            return rsv, data
        if opcode is not Opcode.CONTINUATION:
            rsv = RsvBits(True, rsv.rsv2, rsv.rsv3)
        deflater = self._deflater
        if deflater is None:
            # Never a larger window than the peer's decompressor was promised.
            agreed = self.server_max_window_bits if self._server else self.client_max_window_bits
            bits = min(agreed, _OUT_WINDOW_BITS)
            deflater = self._deflater = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -bits, _OUT_MEM_LEVEL
            )
        out = deflater.compress(data)
        if fin:
            out += deflater.flush(zlib.Z_SYNC_FLUSH)
            out = out[:-4]  # RFC 7692 §7.2.1: the empty block's tail is implied
            takeover_off = (
                self.server_no_context_takeover if self._server else self.client_no_context_takeover
            )
            if takeover_off:
                self._deflater = None
        return rsv, out
