"""HTTP/1.1 on asyncio: what Twisted code imports from ``twisted.web.http``.

The parts live in private modules and are imported from here:

- :class:`Request` (:mod:`treadle.web._request`): the wire half of a request: headers, body,
  ``write``/``finish`` with framing chosen by :func:`treadle.web._framing.response_framing`,
  ``notifyFinish``, cookies. :mod:`treadle.web.server` adds resource traversal and rendering
  on top; this layer knows nothing of resources.
- :class:`HTTPChannel` (:mod:`treadle.web._channel`): an :class:`asyncio.Protocol` driving
  httptools (llhttp) through the parser of :mod:`treadle.web._parser`; it answers requests
  strictly in order. What llhttp refuses and what the parser checks is listed there.
- the status codes (:mod:`treadle.web._status`).

This module holds the :class:`HTTPFactory` that builds channels, the limits and timeouts it
applies (the ``MAX_*`` and ``DEFAULT_*`` constants below) and the access log.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import io
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from email.utils import formatdate
from typing import IO, Any, Final
from urllib.parse import unquote_to_bytes

from zope.interface import alsoProvides, classImplements

from treadle.internet._timers import SoonBatch, TimerHeap
from treadle.web._access_log import AccessLogWriter
from treadle.web._channel import READ_AHEAD as READ_AHEAD
from treadle.web._channel import HTTPChannel
from treadle.web._channel_interface import (
    _IDeprecatedHTTPChannelToRequestInterface as _IDeprecatedHTTPChannelToRequestInterface,
)
from treadle.web._forms import MalformedRequestBody
from treadle.web._framing import SERVER_NAME as SERVER_NAME
from treadle.web._helpers import *  # noqa: F403  # Twisted's helper functions, re-exported
from treadle.web._helpers import __all__ as _HELPER_NAMES
from treadle.web._parser import SPOOL_SIZE as SPOOL_SIZE
from treadle.web._parser import Limits
from treadle.web._request import Request
from treadle.web._request_core import register_quiet_log
from treadle.web._status import *  # noqa: F403  # the status codes, re-exported
from treadle.web._status import __all__ as _STATUS_NAMES
from treadle.web._twisted_channel import NO_TIMEOUT, gives_class_settings
from treadle.web.http_headers import Headers
from treadle.web.iweb import IAccessLogFormatter

__all__ = [
    "StringTransport",
    *_STATUS_NAMES,
    *_HELPER_NAMES,
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEAD_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_LINGER_TIME",
    "DEFAULT_MIN_BODY_RATE",
    "DEFAULT_MIN_BODY_RATE_GRACE",
    "MAX_BODY_SIZE",
    "MAX_CHUNK_EXTENSIONS_SIZE",
    "MAX_FIELD_LINE_SIZE",
    "MAX_HEADERS",
    "MAX_HEAD_SIZE",
    "MAX_PIPELINED",
    "MAX_REQUEST_LINE_SIZE",
    "MAX_TRAILER_SIZE",
    "H2_ENABLED",
    "HTTPChannel",
    "HTTPFactory",
    "Headers",
    "MalformedRequestBody",
    "Request",
    "combinedLogFormatter",
    "datetimeToLogString",
    "datetimeToString",
    "proxiedLogFormatter",
    "responses",
]

#: Whether HTTP/2 is served (Twisted's flag): it is, after TLS ALPN chose ``h2`` and in
#: cleartext to clients with prior knowledge (see :mod:`treadle.web._h2_channel`).
H2_ENABLED: Final = True

#: Reason phrases by status code (Twisted's older name for ``RESPONSES``).
responses = RESPONSES  # noqa: F405

access_log = logging.getLogger("treadle.access")

# -- limits ----------------------------------------------------------------------------------
# Each is an attribute of HTTPFactory (and so of Site) too; these are the defaults. What each
# counts is defined by the functions in treadle.web._framing (request_line_size, field_line_size);
# every limit is tested at its boundary (limit passes, limit + 1 fails).

#: Request line: ``method SP target SP HTTP/1.x`` without the CRLF; 414 beyond. nginx's
#: large_client_header_buffers is 8 KiB per line, Apache's LimitRequestLine 8190, Twisted
#: 16 KiB; 8 KiB fits every real URL and refuses abuse early.
MAX_REQUEST_LINE_SIZE: Final = 8 * 1024
#: One field line: ``name: value`` without surrounding whitespace or CRLF; 431 beyond.
#: Apache's LimitRequestFieldSize is 8190, nginx 8 KiB per line, h11 none below its 16 KiB
#: head limit.
MAX_FIELD_LINE_SIZE: Final = 8 * 1024
#: Whole request head (request line and field lines, each with its CRLF); 431 beyond. nginx
#: allows 4 x 8 KiB, Apache 100 x 8 KiB, Node 16 KiB, h11 16 KiB; 64 KiB holds large cookie
#: sets and stops memory-bloat attacks.
MAX_HEAD_SIZE: Final = 64 * 1024
#: Number of field lines in a head (repeated names count each time); 431 beyond. Apache's
#: LimitRequestFields is 100, Twisted 500, Node 2000.
MAX_HEADERS: Final = 100
#: Buffered request body; 413 beyond (before ``100 Continue`` when Content-Length says so).
#: Twisted has no limit at all; nginx's client_max_body_size is 1 MiB; 10 MiB keeps ordinary
#: uploads working while bounding what one request can hold in memory or on disk.
MAX_BODY_SIZE: Final = 10 * 1024 * 1024
#: Chunk extensions in one request, in bytes; 400 beyond. llhttp parses and drops them
#: without limit; Node (also llhttp) allows 16 KiB, Go's net/http 4 KiB per line.
MAX_CHUNK_EXTENSIONS_SIZE: Final = 4 * 1024
#: Trailer section of a chunked request (field lines with CRLFs); 431 beyond. Trailers are
#: counted and dropped, never merged into the headers (RFC 9110 §6.5.1). Go counts them
#: against its 1 MiB header limit; 8 KiB is plenty for checksums and signatures.
MAX_TRAILER_SIZE: Final = 8 * 1024
#: Complete requests that may wait behind the one being answered: once this many wait, the
#: channel stops reading and TCP pushes back on the client. aiohttp bounds its queue the
#: same way; nginx answers pipelined requests one at a time without a queue.
MAX_PIPELINED: Final = 16
#: Seconds an idle keep-alive connection is kept (nginx 75 s, uvicorn 5 s, Twisted 12 h).
DEFAULT_IDLE_TIMEOUT: Final = 60.0
#: Seconds to receive a whole request head, counted from its first byte and never extended
#: by later bytes, so a client trickling a header a byte at a time (slowloris) is cut off.
#: nginx's client_header_timeout is 60 s; Apache's mod_reqtimeout starts at 20 s.
DEFAULT_HEAD_TIMEOUT: Final = 10.0
#: Seconds allowed between two pieces of request body data (nginx's client_body_timeout is
#: 60 s between reads). Chunk framing alone does not count as progress.
DEFAULT_BODY_TIMEOUT: Final = 30.0
#: Bytes a second a request body must average once ``DEFAULT_MIN_BODY_RATE_GRACE`` seconds
#: have passed since its head, or the client gets 408 and the connection closes: a body
#: trickled a byte at a time would otherwise hold its connection for ever, since the body
#: timeout only counts silence. Kestrel's MinRequestBodyDataRate is 240 B/s after 5 s.
DEFAULT_MIN_BODY_RATE: Final = 240.0
#: Seconds a request body may take before ``DEFAULT_MIN_BODY_RATE`` applies.
DEFAULT_MIN_BODY_RATE_GRACE: Final = 5.0
#: Seconds a refused connection keeps reading (and discarding) after its error response, so
#: that a client still sending its request reads the response instead of a TCP reset
#: ("lingering close", RFC 9112 §9.6). Apache lingers 2 s, nginx's lingering_time is 30 s.
DEFAULT_LINGER_TIME: Final = 2.0


def datetimeToString(msSinceEpoch: float | None = None) -> bytes:
    """Return an HTTP date (IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``) as bytes."""
    return formatdate(msSinceEpoch, usegmt=True).encode("ascii")


# -- the access log: Twisted's IAccessLogFormatter functions ----------------------------------
# A formatter is called as ``formatter(timestamp, request)`` with the timestamp from
# datetimeToLogString; it reads request.getClientAddress(), getHeader(), method, uri,
# clientproto, code and sentLength, as Twisted's do, so a formatter written for Twisted works.

# Month names fixed in English: strftime's %b follows the locale (LC_TIME), and a log line
# must not change language with the machine it runs on.
_LOG_MONTHS: Final = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                      "Oct", "Nov", "Dec")  # fmt: skip


def datetimeToLogString(msSinceEpoch: float | None = None) -> str:
    """Return the access-log timestamp for a time: ``[06/Nov/1994:08:49:37 +0000]`` (UTC).

    Args:
        msSinceEpoch: Seconds (not milliseconds, despite Twisted's name) since the epoch;
            None for now.
    """
    when = time.time() if msSinceEpoch is None else msSinceEpoch
    year, month, day, hh, mm, ss = time.gmtime(when)[:6]
    return f"[{day:02d}/{_LOG_MONTHS[month]}/{year:4d}:{hh:02d}:{mm:02d}:{ss:02d} +0000]"


@functools.lru_cache(maxsize=2)
def _log_timestamp_at(second: int) -> str:
    return datetimeToLogString(second)


def _log_timestamp(reactor: Any = None) -> str:
    # Formatted once a second, as Twisted's factory does with a timer (without the timer).
    # The time is the reactor's when the factory was given one (a Clock in tests).
    return _log_timestamp_at(int(time.time() if reactor is None else reactor.seconds()))


def _escape_table() -> dict[int, str]:
    table = {byte: f"\\x{byte:02x}" for byte in (*range(0x20), *range(0x7F, 0x100))}
    table.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x5C: "\\\\", 0x22: '\\"'})
    return table


_ESCAPES: Final = _escape_table()
# The bytes a log field keeps as they are: printable ASCII but the backslash and the quote.
_PLAIN: Final = bytes(b for b in range(0x20, 0x7F) if b not in b'\\"')


def _escape(value: bytes | str) -> str:
    """Return ``value`` escaped for a double-quoted field of an access-log line.

    As Twisted (the inside of the bytes' ``repr``, with ``"`` escaped and ``'`` not): control
    bytes, bytes above 0x7E and backslashes are escaped, so a client cannot forge a line or
    break the quoting. ``str`` is encoded as UTF-8 first (Twisted raises on non-ASCII).
    """
    data = value.encode("utf-8") if isinstance(value, str) else value
    if not data.translate(None, _PLAIN):
        return data.decode("ascii")  # nothing to escape: the common case, at C speed
    return data.decode("latin-1").translate(_ESCAPES)


def combinedLogFormatter(timestamp: str, request: Any) -> str:
    """Return ``request`` as a line of the combined log format (Apache's and nginx's).

    ``"ip" - - [time] "METHOD uri HTTP/1.1" code length "referer" "user-agent"``; ``-``
    stands for a missing length, referer or agent, and for the ip of a UNIX-socket client.
    Every field a client controls is escaped.

    Args:
        timestamp: The time, as :func:`datetimeToLogString` gives it.
        request: The finished request.
    """
    host = getattr(request.getClientAddress(), "host", None)
    ip = "-" if host is None else _escape(host)
    method, uri = _escape(request.method), _escape(request.uri)
    protocol = _escape(request.clientproto)
    referrer = _escape(request.getHeader(b"referer") or b"-")
    agent = _escape(request.getHeader(b"user-agent") or b"-")
    return (
        f'"{ip}" - - {timestamp} "{method} {uri} {protocol}" {request.code:d} '
        f'{request.sentLength or "-"} "{referrer}" "{agent}"'
    )


class _XForwardedForAddress:
    """The client address a proxy reported in ``X-Forwarded-For`` (``host``: bytes)."""

    def __init__(self, host: bytes) -> None:
        self.host = host


class _XForwardedForRequest:
    """A request whose client address is the first one of its ``X-Forwarded-For``."""

    def __init__(self, request: Any) -> None:
        self._request = request

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)

    def getClientAddress(self) -> _XForwardedForAddress:
        """Return the first address of ``X-Forwarded-For`` (``b"-"`` when absent)."""
        values = self._request.requestHeaders.getRawHeaders(b"x-forwarded-for", [b"-"])
        return _XForwardedForAddress(values[0].split(b",")[0].strip())


def proxiedLogFormatter(timestamp: str, request: Any) -> str:
    """As :func:`combinedLogFormatter`, with the client address from ``X-Forwarded-For``.

    For a server behind a reverse proxy: the ip logged is the first address of the
    request's ``X-Forwarded-For`` header (escaped), ``-`` without one. The header is the
    client's word unless the proxy sets it; log it, do not trust it.
    """
    return combinedLogFormatter(timestamp, _XForwardedForRequest(request))


alsoProvides(combinedLogFormatter, IAccessLogFormatter)
alsoProvides(proxiedLogFormatter, IAccessLogFormatter)


# -- the factory ------------------------------------------------------------------------------


class HTTPFactory:
    """Builds :class:`HTTPChannel` s; holds the limits, timeouts and the access log.

    Args:
        logPath: Access log file (combined format); None logs to the ``treadle.access``
            logger, which is silent unless logging is configured for it.
        timeout: Seconds an idle keep-alive connection is kept; also how long a client may
            read nothing while output waits for it. None: no limit (a year).
        logFormatter: ``(timestamp, request) -> str`` for access log lines.
        reactor: The reactor (or a ``task.Clock`` in tests) timers run on; treadle's by
            default.

    The limits and timeouts below are class attributes; set them on the instance (a
    :class:`~treadle.web.server.Site`) before it listens: each connection reads them when
    it is made. Their defaults and what each counts are the module's ``MAX_*`` and
    ``DEFAULT_*`` constants.

    Attributes:
        maxRequestLineSize: Request line, 414 beyond.
        maxFieldLineSize: One field line, 431 beyond.
        maxHeadSize: The whole head, 431 beyond.
        maxHeaders: Field lines in a head, 431 beyond.
        maxRequestBodySize: A request body, 413 beyond.
        maxChunkExtensionsSize: Chunk extensions of one request (see
            :func:`treadle.web._framing.chunk_framing_budget`), 400 beyond.
        maxTrailerSize: The trailer section of a chunked request, 431 beyond.
        maxPipelined: Requests queued behind the one being answered before reading pauses.
        maxConnections: Open connections; more get 503 (None: no limit).
        headTimeout: Seconds to receive a head, from its first byte; then 408.
        bodyTimeout: Seconds between two pieces of body data; then 408.
        minBodyRate: Bytes a second a body must average after ``minBodyRateGrace``
            seconds; then 408 (0 turns the check off).
        minBodyRateGrace: Seconds before ``minBodyRate`` applies.
        lingerTime: Seconds a refused connection drains the client's bytes before closing.
    """

    requestFactory: Callable[[HTTPChannel], Any] = Request
    protocol = HTTPChannel
    maxRequestLineSize: int = MAX_REQUEST_LINE_SIZE
    maxFieldLineSize: int = MAX_FIELD_LINE_SIZE
    maxHeadSize: int = MAX_HEAD_SIZE
    maxHeaders: int = MAX_HEADERS
    maxRequestBodySize: int = MAX_BODY_SIZE
    maxChunkExtensionsSize: int = MAX_CHUNK_EXTENSIONS_SIZE
    maxTrailerSize: int = MAX_TRAILER_SIZE
    maxPipelined: int = MAX_PIPELINED
    #: Open connections accepted at once; more get ``503`` and are closed (None: no limit).
    #: nginx's worker_connections defaults to 512, Apache's MaxRequestWorkers to 256.
    maxConnections: int | None = None
    _idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    headTimeout: float = DEFAULT_HEAD_TIMEOUT
    bodyTimeout: float = DEFAULT_BODY_TIMEOUT
    minBodyRate: float = DEFAULT_MIN_BODY_RATE
    minBodyRateGrace: float = DEFAULT_MIN_BODY_RATE_GRACE
    lingerTime: float = DEFAULT_LINGER_TIME
    # A test's task.Clock, when one drives the timers instead of the running loop.
    _clock: Any = None
    #: Whether channels take this factory's ``requestFactory`` even when their class names
    #: its own: false here (Twisted's ``HTTPFactory`` leaves the channel's), true for a
    #: ``Site`` (Twisted's ``Site.buildProtocol`` sets it on every channel).
    imposesRequestFactory: bool = False

    def __init__(
        self,
        logPath: str | None = None,
        timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        logFormatter: Callable[[str, Request], str] | None = None,
        reactor: Any = None,
    ) -> None:
        self.timeOut = timeout
        self.logPath = logPath
        self._logFormatter = logFormatter or combinedLogFormatter
        self._logFile: AccessLogWriter | None = None
        self._reactor = reactor
        #: The reactor given to the factory (Twisted's ``site.reactor``), else treadle's.
        self.reactor = reactor if reactor is not None else _default_reactor()
        # A fake clock (task.Clock) drives the channel's timers in tests; the real reactor
        # is bypassed in favour of the running loop's own call_later, which is cheaper.
        if reactor is not None and hasattr(reactor, "advance"):
            self._clock = reactor
        self._connections: set[HTTPChannel] = set()
        #: True once :meth:`shutdown` began: connections close after their response.
        self.shutting_down = False
        # What on_shutdown registered: run when shutdown begins (see there).
        self._shutdown_callbacks: set[Callable[[], object]] = set()
        # The deadlines of the channels on one loop (or test clock), shared by them.
        self._deadlines: TimerHeap | None = None
        self._soon = SoonBatch(_soon_on(None))  # set with it
        self._limits: tuple[tuple[int, ...], Limits] | None = None

    @property
    def timeOut(self) -> float:
        """Seconds an idle keep-alive connection is kept (the ``timeout`` argument).

        None (Twisted's "no timeout") is taken as a year.
        """
        return self._idle_timeout

    @timeOut.setter
    def timeOut(self, seconds: float | None) -> None:
        self._idle_timeout = NO_TIMEOUT if seconds is None else seconds

    def acceptableProtocols(self) -> list[bytes]:
        """The protocols TLS connections may agree on by ALPN, preferred first.

        HTTP/2, then HTTP/1.1 for clients without it; ``listenSSL`` and ``ssl:`` endpoints
        offer them (Twisted's ``IProtocolNegotiationFactory``).
        """
        return [b"h2", b"http/1.1"]

    def buildProtocol(self, addr: object) -> HTTPChannel:
        """Return a new channel (of class ``protocol``) for a connection from ``addr``.

        A channel class whose ``__init__`` takes no factory (one written for Twisted,
        whose ``HTTPChannel()`` takes none) is made without one and then given this
        factory, as Twisted's ``Factory.buildProtocol`` does.
        """
        protocol = self.protocol
        if _takes_factory(protocol):
            channel = protocol(self)
        else:
            channel = protocol()
            channel.factory = self
            channel.adopt_request_factory(self)
        if _sets_class_settings(protocol):
            channel.adopt_class_settings()
        return channel

    def asyncio_protocol_factory(self) -> Callable[[], HTTPChannel] | None:
        """How a listening port builds channels without asking for the peer's address.

        Returns:
            A callable of no arguments making a channel, while :meth:`buildProtocol` is
            this class's own; None when a subclass overrides it, which is then called for
            each connection with the peer's address, as in Twisted.
        """
        if type(self).buildProtocol is not HTTPFactory.buildProtocol:
            return None
        protocol = self.protocol
        if not _takes_factory(protocol) or _sets_class_settings(protocol):
            return functools.partial(self.buildProtocol, None)
        return functools.partial(protocol, self)

    def doStart(self) -> None:
        """Called when a port starts listening with this factory."""
        if self.logPath is not None and self._logFile is None:
            stream = open(self.logPath, "a", encoding="utf-8")  # noqa: SIM115
            self._logFile = AccessLogWriter(stream, owns_stream=True)

    def doStop(self) -> None:
        """Called when a port using this factory stops listening: the access log is written
        out, and the file of ``logPath`` closed."""
        log = self._logFile
        if log is not None:
            log.close()
            if log.owns_stream:
                self._logFile = None

    def logToStream(self, stream: IO[str]) -> AccessLogWriter:
        """Write the access log to ``stream`` (standard output, an open file) from now on,
        instead of ``logPath`` or the ``treadle.access`` logger.

        Lines are written in batches, one write per turn of the event loop (see
        :mod:`treadle.web._access_log`); the stream is flushed, never closed, when the
        factory stops. ``treadle web`` logs this way.

        Returns:
            The writer: its ``flush()`` writes what is queued at once (before the stream is
            closed, say).
        """
        if self._logFile is not None and self._logFile.owns_stream:
            self._logFile.close()
        writer = self._logFile = AccessLogWriter(stream)
        return writer

    startFactory = doStart
    stopFactory = doStop

    # -- what channels ask of their factory ---------------------------------------------------

    def limits(self) -> Limits:
        """Return the size limits as they stand (one object while the attributes are unchanged)."""
        values = (
            self.maxRequestLineSize,
            self.maxFieldLineSize,
            self.maxHeadSize,
            self.maxHeaders,
            self.maxRequestBodySize,
            self.maxChunkExtensionsSize,
            self.maxTrailerSize,
        )
        cached = self._limits
        if cached is None or cached[0] != values:
            cached = self._limits = (values, Limits(*values))
        return cached[1]

    def timing(self) -> tuple[TimerHeap, SoonBatch]:
        """Return the deadline heap channels share and how they run a callback "soon".

        One heap per loop (or test clock), shared by its connections: a connection's timer
        is one entry in it rather than a loop timer of its own (~600 bytes, see
        :mod:`treadle.internet._timers`). With a test clock, "soon" is the clock's next
        ``advance``; otherwise the running loop's ``call_soon``.
        """
        clock = self._clock
        if clock is None:
            try:
                source = asyncio.get_running_loop()
            except RuntimeError:
                # A channel driven by hand outside a running loop (Twisted's testing
                # style): its timers go to the reactor, as Twisted's do.
                clock = self.reactor
        if clock is not None:
            source = clock
        deadlines = self._deadlines
        if deadlines is None or deadlines.source is not source:
            if clock is None:
                # A connection's timeout may run a millisecond early (slack), and a wake-up
                # that comes earlier still waits a whole loop tick rather than spinning.
                deadlines = TimerHeap(source, source.call_later, source.time, 0.001, 0.001)
                # Made once: a bound method per connection is 64 bytes each keeps.
                self._soon = SoonBatch(source.call_soon, on_loop=True)
            else:
                deadlines = TimerHeap(source, clock.callLater, clock.seconds)
                self._soon = SoonBatch(_soon_on(clock))
            self._deadlines = deadlines
        return deadlines, self._soon

    def connection_opened(self, channel: HTTPChannel) -> bool:
        """Count a new connection; False when ``maxConnections`` are open already."""
        limit = self.maxConnections
        if limit is not None and len(self._connections) >= limit:
            return False
        self._connections.add(channel)
        return True

    def connection_closed(self, channel: HTTPChannel) -> None:
        """Forget a connection that ended."""
        self._connections.discard(channel)

    @property
    def connections(self) -> frozenset[HTTPChannel]:
        """The channels currently open."""
        return frozenset(self._connections)

    def on_shutdown(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call ``callback()`` once when :meth:`shutdown` begins (at once if it has begun).

        Responses that never end by themselves (event streams, WebSocket connections) use
        it to end when the server stops, rather than being cut off after the grace period.

        Returns:
            A function that forgets ``callback`` (call it when the response ends first).
        """
        if self.shutting_down:
            callback()
            return _forget_nothing
        callbacks = self._shutdown_callbacks
        callbacks.add(callback)
        return functools.partial(callbacks.discard, callback)

    async def shutdown(self, grace: float = 10.0) -> bool:
        """Close every connection gracefully: idle ones now, busy ones after their response.

        Responses still running after ``grace`` seconds are cut off: their connections are
        aborted, so their ``notifyFinish`` Deferreds errback with
        :class:`~treadle.internet.error.ConnectionAborted` and resources can clean up.
        Stop the listening ports first so no new connection arrives.

        Returns:
            True when every connection finished within ``grace``.
        """
        self.shutting_down = True
        callbacks = list(self._shutdown_callbacks)
        self._shutdown_callbacks.clear()
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logging.getLogger("treadle.error").exception("shutdown callback %r", callback)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        for channel in list(self._connections):
            channel.close_when_idle()
        while self._connections and loop.time() < deadline:
            await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
        drained = not self._connections
        for channel in list(self._connections):
            channel.abort()
        # Let the aborted transports deliver connection_lost before we report.
        for _ in range(3):
            await asyncio.sleep(0)
        return drained

    def log(self, request: Request) -> None:
        """Write one access-log line for a finished ``request`` (cheap when disabled)."""
        if self._logFile is not None:
            self._logFile.write(self._logFormatter(_log_timestamp(self._reactor), request) + "\n")
        elif access_log.isEnabledFor(logging.INFO):
            access_log.info("%s", self._logFormatter(_log_timestamp(self._reactor), request))


# Requests answered by a factory with this log, no log file and the access log off are not
# made to call it (see treadle.web._request_core._QuietLog).
register_quiet_log(HTTPFactory.log, access_log)


@functools.lru_cache(maxsize=32)
def _takes_factory(protocol: Callable[..., Any]) -> bool:
    """Whether channel class ``protocol`` is made with its factory (treadle's signature)."""
    init = getattr(protocol, "__init__", None)
    if init is HTTPChannel.__init__:
        return True
    try:
        parameters = list(inspect.signature(protocol).parameters.values())
    except (TypeError, ValueError):
        return True
    return bool(parameters) and parameters[0].kind in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    )


@functools.lru_cache(maxsize=32)
def _sets_class_settings(protocol: type[Any]) -> bool:
    """Whether channel class ``protocol`` sets Twisted's settings (cached per class)."""
    return protocol is not HTTPChannel and gives_class_settings(protocol)


def _forget_nothing() -> None:
    """What :meth:`HTTPFactory.on_shutdown` returns when it ran the callback at once."""


def _soon_on(clock: Any) -> Callable[[Callable[[], object]], object]:
    """``call_soon`` on a test clock: the call runs at the clock's next ``advance``."""

    def soon(callback: Callable[[], object]) -> object:
        return clock.callLater(0, callback)

    return soon


def _default_reactor() -> Any:
    from treadle.internet import reactor

    return reactor


def unquote_path_segment(segment: bytes) -> bytes:
    """Percent-decode one path segment (fast when there is nothing to decode)."""
    return unquote_to_bytes(segment) if b"%" in segment else segment


HTTPChannel.default_factory = HTTPFactory
# A request offers what Twisted's channel calls on one (Twisted's Request declares it too).
classImplements(Request, _IDeprecatedHTTPChannelToRequestInterface)


class StringTransport:
    """An in-memory bytes buffer with a transport's ``write``/``writeSequence`` (Twisted's
    ``http.StringTransport``, kept for tests written against it).

    Everything else (``getvalue``, ``seek``...) is the buffer's own.
    """

    def __init__(self) -> None:
        self.s = io.BytesIO()

    def writeSequence(self, seq: Sequence[bytes]) -> None:
        """Write every item of ``seq``, in order."""
        self.s.write(b"".join(seq))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["s"], name)


def __getattr__(name: str) -> Any:
    # HTTPClient is deprecated (as in Twisted since 24.7): made and warned about on use only.
    if name == "HTTPClient":
        from treadle.web._httpclient import HTTPClient

        warnings.warn(
            "treadle.web.http.HTTPClient is deprecated: use treadle.web.client.Agent instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return HTTPClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
