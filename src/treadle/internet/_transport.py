"""Twisted's transports on asyncio's: what a :class:`~treadle.internet.protocol.Protocol` talks to.

An asyncio transport writes, closes and pauses; a Twisted program expects more of
``self.transport``: ``loseConnection`` that flushes first, ``abortConnection``, ``getPeer``/
``getHost`` as address objects, producers paced by the connection (``registerProducer``), its
own ``pauseProducing``/``resumeProducing``, TCP options and ``startTLS``. :class:`Transport`
adds those to an asyncio transport, and :class:`Connection` is the asyncio protocol that drives
a Twisted protocol with it: it calls ``factory.buildProtocol(addr)`` with the peer's address
once the connection exists, then ``makeConnection``, ``dataReceived`` and ``connectionLost``.

A factory may build an asyncio protocol instead (treadle's HTTP channel is one): the connection
is then handed to it (``set_protocol``) and this module is out of the way for good. Treadle's
own HTTP factories skip even that (see ``asyncio_protocol_factory`` in
:mod:`treadle.internet._reactor`), so the HTTP path pays nothing for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
from collections.abc import Callable, Iterable
from typing import Any

from zope.interface import directlyProvides, implementer

from treadle.internet.address import IPv4Address, IPv6Address, UNIXAddress, from_sockname
from treadle.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from treadle.internet.interfaces import (
    IConsumer,
    IHalfCloseableProtocol,
    IPushProducer,
    ISSLTransport,
    ITCPTransport,
    ITLSTransport,
)
from treadle.python.failure import Failure

__all__ = ["Connection", "Transport", "context_of"]

log = logging.getLogger("treadle.error")

Address = IPv4Address | IPv6Address | UNIXAddress


def context_of(contextFactory: Any, *, client: bool = False) -> ssl.SSLContext:
    """Return the ``SSLContext`` of a context factory (or the context itself).

    A context factory is an :class:`ssl.SSLContext` or any object whose ``getContext()``
    returns one (``treadle.internet.ssl.CertificateOptions``, ``optionsForClientTLS``...).
    For the connecting side (``client``), a factory's ``getClientContext()`` is preferred:
    an ``ssl.SSLContext`` serves one side only, and options holding a certificate give the
    server's side from ``getContext()``.

    Raises:
        TypeError: ``contextFactory`` is neither.
    """
    if isinstance(contextFactory, ssl.SSLContext):
        return contextFactory
    get = (getattr(contextFactory, "getClientContext", None) if client else None) or getattr(
        contextFactory, "getContext", None
    )
    if get is None:
        raise TypeError(
            f"expected an ssl.SSLContext or an object with getContext(), not {contextFactory!r}"
        )
    context = get()
    if not isinstance(context, ssl.SSLContext):
        raise TypeError(f"{contextFactory!r}.getContext() returned {context!r}, not an SSLContext")
    return context


@implementer(ITCPTransport, ITLSTransport, IPushProducer, IConsumer)
class Transport:
    """Twisted's TCP (and TLS, and UNIX) transport over an asyncio transport.

    Args:
        raw: The asyncio transport.
        connection: The asyncio protocol of the connection (it receives the decrypted
            bytes once TLS starts; its ``fail(reason)`` drops the connection).
        server: True on the accepting side (the side ``startTLS`` then takes).

    Attributes:
        connected: True until the connection is lost.
        disconnecting: True once ``loseConnection`` or ``abortConnection`` was called.
        disconnected: True once the connection is lost.
        producer: The registered producer, or None.
        streamingProducer: Whether it is a push producer.
        TLS: True once TLS is running on the connection.
    """

    def __init__(self, raw: asyncio.BaseTransport, connection: Any, server: bool) -> None:
        self._raw: asyncio.Transport = raw  # type: ignore[assignment]  # uvloop's is no subclass
        self._connection = connection
        self.server = server
        self.connected = True
        self.disconnecting = False
        self.disconnected = False
        self.producer: Any = None
        self.streamingProducer = False
        self._writing_paused = False
        self._pull_scheduled = False
        # Writes made while a TLS handshake is being set up, sent once it is.
        self._tls_pending: list[bytes] | None = None
        # loseConnection waits for a pull producer to be unregistered, as Twisted's does.
        self._close_after_producer = False
        self._aborted = False
        # Bytes decrypted before the swap to the TLS transport is done, handed on after it.
        self._held_input: list[bytes] | None = None
        self.TLS = raw.get_extra_info("sslcontext") is not None
        if self.TLS:
            directlyProvides(self, ISSLTransport)

    # -- writing ----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send ``data`` (buffered, never blocking); ignored once the connection is gone.

        Raises:
            TypeError: ``data`` is not bytes (Twisted's transports take bytes only).
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"Data must be bytes, not {type(data).__name__}")
        if self.disconnected or self._aborted or not data:
            return
        pending = self._tls_pending
        if pending is not None:
            pending.append(bytes(data))
        else:
            self._raw.write(data)

    def writeSequence(self, iovec: Iterable[bytes]) -> None:
        """Send the concatenation of ``iovec``."""
        pieces = list(iovec)
        for piece in pieces:
            if not isinstance(piece, bytes | bytearray | memoryview):
                raise TypeError(f"Data must be bytes, not {type(piece).__name__}")
        self.write(b"".join(pieces))

    def loseConnection(self) -> None:
        """Close the connection once everything written has been sent.

        Reading stops at once. With a pull producer registered, the close waits until it is
        unregistered (so what it still produces goes out).
        """
        if self.disconnected or self.disconnecting:
            return
        self.disconnecting = True
        if self.producer is not None and not self.streamingProducer:
            self._close_after_producer = True
            return
        self._close()

    def _close(self) -> None:
        if self._tls_pending is not None:
            self._close_after_producer = True  # closed once TLS is up and the writes are out
            return
        # After this turn of the loop, so what the protocol writes right after calling
        # loseConnection still goes out first, as with Twisted (asyncio drops writes made
        # after close()).
        asyncio.get_event_loop().call_soon(self._raw.close)

    def abortConnection(self) -> None:
        """Close the connection at once, discarding what is not sent yet.

        The peer sees a reset (``SO_LINGER`` 0, as with Twisted), not an orderly close, so
        it cannot take a cut-off answer for a whole one.
        """
        if self.disconnected:
            return
        self.disconnecting = True
        self._aborted = True
        self._reset_on_close()
        self._raw.abort()

    def _reset_on_close(self) -> None:
        sock = self.getHandle()
        if sock is not None and sock.family != socket.AF_UNIX:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def loseWriteConnection(self) -> None:
        """Half-close: send what is buffered, then end the writing direction (TCP FIN)."""
        if self._raw.can_write_eof():
            self._raw.write_eof()

    # -- addresses and socket options -----------------------------------------------------------

    def getPeer(self) -> Address:
        """Return the peer's address."""
        return from_sockname(self._raw.get_extra_info("peername"))

    def getHost(self) -> Address:
        """Return this side's address."""
        return from_sockname(self._raw.get_extra_info("sockname"))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """asyncio's ``get_extra_info`` of the transport underneath (``"ssl_object"``...)."""
        return self._raw.get_extra_info(name, default)

    def getHandle(self) -> socket.socket | None:
        """Return the connection's socket (a view of it, as asyncio hands it out)."""
        sock: socket.socket | None = self._raw.get_extra_info("socket")
        return sock

    @property
    def socket(self) -> socket.socket | None:
        """The connection's socket, as :meth:`getHandle`."""
        return self.getHandle()

    def _option(self, level: int, option: int) -> bool:
        sock = self.getHandle()
        return bool(sock.getsockopt(level, option)) if sock is not None else False

    def _set_option(self, level: int, option: int, enabled: bool) -> None:
        sock = self.getHandle()
        if sock is not None:
            sock.setsockopt(level, option, int(bool(enabled)))

    def getTcpNoDelay(self) -> bool:
        """Whether Nagle's algorithm is off (``TCP_NODELAY``)."""
        return self._option(socket.IPPROTO_TCP, socket.TCP_NODELAY)

    def setTcpNoDelay(self, enabled: bool) -> None:
        """Turn Nagle's algorithm off (True) or on."""
        self._set_option(socket.IPPROTO_TCP, socket.TCP_NODELAY, enabled)

    def getTcpKeepAlive(self) -> bool:
        """Whether TCP keep-alive probes are on (``SO_KEEPALIVE``)."""
        return self._option(socket.SOL_SOCKET, socket.SO_KEEPALIVE)

    def setTcpKeepAlive(self, enabled: bool) -> None:
        """Turn TCP keep-alive probes on or off."""
        self._set_option(socket.SOL_SOCKET, socket.SO_KEEPALIVE, enabled)

    # -- TLS --------------------------------------------------------------------------------

    def startTLS(self, contextFactory: Any, normal: bool = True) -> None:
        """Start TLS on the connection; what is written from now on is encrypted.

        The accepting side takes the server role. Writes made before the handshake is set
        up wait for it, in order.

        Args:
            contextFactory: An ``ssl.SSLContext``, or an object whose ``getContext()``
                returns one; a client's ``hostname`` attribute names the server to verify.
            normal: Accepted for compatibility (the side is the connection's own).
        """
        if self.TLS or self._tls_pending is not None:
            raise RuntimeError("TLS is already started on this connection")
        context = context_of(contextFactory, client=not self.server)
        hostname = None
        if not self.server:
            hostname = getattr(contextFactory, "hostname", None)
            if hostname is None and context.check_hostname:
                peer = self.getPeer()
                hostname = getattr(peer, "host", None)
        self._tls_pending = []
        loop = asyncio.get_running_loop()
        started = loop.create_task(
            loop.start_tls(
                self._raw,
                self._connection,
                context,
                server_side=self.server,
                server_hostname=hostname,
            )
        )
        started.add_done_callback(self._tls_started)

    def _tls_started(self, started: asyncio.Task[asyncio.Transport | None]) -> None:
        pending, self._tls_pending = self._tls_pending or [], None
        if started.cancelled() or started.exception() is not None or started.result() is None:
            reason = None if started.cancelled() else started.exception()
            self._tls_failed(reason or ConnectionLost("TLS could not be started"))
            return
        self._raw = started.result()  # type: ignore[assignment]
        self.TLS = True
        directlyProvides(self, ISSLTransport)
        if pending:
            self._raw.write(b"".join(pending))
        if self._close_after_producer and self.producer is None:
            self._raw.close()
        held, self._held_input = self._held_input, None
        if held:
            self._connection.data_received(b"".join(held))

    def _tls_failed(self, reason: BaseException) -> None:
        """The TLS handshake could not be set up: the connection is dropped with ``reason``."""
        self._connection.fail(reason)

    def getPeerCertificate(self) -> dict[str, Any] | None:
        """Return the peer's certificate as ``ssl`` decodes it, or None (no TLS, or none sent)."""
        ssl_object = self._raw.get_extra_info("ssl_object")
        if ssl_object is None:
            return None
        cert: dict[str, Any] | None = ssl_object.getpeercert()
        return cert

    @property
    def negotiatedProtocol(self) -> bytes | None:
        """The protocol agreed by ALPN, or None."""
        ssl_object = self._raw.get_extra_info("ssl_object")
        chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        return chosen.encode("ascii") if chosen else None

    # -- the connection as a producer -------------------------------------------------------------

    def pauseProducing(self) -> None:
        """Stop reading from the peer until :meth:`resumeProducing`."""
        if not self.disconnected:
            self._raw.pause_reading()

    def resumeProducing(self) -> None:
        """Read from the peer again."""
        if not self.disconnected and not self.disconnecting:
            self._raw.resume_reading()

    def stopProducing(self) -> None:
        """Stop for good: lose the connection."""
        self.loseConnection()

    # -- the connection as a consumer -------------------------------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Let ``producer`` feed the connection at the pace the peer reads.

        A push producer (``streaming``) is paused while the send buffer is above its high
        mark and resumed below its low mark; a pull producer is asked for one piece at a time
        while the buffer has room.

        Raises:
            RuntimeError: Another producer is registered.
        """
        if self.producer is not None:
            raise RuntimeError(
                f"Cannot register producer {producer!r}, because producer "
                f"{self.producer!r} was never unregistered."
            )
        if self.disconnected:
            producer.stopProducing()
            return
        self.producer = producer
        self.streamingProducer = bool(streaming)
        if not streaming:
            self._schedule_pull()
        elif self._writing_paused:
            producer.pauseProducing()

    def unregisterProducer(self) -> None:
        """Detach the producer (a ``loseConnection`` waiting for it then proceeds)."""
        self.producer = None
        if self._close_after_producer and not self.disconnected:
            self._close_after_producer = False
            self._close()

    def _schedule_pull(self) -> None:
        if not self._pull_scheduled:
            self._pull_scheduled = True
            asyncio.get_event_loop().call_soon(self._pull)

    def _pull(self) -> None:
        self._pull_scheduled = False
        producer = self.producer
        if producer is None or self.streamingProducer or self.disconnected:
            return
        if not self._writing_paused:
            producer.resumeProducing()
            if self.producer is producer and not self._writing_paused:
                self._schedule_pull()

    def _pause_writing(self) -> None:
        self._writing_paused = True
        if self.producer is not None and self.streamingProducer:
            self.producer.pauseProducing()

    def _resume_writing(self) -> None:
        self._writing_paused = False
        if self.producer is not None:
            if self.streamingProducer:
                self.producer.resumeProducing()
            else:
                self._schedule_pull()

    def _lost(self) -> None:
        self.connected = False
        self.disconnected = True
        producer, self.producer = self.producer, None
        if producer is not None:
            try:
                producer.stopProducing()
            except Exception:
                log.exception("error stopping producer %r", producer)

    def logPrefix(self) -> str:
        """Return the prefix of this transport's log lines."""
        prefix = getattr(self._connection, "log_prefix", None)
        return str(prefix()) if prefix is not None else type(self._connection).__name__

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} to {self.getPeer() if not self.disconnected else 'nowhere'}>"
        )


