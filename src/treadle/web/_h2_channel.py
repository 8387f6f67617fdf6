"""HTTP/2 connections (RFC 9113) on the ``h2`` state machine, answering with the site's requests.

:class:`H2Connection` is the :class:`asyncio.Protocol` of one HTTP/2 connection. The
HTTP/1.1 channel hands a connection over to it when the client opens with the HTTP/2
connection preface (``PRI * HTTP/2.0``): over TLS once ALPN chose ``h2``, in cleartext when
the client has prior knowledge (h2c, as a proxy in front speaks it). h2 parses and frames;
this module decides what each event means, and each stream's request is the site's own, with
an :class:`~treadle.web._h2_stream.H2Stream` as its channel.

One read is handled as a whole: h2 turns the bytes into events, the events are recorded
(streams made, bodies kept, windows noted), and only then are the streams whose request is
complete answered, so a stream the client reset within the same read costs no request at all.
Output is gathered the same way: streams with something to send are queued, and one flush
per read, or once per turn of the loop for output written later, hands it to h2 and writes
what h2 framed in a single ``transport.write``.

Limits and attacks are described in :mod:`treadle.web._h2_limits`. Timeouts come from the
factory, as for HTTP/1.1: ``headTimeout`` for a connection that opens no stream,
``timeOut`` of idleness with no stream open, ``bodyTimeout`` between two pieces of a request
body (then 408), and ``timeOut`` for output that waits on a client that reads nothing (the
connection's transport paused) or on a stream's window that never opens (the stream is reset).

Shutting down (``close_when_idle``, as the factory's ``shutdown`` calls it) sends GOAWAY
naming the last stream taken: streams up to it are answered, later ones refused, and the
connection closes once the last is done. h2's own GOAWAY would stop its state machine, so
this one is framed here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final, Protocol

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from treadle.internet._timers import TimerHeap
from treadle.internet.address import IPv4Address, IPv6Address, UNIXAddress, from_sockname
from treadle.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from treadle.web._h2_fields import request_head
from treadle.web._h2_limits import (
    CONNECTION_WINDOW,
    CONTROL_BURST,
    CONTROL_RATE,
    DATA_FRAME_CREDIT,
    HEADER_TABLE_SIZE,
    MAX_CONCURRENT_STREAMS,
    RESET_BURST,
    RESET_RATE,
    STREAM_CREDIT,
    STREAM_WINDOW,
    TokenBucket,
)
from treadle.web._h2_stream import ARRIVING, CANCEL, CLOSED, READY, H2Stream
from treadle.web._parser import Limits

__all__ = ["PREFACE", "H2Connection", "H2Factory"]

error_log = logging.getLogger("treadle.error")

#: The client connection preface (RFC 9113 §3.4).
PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Error codes (RFC 9113 §7).
_NO_ERROR: Final = 0x0
_REFUSED_STREAM: Final = 0x7
_ENHANCE_YOUR_CALM: Final = 0xB

# Inbound fields are checked by h2 (pseudo-fields, connection-specific fields, case) and
# cookies split for compression joined again (RFC 9113 §8.2.3); outbound ones are made here,
# lowercased and without connection-specific fields, so h2 need not check them again.
_CONFIG: Final = h2.config.H2Configuration(
    client_side=False,
    header_encoding=None,
    validate_inbound_headers=True,
    normalize_inbound_headers=True,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
)
_SETTINGS = h2.settings.SettingCodes


class H2Factory(Protocol):
    """What a connection needs of its factory (an ``HTTPFactory`` or ``Site``)."""

    requestFactory: Callable[[Any], Any]
    timeOut: float
    headTimeout: float
    bodyTimeout: float
    shutting_down: bool

    def limits(self) -> Limits:
        """The size limits connections made now apply."""
        ...

    def timing(self) -> tuple[TimerHeap, Callable[[Callable[[], object]], object]]:
        """The deadline heap of the running loop (or test clock), and its ``call_soon``."""
        ...

    def connection_opened(self, channel: Any) -> bool:
        """Count a new connection; False when the factory has all it accepts."""
        ...

    def connection_closed(self, channel: Any) -> None:
        """Forget a connection that ended."""
        ...

    def log(self, request: Any) -> None:
        """Write the access log line of a finished request."""
        ...


class H2Connection(asyncio.Protocol):
    """One HTTP/2 connection: streams in, each answered by a request of the factory's.

    Args:
        factory: The site (its limits, timeouts, access log, and ``requestFactory``).
        requestFactory: Makes each stream's request (called with the stream); the factory's
            when None.

    Attributes:
        factory: As given.
        requestFactory: As given, or the factory's.
        asyncio_transport: The connection's transport (None before it is made and after it
            is lost).
        call_soon: Runs a callback once the current one is over (the loop's, or a test
            clock's), set when the connection is made.
    """

    __slots__ = (
        "_aborted",
        "_closing",
        "_control",
        "_deadlines",
        "_dirty",
        "_flush_scheduled",
        "_goaway_last",
        "_h2",
        "_handle",
        "_host",
        "_last_activity",
        "_limits",
        "_now",
        "_paused_at",
        "_peer",
        "_reading",
        "_ready",
        "_resets",
        "_streams",
        "_streams_seen",
        "_waiting",
        "_writing_paused",
        "asyncio_transport",
        "call_soon",
        "factory",
        "requestFactory",
    )

    #: Streams open at once (``SETTINGS_MAX_CONCURRENT_STREAMS``).
    maxConcurrentStreams: int = MAX_CONCURRENT_STREAMS
    #: Our HPACK decoder's table, and the most our encoder's may use.
    headerTableSize: int = HEADER_TABLE_SIZE

    def __init__(self, factory: H2Factory, requestFactory: Callable[[Any], Any] | None = None):
        self.factory = factory
        self.requestFactory = requestFactory or factory.requestFactory
        self.asyncio_transport: asyncio.Transport | None = None
        self._h2 = h2.connection.H2Connection(config=_CONFIG)
        self._streams: dict[int, H2Stream] = {}
        # Streams with output to hand to h2, and those whose output waits on flow control.
        self._dirty: list[H2Stream] = []
        self._waiting: dict[int, H2Stream] = {}
        # Streams whose request is complete, answered once the read that completed it is over.
        self._ready: list[H2Stream] = []
        self._reading = False
        self._flush_scheduled = False
        self._writing_paused = False
        self._paused_at = 0.0
        self._closing = False
        self._aborted = False
        # The last stream a GOAWAY of ours promised to answer (-1: none sent).
        self._goaway_last = -1
        self._streams_seen = 0
        self._handle: Any = None
        self._peer: Any = None
        self._host: Any = None

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.asyncio_transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        factory = self.factory
        deadlines, self.call_soon = factory.timing()
        self._deadlines = deadlines
        self._now: Callable[[], float] = deadlines.now
        limits = self._limits = factory.limits()
        now = self._last_activity = self._now()
        self._resets = TokenBucket(RESET_BURST, RESET_RATE, now)
        self._control = TokenBucket(CONTROL_BURST, CONTROL_RATE, now)
        if not factory.connection_opened(self):
            self._closing = True
            transport.close()
            return
        conn = self._h2
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                _SETTINGS.MAX_CONCURRENT_STREAMS: self.maxConcurrentStreams,
                _SETTINGS.MAX_HEADER_LIST_SIZE: limits.head,
                _SETTINGS.HEADER_TABLE_SIZE: self.headerTableSize,
                _SETTINGS.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            },
        )
        # h2 applies our settings once the client acknowledges them; a client may send its
        # first headers before that, so the decoder holds to the limit from the start.
        conn.decoder.max_header_list_size = limits.head
        conn.decoder.max_allowed_table_size = self.headerTableSize
        conn.initiate_connection()
        conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        transport.write(conn.data_to_send())  # type: ignore[attr-defined]
        deadlines.add(self, self._timer_period())

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            # h2 queued a GOAWAY naming the error; the streams learn of it when we close.
            error_log.debug("HTTP/2 protocol error from %s: %s", self.peer_address(), e)
            self._close()
            return
        # While the read is handled, output is only queued: one flush sends it all after.
        self._reading = True
        try:
            for event in events:
                handler = _HANDLERS.get(type(event))
                if handler is not None:
                    handler(self, event)
                    if self._closing:
                        return
            if events:
                self._last_activity = self._now()
            ready = self._ready
            if ready:
                self._ready = []
                for stream in ready:
                    if stream.phase == READY:
                        stream.start()
        except Exception:
            # A bug of ours (requests answer their own errors): the connection cannot be
            # trusted any more, but no exception escapes to the loop.
            error_log.exception("error handling HTTP/2 frames from %s", self.peer_address())
            self.abort()
            return
        finally:
            self._reading = False
        if self.factory.shutting_down and self._goaway_last < 0:
            self.close_when_idle()
        self._flush()

    def eof_received(self) -> bool | None:
        return None  # a client that half-closes is gone, as with HTTP/1.1

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self.factory.connection_closed(self)
        if self._handle is not None:
            self._deadlines.discard(self)
        reason: Exception
        if self._aborted:
            reason = ConnectionAborted()
        elif exc is None:
            reason = ConnectionDone()
        else:
            reason = ConnectionLost(exc)
        streams = list(self._streams.values())
        self._streams.clear()
        self._waiting.clear()
        self._dirty.clear()
        self._ready.clear()
        for stream in streams:
            stream.lost(reason)
        self.asyncio_transport = None

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._paused_at = self._now()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._dirty:
            self._schedule_flush()

    # -- the events of one read ---------------------------------------------------------------

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        if 0 <= self._goaway_last < sid:
            self._h2.reset_stream(sid, _REFUSED_STREAM)  # after our GOAWAY: not taken
            return
        self._streams_seen += 1
        self._control.give(STREAM_CREDIT)
        method, path, fields, refusal = request_head(event.headers, self._limits)
        stream = H2Stream(sid, self, method, path, fields)
        stream.last_data = self._now()
        self._streams[sid] = stream
        if event.stream_ended is not None:
            stream.inbound_done = True
            stream.phase = READY
        if refusal:
            stream.refuse(refusal)
        elif stream.phase == READY:
            self._ready.append(stream)
        elif fields.get(b"expect", [b""])[0].lower() == b"100-continue":
            self._h2.send_headers(sid, [(b":status", b"100")])

    def _on_data(self, event: h2.events.DataReceived) -> None:
        sid = event.stream_id
        size = event.flow_controlled_length
        conn = self._h2
        if size:
            # The body is kept as it arrives, so its window opens again at once (h2 sends
            # WINDOW_UPDATE only once a good part of the window was used).
            conn.acknowledge_received_data(size, sid)
        elif event.stream_ended is None and not self._spend_control():
            return
        stream = self._streams.get(sid)
        if stream is None or stream.phase != ARRIVING:
            return
        data = event.data
        if data:
            stream.last_data = self._now()
            if not stream.receive_body(data, self._limits.body):
                stream.refuse(413)

    def _on_end(self, event: h2.events.StreamEnded) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        stream.inbound_done = True
        if stream.phase == ARRIVING:
            stream.phase = READY
            self._ready.append(stream)

    def _on_reset(self, event: h2.events.StreamReset) -> None:
        stream = self._streams.pop(event.stream_id, None)
        if stream is not None:
            self._waiting.pop(stream.stream_id, None)
            stream.lost(ConnectionLost(f"stream reset with code {event.error_code}"))
        if event.remote_reset and not self._resets.take(self._now()):
            self._calm_down("too many stream resets")

    def _on_window(self, event: h2.events.WindowUpdated) -> None:
        if not self._spend_control():
            return
        waiting = self._waiting
        if not waiting:
            return
        sid = event.stream_id
        if sid:
            stream = waiting.pop(sid, None)
            if stream is not None:
                self.wake(stream)
        else:
            self._wake_waiting()

    def _on_settings(self, event: h2.events.RemoteSettingsChanged) -> None:
        if not self._spend_control():
            return
        changed = event.changed_settings
        if _SETTINGS.HEADER_TABLE_SIZE in changed:
            encoder = self._h2.encoder
            cap = self.headerTableSize
            if encoder.header_table_size > cap:
                # The client may offer a table of any size; ours stays this small, and the
                # size updates our next header block announces never pass it.
                encoder.header_table_size = cap
                encoder.table_size_changes = [
                    size for size in encoder.table_size_changes if size <= cap
                ]
        if _SETTINGS.INITIAL_WINDOW_SIZE in changed and self._waiting:
            self._wake_waiting()

    def _on_control(self, event: h2.events.Event) -> None:
        self._spend_control()

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        # h2 takes no more frames after a GOAWAY either way: what is unanswered is lost.
        self._close()

    def _on_trailers(self, event: h2.events.TrailersReceived) -> None:
        """Request trailers (bounded by h2 against the header list size, and here by the
        trailer limit, as HTTP/1.1 bounds them: 431 beyond) become the request's
        ``requestTrailers``, never merged into its fields."""
        stream = self._streams.get(event.stream_id)
        if stream is None or stream.phase != ARRIVING:
            return
        if not stream.receive_trailers(event.headers, self._limits.trailers):
            stream.refuse(431)

    # -- floods ---------------------------------------------------------------------------------

    def _spend_control(self) -> bool:
        """Count a frame that does no work; False (and the connection ends) past the budget."""
        if self._control.take(self._now()):
            return True
        self._calm_down("too many control frames")
        return False

    def _calm_down(self, why: str) -> None:
        """End a hostile connection: GOAWAY(ENHANCE_YOUR_CALM), then close."""
        error_log.info("HTTP/2 connection from %s closed: %s", self.peer_address(), why)
        conn = self._h2
        # Whatever the flood queued (PING and SETTINGS acknowledgements) is not sent.
        conn.clear_outbound_data_buffer()
        conn.close_connection(_ENHANCE_YOUR_CALM)
        self._close()

    # -- output ---------------------------------------------------------------------------------

    def wake(self, stream: H2Stream) -> None:
        """Queue ``stream``, which has output, for the next flush."""
        if stream.queued:
            return
        stream.queued = True
        self._dirty.append(stream)
        if not self._reading and not self._flush_scheduled:
            self._schedule_flush()

    def _wake_waiting(self) -> None:
        waiting = self._waiting
        for stream in waiting.values():
            self.wake(stream)
        waiting.clear()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self.asyncio_transport is not None:
            self._flush_scheduled = True
            self.call_soon(self._flush)

    def _flush(self) -> None:
        """Hand every queued stream's output to h2, then write what h2 framed at once."""
        self._flush_scheduled = False
        transport = self.asyncio_transport
        if transport is None or self._closing:
            return
        conn = self._h2
        dirty = self._dirty
        if dirty and not self._writing_paused:
            self._dirty = []
            for stream in dirty:
                self._send(conn, stream)
        data = conn.data_to_send()
        if data:
            transport.write(data)
        if self._goaway_last >= 0 and not self._streams:
            self._close()

    def _send(self, conn: h2.connection.H2Connection, stream: H2Stream) -> None:
        before = stream.pending
        try:
            waits = stream.send(conn)
        except h2.exceptions.ProtocolError:
            # The stream closed under us (h2 reset it): nothing more goes out on it.
            self._forget(stream)
            stream.lost(ConnectionLost("stream closed"))
            return
        sent = before - stream.pending
        if sent > 0:
            self._control.give(DATA_FRAME_CREDIT * (sent // conn.max_outbound_frame_size + 1))
        if waits:
            self._waiting[stream.stream_id] = stream
            if stream.blocked_since < 0.0:
                stream.blocked_since = self._now()
        elif stream.phase == CLOSED:
            self._forget(stream)

    def flush_stream(self, stream: H2Stream) -> None:
        """Send ``stream``'s output now (as far as flow control lets it)."""
        if self.asyncio_transport is None or self._closing or self._writing_paused:
            return
        self._waiting.pop(stream.stream_id, None)
        self._send(self._h2, stream)
        data = self._h2.data_to_send()
        if data:
            self.asyncio_transport.write(data)

    def _forget(self, stream: H2Stream) -> None:
        sid = stream.stream_id
        self._streams.pop(sid, None)
        self._waiting.pop(sid, None)
        if not self._streams:
            self._last_activity = self._now()

    def reset(self, stream: H2Stream, code: int) -> None:
        """Send RST_STREAM with ``code`` for ``stream`` and forget it."""
        self._forget(stream)
        if self.asyncio_transport is None or self._closing:
            return
        try:
            self._h2.reset_stream(stream.stream_id, code)
        except h2.exceptions.ProtocolError:
            return  # closed already
        if not self._reading:
            self._schedule_flush()

    # -- ending the connection ---------------------------------------------------------------

    def close_when_idle(self) -> None:
        """Graceful shutdown: GOAWAY naming the last stream taken; close once it is answered."""
        transport = self.asyncio_transport
        if transport is None or self._closing or self._goaway_last >= 0:
            return
        last = self._goaway_last = self._h2.highest_inbound_stream_id
        goaway = GoAwayFrame(0)
        goaway.last_stream_id = last
        goaway.error_code = _NO_ERROR
        transport.write(self._h2.data_to_send() + goaway.serialize())
        if not self._streams:
            self._close()

    def _close(self) -> None:
        """Close once the transport has sent what it holds (h2's last frames included)."""
        transport = self.asyncio_transport
        if transport is None or self._closing:
            return
        self._closing = True
        data = self._h2.data_to_send()
        if data:
            transport.write(data)
        transport.close()

    def loseConnection(self) -> None:
        """Close after sending what is already framed (streams in progress are lost)."""
        self._close()

    def abort(self) -> None:
        """Drop the connection at once; the streams in progress learn ``ConnectionAborted``."""
        transport = self.asyncio_transport
        if transport is None:
            return
        self._aborted = True
        self._closing = True
        transport.abort()

    abortConnection = abort

    def is_closing(self) -> bool:
        """Whether the connection is closing or gone."""
        return self._closing or self.asyncio_transport is None

    # -- timeouts ------------------------------------------------------------------------------

    def _timer_period(self) -> float:
        factory = self.factory
        return min(factory.timeOut, factory.headTimeout, factory.bodyTimeout)

    def _due(self) -> None:
        """One timer per connection checks every timeout (see the module docstring)."""
        if self.asyncio_transport is None or self._closing:
            return
        factory = self.factory
        now = self._now()
        if self._writing_paused and now - self._paused_at >= factory.timeOut:
            self.abort()  # the client reads nothing of what waits for it
            return
        streams = self._streams
        if not streams:
            limit = factory.timeOut if self._streams_seen else factory.headTimeout
            if now - self._last_activity >= limit:
                self.close_when_idle()
                if not self._closing:
                    self._close()
                return
        else:
            for stream in list(streams.values()):
                if stream.phase == ARRIVING and now - stream.last_data >= factory.bodyTimeout:
                    stream.refuse(408)
                elif 0.0 <= stream.blocked_since <= now - factory.timeOut:
                    # Its window stayed shut: the client takes none of this response.
                    self.reset(stream, CANCEL)
                    stream.lost(ConnectionAborted())
            self._flush()
        if self.asyncio_transport is not None and not self._closing:
            self._deadlines.add(self, self._timer_period())

    # -- addresses ------------------------------------------------------------------------------

    def extra_info(self, name: str, default: Any = None) -> Any:
        """The transport's ``get_extra_info`` (``default`` once it is gone)."""
        transport = self.asyncio_transport
        return default if transport is None else transport.get_extra_info(name, default)

    def peer_address(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """The client's address (computed once)."""
        if self._peer is None:
            self._peer = from_sockname(self.extra_info("peername"))
        return self._peer  # type: ignore[no-any-return]

    def host_address(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """Our own address on this connection (computed once)."""
        if self._host is None:
            self._host = from_sockname(self.extra_info("sockname"))
        return self._host  # type: ignore[no-any-return]

    @property
    def streams(self) -> dict[int, H2Stream]:
        """The streams open now, by identifier (a copy)."""
        return dict(self._streams)

    def __repr__(self) -> str:
        return f"<H2Connection at 0x{id(self):x} streams={len(self._streams)}>"


_HANDLERS: Final[dict[type, Callable[[H2Connection, Any], None]]] = {
    h2.events.RequestReceived: H2Connection._on_request,
    h2.events.DataReceived: H2Connection._on_data,
    h2.events.StreamEnded: H2Connection._on_end,
    h2.events.StreamReset: H2Connection._on_reset,
    h2.events.WindowUpdated: H2Connection._on_window,
    h2.events.RemoteSettingsChanged: H2Connection._on_settings,
    h2.events.PingReceived: H2Connection._on_control,
    h2.events.PingAckReceived: H2Connection._on_control,
    h2.events.PriorityUpdated: H2Connection._on_control,
    h2.events.UnknownFrameReceived: H2Connection._on_control,
    h2.events.ConnectionTerminated: H2Connection._on_goaway,
    h2.events.TrailersReceived: H2Connection._on_trailers,
}
