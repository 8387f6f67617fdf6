"""The ``async for`` form of a WebSocket: :class:`WebSocket`, for async code on either side.

Under Twisted's callback API (``textMessageReceived``...) a :class:`_Bridge` protocol feeds a
:class:`WebSocket`, which async code reads with ``async for message in ws`` (or ``await
ws.receive()``) and writes with ``await ws.send(message)``:

- the server side: ``WebSocketResource(handler)`` with ``async def handler(ws)``; the
  handler runs as a task once the handshake is done, and when it returns the connection
  is closed (``1000``; ``1011`` if it raised, after logging it);
- the client side: ``ws = await WebSocketClientEndpoint.new(reactor, url).open()``.

Flow control both ways: ``send`` waits while the peer reads too slowly (the transport's
high-water mark), and the peer is not read while 16 messages (or ``maxMessageSize`` bytes)
wait for ``receive``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final

from treadle.internet.defer import ensureDeferred
from treadle.python.failure import Failure

__all__ = ["ConnectionClosed", "WebSocket", "handler_factory", "is_handler"]

error_log = logging.getLogger("treadle.error")

#: Messages (or maxMessageSize bytes) waiting for ``receive`` before the peer is not read.
MAX_QUEUED_MESSAGES: Final = 16

Handler = Callable[["WebSocket"], Awaitable[object]]


class ConnectionClosed(Exception):
    """The WebSocket connection is closed.

    Args:
        code: The close code (``1000`` normal, ``1001`` going away, ``1006`` no close
            frame at all, ...).
        reason: The close frame's reason text.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"WebSocket closed with {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class WebSocket:
    """One WebSocket connection for async code: ``async for message in ws``.

    Messages are ``str`` (text) or ``bytes`` (binary), whole. Iteration ends when the
    connection closes, however it closes (``close_code`` tells how).

    Attributes:
        request: The opening handshake's request (server side), else None.
        url: The URL connected to (client side), else None.
    """

    def __init__(self, request: Any = None, url: str | None = None) -> None:
        self.request = request
        self.url = url
        self._wire: Any = None
        self._queue: collections.deque[str | bytes] = collections.deque()
        self._queued = 0
        self._reading_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._closed_waiters: list[asyncio.Future[None]] = []
        self._task: Any = None

    # -- reading -------------------------------------------------------------------------------

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.receive()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def receive(self) -> str | bytes:
        """Return the next message, waiting for it.

        Raises:
            ConnectionClosed: The connection closed and every message was received.
        """
        while not self._queue:
            if self._closed:
                raise ConnectionClosed(self.close_code, self.close_reason)
            waiter = self._waiter
            if waiter is None:
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter
        message = self._queue.popleft()
        self._queued -= len(message)
        if self._reading_paused and not self._queue:
            self._reading_paused = False
            self._wire.resume_reading()
        return message

    # -- writing -------------------------------------------------------------------------------

    async def send(self, message: str | bytes) -> None:
        """Send ``message`` (``str``: text, ``bytes``: binary), waiting while the peer lags.

        Raises:
            ConnectionClosed: The connection is closed (or closing).
        """
        wire = self._wire
        if self._closed or wire is None or wire.closeCode is not None:
            raise ConnectionClosed(self.close_code, self.close_reason)
        wire.cork()  # the messages sent in this turn of the loop go out in one write
        if isinstance(message, str):
            wire.sendTextMessage(message)
        else:
            wire.sendBytesMessage(bytes(message))
        await wire.drain()

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping (the connection's keepalive pings already run on their own)."""
        if self._wire is not None:
            self._wire.ping(payload)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and wait until the connection is gone."""
        if self._wire is not None:
            self._wire.loseConnection(code, reason)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the connection is gone."""
        if self._closed:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._closed_waiters.append(waiter)
        await waiter

    async def __aenter__(self) -> WebSocket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- state ----------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the connection is gone."""
        return self._closed

    @property
    def close_code(self) -> int:
        """The close code (1006 before one is known)."""
        code = self._wire.closeCode if self._wire is not None else None
        return 1006 if code is None else int(code)

    @property
    def close_reason(self) -> str:
        """The close frame's reason text."""
        return str(self._wire.closeReason) if self._wire is not None else ""

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol agreed in the handshake, or None."""
        return self._wire.subprotocol if self._wire is not None else None

    # -- fed by the bridge -------------------------------------------------------------------

    def _put(self, message: str | bytes) -> None:
        self._queue.append(message)
        self._queued += len(message)
        self._wake()
        if not self._reading_paused and (
            len(self._queue) >= MAX_QUEUED_MESSAGES
            or self._queued >= self._wire.limits.maxMessageSize
        ):
            self._reading_paused = True
            self._wire.pause_reading()

    def _lost(self) -> None:
        self._closed = True
        self._wake()
        waiters, self._closed_waiters = self._closed_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __repr__(self) -> str:
        where = self.url or getattr(self.request, "uri", None)
        return f"<WebSocket {where!r}{' closed' if self._closed else ''}>"


class _Bridge:
    """A ``WebSocketProtocol`` that feeds a :class:`WebSocket` (and runs its handler)."""

    def __init__(self, ws: WebSocket, handler: Handler | None = None) -> None:
        self.ws = ws
        self.handler = handler

    def negotiationStarted(self, transport: Any) -> None:
        self.ws._wire = transport

    def negotiationFinished(self) -> None:
        if self.handler is None:
            return
        coro = _serve(self.handler, self.ws)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.ws._task = ensureDeferred(coro)  # driven by hand, without a loop
        else:
            self.ws._task = loop.create_task(coro)

    def textMessageReceived(self, message: str) -> None:
        self.ws._put(message)

    def bytesMessageReceived(self, data: bytes) -> None:
        self.ws._put(data)

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        self.ws._lost()


async def _serve(handler: Handler, ws: WebSocket) -> None:
    try:
        await handler(ws)
    except ConnectionClosed:
        pass  # the peer left while the handler was sending: nothing went wrong here
    except Exception:
        error_log.exception("error in WebSocket handler %r for %r", handler, ws)
        ws._wire.loseConnection(1011, "internal error")
    else:
        ws._wire.loseConnection(1000)


class _HandlerFactory:
    """A ``WebSocketServerFactory`` running ``handler(ws)`` for each connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    def buildProtocol(self, request: Any) -> _Bridge:
        return _Bridge(WebSocket(request=request), self.handler)

    def __repr__(self) -> str:
        return f"<handler factory {self.handler!r}>"


def is_handler(factory: object) -> bool:
    """Whether ``factory`` is an async handler rather than a ``WebSocketServerFactory``."""
    return not hasattr(factory, "buildProtocol") and callable(factory)


def handler_factory(handler: Handler) -> _HandlerFactory:
    """The server factory of an ``async def handler(ws)``."""
    return _HandlerFactory(handler)


class _ClientFactory:
    """A ``WebSocketClientFactory`` feeding one :class:`WebSocket`."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    def buildProtocol(self, url: str) -> _Bridge:
        return _Bridge(self.ws)


def client_factory(ws: WebSocket) -> _ClientFactory:
    """The client factory whose protocol feeds ``ws``."""
    return _ClientFactory(ws)
