"""One WebSocket connection through an ASGI application (the ``websocket`` scope, spec 2.4).

An opening handshake (a ``GET`` with ``Upgrade: websocket`` on an HTTP/1.1 channel that can
hand its connection over) is checked by :func:`treadle.web._websocket_server.negotiate`
first: a malformed one gets ``400`` and never reaches the application. A valid one calls
the application with a ``websocket`` scope, whose first ``receive()`` is
``websocket.connect``. Its answer decides the handshake's:

- ``websocket.accept`` (with ``subprotocol`` and ``headers``, optional): the ``101`` goes
  out and the connection becomes a :class:`~treadle.web._websocket_wire.WebSocketWire` (the
  one behind :mod:`treadle.web.websocket`: its limits, keepalive pings, permessage-deflate,
  close handshake and shutdown with ``1001``); then ``receive()`` gives
  ``websocket.receive`` messages (``text`` or ``bytes``) and at the end one
  ``websocket.disconnect`` with the close code; ``websocket.send`` waits while the peer
  reads too slowly and raises :class:`~treadle.web._asgi_http.ClientDisconnected` once the
  connection is gone; ``websocket.close`` closes with its ``code`` and ``reason``;
- ``websocket.close`` before accepting: ``403``, as the specification says;
- anything else, an exception, a return without answering, or no answer within the
  resource's ``startTimeout``: ``500`` (``403`` for a plain return) and one log line naming
  the application. After the accept, an exception closes with ``1011`` and is logged; a
  return closes with ``1000``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final

from treadle.web._asgi_http import ClientDisconnected, ProtocolError
from treadle.web._asgi_types import Message, Scope
from treadle.web._html import processing_failed_page
from treadle.web._websocket_async import ConnectionClosed, WebSocket, _Bridge
from treadle.web._websocket_server import Acceptance, Refusal, negotiate
from treadle.web._websocket_wire import WebSocketWire
from treadle.web.http_headers import Headers

if TYPE_CHECKING:
    from treadle.internet._timers import TimerHeap
    from treadle.web._websocket_limits import WebSocketLimits
    from treadle.web.server import Request

__all__ = ["WebSocketCycle", "is_websocket", "websocket_scope"]

error_log = logging.getLogger("treadle.error")

CONNECTING: Final = 0  # the application has not answered the handshake
OPEN: Final = 1
CLOSED: Final = 2  # closed, refused, or failed

_FORBIDDEN: Final = b"<html><body><h1>403 Forbidden</h1></body></html>"


def is_websocket(request: Request) -> bool:
    """Whether ``request`` asks for a WebSocket on a channel that can hand its connection
    over (HTTP/1.1; other requests, with ``Upgrade`` or not, get the ``http`` scope)."""
    upgrade = request.requestHeaders._get(b"upgrade")
    if not upgrade or b"websocket" not in upgrade[-1].lower():
        return False
    channel = request.channel
    return getattr(channel, "state", None) == "UPGRADING" and hasattr(channel, "switch_protocol")


def websocket_scope(http: Scope, request: Request) -> Scope:
    """The ``websocket`` scope, made from the request's ``http`` scope."""
    offered = [
        token.strip()
        for value in request.requestHeaders.getRawHeaders(b"sec-websocket-protocol") or []
        for token in value.decode("latin-1").split(",")
        if token.strip()
    ]
    scope = dict(http)
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if http["scheme"] == "https" else "ws"
    scope["subprotocols"] = offered
    del scope["method"]
    return scope


