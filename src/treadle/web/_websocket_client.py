"""The client side: :class:`WebSocketClientEndpoint` and its connection's opening handshake.

As in Twisted, ``WebSocketClientEndpoint.new(reactor, url)`` makes an endpoint for ``url``
(through the same endpoint factory as ``Agent``: TCP for ``ws``/``http``, TLS for
``wss``/``https``), and ``await endpoint.connect(factory)`` connects, calls
``factory.buildProtocol(url)``, gives the protocol ``negotiationStarted(transport)``, sends
the handshake, and returns the protocol once the server accepted it (after which it gets
``negotiationFinished``). A server that answers with anything but ``101`` makes ``connect``
raise :class:`ConnectionRejected`, whose ``response`` delivers the answer's body.

The answer is parsed with httptools, as the rest of treadle's client; the framing after it
is :mod:`treadle.web._websocket_frames`'s with the limits of
:mod:`treadle.web._websocket_limits`. Beyond Twisted:
messages sent before the answer (from ``negotiationStarted``) are held and sent after it;
``connect`` fails (rather than waiting for ever) when the connection ends before the answer
or the answer takes longer than ``openTimeout``; the ``Host`` field carries a non-default
port.
"""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import dataclass
from typing import Any, Final

import httptools
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.handshake import client_extensions_handshake
from wsproto.utilities import RemoteProtocolError, generate_accept_token

from treadle.internet._timers import TimerHeap
from treadle.internet.defer import Deferred
from treadle.internet.error import ConnectionDone, ConnectionLost
from treadle.internet.error import TimeoutError as ConnectTimeoutError
from treadle.internet.protocol import Factory
from treadle.python.failure import Failure
from treadle.web._connecting import StandardEndpointFactory
from treadle.web._newclient import URI, Response, host_value
from treadle.web._websocket_async import WebSocket, client_factory
from treadle.web._websocket_frames import FrameCodec
from treadle.web._websocket_limits import WebSocketLimits, agreed_deflate
from treadle.web._websocket_wire import WebSocketWire
from treadle.web.client import BrowserLikePolicyForHTTPS
from treadle.web.http_headers import Headers

__all__ = ["ClientWire", "ConnectionRejected", "WebSocketClientEndpoint"]

_DEFLATE_OFFER: Final = "permessage-deflate; client_max_window_bits"
_DEFAULT_LIMITS: Final = WebSocketLimits()


@dataclass
class ConnectionRejected(Exception):
    """The server answered the opening handshake with an HTTP response, not ``101``.

    Attributes:
        response: That response (``code``, ``headers``; ``deliverBody`` for its body).
    """

    response: Response


class _Answer:
    """What httptools saw of the server's answer (its callbacks only record)."""

    def __init__(self) -> None:
        self.phrase = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.status = 0
        self.body: list[bytes] = []
        self.complete = False

    def on_status(self, status: bytes) -> None:
        self.phrase += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True

    parser: Any = None


def _values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[str]:
    return [
        token.strip()
        for key, value in headers
        if key.lower() == name
        for token in value.decode("latin-1").split(",")
        if token.strip()
    ]


