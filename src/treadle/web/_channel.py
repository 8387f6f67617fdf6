"""The HTTP/1.1 channel: bytes in, requests out, answered strictly in order.

:class:`HTTPChannel` is an :class:`asyncio.Protocol` driving httptools (llhttp). Its parser
callbacks only *record* what they see; the channel acts after ``feed_data`` returns, so no
user code ever runs inside the parser. Completed requests wait in a short queue and are
answered strictly in order, one at a time. While a response is outstanding the channel
keeps reading a little ahead (so it notices a client that leaves, as Twisted does) and
pauses the transport once that read-ahead or the queue is full.

Hostile input. llhttp (httptools 0.9, strict mode) refuses by itself, with 400: bare CR or
LF anywhere in the head or chunk framing; NUL and other control bytes in field names,
values and the target; obsolete line folding and whitespace before a colon; a request line
with a method outside its table, a lowercase method, a missing or malformed version, or
HTTP/1.2 and 3.0; Content-Length with signs, spaces inside, lists, duplicates (even equal
ones) or values of 2**64 and more; Content-Length next to Transfer-Encoding; a chunked
coding that is not the last one (also split over two field lines); chunk sizes with
``0x``, signs, spaces or values of 2**64 and more; malformed chunk extensions; data after
``Connection: close``. It passes through, and the channel checks (see
``Parser.on_headers_complete`` in :mod:`treadle.web._parser`):

- HTTP/0.9 and HTTP/2.0 versions, and the HTTP/2 preface ``PRI * HTTP/2.0``: 505;
- HTTP/1.1 without Host, more than one Host, or an invalid Host value: 400 (RFC 9112 §3.2);
- an absolute-form target that is not http(s) with a host, or ``*`` outside OPTIONS: 400;
  an acceptable absolute-form target's authority replaces Host (RFC 9112 §3.2.2);
- Transfer-Encoding in an HTTP/1.0 request: 400 (RFC 9112 §6.1); codings other than a
  lone ``chunked`` (``gzip, chunked``, ``identity``): 501;
- an Upgrade or CONNECT request with a body (httptools makes llhttp skip it): 501;
- trailing whitespace in field values (llhttp keeps it): removed, as RFC 9112 §5 says;
- trailer fields (httptools reports them as headers): counted and dropped.

Limits (HTTPFactory attributes; what they count is defined in :mod:`treadle.web._framing`):
llhttp enforces no size at all, and httptools buffers a field line until it is complete.
The callbacks count the request line (414), each field line, the head and the number of
fields (431), the body (413) and the trailer section (431) exactly; in addition every read
that falls wholly inside a head or a chunked body is counted (``_count_read``), which bounds
what httptools buffers and the chunk framing llhttp parses without reporting (leading zeros,
extensions) by the same limits to within one read. llhttp accepts chunk sizes with any
number of leading zeros; the framing budget, not a digit count, bounds them.

Not checked (llhttp accepts, treadle answers them as HTTP/1.x): several spaces between the
parts of the request line (RFC 9112 §3 allows that leniency), ``RTSP/1.0`` and ``ICE/1.0``
as the protocol name (read as HTTP/1.0), ``#`` in a target, and obs-text in values.

Pipelining: requests are answered strictly in order; reading pauses once ``maxPipelined``
requests wait or while the client reads none of our output. llhttp parses a whole read at
once, so one read (at most 256 KiB) may queue more before the pause takes effect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Final

import httptools

from treadle.internet._timers import TimerHeap
from treadle.internet.address import IPv4Address, IPv6Address, UNIXAddress, from_sockname
from treadle.internet.error import ConnectionDone, ConnectionLost
from treadle.web._framing import (
    RESPONSES,
    absolute_form_authority,
    chunk_framing_budget,
    date_header,
    status_line,
    target_error,
    transfer_coding_error,
)
from treadle.web._parser import (
    BODY,
    CLOSING,
    DROPPED,
    HEAD,
    IDLE,
    LINGER,
    MAX_SPARE_PARSERS,
    SPARE_PARSERS,
    Parser,
    Refused,
)
from treadle.web._request import CRLF, SERVER_NAME
from treadle.web.http_headers import Headers

if TYPE_CHECKING:
    from treadle.web._request import Request
    from treadle.web.http import HTTPFactory

__all__ = ["READ_AHEAD", "HTTPChannel"]

error_log = logging.getLogger("treadle.error")

#: Bytes read ahead while a response is outstanding (Twisted reads 16 KiB optimistically):
#: enough to notice a client that closes, small enough not to buffer a flood.
READ_AHEAD: Final = 64 * 1024
#: The fewest bytes a field line counts (``x: `` and CRLF): a head of N bytes holds at most
#: N / _MIN_FIELD_SIZE fields.
_MIN_FIELD_SIZE: Final = 5
#: Fields are counted whenever a head passes this many bytes (and once at its end).
_COUNT_EVERY: Final = 2048


class _Rejection:
    """A request the channel refused while parsing; answered in its turn, then we close."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


