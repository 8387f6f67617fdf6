"""WebSocket (RFC 6455) servers and clients with Twisted's API: ``twisted.web.websocket``.

A server puts a :class:`WebSocketResource` anywhere in its resource tree::

    from treadle.web.resource import Resource
    from treadle.web.websocket import WebSocketResource

    class Echo:
        def negotiationStarted(self, transport):
            self.transport = transport
        def negotiationFinished(self): ...
        def textMessageReceived(self, message):
            self.transport.sendTextMessage(message)
        def bytesMessageReceived(self, data):
            self.transport.sendBytesMessage(data)
        def pongReceived(self, payload): ...
        def connectionLost(self, reason): ...

    class EchoFactory:
        def buildProtocol(self, request):
            return Echo()

    root = Resource()
    root.putChild(b"echo", WebSocketResource(EchoFactory()))

A client makes an endpoint for the URL and connects a factory to it::

    endpoint = WebSocketClientEndpoint.new(reactor, "ws://localhost:8080/echo")
    protocol = await endpoint.connect(ClientFactory())   # buildProtocol(url)

Async code, on either side, may read and write a :class:`WebSocket` instead (beyond
Twisted)::

    async def echo(ws):
        async for message in ws:          # str or bytes, whole messages
            await ws.send(message)        # waits while the peer reads too slowly

    root.putChild(b"echo", WebSocketResource(echo))

    async with await WebSocketClientEndpoint.new(reactor, url).open() as ws:
        await ws.send("hello")
        reply = await ws.receive()

Behaviour, as Twisted's: a ``GET`` that is not a valid handshake gets ``400`` "websocket
protocol negotiation error"; messages are delivered whole; pings are answered with pongs;
``loseConnection(code)`` sends a close frame; the protocol's ``connectionLost`` gets a
``Failure`` of ``ConnectionDone`` (clean) or ``ConnectionLost``. Beyond Twisted (all on by
default, see :class:`WebSocketLimits`): permessage-deflate when the peer offers it; limits
on message, frame and decompressed size (``1009``), on the bytes queued for a slow reader,
keepalive pings, and the close handshake's time; hostile frames closed with RFC 6455's codes
(``1002`` protocol error, ``1007`` invalid UTF-8); an ``Origin`` allow-list
(``allowedOrigins``); subprotocols; the site's graceful shutdown closes with ``1001``; a
``WebSocketResource`` is counted by the site like any connection (``maxConnections``).

Differences from Twisted: ``buildProtocol`` returning None refuses the connection with
``403`` (Twisted fails an assertion); sending after the close began does nothing (Twisted's
wsproto raises); an error in a protocol's callback is logged and closes with ``1011``; a
client's ``connect`` fails when the connection ends before the server's answer (Twisted's
waits for ever), and messages sent from ``negotiationStarted`` are sent after the handshake
(Twisted writes them before it); ``ping`` with a payload over 125 bytes raises ``ValueError``
(Twisted sends a frame the peer must refuse). The frames a connection sends while it handles
one read (the answers of a program that replies to each message) go out in one write, not one
per frame; frames are parsed by treadle's own codec (:mod:`treadle.web._websocket_frames`),
not wsproto's, which only negotiates the handshake's extensions.
"""

from __future__ import annotations

import typing
from typing import TypeVar

from treadle.python.failure import Failure
from treadle.web._websocket_async import ConnectionClosed, WebSocket
from treadle.web._websocket_client import ConnectionRejected, WebSocketClientEndpoint
from treadle.web._websocket_limits import WebSocketLimits
from treadle.web._websocket_server import WebSocketResource

__all__ = [
    "ConnectionClosed",
    "ConnectionRejected",
    "WebSocket",
    "WebSocketClientEndpoint",
    "WebSocketClientFactory",
    "WebSocketLimits",
    "WebSocketProtocol",
    "WebSocketResource",
    "WebSocketServerFactory",
    "WebSocketTransport",
]


class WebSocketTransport(typing.Protocol):
    """What a :class:`WebSocketProtocol` sends through (given to ``negotiationStarted``)."""

    def sendTextMessage(self, text: str) -> None:
        """Send ``text`` as one text message."""

    def sendBytesMessage(self, data: bytes) -> None:
        """Send ``data`` as one binary message."""

    def loseConnection(self, code: int = 1000) -> None:
        """Close the connection with close code ``code`` (after the close handshake)."""

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping; its pong arrives at ``pongReceived`` (pongs may be coalesced, and
        unsolicited ones arrive too, so no result is returned here)."""

    def attachProducer(self, producer: typing.Any) -> None:
        """Pause and resume ``producer`` (an ``IPushProducer``) as the peer reads."""

    def detachProducer(self) -> None:
        """Forget the producer attached with :meth:`attachProducer`."""


class WebSocketProtocol(typing.Protocol):
    """The events of one WebSocket connection, either side (Twisted's ``WebSocketProtocol``).

    Unlike a byte-stream protocol it has no ``connectionMade`` or ``dataReceived``: the
    handshake's start and end are two events, and messages arrive whole as text or bytes.
    A class that inherits from this one gets do-nothing methods for the events it leaves
    out.
    """

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        """The connection exists and its handshake began; ``transport`` is for sending."""

    def negotiationFinished(self) -> None:
        """The handshake is done: messages flow both ways."""

    def pongReceived(self, payload: bytes) -> None:
        """A pong arrived (the answer to a ``ping``, or an unsolicited one)."""

    def textMessageReceived(self, message: str) -> None:
        """A text message arrived."""

    def bytesMessageReceived(self, data: bytes) -> None:
        """A binary message arrived."""

    def connectionLost(self, reason: Failure) -> None:
        """The connection ended (``ConnectionDone`` when cleanly)."""


_WSP = TypeVar("_WSP", covariant=True, bound=WebSocketProtocol)


class WebSocketServerFactory(typing.Protocol[_WSP]):
    """Makes the protocol of each connection a :class:`WebSocketResource` accepts."""

    def buildProtocol(self, request: typing.Any) -> _WSP:
        """Return the protocol for the handshake ``request`` (a ``server.Request``)."""
        ...


class WebSocketClientFactory(typing.Protocol[_WSP]):
    """Makes the protocol of a connection a :class:`WebSocketClientEndpoint` opens."""

    def buildProtocol(self, url: str) -> _WSP:
        """Return the protocol for a connection to ``url``."""
        ...
