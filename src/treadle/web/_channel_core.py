"""The HTTP/1.1 channel's core: bytes in, requests out, answered strictly in order.

:class:`ChannelCore` is the state machine and the per-request path of
:class:`~treadle.web.http.HTTPChannel` (the public class, put together in
:mod:`treadle.web._channel` from this core and the mixins holding what a connection does off
that path). mypyc compiles this module (see :mod:`treadle._compiled`).

The channel is an :class:`asyncio.Protocol` driving httptools (llhttp) through a
:class:`LentParser`. The parser's callbacks only *record* what they see and tell the channel
at four points (a message began, its head is complete, body data arrived, it is complete);
the channel acts after ``feed_data`` returns, so no user code ever runs inside the parser.
Completed requests wait in a short queue and are answered strictly in order, one at a time.
While a response is outstanding the channel keeps reading a little ahead (so it notices a
client that leaves, as Twisted does) and pauses the transport once that read-ahead or the
queue is full.

The connection is one state machine: :attr:`ChannelCore.state` holds one state value, and
every change goes through :meth:`ChannelCore._enter` and the transition table of
:mod:`treadle.web._state` (which also says what each state means); anything else is a bug
and raises :class:`~treadle.web._state.ChannelStateError`. Besides the state, the channel
keeps the request being answered (``_active``), the queue, and the transport's flow control
(reading and writing paused), which mirror the transport.

Hostile input and limits: what llhttp refuses by itself, what the parser checks on top and
how the limits are counted (exactly where a callback sees the bytes, to within two pieces of
:data:`~treadle.web._parser.FEED_SLICE` bytes elsewhere) is in :mod:`treadle.web._parser`;
timeouts, the minimum body rate among them, in :mod:`treadle.web._channel_timeouts`.

Small responses are written when the loop turns: a whole response (head and body in one piece)
of at most :data:`CORK_MAX` bytes is held in ``_corked`` rather than written, the channel is
added to the loop's :class:`~treadle.internet._timers.SoonBatch`, and at the loop's next turn
(or once the first has waited :data:`~treadle.internet._timers.MAX_WAIT`, in a turn of slow
callbacks) every connection writes what it holds, in one write each. Why: a response written
while the server still has requests of the same turn to read wakes a client that then sends its
next request and sleeps again, and each such wake-up is paid in the server's ``send``; written
together after the turn's reads, the responses wake each client once, and sixteen pipelined
requests cost one ``send`` instead of sixteen (the measurements are in
bench/profiles/README.md). The bytes leave in order: :func:`flush_corked` runs first on every
other way to the connection (a larger or streamed response, the request's transport, a
producer, a refusal, ``100 Continue``, an upgrade, closing and aborting). Only finished
responses are held, so no application code waits on it, and at most ``maxPipelined`` of them on
one connection. The turn's callback is scheduled before a request is answered, so what its
render schedules for the next turn (``callLater(0, ...)``) runs after the response left. A
channel driven by hand on a test clock (:func:`treadle.web.testing.connect`) writes at once,
as a test written for Twisted expects.

Compiled, the public class is a Python subclass of :class:`ChannelCore`, so a program's own
channel classes and attributes behave as Python's. The core calls the mixins' methods
through stubs the mixins override, and its hottest steps are module functions (:func:`_feed`,
:func:`_dispatch`, :func:`answered`, what the parser tells), which compiled code calls
directly rather than through a method lookup.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

import httptools
from mypy_extensions import mypyc_attr

from treadle.internet._timers import SoonBatch, TimerHeap
from treadle.web._channel_common import (
    READ_AHEAD,
    ChannelFactory,
    Rejection,
)
from treadle.web._channel_switch import H2_PREFACE_START
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
    MOVES,
    STOP,
    UPGRADED,
    UPGRADING,
    next_state,
    state_name,
)

__all__ = ["ChannelCore"]

error_log = logging.getLogger("treadle.error")

_CONTINUE_LINE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"

#: The largest response (head and body) held until the loop's next turn: the wake-ups and
#: system calls saved matter for small responses, and larger ones keep the transport's flow
#: control.
CORK_MAX: Final = 8192


@mypyc_attr(allow_interpreted_subclasses=True)
class ChannelCore:
    """The state machine and per-request path of :class:`~treadle.web.http.HTTPChannel`.

    See the module docstring; the public class documents the channel's API. Its attributes
    are fields of the compiled class (``__slots__`` in pure Python). ``requestFactory`` is
    the public class's: a property over ``_request_factory``, or a subclass's own class
    attribute (Twisted's pattern), which ``_request_factory`` left None defers to.
    """

    __slots__ = (
        "_active",
        "_body_started",
        "_buffered",
        "_connected_at",
        "_corked",
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
        "_request_factory",
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
    )

    def __init__(self, factory: ChannelFactory | None = None) -> None:
        self.factory: ChannelFactory = factory  # type: ignore[assignment]  # None until set
        self._request_factory: Any = None
        if factory is not None:
            channel: Any = self
            channel.adopt_request_factory(factory)
        self.asyncio_transport: asyncio.Transport | None = None
        # Made on first use of ``transport``: most connections never need it.
        self._twisted_transport: Any = None
        self._state: int = IDLE
        # Lent from SPARE_PARSERS while a request is arriving (see LentParser).
        self._parser: LentParser | None = None
        # Requests parsed and not yet answered: a list made when one arrives and dropped once
        # emptied (a deque costs some 600 bytes; even an empty list, kept by every idle or
        # waiting connection, 56), holding at most maxPipelined items.
        self._queue: list[Message | Rejection] | None = None
        self._active: Any = None  # the ChannelRequest being answered
        # True while _dispatch runs, so a request finished inside it does not dispatch again.
        self._dispatching: bool = False
        # Whole responses held until the loop's next turn (see the module docstring).
        self._corked: list[bytes] | None = None
        self._reading_paused: bool = False
        self._writing_paused: bool = False
        self._producer_streaming: bool = False  # (beside the other flags: one word for all)
        self._paused_at: float = 0.0
        self._unsent: int = -1
        self._buffered: int = 0
        self._drain_waiter: asyncio.Future[None] | None = None
        self._producer: Any = None
        # This connection's entry in the loop's TimerHeap of connection deadlines.
        self._handle: Any = None
        self._head_started: float = 0.0
        self._body_started: float = 0.0
        self._read_at: float = 0.0
        self._connected_at: float = 0.0
        self._requests_seen: int = 0
        self._last_activity: float = 0.0
        self._peer: Any = None
        self._host: Any = None
        self._limits: Limits | None = None
        # Where timeouts are read: the factory, or settings made for this channel alone
        # (see treadle.web._twisted_channel.ChannelSettings).
        self._settings: Any = None
        # UPGRADING: the bytes read past the Upgrade request's head (a bytearray);
        # UPGRADED: the protocol the connection was handed to (see switch_protocol).
        self._upgrade: Any = None
        self.call_soon: Callable[[Callable[[], object]], object] = _not_connected

    @property
    def state(self) -> str:
        """The connection's state, by name (see the module docstring)."""
        return state_name(self._state)

    def _enter(self, event: int) -> int:
        """Move the state machine on ``event`` (see :mod:`treadle.web._state`); return the state."""
        state = MOVES[event].get(self._state)
        if state is None:
            next_state(self._state, event)  # raises ChannelStateError, naming both
            raise AssertionError("unreachable")
        self._state = state
        return state

    @property
    def persistent(self) -> bool:
        """Whether the connection stays open after the response being answered.

        True while requests are still read, or answered ones still wait in the queue, unless
        the server is shutting down (a connection accepted then is answered once).
        """
        return keeps_reading(self)

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
            self._send_rejection(Rejection(503, "too many connections"))
            return
        deadlines.add(self, _timer_period(settings))

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
            if not self._requests_seen and data[:4] == H2_PREFACE_START and self._speak_h2(data):
                return
            # A spare parser is lent for as long as a request is arriving (see Parser).
            spare = SPARE_PARSERS.pop() if SPARE_PARSERS else None
            parser = spare if isinstance(spare, LentParser) else LentParser()
            parser.channel = self
            parser.limits = self._limits  # type: ignore[assignment]  # set when connected
            self._parser = parser
        size = len(data)
        if size <= FEED_SLICE:  # the usual read: one piece
            _feed(self, parser, data, data, size, state)
        else:
            # In pieces of FEED_SLICE bytes, so that what no callback counts is bounded (see
            # Parser.count_read).
            view = memoryview(data)
            for start in range(0, size, FEED_SLICE):
                end = start + FEED_SLICE
                if not _feed(self, parser, view[start:end], data, end, self._state):
                    break
        if self._state == IDLE and self._parser is parser:
            # Every request of this read is complete: llhttp waits for the start of the
            # next one, as a fresh parser would, so the parser can serve any connection.
            self._parser = None
            parser.channel = None
            if len(SPARE_PARSERS) < MAX_SPARE_PARSERS:
                SPARE_PARSERS.append(parser)
        if self._active is None:
            _dispatch(self)

    # -- what the parser tells (MessageSink) ------------------------------------------------

    def message_begun(self) -> None:
        """The first byte of a request head arrived: its head timeout starts."""
        _message_begun(self)

    def head_received(self, invite: bool) -> None:
        """The head is complete: the body (if any) may come, invited when it asked to be."""
        _head_received(self, invite)

    def body_received(self) -> None:
        """Body data arrived: the body timeout starts again."""
        _body_received(self)

    def message_received(self, message: Message) -> None:
        """A request is complete: queue it to be answered in its turn."""
        _message_received(self, message)

    # -- answering --------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start answering queued requests until one stays outstanding."""
        _dispatch(self)

    def request_done(self, request: Any, keeps: bool) -> None:
        """Called by a request once its last byte was written.

        Args:
            request: The request.
            keeps: Its response let the connection stay open (see
                :func:`treadle.web._framing.keeps_connection`).
        """
        answered(self, request, keeps)

    def _drop_queue(self) -> None:
        """Forget queued requests, closing any body spooled to a temporary file."""
        queue, self._queue = self._queue, None
        for item in queue or ():
            if isinstance(item, tuple) and item[4] is not None:  # a spooled body
                item[4].close()

    def _reject(self, code: int, reason: str) -> None:
        """Stop parsing; answer ``code`` after the requests already queued, then close."""
        self._enter(STOP)
        self._pause_reading()
        if self._parser is not None:
            self._parser.close_body()
        _enqueue(self, Rejection(code, reason))

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

    def uncork(self) -> None:
        """Write the whole responses held until the loop's next turn (see the module docstring).

        Whatever writes to the connection other than the per-request path calls this first.
        """
        flush_corked(self)

    def _run_soon(self) -> None:
        """What the loop's :class:`~treadle.internet._timers.SoonBatch` runs: :meth:`uncork`."""
        flush_corked(self)

    def _close(self) -> None:
        """Close the connection once the transport has flushed what it holds.

        The timer keeps watching: a client that takes none of the rest for ``timeOut``
        seconds is aborted, so a peer that never reads cannot hold the connection open.
        """
        if self._enter(CLOSE) != CLOSING:
            return  # aborted or gone already
        self._last_activity = self._now()
        self._unsent = -1
        flush_corked(self)
        if self.asyncio_transport is not None:
            self.asyncio_transport.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at 0x{id(self):x} {state_name(self._state)}>"

    # -- provided by the public class's mixins ----------------------------------------------
    # (Stubs for the type checker and for mypyc: the mixins come first in HTTPChannel's bases,
    # so their methods are the ones called.)

    def _due(self) -> None:
        """The connection's entry in the deadline heap is due (TimeoutsMixin)."""
        raise NotImplementedError

    def _hold_for_upgrade(self, data: bytes) -> None:
        """Keep bytes of the protocol a request asked to upgrade to (SwitchingMixin)."""
        raise NotImplementedError

    def _upgrade_requested(self, tail: bytes) -> None:
        """A request asked to upgrade; ``tail`` follows its head (SwitchingMixin)."""
        raise NotImplementedError

    def _speak_h2(self, data: bytes) -> bool:
        """Hand a connection that opened with HTTP/2's preface over (SwitchingMixin)."""
        raise NotImplementedError

    def _send_rejection(self, rejection: Rejection) -> None:
        """Answer a refused request, then close or linger (ChannelExtras)."""
        raise NotImplementedError

    def _answer_otherwise(self, request: Any, message: Message) -> bool:
        """Answer through Twisted's request interface, or give up (ChannelExtras)."""
        raise NotImplementedError


class LentParser(Parser):
    """The parser a channel borrows: it tells that channel what it sees by direct calls.

    The same as :class:`~treadle.web._parser.Parser` but for its four calls to the sink,
    which compiled code makes here as C calls on the channel's fields rather than method
    lookups on the channel object (a Python subclass of :class:`ChannelCore`).

    Attributes:
        channel: The channel it is lent to (None while spare).
    """

    __slots__ = ("channel",)

    def __init__(self) -> None:
        super().__init__()
        self.channel: ChannelCore | None = None

    def discard(self) -> None:
        """As :meth:`Parser.discard`, and let the channel go."""
        self.channel = None
        super().discard()

    def _begun(self) -> None:
        channel = self.channel
        assert channel is not None  # (set while lent)
        _message_begun(channel)

    def _head_done(self, invite: bool) -> None:
        channel = self.channel
        assert channel is not None
        _head_received(channel, invite)

    def _body_arrived(self) -> None:
        channel = self.channel
        assert channel is not None
        _body_received(channel)

    def _complete(self, message: Message) -> None:
        channel = self.channel
        assert channel is not None
        _message_received(channel, message)


# -- what the parser tells, as functions (LentParser calls them directly) -------------------


def _message_begun(channel: ChannelCore) -> None:
    """The first byte of a request head arrived: its head timeout starts."""
    state = AFTER_BEGIN.get(channel._state)  # the table's row, looked up inline
    if state is None:
        channel._enter(BEGIN)  # raises ChannelStateError, naming the move
        return
    channel._state = state
    channel._head_started = channel._read_at


def _head_received(channel: ChannelCore, invite: bool) -> None:
    """The head is complete: the body (if any) may come, invited when it asked to be."""
    if not invite:
        state = AFTER_HEAD.get(channel._state)  # the table's row, looked up inline
        if state is None:
            channel._enter(HEAD_DONE)  # raises ChannelStateError, naming the move
            return
        channel._state = state
    elif channel._active is None and not channel._queue:
        channel._enter(HEAD_DONE)
        assert channel.asyncio_transport is not None
        flush_corked(channel)
        channel.asyncio_transport.write(_CONTINUE_LINE)
    else:
        channel._enter(AWAIT_INVITE)  # owed once the responses before it are out
    # The body timeout and the body rate count from here.
    channel._body_started = channel._last_activity = channel._read_at


def _body_received(channel: ChannelCore) -> None:
    """Body data arrived: the body timeout starts again."""
    channel._last_activity = channel._read_at


def _message_received(channel: ChannelCore, message: Message) -> None:
    """A request is complete: queue it to be answered in its turn."""
    channel._requests_seen += 1
    keep_alive = message[5]
    if keep_alive:
        state = AFTER_COMPLETE.get(channel._state)  # the table's row, looked up inline
        if state is None:
            channel._enter(COMPLETE)  # raises ChannelStateError, naming the move
            return
        channel._state = state
    else:
        channel._enter(LAST)
    queue = _enqueue(channel, message)
    if keep_alive and len(queue) >= channel.factory.maxPipelined:
        channel._pause_reading()


def _enqueue(channel: ChannelCore, item: Message | Rejection) -> list[Message | Rejection]:
    """Queue ``item`` to be answered in its turn; the queue."""
    queue = channel._queue
    if queue is None:
        queue = channel._queue = []
    queue.append(item)
    return queue


# -- the hottest steps, as functions (compiled code calls them directly) ---------------------


def _feed(
    channel: ChannelCore,
    parser: Parser,
    piece: bytes | memoryview,
    data: bytes,
    end: int,
    state: int,
) -> bool:
    """Hand ``piece`` to llhttp (``data[end:]`` is the input after it); True to go on."""
    seen = channel._requests_seen
    body_before = parser.body_size
    try:
        parser.llhttp.feed_data(piece)
    except httptools.HttpParserUpgrade as e:
        # An Upgrade (or CONNECT): the bytes after it belong to another protocol. They
        # are held for the resource that may switch to it (switch_protocol); answered
        # as plain HTTP instead, the connection closes after the response (RFC 9110
        # §7.8 lets a server ignore Upgrade).
        channel._upgrade_requested(bytes(piece[e.args[0] :]) + data[end:])
        return False
    except httptools.HttpParserCallbackError as e:
        cause = e.__context__
        if isinstance(cause, Refused):
            channel._reject(cause.code, str(cause))
        else:
            error_log.error("error while parsing a request", exc_info=cause)
            channel._reject(500, "internal error")
        return False
    except httptools.HttpParserError as e:
        if channel._state < DONE:  # else: bytes after `Connection: close`, dropped
            channel._reject(parser.error_status(), str(e) or type(e).__name__)
        return False
    if state in (HEAD, BODY) and channel._state == state and channel._requests_seen == seen:
        # The piece fell wholly inside one message: count what no callback did.
        try:
            framing = len(piece) - (parser.body_size - body_before)
            parser.count_read(framing, state == HEAD)
        except Refused as e:
            channel._reject(e.code, str(e))
            return False
    return channel._state < DONE


def _dispatch(channel: ChannelCore) -> None:
    """Start answering queued requests until one stays outstanding."""
    if channel._dispatching:
        return
    channel._dispatching = True
    try:
        # While the client reads nothing (writing paused), answering more pipelined
        # requests would only grow the transport's buffer: resume_writing resumes here.
        # (The queue is read each time round: a request answered here may queue a refusal.)
        while channel._active is None and (queue := channel._queue) and not channel._writing_paused:
            item = queue.pop(0)
            if not queue:
                channel._queue = None
            if not isinstance(item, tuple):  # (a Message is a tuple)
                channel._send_rejection(item)
                return
            soon = channel.call_soon
            if isinstance(soon, SoonBatch) and soon.on_loop:
                # The write of a response held for the turn comes before what its render
                # schedules for the next (see the module docstring).
                soon.reserve()
            make = channel._request_factory
            if make is None:  # a subclass's own, by Python's lookup (see ChannelCore)
                public: Any = channel
                make = public.requestFactory
            request = make(channel)
            channel._active = request
            try:
                request.receive_message(item)
            except Exception:
                if not channel._answer_otherwise(request, item):
                    return
    finally:
        channel._dispatching = False
    if (
        channel._reading_paused
        and channel._active is None
        and channel._state < DONE
        and not channel._writing_paused  # the client reads nothing: no more requests
        and _queued(channel) < channel.factory.maxPipelined
    ):
        channel._buffered = 0
        channel._resume_reading()


def flush_corked(channel: ChannelCore) -> None:
    """Write the responses held until the loop's next turn, in one piece.

    Called before anything else is written or the connection is closed; cheap when
    nothing is held (the per-request path tests ``_corked`` itself first).
    """
    corked = channel._corked
    channel._corked = None
    transport = channel.asyncio_transport
    if corked and transport is not None:
        transport.write(b"".join(corked))


def _queued(channel: ChannelCore) -> int:
    """How many requests wait to be answered."""
    queue = channel._queue
    return 0 if queue is None else len(queue)


def answered(channel: ChannelCore, request: Any, keeps: bool) -> None:
    """What ``request_done`` does (requests of treadle's call this directly)."""
    active = channel._active
    if request is not active and (active is None or active != request):
        return  # (compared only when not the same object: an InterfaceRequest)
    channel._active = None
    channel._producer = None
    # Idle from now: a response finished while its request's read is being handled
    # (the usual, synchronous case) is finished at that read's time.
    channel._last_activity = channel._read_at if channel._dispatching else channel._now()
    queue = channel._queue
    if not keeps or (channel._state >= DONE and not queue):
        channel._enter(STOP)
        channel._drop_queue()
        channel._close()
        return
    if channel._state == CONTINUE and not queue and channel.asyncio_transport is not None:
        channel._enter(INVITED)
        flush_corked(channel)
        channel.asyncio_transport.write(_CONTINUE_LINE)
    if not channel._dispatching:
        channel._buffered = 0
        if queue or channel._reading_paused:  # else _dispatch has nothing to do
            _dispatch(channel)


def keeps_reading(channel: ChannelCore) -> bool:
    """What ``persistent`` says (requests of treadle's call this directly)."""
    return (channel._state < DONE or bool(channel._queue)) and not channel.factory.shutting_down


def _timer_period(settings: Any) -> float:
    """How often a connection's timer looks at it: its shortest timeout."""
    period: float = min(settings.timeOut, settings.headTimeout, settings.bodyTimeout)
    return period


def _not_connected(callback: Callable[[], object]) -> object:
    """``call_soon`` before the connection is made: nothing can be scheduled yet."""
    raise RuntimeError("the channel has no connection yet")
