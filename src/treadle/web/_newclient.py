"""The agent's side of one HTTP exchange: request heads and bodies, :class:`Response`, errors.

Twisted keeps these in ``twisted.web._newclient`` and programs import its error classes from
there (``ResponseNeverReceived``, ``RequestNotSent``...), so the module keeps that name. The
bytes on the wire are :mod:`treadle.web._client`'s: its pooled connections, httptools'
response parser and its flow control. What this module adds is Twisted's contract around
them:

- :class:`Exchange` sends one request on a connection: the head (``Content-Length`` when the
  body producer knows its length, ``Transfer-Encoding: chunked`` otherwise, ``Content-Length:
  0`` for a ``POST`` or ``PUT`` without a body, ``Connection: close`` when the pool is not
  persistent), then the body, written by an ``IBodyProducer`` that the socket pauses while
  its buffer is full; it fires the request's Deferred with a :class:`Response` once the
  response head arrived, and the body was all sent.
- Failures carry Twisted's types: ``ResponseNeverReceived`` (nothing came back),
  ``ResponseFailed`` (part of a response came), ``RequestTransmissionFailed`` (the connection
  broke while the body was sent), ``RequestGenerationFailed`` (the producer failed, wrote
  too much or too little, or the request was cancelled while sending).
- :class:`Response` buffers its body until ``deliverBody(protocol)`` and then pushes it,
  ending with ``connectionLost(ResponseDone)``, ``PotentialDataLoss`` (a body ended by the
  server closing) or ``ResponseFailed``. Its ``headers`` leave out the connection-control
  fields (``Content-Length``, ``Transfer-Encoding``, ``Connection``...) as Twisted's do;
  ``length`` tells the body length.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
from typing import Any, Final
from urllib.parse import urldefrag, urljoin, urlparse, urlunparse

from zope.interface import implementer

from treadle.internet.defer import CancelledError, Deferred
from treadle.internet.error import (
    ConnectingCancelledError,
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
)
from treadle.internet.interfaces import IConsumer, IPushProducer
from treadle.python.failure import Failure
from treadle.web._client import HIGH_WATER, UpstreamError, UpstreamResponse, _Connection
from treadle.web._helpers import PotentialDataLoss
from treadle.web._iclient import IClientRequest, IResponse
from treadle.web.http_headers import Headers
from treadle.web.iweb import UNKNOWN_LENGTH

__all__ = [
    "URI",
    "ConnectionAborted",
    "Exchange",
    "PotentialDataLoss",
    "Request",
    "RequestGenerationFailed",
    "RequestNotSent",
    "RequestTransmissionFailed",
    "Response",
    "ResponseDone",
    "ResponseFailed",
    "ResponseNeverReceived",
    "WrongBodyLength",
]

error_log = logging.getLogger("treadle.error")

#: Fields that describe the connection or the framing, not the response: Twisted's agent keeps
#: them out of ``Response.headers`` (``Content-Length`` of a HEAD response stays in).
CONNECTION_CONTROL: Final = frozenset(
    (
        b"content-length",
        b"connection",
        b"keep-alive",
        b"te",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
    )
)

# RFC 9110 §5.6.2: a method is a token.
_TOKEN: Final = re.compile(rb"\A[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# A request target is visible ASCII only: no whitespace, controls or 8-bit bytes (which
# could split the request line).
_VALID_URI: Final = re.compile(rb"\A[\x21-\x7e]+\Z")


def ensure_valid_method(method: bytes) -> bytes:
    """Return ``method`` if it is an HTTP token.

    Raises:
        TypeError: It is not bytes.
        ValueError: It is not a token.
    """
    if not isinstance(method, bytes):
        raise TypeError(f"method={method!r} is {type(method)}, but must be bytes")
    if not _TOKEN.match(method):
        raise ValueError(f"Invalid method {method!r}")
    return method


def ensure_valid_uri(uri: bytes) -> bytes:
    """Return ``uri`` if it has only visible ASCII characters.

    Raises:
        ValueError: It is empty or has whitespace, a control or a non-ASCII byte.
    """
    if not _VALID_URI.match(uri):
        raise ValueError(f"Invalid URI {uri!r}")
    return uri


# -- URIs ------------------------------------------------------------------------------------


class URI:
    """A URI split into its parts, as the agents need them (Twisted's ``client.URI``).

    Args:
        scheme, netloc, host, port, path, params, query, fragment: The parts (bytes, the port
            an int); brackets around an IPv6 ``host`` are removed.
    """

    def __init__(
        self,
        scheme: bytes,
        netloc: bytes,
        host: bytes,
        port: int,
        path: bytes,
        params: bytes,
        query: bytes,
        fragment: bytes,
    ) -> None:
        self.scheme = scheme
        self.netloc = netloc
        self.host = host.strip(b"[]")
        self.port = port
        self.path = path
        self.params = params
        self.query = query
        self.fragment = fragment

    @classmethod
    def fromBytes(cls, uri: bytes, defaultPort: int | None = None) -> URI:
        """Parse ``uri``.

        Args:
            uri: An absolute URI (surrounding whitespace is ignored).
            defaultPort: The port when the URI names none; by default 443 for ``https`` and
                ``wss``, 80 otherwise. A port that is not a number also gives the default.
        """
        uri = uri.strip()
        scheme, netloc, path, params, query, fragment = urlparse(uri)
        if defaultPort is None:
            defaultPort = 443 if scheme in (b"https", b"wss") else 80
        host, port = netloc, defaultPort
        if b":" in netloc:
            name, _, number = netloc.rpartition(b":")
            if number.isdigit():
                host, port = name, int(number)
        return cls(scheme, netloc, host, port, path, params, query, fragment)

    def toBytes(self) -> bytes:
        """Return the URI assembled from its parts."""
        parts = (self.scheme, self.netloc, self.path, self.params, self.query, self.fragment)
        return urlunparse(parts)

    @property
    def originForm(self) -> bytes:
        """The request target for this URI: path, parameters and query (``/`` if empty)."""
        path = urlunparse((b"", b"", self.path, self.params, self.query, b""))
        return path or b"/"

    def __repr__(self) -> str:
        return f"<URI {self.toBytes()!r}>"


def urljoin_keeping_fragment(base: bytes, url: bytes) -> bytes:
    """Resolve ``url`` against ``base``; the result keeps ``base``'s fragment when ``url``
    has none (RFC 9110 §10.2.2, for redirects)."""
    base, base_fragment = urldefrag(base)
    joined, fragment = urldefrag(urljoin(base, url))
    fragment = fragment or base_fragment
    return joined + b"#" + fragment if fragment else joined


def host_value(scheme: bytes, host: bytes, port: int) -> bytes:
    """Return the ``Host`` field for a URI's parts: the port only when not the default,
    an IPv6 address in brackets."""
    try:
        if isinstance(ipaddress.ip_address(host.decode("ascii")), ipaddress.IPv6Address):
            host = b"[" + host + b"]"
    except (ValueError, UnicodeDecodeError):
        pass
    if (scheme, port) in ((b"http", 80), (b"https", 443)):
        return host
    return b"%b:%d" % (host, port)


# -- errors ------------------------------------------------------------------------------------


class _WrapperException(Exception):
    """An error with lower-level causes, as Failures in :attr:`reasons`.

    Args:
        reasons: The Failures that caused it.
    """

    def __init__(self, reasons: list[Failure]) -> None:
        super().__init__(reasons)
        self.reasons = reasons


class RequestGenerationFailed(_WrapperException):
    """The request could not be made: its body producer failed, wrote a length other than
    the one it announced, or the request was cancelled while it was being sent."""


class RequestTransmissionFailed(_WrapperException):
    """The connection broke while the request was being sent."""


class WrongBodyLength(Exception):
    """A body producer wrote more or fewer bytes than its ``length`` announced."""


class ResponseDone(Exception):
    """Given to a body protocol's ``connectionLost``: the whole body was delivered."""


class ResponseFailed(_WrapperException):
    """The response was not (completely) received.

    Args:
        reasons: Failures that say why.
        response: The :class:`Response`, when its head had arrived.
    """

    def __init__(self, reasons: list[Failure], response: Any = None) -> None:
        super().__init__(reasons)
        self.response = response


class ResponseNeverReceived(ResponseFailed):
    """Not a byte of the response arrived."""


class RequestNotSent(Exception):
    """The request could not be sent at all (the connection was already closed)."""


class _DataLoss(Exception):
    """The connection ended before the body its framing announced was complete."""


def connection_reason(error: UpstreamError) -> Failure:
    """Return Twisted's reason for a connection the server closed or broke."""
    if error.lost:
        if error.cause is None:
            return Failure(ConnectionDone())
        return Failure(ConnectionLost(str(error.cause) or type(error.cause).__name__))
    return Failure(error)


# -- the request -------------------------------------------------------------------------------


@implementer(IClientRequest)
class Request:
    """One request an agent sends (what ``Response.request`` tells of it).

    Args:
        method: The method.
        uri: The request target as sent: origin form (``/path?q``), or the absolute URI
            through a proxy.
        headers: The headers, ``Host`` included.
        bodyProducer: An ``IBodyProducer``, or None for no body.
        persistent: False sends ``Connection: close``.
        absoluteURI: The absolute URI asked for.

    Attributes:
        method, uri, headers, bodyProducer, persistent, absoluteURI: As given.
    """

    __slots__ = ("absoluteURI", "bodyProducer", "headers", "method", "persistent", "uri")

    def __init__(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers,
        bodyProducer: Any,
        persistent: bool = False,
        absoluteURI: bytes | None = None,
    ) -> None:
        self.method = method
        self.uri = uri
        self.headers = headers
        self.bodyProducer = bodyProducer
        self.persistent = persistent
        self.absoluteURI = absoluteURI

    def head(self) -> bytes:
        """Return the request line and header fields, ending with the blank line.

        Raises:
            ValueError: The headers do not hold exactly one ``Host``.
        """
        if len(self.headers.getRawHeaders(b"host", [])) != 1:
            raise ValueError("Exactly one Host header required")
        lines = [b"%s %s HTTP/1.1\r\n" % (self.method, self.uri)]
        if not self.persistent:
            lines.append(b"Connection: close\r\n")
        producer = self.bodyProducer
        if producer is None:
            # RFC 9110 §8.6: a POST or PUT announces its empty body.
            if self.method in (b"POST", b"PUT"):
                lines.append(b"Content-Length: 0\r\n")
        elif producer.length is UNKNOWN_LENGTH:
            lines.append(b"Transfer-Encoding: chunked\r\n")
        else:
            lines.append(b"Content-Length: %d\r\n" % producer.length)
        for name, values in self.headers.getAllRawHeaders():
            lines.extend(name + b": " + value + b"\r\n" for value in values)
        lines.append(b"\r\n")
        return b"".join(lines)


@implementer(IConsumer)
class _BodyConsumer:
    """What a body producer writes to: frames the bytes (chunks or a checked length) onto the
    connection, and pauses the producer while the socket's buffer is full."""

    def __init__(self, conn: _Connection, length: Any) -> None:
        self._conn = conn
        self._chunked = length is UNKNOWN_LENGTH
        self._remaining: int = 0 if self._chunked else int(length)
        self.error: Failure | None = None
        self.closed = False

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Let the connection pause ``producer`` while its send buffer is full."""
        self._conn.producer = producer

    def unregisterProducer(self) -> None:
        """Forget the producer."""
        self._conn.producer = None

    def write(self, data: bytes) -> None:
        """Send ``data`` as part of the body.

        Raises:
            ExcessiveBufferingError: never; a length overrun is reported through the request
                instead (the producer is stopped).
        """
        if self.closed or not data:
            return
        if self._chunked:
            self._conn.write(b"%x\r\n%s\r\n" % (len(data), data))
            return
        if len(data) > self._remaining:
            self.closed = True
            self.error = Failure(WrongBodyLength("too many bytes written"))
            producer = self._conn.producer
            if producer is not None:
                producer.stopProducing()
            return
        self._remaining -= len(data)
        self._conn.write(data)

    def finish(self) -> None:
        """The producer is done: end the body.

        Raises:
            WrongBodyLength: Fewer bytes were written than announced.
        """
        self.closed = True
        if self._chunked:
            self._conn.write(b"0\r\n\r\n")
        elif self._remaining:
            raise WrongBodyLength("too few bytes written")


# -- the exchange ------------------------------------------------------------------------------


class Exchange:
    """Sends one request on a connection and fires :attr:`deferred` with the response.

    Args:
        request: The request.
        loop: The loop the connections live on.

    Attributes:
        deferred: Fires with the :class:`Response`, or fails with one of this module's
            errors (or the connection attempt's). Cancelling it aborts the exchange.
        phase: ``"connecting"``, ``"transmitting"``, ``"waiting"`` or ``"done"``.
        cached: True while the exchange uses a connection taken from the pool (a failure
            there may be retried on a new one).
    """

    def __init__(self, request: Request, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.loop = loop
        self.phase = "connecting"
        self.conn: _Connection | None = None
        self.deferred: Deferred[Response] = Deferred(self._cancel)
        self.task: asyncio.Task[Response] | None = None
        #: Where a new connection goes (the ConnectingCancelledError of a cancelled attempt).
        self.address: Any = None
        self._head: bytes | None = None
        self._produced: asyncio.Future[None] | None = None

    def prepare(self) -> None:
        """Make the request head now, before any connection is taken.

        Raises:
            RequestGenerationFailed: The head cannot be made (no or several ``Host``).
        """
        try:
            self._head = self.request.head()
        except Exception:
            raise RequestGenerationFailed([Failure()]) from None

    # -- cancellation (Twisted's outcome for each phase) ---------------------------------------

    def _cancel(self, d: Deferred[Response]) -> None:
        phase = self.phase
        self.phase = "done"
        if self.task is not None:
            self.task.cancel()
        producer = self.request.bodyProducer
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.producer = None
            conn.abort()
        if self._produced is not None and not self._produced.done():
            self._produced.cancel()
        if phase == "transmitting":
            if producer is not None:
                _stop(producer)
            d.errback(RequestGenerationFailed([Failure(CancelledError())]))
        elif phase == "waiting":
            d.errback(ResponseNeverReceived([Failure(CancelledError())]))
        elif phase == "connecting":
            d.errback(ConnectingCancelledError(self.address))

    # -- sending -------------------------------------------------------------------------------

    async def send(self, conn: _Connection) -> Response:
        """Send the request on ``conn`` and return the response once its head arrived.

        Raises:
            RequestNotSent: ``conn`` was closed before anything was sent.
            RequestGenerationFailed: The head or the body could not be made.
            RequestTransmissionFailed: The connection broke while the body was sent.
            ResponseNeverReceived: It broke before any of the response arrived.
            ResponseFailed: The response head was invalid or cut short.
        """
        self.conn = conn
        self.phase = "transmitting"
        request = self.request
        if self._head is None:
            self.prepare()
        assert self._head is not None
        try:
            waiter = conn.begin(request.method, self._head)
        except UpstreamError:
            conn.abort()
            raise RequestNotSent() from None
        try:
            if request.bodyProducer is None:
                conn.finish_body()
            else:
                await self._send_body(conn, waiter)
            self.phase = "waiting"
            try:
                upstream = await waiter
            except UpstreamError as e:
                if e.retryable:
                    raise ResponseNeverReceived([connection_reason(e)]) from None
                raise ResponseFailed([connection_reason(e)]) from None
        except BaseException:
            conn.producer = None
            conn.abort()
            raise
        self.phase = "done"
        self.conn = None
        return Response.from_upstream(upstream, request, conn)

    async def _send_body(self, conn: _Connection, waiter: asyncio.Future[Any]) -> None:
        producer = self.request.bodyProducer
        consumer = _BodyConsumer(conn, producer.length)
        produced = self._produced = self.loop.create_future()
        conn.producer = producer
        try:
            d = producer.startProducing(consumer)
        except Exception:
            conn.abort()
            raise RequestGenerationFailed([Failure()]) from None
        d.addCallbacks(_settle, _settle_failure, (produced,), None, (produced,))
        await asyncio.wait((produced, conn.closed, waiter), return_when=asyncio.FIRST_COMPLETED)
        conn.producer = None
        if consumer.error is not None:
            conn.abort()
            raise RequestGenerationFailed([consumer.error])
        if produced.done():
            failure = produced.exception()
            if failure is not None:
                conn.abort()
                reason = failure.failure if isinstance(failure, _Failed) else Failure(failure)
                raise RequestGenerationFailed([reason])
            try:
                consumer.finish()
            except WrongBodyLength:
                conn.abort()
                raise RequestGenerationFailed([Failure()]) from None
            conn.finish_body()
            return
        # The connection closed, or the server answered before the body was all sent (a
        # 413, say): the producer is stopped and the connection is not reused.
        _stop(producer)
        consumer.closed = True
        if conn.lost and not waiter.done():
            waiter.cancel()
            error = conn.error
            reason = connection_reason(error) if error is not None else Failure(ConnectionDone())
            raise RequestTransmissionFailed([reason])


class _Failed(Exception):
    """Carries a producer's Failure through an asyncio future."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure)
        self.failure = failure


def _settle(result: object, future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _settle_failure(failure: Failure, future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(_Failed(failure))


def _stop(producer: Any) -> None:
    # A producer that already finished may complain (Twisted's TaskFinished): nothing more
    # to stop.
    with contextlib.suppress(Exception):
        producer.stopProducing()


# -- the response ------------------------------------------------------------------------------


@implementer(IPushProducer)
class _BodyTransport:
    """The transport a body protocol is given: pause, resume or stop the body's delivery.

    Once the body ended the connection may serve another exchange: these then do nothing.
    """

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self.response: Any = None

    def _attached(self) -> bool:
        return self._conn.sink is self.response

    def pauseProducing(self) -> None:
        """Stop delivering the body until resumed (the socket stops being read)."""
        if self._attached():
            self._conn.pause_push()

    def resumeProducing(self) -> None:
        """Deliver the body again."""
        if self._attached():
            self._conn.resume_push()

    def stopProducing(self) -> None:
        """Give the body up: the connection is closed and ``connectionLost`` follows."""
        if self._attached():
            self._conn.discard()

    def loseConnection(self) -> None:
        """As :meth:`stopProducing`."""
        self.stopProducing()

    def abortConnection(self) -> None:
        """As :meth:`stopProducing` (what ``readBody`` calls when cancelled)."""
        self.stopProducing()

    def restart(self, buffered: list[bytes]) -> None:
        """Deliver ``buffered`` and what follows (a body protocol was just given)."""
        if self._attached():
            self._conn.restart_push(buffered)


@implementer(IResponse)
class Response:
    """A response an agent received (Twisted's ``IResponse``); made by the agent, not users.

    Attributes:
        version: ``(b"HTTP", 1, 1)``.
        code: Status code.
        phrase: Reason phrase (bytes).
        headers: :class:`~treadle.web.http_headers.Headers`, without connection-control
            fields.
        length: Body length in bytes, or ``UNKNOWN_LENGTH``; 0 for ``HEAD``, 204 and 304.
        request: The request it answers (``method``, ``absoluteURI``, ``headers``).
        previousResponse: The response that redirected here, or None.
    """

    def __init__(
        self,
        version: tuple[bytes, int, int],
        code: int,
        phrase: bytes,
        headers: Headers,
        _transport: Any,
    ) -> None:
        self.version = version
        self.code = code
        self.phrase = phrase
        self.headers = headers
        self.length: int | str = UNKNOWN_LENGTH
        self.request: Any = None
        self.previousResponse: Any = None
        self._transport = _transport
        self._state = "INITIAL"
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._protocol: Any = None
        self._reason: Failure | None = None

    @classmethod
    def from_upstream(
        cls, upstream: UpstreamResponse, request: Request, conn: _Connection
    ) -> Response:
        """Make the response for ``upstream``'s head and attach it to ``conn`` for the body."""
        is_head = request.method == b"HEAD"
        # The parser's fields are valid already: straight into the lowercased multimap.
        raw: dict[bytes, list[bytes]] = {}
        content_length: bytes | None = None
        chunked = False
        for name, value in upstream.headers:
            lower = name.lower()
            if lower in CONNECTION_CONTROL:
                if lower == b"content-length":
                    content_length = value
                    if not is_head:
                        continue
                else:
                    chunked = chunked or lower == b"transfer-encoding"
                    continue
            values = raw.get(lower)
            if values is None:
                raw[lower] = [value]
            else:
                values.append(value)
        headers = Headers._from_raw(raw)
        major, _, minor = upstream.version.partition(".")
        transport = _BodyTransport(conn)
        response = cls(
            (b"HTTP", int(major), int(minor or 0)),
            upstream.code,
            upstream.phrase,
            headers,
            transport,
        )
        transport.response = response
        response.request = request
        if is_head or upstream.code in (204, 304):
            response.length = 0
        elif not chunked and content_length is not None:
            response.length = int(content_length.split(b",")[0])
        conn.attach(response)
        return response

    def setPreviousResponse(self, previousResponse: Any) -> None:
        """Record the response that redirected to this one."""
        self.previousResponse = previousResponse

    def deliverBody(self, protocol: Any) -> None:
        """Deliver the body to ``protocol``.

        It gets ``makeConnection(transport)`` (the transport can ``pauseProducing``,
        ``resumeProducing`` and ``stopProducing``), the body through ``dataReceived``, and
        ``connectionLost`` with ``ResponseDone``, ``PotentialDataLoss`` (the server closed
        the connection to end a body without length) or ``ResponseFailed``.

        Raises:
            RuntimeError: A body protocol was given already.
        """
        state = self._state
        if state == "CONNECTED":
            raise RuntimeError(
                f"Response already has protocol {self._protocol!r}, cannot deliverBody again"
            )
        if state == "FINISHED":
            raise RuntimeError("Response already finished, cannot deliverBody now.")
        protocol.makeConnection(self._transport)
        buffered, self._buffer = self._buffer, []
        if state == "DEFERRED_CLOSE":
            # The connection is already done with (maybe serving another request): all
            # of the body is here.
            self._state = "FINISHED"
            for data in buffered:
                protocol.dataReceived(data)
            protocol.connectionLost(self._reason)
            return
        self._protocol = protocol
        self._state = "CONNECTED"
        # What was buffered goes back to the connection, which delivers it now and honours
        # a pauseProducing from the protocol between pieces.
        self._buffered = 0
        self._transport.restart(buffered)

    # -- BodySink: what the connection pushes ---------------------------------------------------

    def body_data(self, data: bytes) -> None:
        """Take a piece of the body (from the connection)."""
        if self._state == "CONNECTED":
            self._deliver(data)
        elif self._state == "INITIAL":
            self._buffer.append(data)
            self._buffered += len(data)
            if self._buffered > HIGH_WATER:
                # Until a protocol is given, hold little: the connection then buffers up to
                # its own high water mark and stops reading the socket.
                self._transport.pauseProducing()

    def body_end(self, error: UpstreamError | None, close_delimited: bool) -> None:
        """The body ended (from the connection)."""
        if error is None:
            if close_delimited:
                reason = Failure(PotentialDataLoss())
            else:
                reason = Failure(ResponseDone("Response body fully received"))
        elif error.lost:
            reason = Failure(ResponseFailed([connection_reason(error), Failure(_DataLoss())], self))
        else:
            reason = Failure(ResponseFailed([Failure(error)], self))
        self._finish(reason)

    def _finish(self, reason: Failure) -> None:
        if self._state == "INITIAL":
            self._state = "DEFERRED_CLOSE"
            self._reason = reason
        elif self._state == "CONNECTED":
            protocol = self._protocol
            try:
                protocol.connectionLost(reason)
            except Exception:
                error_log.exception("Unhandled error in %r.connectionLost", protocol)
            # Only now, as in Twisted: deliverBody from inside connectionLost is refused as
            # a second protocol.
            self._protocol = None
            self._state = "FINISHED"

    def _deliver(self, data: bytes) -> None:
        protocol = self._protocol
        try:
            protocol.dataReceived(data)
        except Exception:
            # As Twisted: the body is given up and the protocol is told why.
            failure = Failure()
            self._state = "FINISHED"
            self._protocol = None
            self._transport.stopProducing()
            reason = Failure(ResponseFailed([failure, Failure(_DataLoss())], self))
            try:
                protocol.connectionLost(reason)
            except Exception:
                error_log.exception("Unhandled error in %r.connectionLost", protocol)

    def __repr__(self) -> str:
        return f"<Response {self.code} {self.phrase!r} length={self.length!r}>"
