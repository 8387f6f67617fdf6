"""One WebSocket connection on the wire: its frames, the limits, keepalive and closing.

:class:`WebSocketWire` is an :class:`asyncio.Protocol` (what an HTTP channel hands an
upgraded connection to, see :meth:`treadle.web._channel.HTTPChannel.switch_protocol`) and
also speaks Twisted's protocol interface (``makeConnection``, ``dataReceived``,
``connectionLost``) for connections made through Twisted endpoints and transports. It is
the ``transport`` a program's :class:`~treadle.web.websocket.WebSocketProtocol` is given.

Frames are parsed and made by :class:`~treadle.web._websocket_frames.FrameCodec` (RFC 6455's
checks and the size limits live there). What this module adds:

- the frames one read of the peer's bytes makes us send (echoes, pongs, a close) go out in one
  ``transport.write`` when that read has been handled, not one write per frame (a write is a
  system call: made per frame, it took more than half of an echo server's time); sends
  made outside a read are written at once, but for the async form's, gathered until the
  loop's next turn (:meth:`WebSocketWire.cork`); past 128 frames, or ``writeHighWater``
  bytes, what was gathered is written at once;
- pings are answered; the peer is pinged after ``pingInterval`` seconds of silence, and a
  peer that then stays silent for ``pongTimeout`` is closed with ``1011`` and dropped; the
  pongs of these keepalive pings are not passed to the program;
- a close frame from the peer is answered and the connection closed; one we send waits
  ``closeTimeout`` for the answer, then the connection is dropped;
- bytes a peer sends that break RFC 6455 or the limits (see
  :mod:`treadle.web._websocket_frames`) close the connection with the code the RFC gives
  (``1002``, ``1007``, ``1009``) right away, without waiting for an answer;
- an exception from the program's callbacks is logged and closes the connection with
  ``1011``;
- writing is paced: past ``writeHighWater`` queued bytes an attached producer is paused,
  and past ``maxQueuedBytes`` the connection is dropped (a peer that reads nothing).

Sending after the close began does nothing (Twisted's wsproto raises there).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Final

from treadle.internet._timers import TimerHeap
from treadle.internet._transport import Transport
from treadle.internet.error import ConnectionDone, ConnectionLost
from treadle.python.failure import Failure
from treadle.web._channel_transport import TwistedTransportAdapter
from treadle.web._websocket_frames import (
    BINARY,
    CLOSE,
    NEED_DATA,
    PING,
    PONG,
    TEXT,
    FrameCodec,
    close_payload,
)
from treadle.web._websocket_limits import WebSocketLimits

__all__ = ["WebSocketWire"]

error_log = logging.getLogger("treadle.error")

# The close handshake (RFC 6455 §7): open; our close frame sent, the peer's awaited; done (the
# close frames exchanged, or the connection failed or lost).
OPEN: Final = 0
CLOSING: Final = 1
CLOSED: Final = 2
#: RFC 6455 §7.4.1 codes this module sends.
GOING_AWAY: Final = 1001
INTERNAL_ERROR: Final = 1011
ABNORMAL_CLOSURE: Final = 1006
# The frames gathered for one write (see _send) are written at once past 128 frames (two
# pieces each), or when their payloads reach the write high-water mark.
_GATHER_PIECES: Final = 256


class WebSocketWire:
    """One WebSocket connection; the ``WebSocketTransport`` its program writes to.

    Args:
        user: The program's ``WebSocketProtocol``.
        limits: The connection's limits and timers.
        codec: The connection's frames, once the opening handshake is over (a client's
            subclass makes it when the answer arrives).
        deadlines: Where the connection's one timer lives.
        client: Whether this is the client's side.

    Attributes:
        closeCode: The close code the connection ended with: the peer's, or the one we
            sent when we failed it; 1006 when it ended without a close frame; None while
            open.
        closeReason: The reason text beside ``closeCode``.
        subprotocol: The subprotocol agreed in the handshake, or None.
    """

    __slots__ = (
        "_awaiting",
        "_closing",
        "_codec",
        "_deadlines",
        "_drain_waiter",
        "_early",
        "_failed",
        "_gathered",
        "_handle",
        "_limits",
        "_lost",
        "_out",
        "_paused",
        "_pending",
        "_producer",
        "_rx",
        "_state",
        "_transport",
        "_user",
        "client",
        "closeCode",
        "closeReason",
        "subprotocol",
    )

    def __init__(
        self,
        user: Any,
        limits: WebSocketLimits,
        codec: FrameCodec | None,
        deadlines: TimerHeap,
        client: bool = False,
    ) -> None:
        self._user = user
        self._limits = limits
        self._codec = codec
        self._state = OPEN
        self._deadlines = deadlines
        self.client = client
        self._transport: Any = None
        # Bytes written before the connection was handed over (negotiationStarted).
        self._pending: list[bytes] | None = []
        # Messages a client sends before the answer to its handshake (framed once it came).
        self._early: list[tuple[int, bytes]] | None = None
        self._handle: Any = None
        self._rx = False  # something arrived since the timer last looked
        self._awaiting: bytes | None = None  # the payload of our unanswered keepalive ping
        self._closing: float | None = None  # when we began closing (waiting for the peer)
        self._failed = False
        self._lost = False
        # While a read is handled: the bytes of the frames it makes us send (one write after).
        self._out: list[bytes] | None = None
        self._gathered = 0  # payload bytes in _out
        self._paused = False
        self._producer: Any = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self.closeCode: int | None = None
        self.closeReason = ""
        self.subprotocol: str | None = None

    # -- WebSocketTransport (what the program calls) ----------------------------------------

    def sendTextMessage(self, text: str) -> None:
        """Send ``text`` as one text message."""
        self._send(TEXT, text.encode())

    def sendBytesMessage(self, data: bytes) -> None:
        """Send ``data`` as one binary message."""
        self._send(BINARY, data)

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping; the peer's pong arrives at the protocol's ``pongReceived``.

        Raises:
            ValueError: ``payload`` is over 125 bytes (RFC 6455 §5.5).
        """
        codec = self._codec
        if codec is not None and self._state == OPEN:
            self._control(codec, PING, payload)
        elif len(payload) > 125:
            raise ValueError("a ping's payload is at most 125 bytes")

    def loseConnection(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code``: send the close frame, then close once the peer answers.

        The connection is dropped if no answer comes within ``closeTimeout``.
        """
        codec = self._codec
        if self._lost:
            return
        if codec is None:  # a client before its handshake's answer
            self._close_transport()
            return
        if self._state == OPEN:
            self.closeCode, self.closeReason = code, reason
            self._control(codec, CLOSE, close_payload(code, reason))
            self._state = CLOSING
            self._begin_closing()

    def attachProducer(self, producer: Any) -> None:
        """Pause and resume ``producer`` (an ``IPushProducer``) as the peer reads.

        Raises:
            RuntimeError: A producer is attached already.
        """
        if self._producer is not None:
            raise RuntimeError(
                f"Cannot attach producer {producer!r}: {self._producer!r} is still attached"
            )
        if self._lost:
            producer.stopProducing()
            return
        self._producer = producer
        if self._paused:
            producer.pauseProducing()

    def detachProducer(self) -> None:
        """Forget the attached producer (no-op when none)."""
        self._producer = None

    # -- what the async form uses ------------------------------------------------------------

    def cork(self) -> None:
        """Gather the frames sent until the loop's next turn into one write.

        The async form's ``send`` calls this: a handler answering a read's messages one at a
        time then writes its answers together, as a callback answering inside the read does.
        Without a running loop (driven by hand) it does nothing.
        """
        if self._out is not None or self._transport is None or self._state != OPEN:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._out = []
        loop.call_soon(self._uncork)

    def _uncork(self) -> None:
        # (Never inside a read: the loop runs this between callbacks.)
        if self._out is not None:
            self._flush()
            self._out = None

    async def drain(self) -> None:
        """Wait until the queued outgoing bytes are below the low-water mark."""
        if not self._paused or self._lost:
            return
        waiter = self._drain_waiter
        if waiter is None:
            waiter = self._drain_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(waiter)

    def pause_reading(self) -> None:
        """Stop reading from the peer (the program is behind with its messages)."""
        if self._transport is not None and not self._lost:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Read from the peer again."""
        if self._transport is not None and not self._lost:
            self._transport.resume_reading()

    @property
    def limits(self) -> WebSocketLimits:
        """The connection's limits and timers."""
        return self._limits

    @property
    def disconnected(self) -> bool:
        """True once the connection is gone."""
        return self._lost

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        set_limits = getattr(transport, "set_write_buffer_limits", None)
        if set_limits is not None:
            set_limits(high=self._limits.writeHighWater)
        pending, self._pending = self._pending, None
        if pending:
            self._write(b"".join(pending))
        self._schedule()
        if not self.client:
            self._call(self._user.negotiationFinished)

    def data_received(self, data: bytes) -> None:
        codec = self._codec
        if codec is None or self._failed or self._state == CLOSED:
            return
        self._rx = True
        outer = self._out
        if outer is None:  # (not a read inside a read's callbacks: that one writes)
            self._out = []
        try:
            codec.feed(data)
            self._process(codec)
        except Exception:
            # A bug (ours), never the peer's doing: this connection only ends.
            error_log.exception("error reading WebSocket frames from %s", _peer_of(self._transport))
            self._fail(INTERNAL_ERROR, "internal error")
            self._abort()
        if outer is None:
            self._flush()
            self._out = None

    def _process(self, codec: FrameCodec) -> None:
        """Deliver the events of the bytes fed to ``codec``, until it needs more."""
        user = self._user
        while True:
            kind = codec.next()
            if kind == TEXT:
                try:
                    user.textMessageReceived(codec.text)
                except Exception:
                    self._callback_failed()
                    return
            elif kind == NEED_DATA:
                return
            elif kind == BINARY:
                try:
                    user.bytesMessageReceived(codec.data)
                except Exception:
                    self._callback_failed()
                    return
            elif kind == PING:
                if self._state == OPEN:
                    self._control(codec, PONG, codec.data)
            elif kind == PONG:
                self._pong(codec.data)
            elif kind == CLOSE:
                self._close_frame(codec.code, codec.reason)
                return
            else:  # FAIL: the peer broke the protocol or a limit
                self._fail(codec.code, codec.reason)
                return
            if self._failed or self._lost:
                return

    def eof_received(self) -> bool | None:
        # The peer is done (after a failure we half-closed, it answers so): close.
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        if self._handle is not None:
            self._deadlines.discard(self)
        self._transport = None
        self._state = CLOSED
        self._out = None
        producer, self._producer = self._producer, None
        if producer is not None:
            self._call(producer.stopProducing)
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.closeCode is None:
            self.closeCode = ABNORMAL_CLOSURE
        reason: BaseException
        if exc is None:
            reason = ConnectionDone()
        elif isinstance(exc, ConnectionLost):
            reason = exc  # (ConnectionAborted when an HTTP channel cut the connection off)
        else:
            reason = ConnectionLost(str(exc) or type(exc).__name__)
        self._call(self._user.connectionLost, Failure(reason))

    def pause_writing(self) -> None:
        self._paused = True
        if self._producer is not None:
            self._call(self._producer.pauseProducing)

    def resume_writing(self) -> None:
        self._paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._producer is not None:
            self._call(self._producer.resumeProducing)

    def close_when_idle(self) -> None:
        """The server is shutting down: close with ``1001`` (going away)."""
        self.loseConnection(GOING_AWAY, "server shutting down")

    # -- Twisted's protocol interface (a connection through Twisted endpoints) ---------------

    def makeConnection(self, transport: Any) -> None:
        """Start on a Twisted transport: treadle's own is unwrapped, any other adapted.

        (Not while TLS is being started on it: its asyncio transport is still the plain one.)
        """
        raw = getattr(transport, "_raw", None) if isinstance(transport, Transport) else None
        if raw is not None and not transport.disconnected and transport._tls_pending is None:
            raw.set_protocol(self)
            self.connection_made(raw)
            return
        self.connection_made(TwistedTransportAdapter(transport, self))

    def dataReceived(self, data: bytes) -> None:
        """Bytes from a Twisted transport."""
        self.data_received(data)

    def connectionLost(self, reason: Any = None) -> None:
        """A Twisted transport's connection ended."""
        value = getattr(reason, "value", reason)
        self.connection_lost(None if value is None or isinstance(value, ConnectionDone) else value)

    def pauseProducing(self) -> None:
        """A Twisted transport's buffer is full."""
        self.pause_writing()

    def resumeProducing(self) -> None:
        """A Twisted transport's buffer drained."""
        self.resume_writing()

    def stopProducing(self) -> None:
        """A Twisted transport is going away (``connectionLost`` follows)."""

    # -- inside --------------------------------------------------------------------------------

    def _send(self, opcode: int, payload: bytes) -> None:
        """Send one message: added to the read's frames inside a read, else written now."""
        if self._state != OPEN or self._failed:
            return
        codec = self._codec
        if codec is None:  # a client before the answer: framed once it came
            if self.client and not self._lost:
                if self._early is None:
                    self._early = []
                self._early.append((opcode, payload))
            return
        out = self._out
        if out is not None:
            codec.message(out, opcode, payload)
            # Past a bound what was gathered goes now, so that the transport's backpressure
            # and the queued-bytes limit see it.
            self._gathered += len(payload)
            if self._gathered >= self._limits.writeHighWater or len(out) >= _GATHER_PIECES:
                self._flush()
            return
        frames: list[bytes] = []
        codec.message(frames, opcode, payload)
        self._write(b"".join(frames))

    def _control(self, codec: FrameCodec, opcode: int, payload: bytes) -> None:
        out = self._out
        if out is not None:
            codec.control(out, opcode, payload)
            return
        frames: list[bytes] = []
        codec.control(frames, opcode, payload)
        self._write(b"".join(frames))

    def _flush(self) -> None:
        """Write the frames gathered while handling a read (before closing, say)."""
        out = self._out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            self._gathered = 0
            self._write(data)

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            if self._pending is not None:
                self._pending.append(data)
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self._limits.maxQueuedBytes:
            error_log.warning(
                "WebSocket peer %s reads too slowly: more than %d bytes queued; dropped",
                _peer_of(transport),
                self._limits.maxQueuedBytes,
            )
            self._abort()

    def _call(self, method: Any, *args: Any) -> bool:
        """Run the program's ``method``; an error in it is logged and closes with 1011."""
        try:
            method(*args)
        except Exception:
            self._callback_failed()
            return False
        return True

    def _callback_failed(self) -> None:
        error_log.exception("error in WebSocket protocol %r", self._user)
        if not self._lost:
            self._fail(INTERNAL_ERROR, "internal error")

    def _pong(self, payload: bytes) -> None:
        if self._awaiting is not None and payload == self._awaiting:
            self._awaiting = None  # our keepalive's: the program did not ask for it
            return
        self._call(self._user.pongReceived, payload)

    def _close_frame(self, code: int, reason: str) -> None:
        codec = self._codec
        assert codec is not None
        if self._state == OPEN:  # the peer began: answer, then close
            self.closeCode, self.closeReason = code, reason
            self._control(codec, CLOSE, close_payload(code, reason))
        self._state = CLOSED  # (else the answer to ours)
        self._close_transport()

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 §7.1.7): a close frame if we can, then close.

        The peer may still be sending: closing with its bytes unread would make the kernel
        reset the connection, which can destroy the close frame before the peer reads it.
        So, where the transport can half-close, we send our FIN and close once the peer
        closes too (or after ``closeTimeout``), dropping what it still sends.
        """
        self._failed = True
        codec = self._codec
        if codec is not None and self._state == OPEN:
            self.closeCode, self.closeReason = code, reason
            self._control(codec, CLOSE, close_payload(code, reason))
        self._state = CLOSED
        transport = self._transport
        if transport is None or self._lost:
            return
        self._flush()
        can_write_eof = getattr(transport, "can_write_eof", None)
        if can_write_eof is not None and can_write_eof() and not transport.is_closing():
            transport.write_eof()
            self._begin_closing()
        else:
            self._close_transport()

    def _close_transport(self) -> None:
        transport = self._transport
        if transport is None or self._lost:
            return  # (before the hand-over: the timer starts with the connection)
        self._flush()
        self._begin_closing()
        transport.close()

    def _abort(self) -> None:
        self._failed = True
        if self._out:
            self._out.clear()
        transport = self._transport
        if transport is not None and not self._lost:
            transport.abort()

    # -- the one timer: keepalive, and the close handshake's deadline ---------------------

    def _begin_closing(self) -> None:
        if self._closing is not None or self._transport is None:
            return
        deadlines = self._deadlines
        self._closing = deadlines.now()
        if self._handle is not None:
            deadlines.discard(self)
        deadlines.add(self, self._limits.closeTimeout)

    def _schedule(self) -> None:
        """Arm the timer for the state the connection is in (after connection_made)."""
        if self._codec is not None and self._state != OPEN:
            self._begin_closing()
        elif self._limits.pingInterval is not None and self._handle is None:
            self._deadlines.add(self, self._limits.pingInterval)

    def _due(self) -> None:
        if self._lost or self._transport is None:
            return
        limits = self._limits
        if self._closing is not None:
            self._abort()  # the close handshake took too long (or its bytes never left)
            return
        if self._awaiting is not None and not self._rx:
            error_log.info("WebSocket peer %s answers no ping: dropped", _peer_of(self._transport))
            self._fail(INTERNAL_ERROR, "keepalive ping timeout")
            self._abort()
            return
        interval = limits.pingInterval
        if interval is None:
            return
        if self._rx:
            self._rx = False
            self._awaiting = None
            self._deadlines.add(self, interval)
            return
        codec = self._codec
        if codec is None or self._state != OPEN:
            return
        payload = os.urandom(4)
        self._awaiting = payload
        self._control(codec, PING, payload)
        if not self._lost:
            self._deadlines.add(self, limits.pongTimeout)


def _peer_of(transport: Any) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer) if peer is not None else "?"
