"""The server side: the opening handshake (RFC 6455 §4.2) and :class:`WebSocketResource`.

:func:`negotiate` decides a request's answer from its method, version and fields alone (no
I/O, tested directly): a :class:`Refusal` (Twisted's ``400`` "websocket protocol negotiation
error", with ``Sec-WebSocket-Version: 13`` when the version was the problem) or an
:class:`Acceptance` holding the ``101`` head and the connection's frame codec, with
permessage-deflate (RFC 7692) when the client offered it (wsproto negotiates it) and the
limits' sizes.

:class:`WebSocketResource` answers as Twisted's does: the factory's ``buildProtocol``, the
protocol's ``negotiationStarted`` with its transport, the ``101`` written, then
``negotiationFinished``; the connection is then handed over by the HTTP channel
(``switch_protocol``), which keeps counting it for the site's limits and shutdown.
"""

from __future__ import annotations

import binascii
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from wsproto.extensions import PerMessageDeflate
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import generate_accept_token

from treadle.web._websocket_async import handler_factory, is_handler
from treadle.web._websocket_frames import Deflate, FrameCodec
from treadle.web._websocket_limits import WebSocketLimits, agreed_deflate
from treadle.web._websocket_wire import WebSocketWire
from treadle.web.http_headers import Headers
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET

__all__ = ["Acceptance", "Refusal", "WebSocketResource", "negotiate", "origin_allowed"]

error_log = logging.getLogger("treadle.error")

_VERSION: Final = b"13"
_NEGOTIATION_ERROR: Final = b"websocket protocol negotiation error"  # Twisted's words
_KEY_SIZE: Final = 16  # RFC 6455 §4.1: the key is 16 random bytes, base64-encoded


@dataclass(frozen=True, slots=True)
class Refusal:
    """The handshake is refused: answer ``code`` with ``body`` (plain text) and ``headers``."""

    code: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    why: str = ""


@dataclass(frozen=True, slots=True)
class Acceptance:
    """The handshake is accepted: ``head`` is the ``101`` response, ``conn`` the framing."""

    head: bytes
    conn: FrameCodec
    subprotocol: str | None


def _tokens(headers: Headers, name: bytes) -> list[str]:
    """The comma-separated tokens of every ``name`` field, stripped (not lowercased)."""
    values = headers.getRawHeaders(name) or []
    return [
        token.strip()
        for value in values
        for token in value.decode("latin-1").split(",")
        if token.strip()
    ]


def _refuse(why: str, *headers: tuple[bytes, bytes]) -> Refusal:
    return Refusal(400, _NEGOTIATION_ERROR, headers, why)


def negotiate(
    method: bytes,
    version: bytes,
    headers: Headers,
    limits: WebSocketLimits,
    subprotocols: Sequence[str] = (),
) -> Acceptance | Refusal:
    """Answer an opening handshake (RFC 6455 §4.2.1, §4.2.2).

    Args:
        method: The request's method (it must be ``GET``).
        version: Its HTTP version (``b"HTTP/1.1"`` or later).
        headers: Its fields.
        limits: The connection's limits (and whether to compress).
        subprotocols: The subprotocols the server speaks, preferred first; the first the
            client also offers is chosen.
    """
    if method != b"GET":
        return _refuse("method is not GET")
    if version in (b"HTTP/1.0", b"HTTP/0.9"):
        return _refuse("HTTP/1.1 is required")
    if not any(t.lower() == "upgrade" for t in _tokens(headers, b"connection")):
        return _refuse("no 'Connection: upgrade'")
    if [t.lower() for t in _tokens(headers, b"upgrade")] != ["websocket"]:
        return _refuse("no 'Upgrade: websocket'")
    if (headers.getRawHeaders(b"sec-websocket-version") or [b""])[-1].strip() != _VERSION:
        # §4.2.2: tell the client which version we speak.
        return _refuse("unsupported Sec-WebSocket-Version", (b"Sec-WebSocket-Version", _VERSION))
    keys = headers.getRawHeaders(b"sec-websocket-key") or []
    if len(keys) != 1 or not _valid_key(keys[0].strip()):
        return _refuse("missing or invalid Sec-WebSocket-Key")
    if not headers.hasHeader(b"host"):
        return _refuse("no Host")
    lines = [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + generate_accept_token(keys[0].strip()) + b"\r\n"
    ]
    deflate: Deflate | None = None
    if limits.compression:
        for offer in _tokens(headers, b"sec-websocket-extensions"):
            # One offer at a time, each to a fresh extension: wsproto would let a later
            # offer of the same extension change what an earlier accepted one agreed.
            extension = PerMessageDeflate()
            accepted = server_extensions_handshake([offer], [extension])
            deflate = agreed_deflate(extension, server=True) if accepted else None
            if accepted and deflate is not None:
                lines.append(b"Sec-WebSocket-Extensions: " + accepted + b"\r\n")
                break  # RFC 7692 §5: the first acceptable offer
    chosen = None
    if subprotocols:
        offered = _tokens(headers, b"sec-websocket-protocol")
        chosen = next((p for p in subprotocols if p in offered), None)
        if chosen is not None:
            lines.append(b"Sec-WebSocket-Protocol: " + chosen.encode("ascii") + b"\r\n")
    lines.append(b"\r\n")
    codec = FrameCodec(False, limits.maxFrameSize, limits.maxMessageSize, deflate)
    return Acceptance(b"".join(lines), codec, chosen)


