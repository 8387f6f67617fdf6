"""The HTTP/1.1 channel: bytes in, requests out, answered strictly in order.

:class:`HTTPChannel` is an :class:`asyncio.Protocol` driving httptools (llhttp) through a
:class:`~treadle.web._parser.Parser`. The parser's callbacks only *record* what they see and
tell the channel about it through four calls (:class:`~treadle.web._parser.MessageSink`); the
channel acts after ``feed_data`` returns, so no user code ever runs inside the parser.
Completed requests wait in a short queue and are answered strictly in order, one at a time.
While a response is outstanding the channel keeps reading a little ahead (so it notices a
client that leaves, as Twisted does) and pauses the transport once that read-ahead or the
queue is full.

The connection is one state machine: :attr:`HTTPChannel.state` holds one state value,
and every change goes through :meth:`HTTPChannel._enter` and the transition table of
:mod:`treadle.web._state`, which lists every allowed move; anything else is a bug and raises
:class:`~treadle.web._state.ChannelStateError`.

What the states mean for the channel: in ``DONE`` (the client's last request arrived, a
request was refused, or the server is shutting down) bytes that still arrive are dropped
unparsed while the responses due still go out; in ``UPGRADING`` (a request asked to
upgrade) they are held for the protocol the resource may switch to, and in ``UPGRADED``
passed to it (see :meth:`HTTPChannel.switch_protocol`); in ``LINGER`` the
channel has half-closed after a refusal and drains what the client still sends until its
EOF or ``lingerTime`` (RFC 9112 §9.6); after ``ABORTED`` the request in progress learns of
a :class:`~treadle.internet.error.ConnectionAborted`.

Besides the state, the channel keeps the request being answered (``_active``), the queue,
and the transport's flow control (reading and writing paused), which mirror the transport.

Hostile input: what llhttp refuses by itself and what the parser checks on top is listed in
:mod:`treadle.web._parser`.

Limits (factory attributes; what they count is defined in :mod:`treadle.web._framing`) are
enforced by the parser, exactly where a callback sees the bytes and to within two pieces
of input of :data:`~treadle.web._parser.FEED_SLICE` bytes elsewhere (see
``Parser.count_read``). A body must also keep up a minimum data rate (``minBodyRate`` after
``minBodyRateGrace`` seconds), so a client trickling it a byte at a time cannot hold its
connection for ever.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, Final, Protocol

import httptools

from treadle.internet._timers import TimerHeap
from treadle.internet.address import IPv4Address, IPv6Address, UNIXAddress, from_sockname
from treadle.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from treadle.web._channel_transport import ChannelTransport
from treadle.web._framing import SERVER_LINE, date_header, status_line
from treadle.web._parser import (
    FEED_SLICE,
    MAX_SPARE_PARSERS,
    SPARE_PARSERS,
    Limits,
    Message,
    Parser,
    Refused,
)
from treadle.web._state import (
    ABORT,
    ABORTED,
    AFTER_BEGIN,
    AFTER_COMPLETE,
    AFTER_HEAD,
    AWAIT_INVITE,
    BEGIN,
    BODY,
    CLOSE,
    CLOSING,
    COMPLETE,
    CONTINUE,
    DONE,
    HEAD,
    HEAD_DONE,
    IDLE,
    INVITED,
    LAST,
    LINGER,
    LOST,
    MOVES,
    REFUSAL_SENT,
    STOP,
    SWITCH,
    UPGRADE,
    UPGRADED,
    UPGRADING,
    next_state,
    state_name,
)
from treadle.web._status import RESPONSES
from treadle.web._twisted_channel import InterfaceRequest, TwistedChannelMixin

__all__ = [
    "READ_AHEAD",
    "ChannelFactory",
    "ChannelRequest",
    "ChannelTransport",
    "HTTPChannel",
    "SwitchedProtocol",
]

error_log = logging.getLogger("treadle.error")

#: Bytes read ahead while a response is outstanding (Twisted reads 16 KiB optimistically):
#: enough to notice a client that closes, small enough not to buffer a flood.
READ_AHEAD: Final = 64 * 1024
_CONTINUE_LINE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
#: How HTTP/2's connection preface (RFC 9113 §3.4) starts; no HTTP/1.x request does.
_H2_PREFACE_START: Final = b"PRI "


class _Rejection:
    """A request the channel refused while parsing; answered in its turn, then we close."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


# -- what the channel needs of the layers above it ---------------------------------------------


class ChannelRequest(Protocol):
    """What the channel needs of the request objects its factory makes."""

    def receive_message(self, message: Message) -> None:
        """Take a parsed request and answer it (now, or later with ``request_done``)."""
        ...

    def connectionLost(self, reason: Exception) -> None:
        """The connection ended before the response was finished."""
        ...

    def flush_held(self) -> None:
        """Send what the request holds back (its first write) before the channel closes."""
        ...