class _StandIn:
    """The protocol of a client connection its factory refused to build one for."""

    def makeConnection(self, transport: Any) -> None:
        """Nothing to set up: the connection is being closed."""

    def dataReceived(self, data: bytes) -> None:
        """Ignored."""

    def connectionLost(self, reason: Any) -> None:
        """Nothing to clean up."""


class Connection(asyncio.Protocol):
    """The asyncio protocol of a connection served or made for a Twisted factory.

    Args:
        factory: Its ``buildProtocol(addr)`` makes the protocol once the connection exists.
        server: True for an accepted connection.
        on_lost: Called with the reason once the connection is lost (a connector's hook).
        on_made: Called with the protocol once it is connected (a connector's hook).
    """

    __slots__ = ("_factory", "_failure", "_on_lost", "_on_made", "_server", "protocol", "transport")

    def __init__(
        self,
        factory: Any,
        server: bool,
        on_lost: Callable[[Failure], None] | None = None,
        on_made: Callable[[Any], None] | None = None,
    ) -> None:
        self._factory = factory
        self._server = server
        self._on_lost = on_lost
        self._on_made = on_made
        self._failure: Failure | None = None
        self.protocol: Any = None
        self.transport: Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Build the protocol for the peer's address and connect it (or close, if refused)."""
        addr = from_sockname(transport.get_extra_info("peername"))
        try:
            protocol = self._factory.buildProtocol(addr)
        except Exception:
            log.exception(
                "Unhandled error in %r.buildProtocol(%r): connection closed", self._factory, addr
            )
            protocol = None
        if protocol is None:
            if self._server:
                transport.close()
                return
            # Refused on the connecting side: as in Twisted, a bare protocol stands in and
            # the connection is closed, so the connector reports it lost and stops its factory.
            protocol = _StandIn()
            transport.close()
        if isinstance(protocol, asyncio.BaseProtocol) and not hasattr(protocol, "makeConnection"):
            # An asyncio protocol (an HTTP channel from an overridden buildProtocol): hand the
            # connection over; nothing of this module stays in its way.
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            if self._on_made is not None:
                self._on_made(protocol)
            return
        self.protocol = protocol
        own = self.transport = Transport(transport, self, self._server)
        try:
            protocol.makeConnection(own)
        except Exception:
            self._fail_with_current("makeConnection")
            return
        if self._on_made is not None:
            self._on_made(protocol)

    def data_received(self, data: bytes) -> None:
        """Hand the bytes to the protocol; an exception there drops the connection."""
        protocol = self.protocol
        if protocol is None or self._failure is not None:
            return
        transport = self.transport
        if transport is not None and transport._tls_pending is not None:
            # Decrypted by the new TLS layer before startTLS has switched the transport to
            # it: the protocol sees it once the switch is done, when the peer's certificate
            # can already be read.
            if transport._held_input is None:
                transport._held_input = []
            transport._held_input.append(data)
            return
        try:
            protocol.dataReceived(data)
        except Exception:
            self._fail_with_current("dataReceived")

    def eof_received(self) -> bool:
        """The peer half-closed: a half-closeable protocol is told and the connection stays."""
        protocol = self.protocol
        if protocol is not None and IHalfCloseableProtocol.providedBy(protocol):
            try:
                protocol.readConnectionLost()
            except Exception:
                self._fail_with_current("readConnectionLost")
                return False
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Tell the protocol (and the connector) why the connection ended."""
        transport = self.transport
        protocol = self.protocol
        if transport is None or protocol is None:
            return
        reason = self._failure
        if reason is None:
            if transport._aborted:
                reason = Failure(ConnectionAborted())
            elif exc is None:
                reason = Failure(ConnectionDone())
            else:
                reason = Failure(ConnectionLost(str(exc) or type(exc).__name__))
        transport._lost()
        try:
            protocol.connectionLost(reason)
        except Exception:
            log.exception("Unhandled error in %r.connectionLost", protocol)
        if self._on_lost is not None:
            self._on_lost(reason)

    def pause_writing(self) -> None:
        """The send buffer is full: pause the registered push producer."""
        if self.transport is not None:
            self.transport._pause_writing()

    def resume_writing(self) -> None:
        """The send buffer drained: resume the producer."""
        if self.transport is not None:
            self.transport._resume_writing()

    def fail(self, reason: BaseException) -> None:
        """Drop the connection because of ``reason``, which the protocol is then given."""
        self._failure = Failure(reason)
        if self.transport is not None:
            self.transport.disconnecting = True
            self.transport._raw.abort()

    def _fail_with_current(self, where: str) -> None:
        log.exception("Unhandled error in %r.%s: connection dropped", self.protocol, where)
        self._failure = Failure()
        if self.transport is not None:
            self.transport.disconnecting = True
            self.transport._raw.abort()

    def log_prefix(self) -> str:
        """Return the protocol's log prefix (its class name by default)."""
        prefix = getattr(self.protocol, "logPrefix", None)
        return str(prefix()) if prefix is not None else type(self.protocol).__name__
