"""An HTTP/1.1 client for :mod:`treadle.web.proxy`: pooled keep-alive connections, streamed bodies.

Why a client of our own rather than httpx or aiohttp: the proxy needs exactly four things that
a general client hides or makes costly — the response head as soon as it arrives, the body as
the socket delivers it (so it can be relayed without being held whole), reading from the
upstream paused while the downstream client is slow, and the *one* connection of an abandoned
request closed at once. With an :class:`asyncio.Protocol` and httptools'
``HttpResponseParser`` (llhttp, the parser family the server side already uses) all four are
a few lines each, and treadle gains no dependency.

:mod:`treadle.web.client` (Twisted's ``Agent``) drives the same connections and pool: one HTTP
client stack for the proxy, XML-RPC and user code. The agent attaches a *body sink* to a
connection (:meth:`_Connection.attach`): body pieces are then pushed to it as they arrive
instead of waiting for :meth:`UpstreamResponse.read`, and the connection goes back to the pool
before the sink hears that the body ended (so a request made from that callback reuses it, as
in Twisted). Its request bodies come from producers (:meth:`_Connection.begin`,
:meth:`_Connection.write`, :meth:`_Connection.finish_body`).

One connection carries one exchange at a time (no pipelining). The parser's callbacks only
record what they see; waiting coroutines and the body sink are woken after ``feed_data``
returns, as in the server's channel. A fresh parser is made for every exchange: llhttp
cannot be told that a response answers ``HEAD`` (and so has no body whatever its
``Content-Length`` says), so the exchange ends at the head and the parser that was
expecting a body is simply dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Hashable
from typing import IO, Any, Final, Protocol

import httptools

from treadle.internet.defer import Deferred, succeed

__all__ = [
    "BodySink",
    "HTTPConnectionPool",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamResponse",
    "connection_tokens",
]

error_log = logging.getLogger("treadle.error")

#: Upstream body bytes buffered for a consumer that is not reading (because its own client is
#: slow) before the upstream socket stops being read; TCP then pushes back on the upstream.
#: The same figure as the server's read-ahead and asyncio's default write buffer.
HIGH_WATER: Final = 64 * 1024
#: Reading resumes once the consumer has taken the buffer down to this.
LOW_WATER: Final = 16 * 1024
#: Request bodies are sent in pieces of this size, waiting for the socket between them.
BODY_PIECE: Final = 64 * 1024

# RFC 9110 §9.2.2: requests that may be sent again when a reused connection turns out to have
# been closed by the upstream before it read them.
_IDEMPOTENT: Final = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"))


class UpstreamError(Exception):
    """The upstream server could not be reached, closed the connection early, or spoke garbage.

    Attributes:
        retryable: True when nothing of a response had arrived, so the request may be sent
            again on a fresh connection (if it is idempotent).
        lost: True when the connection was lost (rather than the response being invalid).
        cause: The transport's error when the connection was lost, None for a clean close.
        head_received: True when the failure came after the response head.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.lost = False
        self.cause: BaseException | None = None
        self.head_received = False


class UpstreamConnectError(UpstreamError):
    """No connection to the upstream could be made (refused, unreachable, DNS failure)."""


class UpstreamProtocolError(UpstreamError):
    """The upstream's bytes are not a valid HTTP/1.x response."""


def connection_tokens(values: list[bytes] | None) -> set[bytes]:
    """Return the lowercased option tokens of ``Connection`` header values.

    Args:
        values: Every value of the ``Connection`` field, or None when absent.

    Returns:
        The tokens, e.g. ``{b"close"}`` or ``{b"keep-alive", b"x-private"}``.
    """
    if not values:
        return set()
    return {t.strip().lower() for v in values for t in v.split(b",") if t.strip()}


class BodySink(Protocol):
    """Where an attached connection pushes a response body (see :meth:`_Connection.attach`)."""

    def body_data(self, data: bytes) -> None:
        """Take the next piece of the body."""

    def body_end(self, error: UpstreamError | None, close_delimited: bool) -> None:
        """The body ended: completely (``error`` None) or not.

        ``close_delimited`` tells that a complete body was ended by the server closing the
        connection (RFC 9112 §6.3 item 8), so it cannot be told from a truncated one.
        """


