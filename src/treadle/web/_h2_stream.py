"""One HTTP/2 stream as the channel its ``Request`` talks to.

A stream's request is the site's own (:class:`treadle.web.server.Request`, or whatever
``requestFactory`` makes), created with the stream as its channel, so resources run
unchanged: ``NOT_DONE_YET``, ``write``, ``finish``, ``notifyFinish``, producers, ``drain``.
The request reaches its channel through its *wire* (``Request._wire``); an :class:`H2Stream`
is its own wire (:attr:`H2Stream.request_wire`) and gives the request what the HTTP/1.1
channel gives it: ``asyncio_transport`` (here the stream itself), ``call_soon``,
``request_done``, the addresses, producers and ``drain``.

The request writes its response as it would on HTTP/1.1: a head (status line and field
lines) and then body bytes. Told it speaks ``HTTP/2`` (``requestReceived(..., b"HTTP/2")``),
it never chunks a body, so the body bytes are the content itself; the head is read back into
HTTP/2 fields once, in :func:`response_fields`, dropping the connection-specific fields
HTTP/2 forbids (RFC 9113 §8.2.2). Output waits in the stream until the connection sends it:
headers at once, DATA frames as flow control allows (RFC 9113 §5.2), the last of them
carrying END_STREAM, or, when the request has ``responseTrailers`` to send, a HEADERS frame
of trailer fields after the last DATA frame carrying it (see :mod:`treadle.web._trailers`;
request trailers become the request's ``requestTrailers``). Above
:data:`~treadle.web._h2_limits.STREAM_HIGH_WATER` bytes held, a streaming producer is paused
and ``drain()`` waits; below the low-water mark they go on.

A stream moves through :data:`ARRIVING` (the body is arriving), :data:`READY` (the request is
complete; it is answered once the connection's read is over), :data:`ANSWERING` (the request
is being answered), :data:`FINISHING` (``finish()`` was called; output may still wait on
flow control) and :data:`CLOSED` (END_STREAM sent, or the stream reset or lost).
"""

from __future__ import annotations

import asyncio
import io
import logging
import tempfile
from collections.abc import Callable
from typing import IO, Any, ClassVar, Final, Protocol

from treadle.internet.error import ConnectionAborted, ConnectionDone
from treadle.web._h2_fields import CONNECTION_FIELDS, error_fields, response_fields
from treadle.web._h2_limits import STREAM_HIGH_WATER, STREAM_LOW_WATER, STREAM_SPOOL_SIZE
from treadle.web._trailers import h2_fields, received
from treadle.web.http_headers import Headers

__all__ = [
    "ANSWERING",
    "ARRIVING",
    "CLOSED",
    "FINISHING",
    "READY",
    "H2Stream",
    "StreamOwner",
]

error_log = logging.getLogger("treadle.error")

ARRIVING: Final = 0
READY: Final = 1
ANSWERING: Final = 2
FINISHING: Final = 3
CLOSED: Final = 4

_HEAD_END: Final = b"\r\n\r\n"
_HTTP2: Final = b"HTTP/2"
#: Bytes of response head a request may write in pieces before it is a head at all.
_MAX_HEAD: Final = 256 * 1024
# RST_STREAM codes (RFC 9113 §7).
NO_ERROR: Final = 0x0
INTERNAL_ERROR: Final = 0x2
CANCEL: Final = 0x8


class StreamOwner(Protocol):
    """What a stream needs of its connection (:class:`~treadle.web._h2_channel.H2Connection`)."""

    factory: Any
    requestFactory: Callable[[Any], Any]
    call_soon: Callable[[Callable[[], object]], object]

    def wake(self, stream: H2Stream) -> None:
        """``stream`` has output to send."""
        ...

    def reset(self, stream: H2Stream, code: int) -> None:
        """Send RST_STREAM with ``code`` for ``stream`` and forget it."""
        ...

    def extra_info(self, name: str, default: Any = None) -> Any:
        """The connection transport's ``get_extra_info``."""
        ...

    def is_closing(self) -> bool:
        """Whether the connection is closing or gone."""
        ...

    def peer_address(self) -> Any:
        """The client's address."""
        ...

    def host_address(self) -> Any:
        """Our own address on the connection."""
        ...