class ClientWire(WebSocketWire):
    """A client's connection: the opening handshake, then :class:`WebSocketWire`'s framing.

    Attributes:
        done: Fires with the program's protocol once the server accepted, or fails with
            :class:`ConnectionRejected`, a handshake error or the connection's end.
    """

    __slots__ = (
        "_answer",
        "_deflate",
        "_key",
        "_offered",
        "_parser",
        "_rejected",
        "_request",
        "done",
    )

    def __init__(
        self,
        user: Any,
        limits: WebSocketLimits,
        deadlines: TimerHeap,
        request: bytes,
        key: bytes,
        subprotocols: tuple[str, ...],
    ) -> None:
        super().__init__(user, limits, None, deadlines, client=True)
        self.done: Deferred[Any] = Deferred()
        self._request = request
        self._key = key
        self._deflate = PerMessageDeflate() if limits.compression else None
        self._answer = _Answer()
        self._parser: Any = httptools.HttpResponseParser(self._answer)
        self._answer.parser = self._parser
        self._rejected: Response | None = None
        self.subprotocol = None
        self._offered = subprotocols

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if self._handle is not None:
            self._deadlines.discard(self)
        self._deadlines.add(self, self._limits.openTimeout)
        self._call(self._user.negotiationStarted, self)
        if not self._lost:
            self._write(self._request)

    def data_received(self, data: bytes) -> None:
        if self._codec is not None:
            super().data_received(data)
            return
        parser = self._parser
        if parser is None:  # a rejection's body is over: nothing more is read
            return
        answer = self._answer
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            self._accept(data[e.args[0] :])
            return
        except httptools.HttpParserError as e:
            self._handshake_failed(RemoteProtocolError(f"bad handshake answer: {e}"))
            return
        if answer.status and self._rejected is None:
            self._reject()
        body, answer.body = answer.body, []
        response = self._rejected
        if response is not None:
            for piece in body:
                response.body_data(piece)
            if answer.complete or answer.status < 200:
                self._parser = None
                self._close_transport()

    def _accept(self, tail: bytes) -> None:
        answer = self._answer
        headers = answer.headers
        self._parser = None
        try:
            extensions = self._check_answer(headers)
        except RemoteProtocolError as e:
            self._handshake_failed(e)
            return
        limits = self._limits
        offered, self._deflate = self._deflate, None
        deflate = agreed_deflate(offered, server=False) if offered in extensions else None
        self._codec = FrameCodec(True, limits.maxFrameSize, limits.maxMessageSize, deflate)
        if self._handle is not None:
            self._deadlines.discard(self)
        self._schedule()
        self.done.callback(self._user)
        if self._lost:
            return
        self._call(self._user.negotiationFinished)
        early, self._early = self._early, None
        for opcode, payload in early or ():
            self._send(opcode, payload)
        if tail and not self._lost:
            self.data_received(tail)

    def _check_answer(self, headers: list[tuple[bytes, bytes]]) -> list[Extension]:
        """Check a ``101`` answer (RFC 6455 §4.1); return the extensions it agreed to."""
        if self._answer.status != 101:
            raise RemoteProtocolError(f"unexpected status {self._answer.status}")
        if [t.lower() for t in _values(headers, b"upgrade")] != ["websocket"]:
            raise RemoteProtocolError("Missing header, 'Upgrade: websocket'")
        if "upgrade" not in (t.lower() for t in _values(headers, b"connection")):
            raise RemoteProtocolError("Missing header, 'Connection: Upgrade'")
        accept = [v.strip() for k, v in headers if k.lower() == b"sec-websocket-accept"]
        if accept != [generate_accept_token(self._key)]:
            raise RemoteProtocolError("Bad accept token")
        chosen = _values(headers, b"sec-websocket-protocol")
        if chosen:
            if len(chosen) != 1 or chosen[0] not in self._offered:
                raise RemoteProtocolError(f"unrecognized subprotocol {chosen}")
            self.subprotocol = chosen[0]
        accepts = _values(headers, b"sec-websocket-extensions")
        supported = [self._deflate] if self._deflate is not None else []
        return client_extensions_handshake(accepts, supported)

    def _reject(self) -> None:
        answer = self._answer
        headers = Headers()
        for name, value in answer.headers:
            headers.addRawHeader(name, value)
        major, minor = self._parser.get_http_version().split(".")
        version = (b"HTTP", int(major), int(minor))
        response = Response(version, answer.status, answer.phrase, headers, _RejectedBody(self))
        self._rejected = response
        if self._handle is not None:
            self._deadlines.discard(self)
        self.done.errback(Failure(ConnectionRejected(response)))

    def _handshake_failed(self, error: Exception) -> None:
        self._parser = None
        if not self.done.called:
            self.done.errback(Failure(error))
        self._abort()

    def _due(self) -> None:
        if self._codec is None and not self._lost:  # no answer within openTimeout
            if not self.done.called:
                self.done.errback(
                    Failure(ConnectTimeoutError(None, "WebSocket opening handshake timed out"))
                )
            self._abort()
            return
        super()._due()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        gone = ConnectionDone() if exc is None else ConnectionLost(str(exc))
        if self._codec is None and not self.done.called:
            self.done.errback(Failure(gone))
        super().connection_lost(exc)
        response, self._rejected = self._rejected, None
        if response is not None:
            # As Twisted: the body ends with the connection, and its protocol is told why.
            response._finish(Failure(gone))


class _RejectedBody:
    """The transport a rejection's body protocol gets (Twisted's body transport)."""

    def __init__(self, wire: ClientWire) -> None:
        self._wire = wire

    def pauseProducing(self) -> None:
        self._wire.pause_reading()

    def resumeProducing(self) -> None:
        self._wire.resume_reading()

    def stopProducing(self) -> None:
        self._wire._abort()

    loseConnection = abortConnection = stopProducing

    def restart(self, buffered: list[bytes]) -> None:
        response = self._wire._rejected
        if response is not None:
            for data in buffered:
                response.body_data(data)


def _deadlines(reactor: Any) -> TimerHeap:
    """A timer heap on the running loop, else on ``reactor``'s clock (a test's)."""
    if reactor is not None and hasattr(reactor, "advance"):
        return TimerHeap(reactor, reactor.callLater, reactor.seconds)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        from treadle.internet import reactor as default

        clock: Any = reactor if reactor is not None else default
        return TimerHeap(clock, clock.callLater, clock.seconds)
    return TimerHeap(loop, loop.call_later, loop.time, 0.001, 0.001)