class UpstreamResponse:
    """The head of an upstream response, and a reader for its body.

    Attributes:
        code: Status code.
        phrase: Reason phrase as sent (may be empty).
        version: ``"1.1"`` or ``"1.0"``.
        headers: ``(name, value)`` pairs in the order received, names as sent.
    """

    __slots__ = ("_conn", "_released", "code", "headers", "phrase", "version")

    def __init__(
        self,
        conn: _Connection,
        code: int,
        phrase: bytes,
        version: str,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        self._conn = conn
        self._released = False
        self.code = code
        self.phrase = phrase
        self.version = version
        self.headers = headers

    @property
    def complete(self) -> bool:
        """True once the whole body has arrived (it may still be buffered here)."""
        return self._conn.done

    def take_buffered(self) -> bytes:
        """Return and forget every body byte buffered so far."""
        return self._conn.take_all()

    async def read(self) -> bytes:
        """Return the next piece of the body as it arrives, or ``b""`` at its end.

        Raises:
            UpstreamError: The upstream closed the connection before the body was complete,
                or sent an invalid body.
        """
        return await self._conn.read()

    def release(self) -> None:
        """Hand the connection back to the pool if the exchange ended cleanly, else close it.

        Call when done with the response, also after errors or cancellation; calls after
        the first do nothing.
        """
        if not self._released:
            self._released = True
            self._conn.release()


class _Connection(asyncio.Protocol):
    """One upstream connection: an ``asyncio.Protocol`` carrying one exchange at a time."""

    __slots__ = (
        "_body_waiter",
        "_buffered",
        "_chunks",
        "_drain_waiter",
        "_head_waiter",
        "_headers",
        "_interim",
        "_is_head",
        "_phrase",
        "_push_paused",
        "_reading_paused",
        "_writing_paused",
        "close_delimited",
        "closed",
        "done",
        "error",
        "idle_timer",
        "key",
        "lost",
        "parser",
        "pool",
        "producer",
        "received_any",
        "response",
        "reusable",
        "sent_all",
        "sink",
        "transport",
    )

    def __init__(self, pool: HTTPConnectionPool, key: Hashable) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost = False
        self.idle_timer: asyncio.TimerHandle | None = None
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        # A push producer writing the request body (the agent's), paused with the socket.
        self.producer: Any = None
        self._reset(b"GET")
        # Not in an exchange yet: bytes arriving now are unasked for.
        self.parser: Any = None

    def _reset(self, method: bytes) -> None:
        """Forget the previous exchange; get ready for the response to ``method``."""
        self.parser = None
        self._is_head = method == b"HEAD"
        self.received_any = False
        self.sent_all = False
        self.reusable = True
        self.response: UpstreamResponse | None = None
        self.done = False
        self.error: UpstreamError | None = None
        self.close_delimited = False
        self._interim = False
        self._phrase = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._reading_paused = False
        self._head_waiter: asyncio.Future[UpstreamResponse] | None = None
        self._body_waiter: asyncio.Future[None] | None = None
        self.sink: BodySink | None = None
        self._push_paused = False

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None or self.done or self.error is not None:
            # Bytes nobody asked for (idle in the pool, or after a complete response): the
            # framing can no longer be trusted, so this connection is finished.
            self.reusable = False
            if self.transport is not None:
                self.transport.close()
            return
        self.received_any = True
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError("upstream switched protocols unasked"))
        except httptools.HttpParserCallbackError as e:
            cause = e.__context__
            if isinstance(cause, UpstreamError):
                self._fail(cause)
            else:
                error_log.error("error while parsing an upstream response", exc_info=cause)
                self._fail(UpstreamProtocolError("internal error parsing the response"))
        except httptools.HttpParserError as e:
            self._fail(UpstreamProtocolError(f"invalid response from upstream: {e}"))
        self._wake()

    def eof_received(self) -> bool | None:
        # The upstream half-closed: nothing more will come; let the transport close, and
        # connection_lost decides whether that ended a close-delimited body or broke one.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.reusable = False
        self.transport = None
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        self.pool._forget(self)
        if self.parser is not None and not self.done and self.error is None:
            if self.response is not None and self.close_delimited:
                # RFC 9112 §6.3 item 8: a response without length ends when the server closes.
                self.done = True
            else:
                where = "mid-response" if self.response is not None else "before responding"
                detail = f": {exc}" if exc is not None else ""
                error = UpstreamError(
                    f"upstream closed the connection {where}{detail}",
                    retryable=not self.received_any,
                )
                error.lost = True
                error.cause = exc
                error.head_received = self.response is not None
                self.error = error
        self._wake()
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self.producer is not None:
            self.producer.pauseProducing()

    def resume_writing(self) -> None:
        self._writing_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.producer is not None:
            self.producer.resumeProducing()

    # -- httptools callbacks: record only ---------------------------------------------------

    def on_message_begin(self) -> None:
        self._phrase = b""
        self._headers = []

    def on_status(self, status: bytes) -> None:
        self._phrase += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        code = parser.get_status_code()
        if code < 200:
            if code == 101:
                raise UpstreamProtocolError("upstream switched protocols unasked")
            # RFC 9110 §15.2: interim responses are informational; the final one follows.
            self._interim = True
            return
        self._interim = False
        version = parser.get_http_version()
        headers = self._headers
        self.response = UpstreamResponse(self, code, self._phrase, version, headers)
        lowered = {name.lower() for name, _ in headers}
        tokens = connection_tokens([v for n, v in headers if n.lower() == b"connection"])
        if version == "1.1":
            self.reusable = b"close" not in tokens
        else:
            self.reusable = b"keep-alive" in tokens and b"close" not in tokens
        if self._is_head:
            # The head is all a HEAD response has (RFC 9110 §9.3.2); llhttp would wait for
            # Content-Length bytes, so the exchange ends here and the parser is dropped.
            self.done = True
            return
        has_body = code != 204 and code != 304
        if has_body and b"transfer-encoding" not in lowered and b"content-length" not in lowered:
            self.close_delimited = True
            self.reusable = False

    def on_body(self, body: bytes) -> None:
        if self._interim:
            return
        if self.done:  # a body after a HEAD response: the framing is off, never reuse
            self.reusable = False
            return
        self._chunks.append(body)
        self._buffered += len(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self.done:
            return
        self.done = True
        if not self.parser.should_keep_alive():
            self.reusable = False

    # -- the exchange -----------------------------------------------------------------------

    def _fail(self, error: UpstreamError) -> None:
        self.reusable = False
        if not self.done and self.error is None:
            error.retryable = error.retryable and not self.received_any
            error.head_received = self.response is not None
            self.error = error
        if self.transport is not None:
            self.transport.abort()

    def _wake(self) -> None:
        """Resume whoever waits for the head or the body (after the parser returned)."""
        head_waiter = self._head_waiter
        if head_waiter is not None and not head_waiter.done():
            if self.response is not None:
                self._head_waiter = None
                head_waiter.set_result(self.response)
            elif self.error is not None:
                self._head_waiter = None
                head_waiter.set_exception(self.error)
        body_waiter = self._body_waiter
        if body_waiter is not None and (self._chunks or self.done or self.error is not None):
            self._body_waiter = None
            if not body_waiter.done():
                body_waiter.set_result(None)
        if self.sink is not None:
            self._push()
        if self._buffered > HIGH_WATER and not self._reading_paused and not self.done:
            transport = self.transport
            if transport is not None:
                self._reading_paused = True
                transport.pause_reading()

    # -- push mode (the agent's) ------------------------------------------------------------

    def attach(self, sink: BodySink) -> None:
        """Push the body to ``sink`` from now on: what is buffered at once, the rest as it
        arrives; then its end. A complete exchange goes back to the pool first."""
        self.sink = sink
        self._push()

    def pause_push(self) -> None:
        """Stop pushing; the body is buffered, and the socket no longer read past
        :data:`HIGH_WATER`."""
        self._push_paused = True

    def resume_push(self) -> None:
        """Push again, starting with what was buffered (on the next loop turn, not inside
        the caller's stack)."""
        if self._push_paused:
            self._push_paused = False
            asyncio.get_running_loop().call_soon(self._push)

    def restart_push(self, buffered: list[bytes]) -> None:
        """Push ``buffered`` (taken back from the sink) first, then the rest, starting now."""
        if buffered:
            self._chunks.extendleft(reversed(buffered))
            self._buffered += sum(map(len, buffered))
        self._push_paused = False
        self._push()

    def _push(self) -> None:
        sink = self.sink
        if sink is None:
            return
        chunks = self._chunks
        while chunks and not self._push_paused:
            data = chunks.popleft()
            self._buffered -= len(data)
            sink.body_data(data)
            if self.sink is not sink:  # the sink gave up (aborted) from inside body_data
                return
        if self._reading_paused and self._buffered <= LOW_WATER:
            self._reading_paused = False
            if self.transport is not None:
                self.transport.resume_reading()
        if chunks or self._push_paused:
            return
        if self.done:
            self.sink = None
            close_delimited = self.close_delimited
            self.release()
            sink.body_end(None, close_delimited)
        elif self.error is not None:
            self.sink = None
            error = self.error
            self.release()
            sink.body_end(error, False)

    def begin(self, method: bytes, head: bytes) -> asyncio.Future[UpstreamResponse]:
        """Start an exchange: send the request head and return the future of the response head.

        The body, if any, follows with :meth:`write`; :meth:`finish_body` tells it is all
        sent (at once when there is none).

        Raises:
            UpstreamError: The connection is already closed (retryable).
        """
        self._reset(method)
        transport = self.transport
        if transport is None or self.lost or transport.is_closing():
            error = UpstreamError("upstream connection already closed", retryable=True)
            error.lost = True
            raise error
        self.parser = httptools.HttpResponseParser(self)
        waiter: asyncio.Future[UpstreamResponse] = asyncio.get_running_loop().create_future()
        self._head_waiter = waiter
        if head:
            transport.write(head)
        return waiter

    def write(self, data: bytes) -> None:
        """Send request body bytes (nothing once the connection is gone)."""
        transport = self.transport
        if transport is not None and data:
            transport.write(data)

    def finish_body(self) -> None:
        """The whole request body was sent: the connection may be reused after the response."""
        self.sent_all = True

    async def send(self, method: bytes, head: bytes, body: IO[bytes] | None) -> UpstreamResponse:
        """Send a request and return its response head once it arrived.

        Raises:
            UpstreamError: The connection failed or the response is invalid.
        """
        piece = body.read(BODY_PIECE) if body is not None else b""
        # One write for a small request.
        waiter = self.begin(method, head + piece if piece else head)
        while body is not None and piece and not waiter.done():
            await self.drain()
            if self.transport is None:
                break
            piece = body.read(BODY_PIECE)
            if piece:
                self.transport.write(piece)
        # An upstream that answered before reading the whole body (a 413, say) leaves the
        # rest unsent: the connection's framing is then unknown and it is not reused.
        self.sent_all = not piece
        return await waiter

    async def drain(self) -> None:
        """Wait until the transport accepts more data (returns at once if it does)."""
        if not self._writing_paused or self.transport is None:
            return
        waiter = self._drain_waiter
        if waiter is None:
            waiter = self._drain_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(waiter)

    async def read(self) -> bytes:
        while True:
            chunks = self._chunks
            if chunks:
                data = chunks.popleft()
                self._buffered -= len(data)
                if self._reading_paused and self._buffered <= LOW_WATER:
                    self._reading_paused = False
                    if self.transport is not None:
                        self.transport.resume_reading()
                return data
            if self.done:
                return b""
            if self.error is not None:
                raise self.error
            waiter = self._body_waiter = asyncio.get_running_loop().create_future()
            await waiter

    def take_all(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        if self._reading_paused:
            self._reading_paused = False
            if self.transport is not None:
                self.transport.resume_reading()
        return data

    def release(self) -> None:
        """End the exchange: back to the pool when clean and complete, closed otherwise."""
        clean = (
            self.done
            and self.sent_all
            and self.error is None
            and self.reusable
            and not self._chunks
        )
        self.parser = None
        self._head_waiter = None
        self._body_waiter = None
        self.sink = None
        self.producer = None
        if clean and not self.lost:
            self.pool._put(self)
        else:
            self.abort()

    def discard(self) -> None:
        """Give the response up from the sink's side: forget what is buffered and drop the
        connection; the sink then hears that the body ended unfinished."""
        self._chunks.clear()
        self._buffered = 0
        self._push_paused = False
        if self.sink is not None and self.error is None:
            error = UpstreamError("response body given up", retryable=False)
            error.lost = True
            error.head_received = True
            self.error = error
            self.done = False
        self.abort()
        if self.transport is None:
            self._push()  # already closed: nothing else will wake the sink

    def abort(self) -> None:
        """Drop the connection at once (an abandoned or broken exchange)."""
        self.reusable = False
        self.parser = None
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Close the connection politely (idle timeout, pool full, pool closed)."""
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class HTTPConnectionPool:
    """Keeps idle HTTP/1.1 connections to upstream servers for reuse, per ``(host, port)``.

    Named and shaped after Twisted's ``twisted.web.client.HTTPConnectionPool``. Only idle
    connections are bounded: each request that finds none idle opens a new one, and when it
    is done the connection is kept if fewer than :attr:`maxPersistentPerHost` are idle for
    that destination (the oldest idle one is closed otherwise). An idle connection is closed
    after :attr:`cachedConnectionTimeout` seconds, or at once when the upstream closes it.

    A pool serves the event loop it is first used on; connections are never shared between
    loops.

    Args:
        reactor: Accepted for Twisted compatibility; connections are made on the running
            asyncio loop.
        persistent: False closes every connection after its exchange (no reuse).

    Attributes:
        maxPersistentPerHost: Idle connections kept per destination (Twisted's default is 2,
            sized for a browser-like client; a reverse proxy serves many clients at once).
        cachedConnectionTimeout: Seconds an idle connection is kept. Shorter than the usual
            keep-alive timeout of servers (nginx 75 s, treadle 60 s) so that we, not the
            upstream, usually close it, which avoids sending on a connection being closed.
        retryAutomatically: Send an idempotent request again on a fresh connection when a
            reused one turns out to be closed before any response byte arrived.
    """

    maxPersistentPerHost: int = 10
    cachedConnectionTimeout: float = 30.0
    retryAutomatically: bool = True

    def __init__(self, reactor: Any = None, persistent: bool = True) -> None:
        self.reactor = reactor
        self.persistent = persistent
        self._idle: dict[Hashable, list[_Connection]] = {}

    def idleConnections(self, host: str, port: int) -> int:
        """Return how many idle connections to ``(host, port)`` the pool holds now."""
        return len(self._idle.get((host, port), ()))

    async def request(
        self,
        host: str,
        port: int,
        method: bytes,
        head: bytes,
        body: IO[bytes] | None = None,
    ) -> UpstreamResponse:
        """Send one request to ``host:port`` and return when its response head arrived.

        Call :meth:`UpstreamResponse.release` when done with the response. Cancelling the
        call closes the connection it was using.

        Args:
            host: Upstream host name or address.
            port: Upstream TCP port.
            method: The request method (a HEAD response is known to have no body).
            head: The complete request head, ending with the blank line.
            body: The request body as a binary file positioned at its start, or None.

        Raises:
            UpstreamConnectError: No connection could be made.
            UpstreamError: The connection failed, or the response is not valid HTTP.
        """
        key = (host, port)
        conn = self._take(key)
        if conn is not None:
            start = body.tell() if body is not None else 0
            try:
                return await self._send(conn, method, head, body)
            except UpstreamError as e:
                if not (e.retryable and self.retryAutomatically and method in _IDEMPOTENT):
                    raise
                if body is not None:
                    body.seek(start)
        conn = await self._connect(key)
        return await self._send(conn, method, head, body)

    async def _send(
        self, conn: _Connection, method: bytes, head: bytes, body: IO[bytes] | None
    ) -> UpstreamResponse:
        try:
            return await conn.send(method, head, body)
        except BaseException:
            conn.abort()
            raise

    async def _connect(self, key: tuple[str, int]) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: _Connection(self, key), *key)
        except OSError as e:
            raise UpstreamConnectError(
                f"could not connect to {key[0]}:{key[1]}: {e.strerror or e}"
            ) from e
        return conn

    def _take(self, key: Hashable) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            # The most recently used one first: it is the least likely to have been timed
            # out by the upstream.
            conn = idle.pop()
            if conn.idle_timer is not None:
                conn.idle_timer.cancel()
                conn.idle_timer = None
            transport = conn.transport
            if not conn.lost and transport is not None and not transport.is_closing():
                return conn
        return None

    def _put(self, conn: _Connection) -> None:
        if not self.persistent:
            conn.close()
            return
        idle = self._idle.setdefault(conn.key, [])
        idle.append(conn)
        if len(idle) > self.maxPersistentPerHost:
            oldest = idle.pop(0)
            if oldest.idle_timer is not None:
                oldest.idle_timer.cancel()
                oldest.idle_timer = None
            oldest.close()
        loop = asyncio.get_running_loop()
        conn.idle_timer = loop.call_later(self.cachedConnectionTimeout, conn.close)

    def _forget(self, conn: _Connection) -> None:
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
        if not idle:
            self._idle.pop(conn.key, None)

    def closeCachedConnections(self) -> Deferred[None]:
        """Close every idle connection.

        Returns:
            A Deferred firing once all of them are closed (connections in use are left
            alone; they close or return to the pool when their exchange ends).
        """
        conns = [conn for idle in self._idle.values() for conn in idle]
        self._idle.clear()
        if not conns:
            return succeed(None)
        for conn in conns:
            if conn.idle_timer is not None:
                conn.idle_timer.cancel()
                conn.idle_timer = None
            conn.close()
        return Deferred.fromFuture(asyncio.ensure_future(_all_closed(conns)))


async def _all_closed(conns: list[_Connection]) -> None:
    await asyncio.gather(*(asyncio.shield(conn.closed) for conn in conns))