class H2Stream:
    """One request and its response on an HTTP/2 connection: the request's channel.

    Args:
        stream_id: The stream's identifier.
        owner: The connection.
        method: ``:method``.
        path: ``:path``.
        fields: The request's fields, lowercased names to values (``Host`` from
            ``:authority``).

    Attributes:
        stream_id: As given.
        factory: The connection's factory (a request reads its site here).
        request: The request, once made (None before it is answered).
        phase: Where the stream is (see the module docstring).
        inbound_done: The client sent END_STREAM.
        queued: The connection holds the stream among those with output to send.
        blocked_since: When the stream's output began to wait on a zero flow-control window
            (negative when it does not).
        last_data: When the last piece of the body arrived (the body timeout counts from it).
    """

    __slots__ = (
        "_body",
        "_body_size",
        "_drain_waiter",
        "_fields",
        "_head",
        "_head_buffer",
        "_head_written",
        "_out",
        "_out_size",
        "_owner",
        "_producer",
        "_producer_paused",
        "_streaming",
        "_trailers",
        "blocked_since",
        "call_soon",
        "factory",
        "inbound_done",
        "last_data",
        "method",
        "path",
        "phase",
        "queued",
        "request",
        "stream_id",
    )

    #: The request asks whether the connection outlives the response: with HTTP/2 that is
    #: not the stream's to say (and the request's ``Connection`` field is dropped anyway).
    persistent = False
    #: The request talks to the stream itself, as to the HTTP/1.1 channel (see
    #: :class:`~treadle.web.http.Request`), not through an adapter.
    is_request_wire: ClassVar[bool] = True

    def __init__(
        self,
        stream_id: int,
        owner: StreamOwner,
        method: bytes,
        path: bytes,
        fields: dict[bytes, list[bytes]],
    ) -> None:
        self.stream_id = stream_id
        self._owner = owner
        self.factory = owner.factory
        self.call_soon = owner.call_soon
        self.method = method
        self.path = path
        self._fields = fields
        self._body: IO[bytes] | None = None
        self._body_size = 0
        # The request's trailer fields, from their arrival until the request is made.
        self._trailers: dict[bytes, list[bytes]] | None = None
        self.request: Any = None
        self.phase = ARRIVING
        self.inbound_done = False
        self.queued = False
        self.blocked_since = -1.0
        self.last_data = 0.0
        # The response: fields not yet handed to h2, the head as the request writes it,
        # and the body bytes waiting for flow control.
        self._head: list[tuple[bytes, bytes]] | None = None
        self._head_written = False
        self._head_buffer: bytes | None = None
        self._out: list[bytes | memoryview] = []
        self._out_size = 0
        self._producer: Any = None
        self._streaming = False
        self._producer_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    # -- the request arriving ----------------------------------------------------------------

    def receive_body(self, data: bytes, limit: int) -> bool:
        """Keep a piece of the request body; False (nothing kept) once it passes ``limit``."""
        size = self._body_size + len(data)
        if size > limit:
            return False
        body = self._body
        if body is None:
            body = self._body = io.BytesIO()
        elif size > STREAM_SPOOL_SIZE and type(body) is io.BytesIO:
            # A large body goes to a temporary file, as the HTTP/1.1 parser spools it.
            spooled = tempfile.TemporaryFile()  # noqa: SIM115  # closed with the request
            spooled.write(body.getbuffer())
            body = self._body = spooled
        body.write(data)
        self._body_size = size
        return True

    def receive_trailers(self, fields: list[tuple[bytes, bytes]], limit: int) -> bool:
        """Keep the request's trailer fields (h2 checked them as header fields: lowercased,
        no pseudo-fields); False (nothing kept) when they pass ``limit`` bytes, counted as
        HTTP/1.1 counts a trailer section. Fields that may not be trailers are dropped by
        :func:`~treadle.web._trailers.received`, as for HTTP/1.1."""
        size = 0
        trailers: dict[bytes, list[bytes]] = {}
        for name, value in fields:
            size += len(name) + len(value) + 4  # as the field line ``name: value`` CRLF
            values = trailers.get(name)
            if values is None:
                trailers[name] = [value]
            else:
                values.append(value)
        if size > limit:
            return False
        if trailers:
            self._trailers = trailers
        return True

    def start(self) -> None:
        """Make the request and answer it (the connection calls this once the body is in)."""
        self.phase = ANSWERING
        request = self.request = self._owner.requestFactory(self)
        request.requestHeaders = Headers._from_raw(self._fields)
        if self._body is not None:
            request.content = self._body
            self._body = None
        trailers = self._trailers
        if trailers is not None:
            self._trailers = None
            received(request, trailers)
        try:
            # Twisted's entry point: the request takes the version as given, so it frames
            # its body for no HTTP/1.1 client (no chunks) and reports HTTP/2.
            request.requestReceived(self.method, self.path, _HTTP2)
        except Exception:
            error_log.exception("unhandled error answering %r", request)
            self._failed()

    def _failed(self) -> None:
        """Answering raised: a 500 page if nothing went out yet, else reset the stream."""
        if self.phase >= FINISHING or getattr(self.request, "finished", False):
            return
        if self._head_written:
            self.abort()
        else:
            self.refuse(500)

    def refuse(self, code: int) -> None:
        """Answer with a short error page of ``code`` instead of the request."""
        if self.phase >= FINISHING:
            return
        self._head, body = error_fields(code)
        self._head_written = True
        self._out = [body]
        self._out_size = len(body)
        self.phase = FINISHING
        self._drop_body()
        self._owner.wake(self)

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.close()

    # -- what the request writes (the stream is its asyncio transport) -----------------------

    @property
    def site(self) -> Any:
        """The connection's factory (Twisted's ``channel.site``)."""
        return self.factory

    @property
    def asyncio_transport(self) -> H2Stream:
        """The request writes its response here, as to an asyncio transport."""
        return self

    @property
    def transport(self) -> H2Stream:
        """The stream as the request's Twisted transport (``request.transport``)."""
        return self

    def write(self, data: bytes) -> None:
        """Take response bytes: the head first (read back into fields), then the body."""
        if self.phase >= FINISHING:
            return
        if not self._head_written:
            self._take_head(data)
            return
        if not data:
            return
        self._out.append(data)
        size = self._out_size = self._out_size + len(data)
        if not self.queued:
            self._owner.wake(self)
        if size > STREAM_HIGH_WATER and self._producer is not None and self._streaming:
            self._pause_producer()

    def writeSequence(self, data: list[bytes]) -> None:
        """Write each item of ``data`` in turn."""
        for item in data:
            self.write(item)

    def _take_head(self, data: bytes) -> None:
        buffered = self._head_buffer
        if buffered is not None:
            data = buffered + data
        end = data.find(_HEAD_END)
        if end < 0:
            if len(data) > _MAX_HEAD:
                self.abort()
                return
            self._head_buffer = data
            return
        self._head_buffer = None
        self._head_written = True
        self._head = response_fields(data[:end])
        start = end + len(_HEAD_END)
        if not self.queued:
            self._owner.wake(self)
        if len(data) > start:
            self.write(memoryview(data)[start:])  # type: ignore[arg-type]  # bytes-like

    def writeHeaders(
        self,
        version: bytes,
        code: bytes | int,
        reason: bytes,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        """Twisted's channel call: send the response head (``version`` and ``reason`` are
        not part of an HTTP/2 response)."""
        if self.phase >= FINISHING or self._head_written:
            return
        fields = [(b":status", code if isinstance(code, bytes) else b"%d" % code)]
        for name, value in headers:
            name = name.lower()
            if name not in CONNECTION_FIELDS:
                fields.append((name, value))
        self._head = fields
        self._head_written = True
        if not self.queued:
            self._owner.wake(self)

    def request_done(self, request: Any, keeps: bool = False) -> None:
        """The request wrote its last byte: the stream ends once its output is out."""
        if self.phase >= FINISHING:
            return
        self.phase = FINISHING
        if not self.queued:
            self._owner.wake(self)

    def requestDone(self, request: Any) -> None:
        """Twisted's name for :meth:`request_done`."""
        self.request_done(request)

    # -- sending (the connection calls it when it flushes) -----------------------------------

    def send(self, conn: Any) -> bool:
        """Hand what may go now to h2 connection ``conn``; True while output waits on flow
        control, False once there is nothing more to send for now."""
        self.queued = False
        phase = self.phase
        if phase == CLOSED:
            return False
        sid = self.stream_id
        ending = phase == FINISHING
        # Response trailers go last, in a HEADERS frame of their own carrying END_STREAM;
        # without them the last DATA (or HEADERS) frame carries it.
        trailers = h2_fields(self.request) if ending else None
        closing = ending and trailers is None
        out = self._out
        head = self._head
        if head is not None:
            self._head = None
            if ending and not out:
                conn.send_headers(sid, head, end_stream=closing)
                self._end(conn, trailers)
                return False
            conn.send_headers(sid, head)
        elif not self._head_written:
            if not ending:
                return False  # the head is still being written
            # Finished without writing a head (Twisted's interface only): an empty 200.
            self._head_written = True
            conn.send_headers(sid, [(b":status", b"200")], end_stream=closing and not out)
            if not out:
                self._end(conn, trailers)
                return False
        if out:
            window = conn.local_flow_control_window(sid)
            if window > 0:
                self._send_data(conn, window, closing)
            if self._out_size <= STREAM_LOW_WATER:
                self._resume_producer()
            if out:
                return True
            if ending:
                self._end(conn, trailers)  # else the last DATA frame carried END_STREAM
            return False
        if ending:
            if trailers is None:
                conn.end_stream(sid)
            self._end(conn, trailers)
        return False

    def _end(self, conn: Any, trailers: list[tuple[bytes, bytes]] | None) -> None:
        """The response's last DATA is out: send its trailers, if any, ending the stream."""
        if trailers is not None:
            conn.send_headers(self.stream_id, trailers, end_stream=True)
        self._ended(conn)

    def _send_data(self, conn: Any, window: int, ending: bool) -> None:
        """DATA frames from the queued body, up to ``window`` bytes; small writes are joined."""
        out = self._out
        sid = self.stream_id
        frame = conn.max_outbound_frame_size
        sent = 0
        while out and window > 0:
            limit = window if window < frame else frame
            chunk = out[0]
            size = len(chunk)
            if size > limit:
                view = chunk if type(chunk) is memoryview else memoryview(chunk)
                out[0] = view[limit:]
                chunk = view[:limit]
                size = limit
            else:
                del out[0]
                if out and size + len(out[0]) <= limit:
                    parts = [chunk]
                    while out and size + len(out[0]) <= limit:
                        item = out.pop(0)
                        parts.append(item)
                        size += len(item)
                    chunk = b"".join(parts)
            window -= size
            sent += size
            conn.send_data(sid, chunk, end_stream=ending and not out)
        self._out_size -= sent
        self.blocked_since = -1.0

    def _ended(self, conn: Any) -> None:
        """END_STREAM went out; a client still sending its body is told to stop."""
        self.phase = CLOSED
        if not self.inbound_done:
            # RFC 9113 §8.1: a complete response may be followed by RST_STREAM(NO_ERROR).
            conn.reset_stream(self.stream_id, NO_ERROR)
        self._drop_body()
        # The request refers to its stream: let go of it, so the two are freed without
        # waiting for the cyclic garbage collector.
        self.request = None
        self._producer = None
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def pending(self) -> int:
        """Body bytes waiting to be sent."""
        return self._out_size

    # -- producers and backpressure ----------------------------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Let ``producer`` feed the response, paced by flow control and the connection.

        Raises:
            RuntimeError: A producer is already registered.
        """
        if self._producer is not None:
            raise RuntimeError(f"a producer is already registered: {self._producer!r}")
        if self.phase == CLOSED:
            producer.stopProducing()
            return
        self._producer = producer
        self._streaming = streaming
        self._producer_paused = False
        if streaming:
            if self._out_size > STREAM_HIGH_WATER:
                self._pause_producer()
        else:
            self.call_soon(self._pull)

    def unregisterProducer(self) -> None:
        """Detach the producer (no-op when none)."""
        self._producer = None
        self._producer_paused = False

    def _pause_producer(self) -> None:
        if not self._producer_paused:
            self._producer_paused = True
            self._call_producer(self._producer.pauseProducing)

    def _resume_producer(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._producer_paused and self._producer is not None:
            self._producer_paused = False
            if self._streaming:
                self._call_producer(self._producer.resumeProducing)
            else:
                self.call_soon(self._pull)

    def _pull(self) -> None:
        """Drive a pull producer while it stays registered and the stream has room."""
        producer = self._producer
        if producer is None or self._streaming or self.phase >= FINISHING:
            return
        if self._out_size > STREAM_HIGH_WATER:
            self._producer_paused = True  # resumed when the stream drains
            return
        self._call_producer(producer.resumeProducing)
        if self._producer is producer and self.phase < FINISHING:
            self.call_soon(self._pull)

    def _call_producer(self, method: Callable[[], object]) -> None:
        try:
            method()
        except Exception:
            error_log.exception("error in producer of %r", self.request)
            self.abort()

    async def drain(self) -> None:
        """Wait until the stream holds at most its low-water mark of unsent bytes."""
        if self.phase == CLOSED or self._owner.is_closing():
            await asyncio.sleep(0)  # let a pending loss arrive, as the HTTP/1.1 channel does
            return
        if self._out_size <= STREAM_HIGH_WATER:
            return
        waiter = self._drain_waiter
        if waiter is None:
            waiter = self._drain_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(waiter)

    def get_write_buffer_size(self) -> int:
        """Body bytes the stream holds unsent."""
        return self._out_size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The stream's low- and high-water marks."""
        return STREAM_LOW_WATER, STREAM_HIGH_WATER

    # -- ending the stream -------------------------------------------------------------------

    def lost(self, reason: Exception) -> None:
        """The stream was reset, or the connection is gone: tell the request, stop producing."""
        if self.phase == CLOSED and self.request is None:
            return
        self.phase = CLOSED
        self._out.clear()
        self._out_size = 0
        self._head = None
        self._drop_body()
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.stopProducing()
            except Exception:
                error_log.exception("error stopping producer %r", producer)
        request, self.request = self.request, None
        if request is not None:
            request.connectionLost(reason)
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def abort(self) -> None:
        """Reset the stream at once (the request learns ``ConnectionAborted``)."""
        if self.phase == CLOSED:
            return
        self._owner.reset(self, INTERNAL_ERROR)
        self.lost(ConnectionAborted())

    abortConnection = abort

    def loseConnection(self) -> None:
        """End the response short: what was written is sent as far as flow control lets it,
        then the stream is reset, so the client can tell the response is incomplete."""
        if self.phase >= FINISHING:
            return
        flush_held = getattr(self.request, "flush_held", None)
        if flush_held is not None:
            flush_held()  # what the request still holds was written before
        if self._head is not None or self._out:
            self.send_now()
        if self.phase != CLOSED:
            self._owner.reset(self, CANCEL)
            self.lost(ConnectionDone())

    def send_now(self) -> None:
        """Send what flow control lets out now, not at the end of the loop's turn."""
        owner: Any = self._owner
        owner.flush_stream(self)

    close = loseConnection

    def is_closing(self) -> bool:
        """Whether the stream or its connection is ending."""
        return self.phase == CLOSED or self._owner.is_closing()

    # -- Twisted's producer and transport surface --------------------------------------------

    def pauseProducing(self) -> None:
        """Nothing to pause: a stream's request body is read whole before it is answered."""

    def resumeProducing(self) -> None:
        """Nothing to resume (see :meth:`pauseProducing`)."""

    def stopProducing(self) -> None:
        """Reset the stream."""
        self.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The connection transport's extra information, except its ``socket``: bytes written
        straight to the socket would bypass HTTP/2 framing (so no zero-copy ``sendfile``)."""
        if name == "socket":
            return default
        return self._owner.extra_info(name, default)

    def getPeer(self) -> Any:
        """The client's address."""
        return self._owner.peer_address()

    def getHost(self) -> Any:
        """Our own address on the connection."""
        return self._owner.host_address()

    def peer_address(self) -> Any:
        """The client's address (the request's ``getClientAddress``)."""
        return self._owner.peer_address()

    def host_address(self) -> Any:
        """Our own address (the request's ``getHost``)."""
        return self._owner.host_address()

    def isSecure(self) -> bool:
        """Whether the connection is TLS."""
        return self._owner.extra_info("sslcontext") is not None

    def __repr__(self) -> str:
        return f"<H2Stream {self.stream_id} phase={self.phase}>"
