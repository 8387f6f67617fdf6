"""Taking a connection out of HTTP/1.1: Upgrade (``101``) and the HTTP/2 preface.

:class:`SwitchingMixin` is mixed into :class:`~treadle.web._channel.HTTPChannel`: what a
connection does when a request asks to upgrade (RFC 9110 §7.8) — hold the bytes that follow
it, then hand the connection to the protocol a resource switches to — and when a client
opens with HTTP/2's connection preface (RFC 9113 §3.4). Neither is on the per-request path,
so this stays plain Python while the channel's state machine is compiled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from treadle.web._channel_common import READ_AHEAD, SwitchedProtocol
from treadle.web._state import ABORTED, CLOSING, DONE, IDLE, STOP, SWITCH, UPGRADE, UPGRADING

__all__ = ["H2_PREFACE_START", "SwitchingMixin"]

#: How HTTP/2's connection preface (RFC 9113 §3.4) starts; no HTTP/1.x request does.
H2_PREFACE_START: Final = b"PRI "


class SwitchingMixin:
    """Upgrade and HTTP/2 hand-over, for :class:`~treadle.web._channel.HTTPChannel`."""

    # What this reads and calls of the channel (annotations only: the channel's own
    # attributes and methods, which must not be hidden).
    _enter: Callable[[int], int]
    _pause_reading: Callable[[], None]
    _resume_reading: Callable[[], None]
    uncork: Callable[[], None]
    factory: Any
    asyncio_transport: Any
    requestFactory: Callable[[Any], Any]
    _state: int
    _active: Any
    _producer: Any
    _parser: Any
    _handle: Any
    _deadlines: Any
    _upgrade: Any

    # -- Upgrade (RFC 9110 §7.8) ----------------------------------------------------------------

    def _upgrade_requested(self, tail: bytes) -> None:
        """The request just parsed asked to upgrade: parse no more, hold the bytes after it."""
        if self._state != IDLE and self._state != DONE:
            self._enter(STOP)  # (an Upgrade llhttp stopped at without its message complete)
            return
        self._enter(UPGRADE)
        self._upgrade = bytearray()
        self._hold_for_upgrade(tail)

    def _hold_for_upgrade(self, data: bytes) -> None:
        """Keep bytes of the next protocol until the request is answered (up to READ_AHEAD)."""
        held: bytearray = self._upgrade
        held += data
        if len(held) > READ_AHEAD:
            self._pause_reading()

    def switch_protocol(self, request: object, protocol: SwitchedProtocol, head: bytes) -> bool:
        """Answer ``request`` with ``head`` and hand the connection over to ``protocol``.

        The way a resource takes a connection out of HTTP (a WebSocket, an ASGI WebSocket
        application): ``request`` must be the request being answered, and one that asked to
        upgrade (an ``Upgrade`` field with ``Connection: upgrade``; the channel then parsed
        nothing after it). The channel writes ``head`` (a complete ``101 Switching
        Protocols`` response head, which the caller builds), stops its HTTP timeouts,
        lets its parser go, calls ``protocol.connection_made(transport)`` with its asyncio
        transport, then ``protocol.data_received`` with any bytes the client sent after the
        request's head. From then on the channel passes everything on to ``protocol``
        (bytes, EOF, flow control, loss) and stays counted by its factory until the
        connection ends, so ``maxConnections`` and shutdown see it: at shutdown
        :meth:`close_when_idle` calls ``protocol.close_when_idle()``, and the connections
        left after the grace period are aborted (``connection_lost`` then gets a
        :class:`~treadle.internet.error.ConnectionAborted`). A switch made while the
        factory is shutting down calls ``close_when_idle`` at once.

        The request is not finished by this: the caller ends it (e.g. with
        ``request.startedWriting = True`` then ``request.finish()``, which logs it and
        fires its ``notifyFinish`` without writing).

        Returns:
            True once switched; False when the connection is already ending (lost, closing
            or aborted), in which case nothing was written and ``protocol`` is not called.

        Raises:
            RuntimeError: ``request`` is not the one being answered, or did not ask to
                upgrade.
        """
        active = self._active
        if self._state != UPGRADING or (
            request is not active and (active is None or active != request)
        ):
            if self._state in (CLOSING, ABORTED) or self.asyncio_transport is None:
                return False
            raise RuntimeError(f"{request!r} did not ask to upgrade, or is not being answered")
        transport = self.asyncio_transport
        assert transport is not None  # (UPGRADING: the connection is open)
        self._enter(SWITCH)
        self._active = None
        self._producer = None
        if self._handle is not None:
            self._deadlines.discard(self)
        parser, self._parser = self._parser, None
        if parser is not None:
            parser.discard()
        held, self._upgrade = self._upgrade, protocol
        self.uncork()
        transport.write(head)
        self._resume_reading()
        protocol.connection_made(transport)
        if held and self._upgrade is protocol:
            protocol.data_received(bytes(held))
        if self.factory.shutting_down and self._upgrade is protocol:
            protocol.close_when_idle()
        return True

    # -- HTTP/2's preface (RFC 9113 §3.4) -------------------------------------------------------

    def _speak_h2(self, data: bytes) -> bool:
        """The client opened with HTTP/2's preface (after ALPN chose ``h2``, or in cleartext
        with prior knowledge): hand the transport to an HTTP/2 connection, which counts
        itself with the factory from now on. False when the transport cannot be handed over
        (a Twisted transport); llhttp then refuses the bytes."""
        transport = self.asyncio_transport
        set_protocol = getattr(transport, "set_protocol", None)
        if set_protocol is None:
            return False
        # Imported on first use: h2 takes some 30 ms to import, which HTTP/1.1 never pays.
        from treadle.web._h2_channel import H2Connection

        self._enter(STOP)
        if self._handle is not None:
            self._deadlines.discard(self)
        self.factory.connection_closed(self)
        self.asyncio_transport = None
        connection = H2Connection(self.factory, self.requestFactory)
        set_protocol(connection)
        connection.connection_made(transport)
        connection.data_received(data)
        return True