class ChannelFactory(Protocol):
    """What the channel needs of the factory that made it (an ``HTTPFactory``)."""

    requestFactory: Callable[[HTTPChannel], ChannelRequest]
    maxPipelined: int
    timeOut: float
    headTimeout: float
    bodyTimeout: float
    lingerTime: float
    minBodyRate: float
    minBodyRateGrace: float

    #: True once the factory's shutdown began: connections close after their response.
    shutting_down: bool

    def limits(self) -> Limits:
        """The size limits connections made now apply."""
        ...

    def timing(self) -> tuple[TimerHeap, Callable[[Callable[[], object]], object]]:
        """The deadline heap of the running loop (or test clock), and its ``call_soon``."""
        ...

    def connection_opened(self, channel: HTTPChannel) -> bool:
        """Count a new connection; False when the factory has all it accepts."""
        ...

    def connection_closed(self, channel: HTTPChannel) -> None:
        """Forget a connection that ended."""
        ...

    def log(self, request: Any) -> None:
        """Write the access log line of a finished request."""
        ...


class SwitchedProtocol(Protocol):
    """What a connection is handed to when its request switches protocols (``101``).

    An :class:`asyncio.Protocol` (``connection_made``, ``data_received``, ``eof_received``,
    ``connection_lost``, ``pause_writing``, ``resume_writing``) plus ``close_when_idle``.
    See :meth:`HTTPChannel.switch_protocol`.
    """

    def connection_made(self, transport: Any) -> None:
        """The connection is this protocol's from now: ``transport`` is its asyncio transport."""
        ...

    def data_received(self, data: bytes) -> None:
        """Bytes from the peer (the first call has those read past the request's head)."""
        ...

    def eof_received(self) -> bool | None:
        """The peer half-closed; return True to keep the connection open."""
        ...

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection ended: None when closed cleanly, ``ConnectionAborted`` when the
        server cut it off (shutdown's grace over), else the error."""
        ...

    def pause_writing(self) -> None:
        """The transport's buffer went over its high-water mark."""
        ...

    def resume_writing(self) -> None:
        """The transport's buffer drained below its low-water mark."""
        ...

    def close_when_idle(self) -> None:
        """The server is shutting down: end the conversation soon and close the transport."""
        ...


def _pieces(data: bytes) -> Iterator[memoryview]:
    """``data`` in pieces of at most FEED_SLICE bytes, without copying."""
    view = memoryview(data)
    for start in range(0, len(data), FEED_SLICE):
        yield view[start : start + FEED_SLICE]


# -- the channel -----------------------------------------------------------------------------


class HTTPChannel(TwistedChannelMixin, asyncio.Protocol):
    """One HTTP/1.x connection: parses requests and answers them strictly in order.

    Parsing is llhttp's (through httptools) with treadle's checks where llhttp is lenient
    or silent; see the module docstring for which does what. Any request the channel refuses
    is answered in its turn (after the responses already due) and the connection then
    closes: no byte after a refused request is ever parsed.

    Two ways in: as an :class:`asyncio.Protocol` (``connection_made``/``data_received``,
    how treadle's listening ports drive it), or as a Twisted protocol (``makeConnection``
    with a Twisted transport, then ``dataReceived``/``connectionLost``), as Twisted's own
    tests and programs wrapping it drive it; the second adapts the transport and then runs
    the same code. That way in, and the rest of Twisted's channel surface (``requests``,
    ``checkPersistence``, ``writeHeaders``, ``timeOut``, ``maxHeaders``..., the channel as
    its transport's push producer, requests of Twisted's interface only), come from
    :class:`~treadle.web._twisted_channel.TwistedChannelMixin`.

    Args:
        factory: What made the channel: its limits, timeouts and access log. None (as
            Twisted's ``HTTPChannel()``): set ``factory`` or ``site`` before the connection
            is made, or a plain :class:`~treadle.web.http.HTTPFactory` is used.

    Attributes:
        factory: As given (``site`` is another name for it, as Twisted's ``Site`` sets it).
        asyncio_transport: The connection's asyncio transport (None before it is made and
            after it is lost).
        requestFactory: Called with the channel to make each request. A subclass may set
            its own as a class attribute (Twisted's low-level pattern); otherwise it is the
            factory's. A :class:`~treadle.web.server.Site`'s always wins, as in Twisted.
        call_soon: Runs a callback once the current one is over: the loop's ``call_soon``,
            a test clock's equivalent, or, with no loop running, a call right after the
            current one (set when the connection is made).
    """

    __slots__ = (
        "_active",
        "_body_started",
        "_buffered",
        "_connected_at",
        "_deadlines",
        "_dispatching",
        "_drain_waiter",
        "_handle",
        "_head_started",
        "_host",
        "_last_activity",
        "_limits",
        "_now",
        "_parser",
        "_paused_at",
        "_peer",
        "_producer",
        "_producer_streaming",
        "_queue",
        "_read_at",
        "_reading_paused",
        "_requests_seen",
        "_settings",
        "_state",
        "_twisted_transport",
        "_unsent",
        "_upgrade",
        "_writing_paused",
        "asyncio_transport",
        "call_soon",
        "factory",
        "requestFactory",
    )

    #: Makes the factory of a channel that was given none by the time its connection is
    #: made. :mod:`treadle.web.http` names its ``HTTPFactory`` here: this module cannot
    #: import it.
    default_factory: ClassVar[Callable[[], ChannelFactory] | None] = None

    def __init__(self, factory: ChannelFactory | None = None) -> None:
        self.factory: ChannelFactory = factory  # type: ignore[assignment]  # None until set
        if factory is not None:
            self.adopt_request_factory(factory)
        self.asyncio_transport: asyncio.Transport | None = None
        # Made on first use of ``transport``: most connections never need it.
        self._twisted_transport: ChannelTransport | None = None
        self._state = IDLE
        # Lent by SPARE_PARSERS while a request is arriving (see Parser).
        self._parser: Parser | None = None
        # A list, not a deque: it holds at most maxPipelined items, and an empty deque
        # costs some 600 bytes per connection.
        self._queue: list[Message | _Rejection] = []
        self._active: ChannelRequest | None = None
        # True while _dispatch runs, so a request finished inside it does not dispatch again.
        self._dispatching = False
        self._reading_paused = False
        self._writing_paused = False
        self._paused_at = 0.0
        self._unsent = -1
        self._buffered = 0
        self._drain_waiter: asyncio.Future[None] | None = None
        self._producer: Any = None
        self._producer_streaming = False
        # This connection's entry in the loop's TimerHeap of connection deadlines.
        self._handle: Any = None
        self._head_started = 0.0
        self._body_started = 0.0
        self._read_at = 0.0
        self._connected_at = 0.0
        self._requests_seen = 0
        self._last_activity = 0.0
        self._peer: Any = None
        self._host: Any = None
        # Where timeouts are read: the factory, or settings made for this channel alone
        # (see treadle.web._twisted_channel.ChannelSettings).
        self._settings: Any = None
        # UPGRADING: the bytes read past the Upgrade request's head (a bytearray);
        # UPGRADED: the protocol the connection was handed to (see switch_protocol).
        self._upgrade: Any = None

    def adopt_request_factory(self, factory: ChannelFactory) -> None:
        """Take the factory's ``requestFactory`` unless this channel's class has its own.

        A :class:`~treadle.web.server.Site` imposes its own anyway, as Twisted's
        ``Site.buildProtocol`` does.
        """
        # On HTTPChannel itself the name is the slot's descriptor; a subclass's own value
        # (a request class) hides it.
        own = getattr(type(self), "requestFactory", None)
        if type(own) is types.MemberDescriptorType or getattr(
            factory, "imposesRequestFactory", False
        ):
            self.requestFactory = factory.requestFactory

    @property
    def site(self) -> Any:
        """The factory that made the channel (Twisted's ``channel.site``)."""
        return self.factory

    @site.setter
    def site(self, value: Any) -> None:
        self.factory = value

    @property
    def transport(self) -> ChannelTransport | None:
        """The connection as Twisted's ``ITCPTransport`` (None before it is made).

        ``loseConnection`` sends what the response being answered holds, then closes;
        ``abortConnection`` drops the connection at once; ``getPeer``/``getHost`` give address
        objects; producers registered here feed the response being answered. Writing to it
        puts bytes on the wire as they are, after what the response already wrote.
        """
        twisted = self._twisted_transport
        if twisted is None:
            raw = self.asyncio_transport
            if raw is None:
                return None
            twisted = self._twisted_transport = ChannelTransport(raw, self)
        return twisted

    @property
    def state(self) -> str:
        """The connection's state, by name (see the module docstring)."""
        return state_name(self._state)

    def _enter(self, event: int) -> int:
        """Move the state machine on ``event`` (see :mod:`treadle.web._state`); return the state."""
        try:
            # The table itself, looked up here: this runs three times per request.
            state = self._state = MOVES[event][self._state]
        except KeyError:
            next_state(self._state, event)  # raises ChannelStateError, naming both
            raise
        return state

    @property
    def persistent(self) -> bool:
        """Whether the connection stays open after the response being answered.

        True while requests are still read, or answered ones still wait in the queue, unless
        the server is shutting down (a connection accepted then is answered once).
        """
        return (self._state < DONE or bool(self._queue)) and not self.factory.shutting_down

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.asyncio_transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        factory = self.factory
        settings = self._settings
        if settings is None:
            settings = self._settings = factory
        else:
            settings.factory = factory  # settings made for this channel before it connected
        deadlines, self.call_soon = settings.timing()
        self._deadlines: TimerHeap = deadlines
        self._now: Callable[[], float] = deadlines.now
        self._limits = settings.limits()
        self._last_activity = self._connected_at = self._now()
        if not factory.connection_opened(self):
            # Over the concurrency limit: answer at once instead of letting clients pile up.
            self._enter(STOP)
            self._send_rejection(_Rejection(503, "too many connections"))
            return
        deadlines.add(self, self._timer_period())

    def data_received(self, data: bytes) -> None:
        state = self._state
        if state >= DONE:
            if state == UPGRADED:
                self._upgrade.data_received(data)
            elif state == UPGRADING:
                self._hold_for_upgrade(data)
            # Otherwise refused or closing: whatever else arrives is dropped unparsed (while
            # lingering after a refusal, this is the draining that lets the client read it).
            return
        if self._active is not None:
            self._buffered += len(data)
            if self._buffered > READ_AHEAD:
                self._pause_reading()
        # When this read arrived, for the sink calls: a head's start, a body's progress.
        # (A read is no activity as such: empty lines between requests extend nothing.)
        self._read_at = self._now()
        parser = self._parser
        if parser is None:
            if not self._requests_seen and data[:4] == _H2_PREFACE_START and self._speak_h2(data):
                return
            # A spare parser is lent for as long as a request is arriving (see Parser).
            try:
                parser = SPARE_PARSERS.pop()
            except IndexError:
                parser = Parser()
            parser.sink = self
            parser.limits = self._limits
            self._parser = parser
        # In pieces of FEED_SLICE bytes, so that what no callback counts is bounded (see
        # Parser.count_read); the usual read is one piece.
        pieces: Iterable[bytes | memoryview] = (data,) if len(data) <= FEED_SLICE else _pieces(data)
        for piece in pieces:
            seen = self._requests_seen
            body_before = parser.body_size
            try:
                parser.llhttp.feed_data(piece)
            except httptools.HttpParserUpgrade as e:
                # An Upgrade (or CONNECT): the bytes after it belong to another protocol. They
                # are held for the resource that may switch to it (switch_protocol); answered
                # as plain HTTP instead, the connection closes after the response (RFC 9110
                # §7.8 lets a server ignore Upgrade).
                rest = b"" if type(pieces) is tuple else b"".join(pieces)  # the pieces left
                self._upgrade_requested(bytes(piece[e.args[0] :]) + rest)
                break
            except httptools.HttpParserCallbackError as e:
                cause = e.__context__
                if isinstance(cause, Refused):
                    self._reject(cause.code, str(cause))
                else:
                    error_log.error("error while parsing a request", exc_info=cause)
                    self._reject(500, "internal error")
                break
            except httptools.HttpParserError as e:
                if self._state < DONE:  # else: bytes after `Connection: close`, dropped
                    self._reject(parser.error_status(), str(e) or type(e).__name__)
                break
            if state in (HEAD, BODY) and self._state == state and self._requests_seen == seen:
                # The piece fell wholly inside one message: count what no callback did.
                try:
                    framing = len(piece) - (parser.body_size - body_before)
                    parser.count_read(framing, state == HEAD)
                except Refused as e:
                    self._reject(e.code, str(e))
                    break
            state = self._state
            if state >= DONE:
                break
        if self._state == IDLE and self._parser is parser:
            # Every request of this read is complete: llhttp waits for the start of the
            # next one, as a fresh parser would, so the parser can serve any connection.
            self._parser = None
            parser.sink = None
            if len(SPARE_PARSERS) < MAX_SPARE_PARSERS:
                SPARE_PARSERS.append(parser)
        if self._active is None:
            self._dispatch()

    def _speak_h2(self, data: bytes) -> bool:
        """The client opened with HTTP/2's preface (after ALPN chose ``h2``, or in cleartext
        with prior knowledge): hand the transport to an HTTP/2 connection, which counts
        itself with the factory from now on. False when the transport cannot be handed over
        (a Twisted transport); llhttp then refuses the bytes."""
        transport = self.asyncio_transport
        set_protocol = getattr(transport, "set_protocol", None)
        if set_protocol is None:
            return False
        # Imported on first use: h2 takes some 30 ms to import, which HTTP/1.1 never pays.
        from treadle.web._h2_channel import H2Connection

        self._enter(STOP)
        if self._handle is not None:
            self._deadlines.discard(self)
        self.factory.connection_closed(self)
        self.asyncio_transport = None
        connection = H2Connection(self.factory, self.requestFactory)
        set_protocol(connection)
        connection.connection_made(transport)  # type: ignore[arg-type]  # not None: set_protocol
        connection.data_received(data)
        return True

    def eof_received(self) -> bool | None:
        if self._state == UPGRADED:
            return self._upgrade.eof_received()  # type: ignore[no-any-return]
        # A client that half-closes is treated as gone, as Twisted does: a response still
        # being produced for it is abandoned and its notifyFinish Deferreds errback.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        aborted = self._state == ABORTED
        self._enter(LOST)
        self.factory.connection_closed(self)
        parser, self._parser = self._parser, None
        if parser is not None:
            parser.discard()  # stopped inside a message (or after a refusal)
        if self._handle is not None:
            self._deadlines.discard(self)
        self._drop_queue()
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.stopProducing()
            except Exception:
                error_log.exception("error stopping producer %r", producer)
        active, self._active = self._active, None
        if active is not None:
            reason: Exception
            if aborted:
                reason = ConnectionAborted()
            elif exc is None:
                reason = ConnectionDone()
            else:
                reason = ConnectionLost(exc)
            active.connectionLost(reason)
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        twisted = self._twisted_transport
        if isinstance(twisted, ChannelTransport):
            twisted._lost()
        self.asyncio_transport = None
        upgrade, self._upgrade = self._upgrade, None
        if upgrade is not None and type(upgrade) is not bytearray:
            upgrade.connection_lost(ConnectionAborted() if aborted else exc)

    def pause_writing(self) -> None:
        if self._state == UPGRADED:
            self._upgrade.pause_writing()
            return
        self._writing_paused = True
        self._paused_at = self._now()
        if self._producer is not None and self._producer_streaming:
            self._call_producer(self._producer.pauseProducing)

    def resume_writing(self) -> None:
        if self._state == UPGRADED:
            self._upgrade.resume_writing()
            return
        self._writing_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._active is None:
            # Pipelined requests waited for the client to read, or reading did (see
            # _dispatch).
            if self._queue or self._reading_paused:
                self._dispatch()
            return
        producer = self._producer
        if producer is not None:
            if self._producer_streaming:
                self._call_producer(producer.resumeProducing)
            else:
                self._pull_more(producer)

    # -- what the parser tells (MessageSink) ------------------------------------------------

    def message_begun(self) -> None:
        """The first byte of a request head arrived: its head timeout starts."""
        try:
            self._state = AFTER_BEGIN[self._state]  # the table's row, looked up inline
        except KeyError:
            self._enter(BEGIN)  # raises ChannelStateError, naming the move
        self._head_started = self._read_at

    def head_received(self, invite: bool) -> None:
        """The head is complete: the body (if any) may come, invited when it asked to be."""
        if not invite:
            try:
                self._state = AFTER_HEAD[self._state]  # the table's row, looked up inline
            except KeyError:
                self._enter(HEAD_DONE)  # raises ChannelStateError, naming the move
        elif self._active is None and not self._queue:
            self._enter(HEAD_DONE)
            assert self.asyncio_transport is not None
            self.asyncio_transport.write(_CONTINUE_LINE)
        else:
            self._enter(AWAIT_INVITE)  # owed once the responses before it are out
        # The body timeout and the body rate count from here.
        self._body_started = self._last_activity = self._read_at

    def body_received(self) -> None:
        """Body data arrived: the body timeout starts again."""
        self._last_activity = self._read_at

    def message_received(self, message: Message) -> None:
        """A request is complete: queue it to be answered in its turn."""
        self._requests_seen += 1
        keep_alive = message[5]
        if keep_alive:
            try:
                self._state = AFTER_COMPLETE[self._state]  # the table's row, looked up inline
            except KeyError:
                self._enter(COMPLETE)  # raises ChannelStateError, naming the move
        else:
            self._enter(LAST)
        queue = self._queue
        queue.append(message)
        if keep_alive and len(queue) >= self.factory.maxPipelined:
            self._pause_reading()

    # -- answering --------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start answering queued requests until one stays outstanding."""
        if self._dispatching:
            return
        self._dispatching = True
        try:
            queue = self._queue
            # While the client reads nothing (writing paused), answering more pipelined
            # requests would only grow the transport's buffer: resume_writing resumes here.
            while self._active is None and queue and not self._writing_paused:
                item = queue.pop(0)
                if type(item) is _Rejection:
                    self._send_rejection(item)
                    return
                request = self.requestFactory(self)
                self._active = request
                try:
                    request.receive_message(item)  # type: ignore[arg-type]  # a Message
                except Exception:
                    if not self._answer_otherwise(request, item):  # type: ignore[arg-type]
                        return
        finally:
            self._dispatching = False
        if (
            self._reading_paused
            and self._active is None
            and self._state < DONE
            and not self._writing_paused  # the client reads nothing: no more requests
            and len(self._queue) < self.factory.maxPipelined
        ):
            self._buffered = 0
            self._resume_reading()

    def _answer_otherwise(self, request: Any, message: Message) -> bool:
        """After ``receive_message`` raised: answer through Twisted's interface, or give up.

        A request object without ``receive_message`` (one of Twisted's interface only) is
        driven by :class:`~treadle.web._twisted_channel.InterfaceRequest`. Anything else is
        a bug in a request or its factory (requests answer their own errors): the
        connection cannot be trusted any more. Returns whether answering went on.
        """
        if not hasattr(request, "receive_message"):
            adapter = InterfaceRequest(request, self)
            if self._active is request:
                self._active = adapter
            try:
                adapter.receive_message(message)
            except Exception:
                error_log.exception("unhandled error answering %r", request)
                self.abort()
                return False
            return True
        error_log.exception("unhandled error answering %r", request)
        self.abort()
        return False

    def request_done(self, request: ChannelRequest, keeps: bool) -> None:
        """Called by a request once its last byte was written.

        Args:
            request: The request.
            keeps: Its response let the connection stay open (see
                :func:`treadle.web._framing.keeps_connection`).
        """
        active = self._active
        if request is not active and (active is None or active != request):
            return  # (compared only when not the same object: an InterfaceRequest)
        self._active = None
        self._producer = None
        # Idle from now: a response finished while its request's read is being handled
        # (the usual, synchronous case) is finished at that read's time.
        self._last_activity = self._read_at if self._dispatching else self._now()
        if not keeps or (self._state >= DONE and not self._queue):
            self._enter(STOP)
            self._drop_queue()
            self._close()
            return
        if self._state == CONTINUE and not self._queue and self.asyncio_transport is not None:
            self._enter(INVITED)
            self.asyncio_transport.write(_CONTINUE_LINE)
        if not self._dispatching:
            self._buffered = 0
            if self._queue or self._reading_paused:  # else _dispatch has nothing to do
                self._dispatch()

    def _drop_queue(self) -> None:
        """Forget queued requests, closing any body spooled to a temporary file."""
        for item in self._queue:
            if type(item) is tuple and item[4] is not None:
                item[4].close()
        self._queue.clear()

    def _reject(self, code: int, reason: str) -> None:
        """Stop parsing; answer ``code`` after the requests already queued, then close."""
        self._enter(STOP)
        self._pause_reading()
        if self._parser is not None:
            self._parser.close_body()
        self._queue.append(_Rejection(code, reason))

    def _send_rejection(self, rejection: _Rejection) -> None:
        transport = self.asyncio_transport
        if transport is None:
            return
        if rejection.code == 400:
            # Twisted's answer to a malformed request, byte for byte: the status line alone,
            # the connection closing after it (which is how the client knows the end).
            transport.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        else:
            # The page names the status only: nothing of the request is reflected.
            phrase = RESPONSES.get(rejection.code, b"Error")
            body = b"<html><body><h1>%d %s</h1></body></html>" % (rejection.code, phrase)
            transport.write(
                status_line(rejection.code)
                + SERVER_LINE
                + date_header()
                + b"Content-Type: text/html\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                % len(body)
                + body
            )
        can_write_eof = getattr(transport, "can_write_eof", None)
        if rejection.code in (408, 503) or can_write_eof is None or not can_write_eof():
            # A client too slow to send its head, or one we will not serve at all, gets no
            # grace; nor does a transport that cannot half-close (TLS).
            self._close()
            return
        # Lingering close (RFC 9112 §9.6): closing with unread request bytes would make the
        # kernel send a reset that can destroy the response before the client reads it. So
        # send our FIN, drop what still arrives, and close after lingerTime or at its EOF.
        transport.write_eof()
        self._enter(REFUSAL_SENT)
        self._last_activity = self._now()
        self._resume_reading()

    # -- switching protocols (Upgrade, RFC 9110 §7.8) ---------------------------------------

    def _upgrade_requested(self, tail: bytes) -> None:
        """The request just parsed asked to upgrade: parse no more, hold the bytes after it."""
        if self._state != IDLE and self._state != DONE:
            self._enter(STOP)  # (an Upgrade llhttp stopped at without its message complete)
            return
        self._enter(UPGRADE)
        self._upgrade = bytearray()
        self._hold_for_upgrade(tail)

    def _hold_for_upgrade(self, data: bytes) -> None:
        """Keep bytes of the next protocol until the request is answered (up to READ_AHEAD)."""
        held: bytearray = self._upgrade
        held += data
        if len(held) > READ_AHEAD:
            self._pause_reading()

    def switch_protocol(self, request: object, protocol: SwitchedProtocol, head: bytes) -> bool:
        """Answer ``request`` with ``head`` and hand the connection over to ``protocol``.

        The way a resource takes a connection out of HTTP (a WebSocket, an ASGI WebSocket
        application): ``request`` must be the request being answered, and one that asked to
        upgrade (an ``Upgrade`` field with ``Connection: upgrade``; the channel then parsed
        nothing after it). The channel writes ``head`` (a complete ``101 Switching
        Protocols`` response head, which the caller builds), stops its HTTP timeouts,
        lets its parser go, calls ``protocol.connection_made(transport)`` with its asyncio
        transport, then ``protocol.data_received`` with any bytes the client sent after the
        request's head. From then on the channel passes everything on to ``protocol``
        (bytes, EOF, flow control, loss) and stays counted by its factory until the
        connection ends, so ``maxConnections`` and shutdown see it: at shutdown
        :meth:`close_when_idle` calls ``protocol.close_when_idle()``, and the connections
        left after the grace period are aborted (``connection_lost`` then gets a
        :class:`~treadle.internet.error.ConnectionAborted`). A switch made while the
        factory is shutting down calls ``close_when_idle`` at once.

        The request is not finished by this: the caller ends it (e.g. with
        ``request.startedWriting = True`` then ``request.finish()``, which logs it and
        fires its ``notifyFinish`` without writing).

        Returns:
            True once switched; False when the connection is already ending (lost, closing
            or aborted), in which case nothing was written and ``protocol`` is not called.

        Raises:
            RuntimeError: ``request`` is not the one being answered, or did not ask to
                upgrade.
        """
        active = self._active
        if self._state != UPGRADING or (
            request is not active and (active is None or active != request)
        ):
            if self._state in (CLOSING, ABORTED) or self.asyncio_transport is None:
                return False
            raise RuntimeError(f"{request!r} did not ask to upgrade, or is not being answered")
        transport = self.asyncio_transport
        assert transport is not None  # (UPGRADING: the connection is open)
        self._enter(SWITCH)
        self._active = None
        self._producer = None
        if self._handle is not None:
            self._deadlines.discard(self)
        parser, self._parser = self._parser, None
        if parser is not None:
            parser.discard()
        held, self._upgrade = self._upgrade, protocol
        transport.write(head)
        self._resume_reading()
        protocol.connection_made(transport)
        if held and self._upgrade is protocol:
            protocol.data_received(bytes(held))
        if self.factory.shutting_down and self._upgrade is protocol:
            protocol.close_when_idle()
        return True

    # -- producers (Twisted's IConsumer, for the request being answered) --------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Let ``producer`` feed the response being answered, paced by the transport.

        Args:
            producer: Has ``pauseProducing``/``resumeProducing``/``stopProducing`` (push,
                ``streaming=True``) or ``resumeProducing``/``stopProducing`` (pull: called
                whenever more data is wanted).
            streaming: Which of the two it is.

        Raises:
            RuntimeError: A producer is already registered.
        """
        if self._producer is not None:
            raise RuntimeError(f"a producer is already registered: {self._producer!r}")
        if self.asyncio_transport is None:
            producer.stopProducing()
            return
        self._producer = producer
        self._producer_streaming = streaming
        if streaming:
            if self._writing_paused:
                producer.pauseProducing()
        elif not self._writing_paused:
            self.call_soon(functools.partial(self._pull_more, producer))

    def unregisterProducer(self) -> None:
        """Detach the producer (no-op when none)."""
        self._producer = None

    def _call_producer(self, method: Callable[[], object]) -> None:
        """Call a producer's method; an error in it is logged and drops this connection only."""
        try:
            method()
        except Exception:
            error_log.exception("error in producer of %r", self._active)
            self.abort()

    def _pull_more(self, producer: Any) -> None:
        """Drive a pull producer: ask for more while it stays registered and writing is open."""
        if self._producer is not producer or self._writing_paused:
            return
        self._call_producer(producer.resumeProducing)
        if (
            self._producer is producer
            and not self._writing_paused
            and self.asyncio_transport is not None
        ):
            self.call_soon(functools.partial(self._pull_more, producer))

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its low-water mark."""
        transport = self.asyncio_transport
        if transport is None:
            return
        if transport.is_closing():
            # The connection is going (its connection_lost is scheduled, not yet delivered):
            # yield once so that it arrives and later writes are ignored, rather than sent
            # at a dead socket in a loop that never gives the event loop a turn.
            await asyncio.sleep(0)
            return
        if not self._writing_paused:
            return
        waiter = self._drain_waiter
        if waiter is None:
            waiter = self._drain_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(waiter)

    # -- flow control and timers ------------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.asyncio_transport is not None:
            self._reading_paused = True
            self.asyncio_transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.asyncio_transport is not None:
            self._reading_paused = False
            self.asyncio_transport.resume_reading()
            if self._state == BODY:
                # A body held back by our own pause: its clocks start again from here.
                self._body_started = self._last_activity = self._now()

    def _timer_period(self) -> float:
        factory: ChannelFactory = self._settings
        return min(factory.timeOut, factory.headTimeout, factory.bodyTimeout)

    def _check_timeouts(self) -> None:
        """One timer per connection enforces every timeout, by state.

        - ``IDLE`` between requests: ``timeOut`` of silence closes the connection (a new
          connection that never sends a byte gets ``headTimeout``); empty lines between
          requests are no activity;
        - ``HEAD``: ``headTimeout`` from its first byte, however the bytes trickle in
          (slowloris), then ``408``;
        - ``BODY``: ``bodyTimeout`` between two pieces of body data, and, after
          ``minBodyRateGrace`` seconds, at least ``minBodyRate`` bytes a second on average
          since the head; then ``408``;
        - answering (a response outstanding, ``CONTINUE`` or ``DONE``): never; a response
          may take as long as its resource wants, but a client that reads nothing for
          ``timeOut`` while output waits for it is dropped (a slow-read attack or a dead
          peer; nginx's send_timeout is 60 s);
        - ``LINGER``: ``lingerTime``, then close;
        - ``CLOSING``: as long as the client keeps taking what the transport still holds,
          then abort after ``timeOut`` without progress.

        The timer re-arms at most every ``_timer_period()`` seconds, so a state entered
        between two checks is caught within that period of its deadline.
        """
        transport = self.asyncio_transport
        if transport is None:
            return
        factory = self._settings
        now = self._now()
        state = self._state
        if state == CLOSING:
            unsent = transport.get_write_buffer_size()
            if unsent != self._unsent:
                self._unsent = unsent
                self._last_activity = now
            elif now - self._last_activity >= factory.timeOut:
                self.abort()  # the client takes none of what is left for it
                return
            self._deadlines.add(self, self._timer_period())
            return
        if state in (ABORTED, UPGRADED):
            return  # (an upgraded connection keeps time by its own protocol)
        if self._writing_paused and now - self._paused_at >= factory.timeOut:
            self.abort()
            return
        status = 0
        if state == LINGER:
            deadline = self._last_activity + factory.lingerTime
        elif self._active is not None or state in (DONE, CONTINUE, UPGRADING):
            deadline = now + factory.timeOut  # answering (or about to refuse): no deadline
        elif state == HEAD:
            deadline = self._head_started + factory.headTimeout
            status = 408
        elif state == BODY:
            deadline = self._last_activity + factory.bodyTimeout
            rate = factory.minBodyRate
            parser = self._parser
            if rate > 0 and parser is not None:
                # The time by which the body received so far falls below the rate.
                behind = self._body_started + max(factory.minBodyRateGrace, parser.body_size / rate)
                deadline = min(deadline, behind)
            status = 408
        elif self._requests_seen == 0:
            deadline = self._connected_at + factory.headTimeout
        else:
            deadline = self._last_activity + factory.timeOut
        if now < deadline:
            self._deadlines.add(self, min(deadline - now, self._timer_period()))
        else:
            if status:
                self._reject(status, "request timed out")
                self._dispatch()
            else:
                self._close()
            if self.asyncio_transport is not None and self._handle is None:
                self._deadlines.add(self, self._timer_period())

    _due = _check_timeouts  # what the deadline heap calls

    def _close(self) -> None:
        """Close the connection once the transport has flushed what it holds.

        The timer keeps watching: a client that takes none of the rest for ``timeOut``
        seconds is aborted, so a peer that never reads cannot hold the connection open.
        """
        if self._enter(CLOSE) != CLOSING:
            return  # aborted or gone already
        self._last_activity = self._now()
        self._unsent = -1
        if self.asyncio_transport is not None:
            self.asyncio_transport.close()

    # -- ending the connection (Twisted's names) --------------------------------------------

    def close_when_idle(self) -> None:
        """Finish the response in progress (if any), then close; close at once when idle.

        Requests queued behind the one in progress are dropped unanswered. An upgraded
        connection is asked to end by its protocol (``close_when_idle``: a WebSocket sends
        its close frame, ``1001``).
        """
        if self._state == UPGRADED:
            self._upgrade.close_when_idle()
            return
        self._enter(STOP)
        self._drop_queue()
        if self._active is None and self.asyncio_transport is not None:
            self._close()

    def loseConnection(self) -> None:
        """Close after sending what was written so far, including a response's held start."""
        active = self._active
        if active is not None:
            active.flush_held()
        self._enter(STOP)
        self._drop_queue()
        self._close()

    def abort(self) -> None:
        """Drop the connection at once, discarding unsent data (Twisted's abortConnection).

        The request in progress, if any, learns of a
        :class:`~treadle.internet.error.ConnectionAborted`.
        """
        if self._enter(ABORT) == ABORTED and self.asyncio_transport is not None:
            self.asyncio_transport.abort()

    abortConnection = abort

    # -- addresses --------------------------------------------------------------------------

    def peer_address(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """The client's address (computed once)."""
        if self._peer is None:
            transport = self.asyncio_transport
            self._peer = from_sockname(
                transport.get_extra_info("peername") if transport is not None else None
            )
        return self._peer  # type: ignore[no-any-return]

    def host_address(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """Our own address on this connection (computed once)."""
        if self._host is None:
            transport = self.asyncio_transport
            self._host = from_sockname(
                transport.get_extra_info("sockname") if transport is not None else None
            )
        return self._host  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at 0x{id(self):x} {state_name(self._state)}>"