def _valid_key(key: bytes) -> bool:
    try:
        return len(binascii.a2b_base64(key, strict_mode=True)) == _KEY_SIZE
    except (binascii.Error, ValueError):
        return False


def origin_allowed(headers: Headers, allowed: frozenset[str] | None) -> bool:
    """Whether the request's ``Origin`` is in ``allowed`` (None allows any, or none sent).

    Origins compare as ASCII case-insensitive strings (``https://example.com:8443``); a
    request without ``Origin`` is refused when a list is given (browsers always send it).
    """
    if allowed is None:
        return True
    origins = headers.getRawHeaders(b"origin")
    if not origins or len(origins) != 1:
        return False
    return origins[0].decode("latin-1").strip().lower() in allowed


def _answer(request: Any, code: int, body: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain")
    for name, value in headers:
        request.setHeader(name, value)
    return body


class WebSocketResource(Resource):
    """A resource that answers WebSocket opening handshakes; put it anywhere in a tree.

    Args:
        factory: A ``WebSocketServerFactory``: its ``buildProtocol(request)`` returns the
            ``WebSocketProtocol`` of each connection. Beyond Twisted, an ``async def
            handler(ws)`` taking a :class:`~treadle.web.websocket.WebSocket` may be given
            instead (see :mod:`treadle.web.websocket`).
        limits: The connections' limits and timers (:class:`WebSocketLimits`'s defaults
            when None).
        allowedOrigins: When given, only handshakes whose ``Origin`` is one of these (e.g.
            ``"https://example.com"``) are accepted; others get ``403``. A browser always
            sends ``Origin``, so this stops other sites' pages from using a visitor's
            cookies here (cross-site WebSocket hijacking).
        subprotocols: Subprotocols this endpoint speaks, preferred first; the first one
            the client offers is agreed (``transport.subprotocol``).

    Attributes:
        factory: As given (an async handler wrapped in a factory).
    """

    def __init__(
        self,
        factory: Any,
        *,
        limits: WebSocketLimits | None = None,
        allowedOrigins: Iterable[str] | None = None,
        subprotocols: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.factory = handler_factory(factory) if is_handler(factory) else factory
        self.limits = limits if limits is not None else WebSocketLimits()
        self.allowedOrigins = (
            None
            if allowedOrigins is None
            else frozenset(origin.strip().lower() for origin in allowedOrigins)
        )
        self.subprotocols = tuple(subprotocols)

    def render_GET(self, request: Any) -> bytes | int:
        """Accept a WebSocket opening handshake (anything else gets ``400``)."""
        headers = request.requestHeaders
        if not origin_allowed(headers, self.allowedOrigins):
            return _answer(request, 403, b"websocket origin not allowed", ())
        outcome = negotiate(
            request.method, request.clientproto, headers, self.limits, self.subprotocols
        )
        if isinstance(outcome, Refusal):
            error_log.info("WebSocket handshake of %r refused: %s", request, outcome.why)
            return _answer(request, outcome.code, outcome.body, outcome.headers)
        channel = request.channel
        switch = getattr(channel, "switch_protocol", None)
        if switch is None or getattr(channel, "state", None) != "UPGRADING":
            error_log.info("WebSocket handshake of %r refused: no upgrade on this channel", request)
            return _answer(request, 400, _NEGOTIATION_ERROR, ())
        user = self.factory.buildProtocol(request)
        if user is None:
            return _answer(request, 403, b"websocket connection refused", ())
        deadlines = channel.factory.timing()[0]
        wire = WebSocketWire(user, self.limits, outcome.conn, deadlines)
        wire.subprotocol = outcome.subprotocol
        user.negotiationStarted(wire)
        request.setResponseCode(101)
        if not switch(request, wire, outcome.head):
            wire.connection_lost(None)  # the client left meanwhile
            return NOT_DONE_YET
        # The head is out: end the request without writing (it is logged, and its
        # notifyFinish fires), as a resource writing its own head does.
        request.startedWriting = True
        request.finish()
        return NOT_DONE_YET