# -- the channel -----------------------------------------------------------------------------


class HTTPChannel(asyncio.Protocol):
    """One HTTP/1.x connection: parses requests and answers them strictly in order.

    Parsing is llhttp's (through httptools) with treadle's checks where llhttp is lenient
    or silent; see the module docstring for which does what. Any request the channel refuses
    is answered in its turn (after the responses already due) and the connection then
    closes: no byte after a refused request is ever parsed.
    """

    __slots__ = (
        "_active",
        "_body",
        "_body_size",
        "_buffered",
        "_chunks",
        "_coalesce",
        "_connected_at",
        "_continue_pending",
        "_count_check",
        "_deadlines",
        "_dispatching",
        "_drain_waiter",
        "_handle",
        "_head_size",
        "_head_started",
        "_headers",
        "_host",
        "_host_seen",
        "_last_activity",
        "_line_limit",
        "_method",
        "_now",
        "_parser",
        "_paused_at",
        "_peer",
        "_phase",
        "_queue",
        "_read_at",
        "_reading_paused",
        "_repeats",
        "_request_headers",
        "_requests_seen",
        "_size_check",
        "_stop_parsing",
        "_unsent",
        "_url",
        "_version",
        "_wire",
        "_writing_paused",
        "factory",
        "persistent",
        "transport",
    )

    def __init__(self, factory: HTTPFactory) -> None:
        self.factory = factory
        self.transport: asyncio.Transport | None = None
        # Lent by SPARE_PARSERS while a request is arriving (see Parser).
        self._parser: Parser | None = None
        self._method = b"GET"
        self._url = b""
        self._version = "1.1"
        self._headers: dict[bytes, list[bytes]] = {}
        self._head_size = 0
        self._repeats = 0
        # Thresholds from the limits, read once per connection (a Site's limits apply to
        # connections made after they are set); see on_header and on_headers_complete.
        self._size_check = min(factory.maxFieldLineSize, factory.maxHeadSize, _COUNT_EVERY)
        self._count_check = _MIN_FIELD_SIZE * factory.maxHeaders
        self._request_headers: dict[bytes, list[bytes]] | None = None  # chunked only
        self._line_limit = factory.maxRequestLineSize
        self._host_seen: list[bytes] | None = None  # the last Host found valid
        self._wire = 0
        self._chunks = 0
        self._body: IO[bytes] | None = None
        self._body_size = 0
        # A list, not a deque: it holds at most maxPipelined items, and an empty deque
        # costs some 600 bytes per connection.
        self._queue: list[tuple[Any, ...] | _Rejection] = []
        self._active: Request | None = None
        self._dispatching = False
        self._reading_paused = False
        self._writing_paused = False
        self._paused_at = 0.0
        self._unsent = -1
        self._stop_parsing = False
        self._continue_pending = False
        self._buffered = 0
        self._drain_waiter: asyncio.Future[None] | None = None
        # This connection's entry in the loop's TimerHeap of connection deadlines.
        self._handle: Any = None
        self._phase = IDLE
        self._head_started = 0.0
        self._read_at = 0.0
        self._connected_at = 0.0
        self._requests_seen = 0
        self._last_activity = 0.0
        self._peer: Any = None
        self._host: Any = None
        #: False once the connection must close after the current response.
        self.persistent = True
        self._coalesce = False

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        factory = self.factory
        clock = factory._clock
        source = asyncio.get_running_loop() if clock is None else clock  # a test's task.Clock
        deadlines = factory._deadlines
        if deadlines is None or deadlines.source is not source:
            # One heap per loop, shared by its connections: a connection's timer is one
            # entry in it rather than a loop timer of its own (~600 bytes, see _timers).
            if clock is None:
                deadlines = TimerHeap(source, source.call_later, source.time, 0.001)
            else:
                deadlines = TimerHeap(source, clock.callLater, clock.seconds)
            factory._deadlines = deadlines
        self._deadlines: TimerHeap = deadlines
        self._now: Callable[[], float] = deadlines.now
        # Holding a request's first write for one loop turn needs a running loop.
        self._coalesce = clock is None
        self._last_activity = self._connected_at = self._now()
        limit = factory.maxConnections
        if limit is not None and len(factory._connections) >= limit:
            # Over the concurrency limit: answer at once instead of letting clients pile up.
            self._stop_parsing = True
            self._send_rejection(_Rejection(503, "too many connections"))
            return
        factory._connections.add(self)
        if factory._shutting_down:
            self.persistent = False
        deadlines.add(self, self._timer_period())

    def data_received(self, data: bytes) -> None:
        if self._stop_parsing:
            # Refused, upgraded or closing: whatever else arrives is dropped unparsed (while
            # lingering after a refusal, this is the draining that lets the client read it).
            return
        if self._active is not None:
            self._buffered += len(data)
            if self._buffered > READ_AHEAD:
                self._pause_reading()
        # When this read arrived, for the callbacks: a head's start, a body's progress.
        # (A read is no activity as such: empty lines between requests extend nothing.)
        self._read_at = self._now()
        phase = self._phase
        if phase:
            # A message continues from an earlier read: remember where it stood, so that
            # _count_read can bound what the callbacks cannot see yet.
            seen = self._requests_seen
            body_before = self._body_size
        parser = self._parser
        if parser is None:
            try:
                parser = SPARE_PARSERS.pop()
            except IndexError:
                parser = Parser()
            parser.channel = self
            self._parser = parser
        try:
            parser.llhttp.feed_data(data)
        except httptools.HttpParserUpgrade:
            # An Upgrade (or CONNECT) we do not speak: the request is answered as plain HTTP
            # and the connection then closes, since the bytes after it belong to another
            # protocol (RFC 9110 §7.8 lets a server ignore Upgrade).
            self._stop_parsing = True
            self.persistent = False
        except httptools.HttpParserCallbackError as e:
            cause = e.__context__
            if isinstance(cause, Refused):
                self._reject(cause.code, str(cause))
            else:
                error_log.error("error while parsing a request", exc_info=cause)
                self._reject(500, "internal error")
        except httptools.HttpParserError as e:
            if not self._stop_parsing:  # else: bytes after `Connection: close`, dropped
                self._reject(self._parse_error_status(), str(e) or type(e).__name__)
        else:
            if self._phase == IDLE:
                if not self._stop_parsing:
                    # Every request of this read is complete: llhttp waits for the start of
                    # the next one, as a fresh parser would, so the parser can serve any
                    # connection.
                    self._parser = None
                    parser.channel = None  # type: ignore[assignment]
                    if len(SPARE_PARSERS) < MAX_SPARE_PARSERS:
                        SPARE_PARSERS.append(parser)
            elif phase and self._phase == phase and self._requests_seen == seen:
                self._count_read(len(data) - (self._body_size - body_before))
        if self._active is None:
            self._dispatch()

    def eof_received(self) -> bool | None:
        # A client that half-closes is treated as gone, as Twisted does: a response still
        # being produced for it is abandoned and its notifyFinish Deferreds errback.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.factory._connections.discard(self)
        self.persistent = False
        self._stop_parsing = True
        parser, self._parser = self._parser, None
        if parser is not None:
            # Stopped inside a message (or after a refusal): not reusable. Unbound, it and
            # its callbacks go by reference counting instead of waiting for the cyclic GC.
            parser.channel = None  # type: ignore[assignment]
            parser.llhttp = None  # type: ignore[assignment]
        if self._handle is not None:
            self._deadlines.discard(self)
        self._drop_queue()
        active, self._active = self._active, None
        if active is not None:
            reason: Exception = ConnectionDone() if exc is None else ConnectionLost(exc)
            active.connectionLost(reason)
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.transport = None

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._paused_at = self._now()
        active = self._active
        if active is not None and active._producer is not None and active._producer_streaming:
            _call_producer(active, active._producer.pauseProducing)

    def resume_writing(self) -> None:
        self._writing_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        active = self._active
        if active is None:
            # Pipelined requests waited for the client to read (see _dispatch).
            if self._queue:
                self._dispatch()
            return
        producer = active._producer
        if producer is not None:
            if active._producer_streaming:
                _call_producer(active, producer.resumeProducing)
            else:
                _pull_more(active, producer)

    # -- helpers of the parser callbacks (see Parser) --------------------------------------

    def _check_head(self, line: int, size: int) -> None:
        factory = self.factory
        if self._phase != HEAD:
            # Trailers: _head_size started so that passing _size_check means the trailer
            # section is over maxTrailerSize (see _check_chunked).
            raise Refused(431, "trailer section too large")
        if line > factory.maxFieldLineSize:
            raise Refused(431, "header field line too long")
        if size > factory.maxHeadSize:
            raise Refused(431, "request header block too large")
        self._check_count(1)

    def _check_count(self, pending: int) -> None:
        fields = len(self._headers) + self._repeats + pending
        if fields > self.factory.maxHeaders:
            raise Refused(431, "too many header fields")

    def _check_target(self) -> None:
        """Absolute-, authority- or asterisk-form target (RFC 9112 §3.2.2-3.2.4)."""
        method = self._method
        target = self._url
        problem = target_error(method, target)
        if problem is not None:
            raise Refused(400, problem)
        if target != b"*" and method != b"CONNECT":
            # RFC 9112 §3.2.2: an origin server MUST ignore the Host field and use the
            # target's authority instead; it is what request.getRequestHostname() returns.
            self._headers[b"host"] = [absolute_form_authority(target)]

    def _check_chunked(self, http11: bool) -> bool:
        """Vet a request with Transfer-Encoding; return True (a body follows)."""
        error = transfer_coding_error(self._headers[b"transfer-encoding"], http11)
        if error is not None:
            raise Refused(*error)
        self._body_follows()
        self._chunks = 0
        self._wire = 0
        # Trailer fields arrive through on_header; they are dropped, never merged into the
        # headers (RFC 9110 §6.5.1), and counted from here against maxTrailerSize.
        self._request_headers = self._headers
        self._head_size = self._size_check - self.factory.maxTrailerSize
        return True

    def _check_length(self, value: bytes) -> bool:
        """Vet a Content-Length; return True when a body follows."""
        # llhttp has refused signs, lists, non-digits, duplicates and values of 2**64 or
        # more (RFC 9110 §8.6, RFC 9112 §6.3); what remains is a plain decimal number.
        length = int(value)
        if length > self.factory.maxRequestBodySize:
            # Refused before any 100 Continue, so the client never sends the body.
            raise Refused(413, "request body too large")
        if not length:
            return False
        self._body_follows()
        return True

    def _body_follows(self) -> None:
        # llhttp flags an upgrade for "Connection: upgrade" with Upgrade, or for CONNECT.
        parser = self._parser
        assert parser is not None  # lent while a request is parsed
        if (b"upgrade" in self._headers or self._method == b"CONNECT") and (
            parser.llhttp.should_upgrade()
        ):
            # httptools tells llhttp to skip the body of an Upgrade (or CONNECT) request;
            # answering it as plain HTTP would treat the body as missing.
            raise Refused(501, "Upgrade with a request body is not supported")
        self._last_activity = self._read_at  # the body timeout counts from here

    def _expect(self, values: list[bytes], body: bool) -> None:
        if len(values) != 1 or values[0].lower() != b"100-continue":
            raise Refused(417, "unsupported expectation")
        if not body:
            return  # RFC 9110 §10.1.1: no content to invite
        if self._active is None and not self._queue:
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        else:
            self._continue_pending = True

    def _count_read(self, framing: int) -> None:
        """A whole read fell inside one message's head or body: bound what it adds.

        httptools hands over a field line only once it is complete (buffering it until
        then), and llhttp parses chunk-size lines, extensions and trailers without
        reporting their length. So the exact counts of the callbacks are backed by this
        one over whole reads: a head may not grow past ``maxHeadSize``, and the framing of
        a chunked body (every byte that is not data) past ``_framing.chunk_framing_budget``.
        Reads in which a message begins or ends are not counted, as httptools reports no
        positions: these limits may be passed by up to one read, never without bound.

        Args:
            framing: Bytes of this read that were not body data.
        """
        wire = self._wire = self._wire + framing
        factory = self.factory
        if self._phase == HEAD:
            if wire > factory.maxHeadSize:
                self._reject(431, "request header block too large")
        elif self._chunked() and wire > chunk_framing_budget(
            self._chunks, factory.maxChunkExtensionsSize, factory.maxTrailerSize
        ):
            self._reject(400, "chunk framing too large")

    def _chunked(self) -> bool:
        """True while the current message has a chunked body."""
        # _request_headers is set for chunked messages only; a later message has new headers.
        headers = self._headers
        return headers is self._request_headers or headers is DROPPED

    def _parse_error_status(self) -> int:
        # The HTTP/2 connection preface ("PRI * HTTP/2.0") on this HTTP/1 port: llhttp
        # stops on it; 505 says what is wrong (RFC 9113 §3.4).
        parser = self._parser
        assert parser is not None  # lent while a request is parsed
        return 505 if parser.llhttp.get_method() == b"PRI" else 400

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
                assert type(item) is tuple
                request = self.factory.requestFactory(self)
                self._active = request
                try:
                    request._received(*item)
                except Exception:
                    self._internal_error(request)
        finally:
            self._dispatching = False
        if (
            self._reading_paused
            and self._active is None
            and not self._stop_parsing
            and len(self._queue) < self.factory.maxPipelined
        ):
            self._buffered = 0
            self._resume_reading()

    def request_done(self, request: Request) -> None:
        """Called by a request once its last byte was written."""
        if request is not self._active:
            return
        self._active = None
        self._last_activity = self._now()
        if not request._keep_alive or not self.persistent:
            self.persistent = False
            self._drop_queue()
            self._close()
            return
        if self._continue_pending and not self._queue and self.transport is not None:
            self._continue_pending = False
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
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
        if self._body is not None:
            self._body.close()
            self._body = None

    def _internal_error(self, request: Request) -> None:
        """Something escaped the request's own error handling: answer 500 or drop the line."""
        error_log.exception("unhandled error answering %r", request)
        if self._active is not request:
            return
        if request.startedWriting or request.finished:
            self.abort()
        else:
            self.persistent = False
            request._keep_alive = False
            request.setResponseCode(500)
            request.responseHeaders = Headers()
            request._write_whole(b"<html><body><h1>Internal Server Error</h1></body></html>")

    def _reject(self, code: int, reason: str) -> None:
        """Stop parsing; answer ``code`` after the requests already queued, then close."""
        self._stop_parsing = True
        self._pause_reading()
        self._queue.append(_Rejection(code, reason))

    def _send_rejection(self, rejection: _Rejection) -> None:
        self.persistent = False
        transport = self.transport
        if transport is None:
            return
        # The page names the status only: nothing of the request is reflected.
        phrase = RESPONSES.get(rejection.code, b"Error")
        body = b"<html><body><h1>%d %s</h1></body></html>" % (rejection.code, phrase)
        transport.write(
            status_line(rejection.code)
            + b"Server: "
            + SERVER_NAME
            + CRLF
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
        self._phase = LINGER
        self._last_activity = self._now()
        self._resume_reading()

    # -- flow control and timers ------------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    def _timer_period(self) -> float:
        factory = self.factory
        return min(factory.timeOut, factory.headTimeout, factory.bodyTimeout)

    def _check_timeouts(self) -> None:
        """One timer per connection enforces every timeout; see the phases below.

        - between requests: ``timeOut`` of silence closes the connection (a new connection
          that never sends a byte gets ``headTimeout``); empty lines between requests are
          no activity;
        - reading a head: ``headTimeout`` from its first byte, however the bytes trickle in
          (slowloris), then ``408``;
        - reading a body: ``bodyTimeout`` between two pieces of body data, then ``408``;
        - answering: never; a response may take as long as its resource wants, but a client
          that reads nothing for ``timeOut`` while output waits for it is dropped (a
          slow-read attack or a dead peer; nginx's send_timeout is 60 s);
        - lingering after a refusal: ``lingerTime``, then close;
        - closing: as long as the client keeps taking what the transport still holds, then
          abort after ``timeOut`` without progress.

        The timer re-arms at most every ``_timer_period()`` seconds, so a phase that starts
        between two checks is caught within that period of its deadline.
        """
        transport = self.transport
        if transport is None:
            return
        factory = self.factory
        now = self._now()
        phase = self._phase
        if phase == CLOSING:
            unsent = transport.get_write_buffer_size()
            if unsent != self._unsent:
                self._unsent = unsent
                self._last_activity = now
            elif now - self._last_activity >= factory.timeOut:
                transport.abort()  # the client takes none of what is left for it
                return
            self._deadlines.add(self, self._timer_period())
            return
        if self._writing_paused and now - self._paused_at >= factory.timeOut:
            transport.abort()
            return
        if phase == LINGER:
            deadline = self._last_activity + factory.lingerTime
            status = 0
        elif self._active is not None or self._stop_parsing:
            deadline = now + factory.timeOut  # answering (or about to refuse): no deadline
            status = 0
        elif phase == HEAD:
            deadline = self._head_started + factory.headTimeout
            status = 408
        elif phase == BODY:
            deadline = self._last_activity + factory.bodyTimeout
            status = 408
        elif self._requests_seen == 0:
            deadline = self._connected_at + factory.headTimeout
            status = 0
        else:
            deadline = self._last_activity + factory.timeOut
            status = 0
        if now < deadline:
            self._deadlines.add(self, min(deadline - now, self._timer_period()))
        else:
            if status:
                self._reject(status, "request timed out")
                self._dispatch()
            else:
                self._close()
            if self.transport is not None and self._handle is None:
                self._deadlines.add(self, self._timer_period())

    _due = _check_timeouts  # what the deadline heap calls

    def _close(self) -> None:
        """Close the connection once the transport has flushed what it holds.

        The timer keeps watching: a client that takes none of the rest for ``timeOut``
        seconds is aborted, so a peer that never reads cannot hold the connection open.
        """
        self._stop_parsing = True
        self._phase = CLOSING
        self._last_activity = self._now()
        self._unsent = -1
        if self.transport is not None:
            self.transport.close()

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its low-water mark."""
        transport = self.transport
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

    def producer_registered(self, request: Request) -> None:
        """Start a newly registered producer the way the transport's state calls for."""
        producer = request._producer
        if request._producer_streaming:
            if self._writing_paused:
                producer.pauseProducing()
        elif not self._writing_paused:
            asyncio.get_running_loop().call_soon(_pull_more, request, producer)

    # -- misc -------------------------------------------------------------------------------

    def close_when_idle(self) -> None:
        """Finish the response in progress (if any), then close; close at once when idle."""
        self.persistent = False
        if self._active is None and self.transport is not None:
            self._close()

    def log_request(self, request: Request) -> None:
        """Hand a finished request to the factory's access log."""
        self.factory.log(request)

    def peer_address(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """The client's address (computed once)."""
        if self._peer is None:
            transport = self.transport
            self._peer = from_sockname(
                transport.get_extra_info("peername") if transport is not None else None
            )
        return self._peer  # type: ignore[no-any-return]

    def host_address(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """Our own address on this connection (computed once)."""
        if self._host is None:
            transport = self.transport
            self._host = from_sockname(
                transport.get_extra_info("sockname") if transport is not None else None
            )
        return self._host  # type: ignore[no-any-return]

    def abort(self) -> None:
        """Drop the connection at once, discarding unsent data."""
        if self.transport is not None:
            self.transport.abort()

    loseConnection = abort


def _call_producer(request: Request, method: Callable[[], object]) -> None:
    """Call a producer's method; an error in it is logged and drops this connection only."""
    try:
        method()
    except Exception:
        error_log.exception("error in producer of %r", request)
        request.channel.abort()


def _pull_more(request: Request, producer: Any) -> None:
    """Drive a pull producer: ask for more while it stays registered and writing is open."""
    channel = request.channel
    if request._producer is not producer or request._disconnected or channel._writing_paused:
        return
    _call_producer(request, producer.resumeProducing)
    if (
        request._producer is producer
        and not request._disconnected
        and not channel._writing_paused
        and channel.transport is not None
    ):
        asyncio.get_running_loop().call_soon(_pull_more, request, producer)