class WebSocketCycle:
    """The ``receive``/``send`` pair of one ASGI WebSocket connection.

    Args:
        request: The handshake's request.
        name: How log lines name the application.
        limits: The connection's WebSocket limits.
        deadlines: Where the start timeout is scheduled.
    """

    def __init__(
        self, request: Request, name: str, limits: WebSocketLimits, deadlines: TimerHeap
    ) -> None:
        self.request = request
        self._name = name
        self._limits = limits
        self._deadlines = deadlines
        self._handle: Any = None
        self._timeout: float | None = None
        self._state = CONNECTING
        self._connected = False  # websocket.connect was received
        self._acceptance: Acceptance | None = None
        self._ws: WebSocket | None = None
        self._wire: WebSocketWire | None = None
        self._left_early = False
        self._raised: ProtocolError | None = None
        self._gone: asyncio.Future[None] | None = None
        self.task: asyncio.Task[Any] | None = None
        request.notifyFinish().addErrback(self._left)

    def negotiate(self) -> bool:
        """Check the handshake; answer ``400`` (and return False) if it is malformed."""
        request = self.request
        outcome = negotiate(
            request.method, request.clientproto, request.requestHeaders, self._limits
        )
        if isinstance(outcome, Refusal):
            self._state = CLOSED
            error_log.info("WebSocket handshake of %r refused: %s", request, outcome.why)
            request.setResponseCode(outcome.code)
            request.setHeader(b"content-type", b"text/plain")
            for name, value in outcome.headers:
                request.setHeader(name, value)
            request.write(outcome.body)
            request.finish()
            return False
        self._acceptance = outcome
        return True

    def run(
        self, task: asyncio.Task[Any], calls: set[asyncio.Task[Any]], timeout: float | None
    ) -> None:
        """Follow the application's call ``task``; fail it without an answer by ``timeout``."""
        self.task = task
        calls.add(task)
        task.add_done_callback(calls.discard)
        task.add_done_callback(self._ended)
        if timeout:
            self._timeout = timeout
            self._deadlines.add(self, timeout)

    # -- receive ---------------------------------------------------------------------------

    async def receive(self) -> Message:
        """ASGI ``receive``: ``websocket.connect``, then messages, then the disconnect."""
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        if self._state == CONNECTING:
            # Nothing arrives before the application answers: wait until the client leaves
            # (or the answer changes the state and a later receive is made).
            gone = self._gone = asyncio.get_running_loop().create_future()
            await gone
        ws = self._ws
        if self._state == OPEN and ws is not None:
            try:
                message = await ws.receive()
            except ConnectionClosed as closed:
                return _disconnect(closed.code, closed.reason)
            if isinstance(message, str):
                return {"type": "websocket.receive", "text": message}
            return {"type": "websocket.receive", "bytes": message}
        if ws is not None:
            return _disconnect(ws.close_code, ws.close_reason)
        return _disconnect(1006, "")

    # -- send ------------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        """ASGI ``send``.

        Raises:
            ClientDisconnected: The connection is closed.
            ProtocolError: The message breaks the ASGI WebSocket protocol.
        """
        try:
            kind = message["type"]
        except (KeyError, TypeError):
            kind = None
        state = self._state
        if state == CONNECTING:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._refuse()
            else:
                self._violate(f"sent {kind!r} before accepting or closing the WebSocket")
            return
        if state == CLOSED or self._ws is None or self._wire is None:
            if self._raised is not None:
                raise self._raised
            raise ClientDisconnected("the WebSocket is closed")
        if kind == "websocket.send":
            text, data = message.get("text"), message.get("bytes")
            payload: str | bytes | None = text if text is not None else data
            if not isinstance(payload, str | bytes):
                self._violate("sent websocket.send without text or bytes")
            try:
                await self._ws.send(payload)  # type: ignore[arg-type]
            except ConnectionClosed:
                raise ClientDisconnected("the WebSocket is closed") from None
        elif kind == "websocket.close":
            self._state = CLOSED
            code, reason = message.get("code") or 1000, message.get("reason") or ""
            self._wire.loseConnection(int(code), str(reason))
        else:
            self._violate(f"sent {kind!r}, which is no ASGI WebSocket message")

    def _accept(self, message: Message) -> None:
        acceptance = self._acceptance
        assert acceptance is not None
        request = self.request
        head = acceptance.head[:-2]  # the head without its final empty line
        subprotocol = message.get("subprotocol")
        try:
            extra = Headers()
            if subprotocol is not None:
                extra.addRawHeader(b"sec-websocket-protocol", str(subprotocol).encode("ascii"))
            for name, value in message.get("headers") or ():
                if type(name) is not bytes or type(value) is not bytes:
                    raise TypeError("names and values must be bytes")
                extra.addRawHeader(name, value)
        except (TypeError, ValueError) as e:
            self._violate(f"sent websocket.accept with a malformed header ({e})")
        for name, values in extra.getAllRawHeaders():
            for value in values:
                head += name + b": " + value + b"\r\n"
        ws = self._ws = WebSocket(request)
        bridge = _Bridge(ws)  # feeds ws the connection's messages
        deadlines = request.channel.factory.timing()[0]
        wire = self._wire = WebSocketWire(bridge, self._limits, acceptance.conn, deadlines)
        wire.subprotocol = subprotocol
        bridge.negotiationStarted(wire)
        self._state = OPEN
        self._disarm()
        request.setResponseCode(101)
        if not request.channel.switch_protocol(request, wire, head + b"\r\n"):
            wire.connection_lost(None)
            self._state = CLOSED
            return
        # The head is out: end the request without writing (logged, notifyFinish fires).
        request.startedWriting = True
        request.finish()
        self._wake()

    def refuse(self, error: BaseException | None = None) -> None:
        """Answer 500 without running the application.

        Args:
            error: Why calling it failed (logged); None when its lifespan start-up failed,
                which was logged once already.
        """
        if error is not None:
            self._fail("could not be called", error)
        elif self._state == CONNECTING:
            self._state = CLOSED
            self._disarm()
            self._answer(500, processing_failed_page())

    def _refuse(self) -> None:
        self._state = CLOSED
        self._disarm()
        self._answer(403, _FORBIDDEN)

    def _answer(self, code: int, body: bytes) -> None:
        request = self.request
        if request.finished or self._left_early:
            return
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/html")
        request.setHeader(b"connection", b"close")
        request.write(body)
        request.finish()

    # -- the end ---------------------------------------------------------------------------

    def _left(self, reason: object) -> None:
        """The client left before the handshake was answered."""
        self._left_early = True
        if self._state == CONNECTING:
            self._state = CLOSED
            self._disarm()
            self._wake()
            if self.task is not None and not self.task.done():
                self.task.cancel()

    def _wake(self) -> None:
        gone, self._gone = self._gone, None
        if gone is not None and not gone.done():
            gone.set_result(None)

    def _disarm(self) -> None:
        if self._handle is not None:
            self._deadlines.discard(self)

    def _due(self) -> None:
        if self._state == CONNECTING:
            self._fail(
                f"did not answer the WebSocket handshake within {self._timeout:g} s; cancelled"
            )
            if self.task is not None and not self.task.done():
                self.task.cancel()

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self.task = None
        self._disarm()
        error = None if task.cancelled() else task.exception()
        state = self._state
        if state == OPEN:
            assert self._wire is not None
            if error is not None and not isinstance(error, ClientDisconnected):
                error_log.error(
                    "ASGI application %s raised an exception; WebSocket closed with 1011 (%s)",
                    self._name,
                    self._where(),
                    exc_info=error,
                )
                self._wire.loseConnection(1011, "internal error")
            else:
                self._wire.loseConnection(1000)
            self._state = CLOSED
        elif state == CONNECTING:
            if error is None and not task.cancelled():
                self._refuse()  # a return without accepting (uvicorn answers 403 too)
            elif error is not None and error is not self._raised:
                self._fail("raised an exception", error)
            else:
                self._fail("was cancelled before answering the WebSocket handshake")

    def _violate(self, what: str) -> None:
        error = ProtocolError(f"ASGI application {self._name} {what}")
        self._raised = error
        if self._state == OPEN and self._wire is not None:
            error_log.error(
                "ASGI application %s %s; WebSocket closed with 1011 (%s)",
                self._name,
                what,
                self._where(),
            )
            self._state = CLOSED
            self._wire.loseConnection(1011, "internal error")
        else:
            self._fail(what)
        raise error

    def _fail(self, what: str, error: BaseException | None = None) -> None:
        """Answer 500 to a handshake the application did not answer properly; log once."""
        if self._state != CONNECTING:
            return
        self._state = CLOSED
        self._disarm()
        self._wake()
        error_log.error(
            "ASGI application %s %s; answered 500 (%s)",
            self._name,
            what,
            self._where(),
            exc_info=error,
        )
        self._answer(500, processing_failed_page())

    def _where(self) -> str:
        request = self.request
        return f"WebSocket {request.uri.decode('latin-1')}"


def _disconnect(code: int, reason: str) -> Message:
    return {"type": "websocket.disconnect", "code": code, "reason": reason}