def _handshake(
    uri: URI,
    headers: tuple[tuple[bytes, bytes], ...],
    subprotocols: tuple[str, ...],
    compress: bool,
) -> tuple[bytes, bytes]:
    """The opening handshake's request for ``uri``, and its key."""
    key = base64.b64encode(os.urandom(16))
    web_scheme = b"https" if uri.scheme in (b"https", b"wss") else b"http"
    lines = [
        b"GET " + uri.originForm + b" HTTP/1.1\r\n",
        b"Host: " + host_value(web_scheme, uri.host, uri.port) + b"\r\n",
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n",
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n",
    ]
    if compress:
        lines.append(b"Sec-WebSocket-Extensions: " + _DEFLATE_OFFER.encode() + b"\r\n")
    if subprotocols:
        lines.append(b"Sec-WebSocket-Protocol: " + ", ".join(subprotocols).encode() + b"\r\n")
    lines.extend(name + b": " + value + b"\r\n" for name, value in headers)
    lines.append(b"\r\n")
    return b"".join(lines), key


@dataclass(frozen=True)
class WebSocketClientEndpoint:
    """A WebSocket URL and the way to connect to it (Twisted's ``WebSocketClientEndpoint``).

    Attributes:
        endpointFactory: An ``IAgentEndpointFactory``: ``endpointForURI`` gives the
            endpoint connected to.
        url: The URL (``ws``, ``wss``, ``http`` or ``https``).
        limits: The connection's limits and timers (beyond Twisted).
        headers: Extra request fields, e.g. ``((b"Origin", b"https://example.com"),)``.
        subprotocols: Subprotocols offered, preferred first.
    """

    endpointFactory: Any
    url: str
    limits: WebSocketLimits = _DEFAULT_LIMITS
    headers: tuple[tuple[bytes, bytes], ...] = ()
    subprotocols: tuple[str, ...] = ()

    @classmethod
    def new(
        cls,
        reactor: Any,
        url: str,
        tlsPolicy: Any = BrowserLikePolicyForHTTPS(),  # noqa: B008  # Twisted's default
        connectTimeout: int | None = None,
        bindAddress: bytes | None = None,
        *,
        limits: WebSocketLimits | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        subprotocols: tuple[str, ...] = (),
    ) -> WebSocketClientEndpoint:
        """Make the endpoint of ``url``, connecting through ``reactor``.

        Args:
            reactor: The reactor.
            url: Where the server is, e.g. ``"wss://example.com/chat"``.
            tlsPolicy: How to verify an HTTPS server (an ``IPolicyForHTTPS``).
            connectTimeout: Seconds the TCP connection may take.
            bindAddress: The local address to connect from.
            limits: The connection's limits and timers (beyond Twisted).
            headers: Extra request fields (beyond Twisted).
            subprotocols: Subprotocols offered, preferred first (beyond Twisted).
        """
        factory = StandardEndpointFactory(reactor, tlsPolicy, connectTimeout, bindAddress)
        return cls(factory, url, limits or WebSocketLimits(), tuple(headers), tuple(subprotocols))

    async def connect(self, protocolFactory: Any) -> Any:
        """Connect; return the protocol ``protocolFactory.buildProtocol(url)`` made.

        Returns once the server accepted the handshake (the protocol gets
        ``negotiationFinished`` right after).

        Raises:
            ConnectionRejected: The server answered with an HTTP response instead.
            RemoteProtocolError: (wsproto's) the ``101`` answer was not valid.
            ConnectionDone, ConnectionLost: The connection ended before the answer.
            TimeoutError: No answer within the limits' ``openTimeout``.
            SchemeNotSupported, ConnectError...: As ``Agent`` for the TCP connection.
        """
        uri = URI.fromBytes(self.url.encode("utf-8"))
        endpoint = self.endpointFactory.endpointForURI(uri)
        limits = self.limits
        request, key = _handshake(uri, self.headers, self.subprotocols, limits.compression)
        reactor = getattr(self.endpointFactory, "_reactor", None)

        def build(addr: object) -> ClientWire:
            user = protocolFactory.buildProtocol(self.url)
            return ClientWire(
                user, limits, _deadlines(reactor), request, key, tuple(self.subprotocols)
            )

        factory = Factory()
        factory.buildProtocol = build  # type: ignore[method-assign]
        wire: ClientWire = await endpoint.connect(factory)
        return await wire.done

    async def open(self) -> WebSocket:
        """Connect and return the connection as a :class:`WebSocket` (the ``async`` form).

        Raises:
            The errors of :meth:`connect`.
        """
        ws = WebSocket(url=self.url)
        await self.connect(client_factory(ws))
        return ws
