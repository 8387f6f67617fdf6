"""Protocols and factories: Twisted's way of writing a network program, on treadle's reactor.

``twisted.internet.protocol`` ports to this module. A :class:`Protocol` receives a connection's
events (``makeConnection``, ``dataReceived``, ``connectionLost``) and answers through its
``transport``; a :class:`Factory` builds one protocol per connection (``buildProtocol(addr)``)
and is what ``reactor.listenTCP``, ``connectTCP`` and the endpoints take. A
:class:`ReconnectingClientFactory` reconnects with exponential back-off, a
:class:`ProcessProtocol` receives a child process's output, and :class:`ClientCreator` connects
one protocol instance and hands it back in a Deferred.

The classes hold no I/O of their own: the reactor's transports (:mod:`treadle.internet._transport`)
drive them, so a protocol can be tested with a string transport and no socket at all.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zope.interface import implementer

from treadle.internet import error
from treadle.internet.interfaces import (
    IConsumer,
    ILoggingContext,
    IProcessProtocol,
    IProtocol,
    IProtocolFactory,
)
from treadle.python.failure import Failure

if TYPE_CHECKING:
    from treadle.internet.defer import Deferred

__all__ = [
    "AbstractDatagramProtocol",
    "BaseProtocol",
    "ClientCreator",
    "ClientFactory",
    "ConnectedDatagramProtocol",
    "ConsumerToProtocolAdapter",
    "DatagramProtocol",
    "Factory",
    "FileWrapper",
    "ProcessProtocol",
    "Protocol",
    "ProtocolToConsumerAdapter",
    "ReconnectingClientFactory",
    "ServerFactory",
    "connectionDone",
]

_log = logging.getLogger("treadle.log")
_errors = logging.getLogger("treadle.error")

#: The reason a protocol is given when its connection was closed cleanly.
connectionDone: Failure = Failure(error.ConnectionDone())
connectionDone.cleanFailure()


@implementer(IProtocolFactory, ILoggingContext)
class Factory:
    """Builds a protocol per connection: ``factory.protocol()`` with ``factory`` set on it.

    Subclasses set the class attribute :attr:`protocol`, or override :meth:`buildProtocol`.
    :meth:`startFactory` runs when the factory begins serving its first port (or making its
    first connection) and :meth:`stopFactory` when it stops serving its last.

    Attributes:
        protocol: The protocol class to build (called with no arguments).
        noisy: Log "Starting factory"/"Stopping factory" lines (at INFO on ``treadle.log``).
        numPorts: How many ports or connections currently use this factory.
    """

    protocol: Callable[[], Any] | None = None
    noisy: bool = True
    numPorts: int = 0

    @classmethod
    def forProtocol(cls, protocol: Callable[..., Any], *args: Any, **kwargs: Any) -> Factory:
        """Return a factory of this class whose :attr:`protocol` is ``protocol``.

        Args:
            protocol: The protocol class.
            *args: Passed to the factory's constructor.
            **kwargs: Passed to the factory's constructor.
        """
        factory = cls(*args, **kwargs)
        factory.protocol = protocol
        return factory

    def logPrefix(self) -> str:
        """Return the prefix of this factory's log lines: its class name."""
        return self.__class__.__name__

    def doStart(self) -> None:
        """Count one more user of the factory; the first one calls :meth:`startFactory`."""
        if not self.numPorts:
            if self.noisy:
                _log.info("Starting factory %r", self)
            self.startFactory()
        self.numPorts += 1

    def doStop(self) -> None:
        """Count one user fewer; the last one calls :meth:`stopFactory`."""
        if self.numPorts == 0:
            return
        self.numPorts -= 1
        if not self.numPorts:
            if self.noisy:
                _log.info("Stopping factory %r", self)
            self.stopFactory()

    def startFactory(self) -> None:
        """Called before the first connection; open shared resources here."""

    def stopFactory(self) -> None:
        """Called after the last port stopped; release shared resources here."""

    def buildProtocol(self, addr: Any) -> Any:
        """Return a new protocol for a connection from (or to) ``addr``.

        Args:
            addr: The peer's address (an :class:`~treadle.internet.address.IPv4Address`,
                ``IPv6Address`` or ``UNIXAddress``).

        Returns:
            ``self.protocol()`` with its ``factory`` attribute set to this factory, or None
            to refuse the connection (it is then closed).
        """
        assert self.protocol is not None, f"{self!r}.protocol is not set"
        p = self.protocol()
        p.factory = self
        return p


class ServerFactory(Factory):
    """A factory for servers (nothing more than :class:`Factory`; the name programs use)."""


class ClientFactory(Factory):
    """A factory for outgoing connections, told how each attempt went."""

    def startedConnecting(self, connector: Any) -> None:
        """A connection attempt has begun; ``connector.stopConnecting()`` cancels it."""

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        """The attempt failed; ``connector.connect()`` tries again."""

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        """An established connection ended; ``connector.connect()`` reconnects."""


class ReconnectingClientFactory(ClientFactory):
    """A client factory that reconnects after a lost or failed connection.

    The delay before the next attempt grows by :attr:`factor` up to :attr:`maxDelay`, with
    random :attr:`jitter`; :meth:`resetDelay` (call it from ``connectionMade``) starts over
    and :meth:`stopTrying` ends the reconnecting.

    Attributes:
        maxDelay: Longest delay between attempts, in seconds.
        initialDelay: First delay.
        factor: Growth of the delay per attempt (e).
        jitter: Relative standard deviation added to each delay.
        maxRetries: Attempts before giving up (None: never give up).
        clock: The reactor scheduling attempts (the global one when None).
    """

    maxDelay: float = 3600
    initialDelay: float = 1.0
    factor: float = 2.7182818284590451
    jitter: float = 0.11962656472
    delay: float = initialDelay
    retries: int = 0
    maxRetries: int | None = None
    _callID: Any = None
    connector: Any = None
    clock: Any = None
    continueTrying: bool = True

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        """Try again after the current delay, unless :meth:`stopTrying` was called."""
        if self.continueTrying:
            self.connector = connector
            self.retry()

    def clientConnectionLost(self, connector: Any, unused_reason: Failure) -> None:
        """Reconnect after the current delay, unless :meth:`stopTrying` was called."""
        if self.continueTrying:
            self.connector = connector
            self.retry()

    def retry(self, connector: Any = None) -> None:
        """Schedule the next attempt of ``connector`` (the last one seen by default)."""
        if not self.continueTrying:
            return
        if connector is None:
            if self.connector is None:
                raise ValueError("no connector to retry")
            connector = self.connector
        self.retries += 1
        if self.maxRetries is not None and self.retries > self.maxRetries:
            if self.noisy:
                _log.info("Abandoning %s after %d retries.", connector, self.retries)
            return
        self.delay = min(self.delay * self.factor, self.maxDelay)
        if self.jitter:
            self.delay = random.normalvariate(self.delay, self.delay * self.jitter)
        if self.noisy:
            _log.info("%s will retry in %d seconds", connector, self.delay)

        def reconnect() -> None:
            self._callID = None
            connector.connect()

        clock = self.clock
        if clock is None:
            from treadle.internet import reactor as clock
        self._callID = clock.callLater(self.delay, reconnect)

    def stopTrying(self) -> None:
        """Stop reconnecting: cancel a pending attempt and any in progress."""
        if self._callID is not None:
            self._callID.cancel()
            self._callID = None
        self.continueTrying = False
        if self.connector is not None:
            with contextlib.suppress(error.NotConnectingError):
                self.connector.stopConnecting()

    def resetDelay(self) -> None:
        """Start the back-off over (after a successful connection)."""
        self.delay = self.initialDelay
        self.retries = 0
        self._callID = None
        self.continueTrying = True

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the pending call and the connector."""
        state = self.__dict__.copy()
        for key in ("connector", "retries", "delay", "continueTrying", "_callID"):
            state.pop(key, None)
        return state


class BaseProtocol:
    """What every protocol has: a transport, and ``connectionMade`` once it is set.

    Attributes:
        connected: True once :meth:`makeConnection` ran.
        transport: The connection's transport (None before ``makeConnection``).
    """

    connected: int = 0
    transport: Any = None

    def makeConnection(self, transport: Any) -> None:
        """Attach ``transport`` and call :meth:`connectionMade`."""
        self.connected = 1
        self.transport = transport
        self.connectionMade()

    def connectionMade(self) -> None:
        """The connection is up: ``self.transport`` can be written to."""


@implementer(IProtocol, ILoggingContext)
class Protocol(BaseProtocol):
    """A stream protocol: bytes arrive in :meth:`dataReceived`, in pieces of any size.

    Attributes:
        factory: The factory that built this protocol (set by ``Factory.buildProtocol``).
    """

    factory: Any = None

    def logPrefix(self) -> str:
        """Return the prefix of this protocol's log lines: its class name."""
        return self.__class__.__name__

    def dataReceived(self, data: bytes) -> None:
        """Bytes arrived; they may be any part of what the peer sent (TCP has no messages)."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """The connection ended.

        Args:
            reason: A Failure wrapping :class:`~treadle.internet.error.ConnectionDone` for a
                clean close or :class:`~treadle.internet.error.ConnectionLost` otherwise.
        """


@implementer(IConsumer)
class ProtocolToConsumerAdapter:
    """Present a protocol as a consumer: what is written becomes its ``dataReceived``."""

    def __init__(self, original: Protocol) -> None:
        self.original = original

    def write(self, data: bytes) -> None:
        """Hand ``data`` to the protocol."""
        self.original.dataReceived(data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Accepted and ignored: the protocol takes all it is given."""

    def unregisterProducer(self) -> None:
        """Accepted and ignored."""


@implementer(IProtocol)
class ConsumerToProtocolAdapter:
    """Present a consumer as a protocol: what it receives is written to the consumer."""

    def __init__(self, original: Any) -> None:
        self.original = original

    def dataReceived(self, data: bytes) -> None:
        """Write ``data`` to the consumer."""
        self.original.write(data)

    def connectionLost(self, reason: Failure) -> None:
        """Nothing to do: the consumer outlives the connection."""

    def makeConnection(self, transport: Any) -> None:
        """Nothing to do: the consumer needs no transport."""

    def connectionMade(self) -> None:
        """Nothing to do."""


@implementer(IProcessProtocol)
class ProcessProtocol(BaseProtocol):
    """Receives a child process's output and end (see ``reactor.spawnProcess``).

    Output on the child's stdout arrives in :meth:`outReceived`, stderr in
    :meth:`errReceived`; :meth:`processExited` is called when the process exits and
    :meth:`processEnded` once it has exited *and* all its pipes are closed.
    """

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        """Output arrived on the child's file descriptor ``childFD`` (1 or 2 by default)."""
        if childFD == 1:
            self.outReceived(data)
        elif childFD == 2:
            self.errReceived(data)

    def outReceived(self, data: bytes) -> None:
        """Bytes arrived on the child's standard output."""

    def errReceived(self, data: bytes) -> None:
        """Bytes arrived on the child's standard error."""

    def childConnectionLost(self, childFD: int) -> None:
        """One of the child's pipes closed."""
        if childFD == 0:
            self.inConnectionLost()
        elif childFD == 1:
            self.outConnectionLost()
        elif childFD == 2:
            self.errConnectionLost()

    def inConnectionLost(self) -> None:
        """The child's standard input closed."""

    def outConnectionLost(self) -> None:
        """The child closed its standard output."""

    def errConnectionLost(self) -> None:
        """The child closed its standard error."""

    def processExited(self, reason: Failure) -> None:
        """The child exited (``ProcessDone`` for status 0, ``ProcessTerminated`` otherwise)."""

    def processEnded(self, reason: Failure) -> None:
        """The child exited and all its pipes are closed."""


class AbstractDatagramProtocol:
    """What every datagram protocol has: a transport (its UDP port) and start/stop hooks.

    Attributes:
        transport: The port (None before ``makeConnection``).
        numPorts: How many ports use this protocol.
        noisy: Log "Starting protocol"/"Stopping protocol" lines.
    """

    transport: Any = None
    numPorts: int = 0
    noisy: bool = True

    def logPrefix(self) -> str:
        """Return the prefix of this protocol's log lines: its class name."""
        return self.__class__.__name__

    def doStart(self) -> None:
        """Count one more port; the first one calls :meth:`startProtocol`."""
        if not self.numPorts:
            if self.noisy:
                _log.info("Starting protocol %r", self)
            self.startProtocol()
        self.numPorts += 1

    def doStop(self) -> None:
        """Count one port fewer; the last one calls :meth:`stopProtocol`."""
        if self.numPorts == 0:
            return
        self.numPorts -= 1
        self.transport = None
        if not self.numPorts:
            if self.noisy:
                _log.info("Stopping protocol %r", self)
            self.stopProtocol()

    def startProtocol(self) -> None:
        """The port is listening: ``self.transport`` can be written to."""

    def stopProtocol(self) -> None:
        """The port stopped listening."""

    def makeConnection(self, transport: Any) -> None:
        """Attach the port and start (called by ``reactor.listenUDP``)."""
        assert self.transport is None, f"{self!r} already has a port"
        self.transport = transport
        self.doStart()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """A datagram arrived from ``addr``, a ``(host, port)`` tuple."""


@implementer(ILoggingContext)
class DatagramProtocol(AbstractDatagramProtocol):
    """A UDP protocol: ``datagramReceived(datagram, (host, port))``, and
    ``self.transport.write(datagram, (host, port))`` to answer."""

    def connectionRefused(self) -> None:
        """A datagram sent on a connected port was refused (ICMP port unreachable)."""


class ConnectedDatagramProtocol(DatagramProtocol):
    """A datagram protocol for a connected port (Twisted keeps the name; use
    :class:`DatagramProtocol` and ``transport.connect``)."""

    def connectionFailed(self, failure: Failure) -> None:
        """Connecting the port failed."""


class FileWrapper:
    """A transport that writes to a file object (for tests and scripts).

    Args:
        file: A binary file object.
    """

    closed = 0
    disconnecting = 0
    producer: Any = None
    streamingProducer = 0

    def __init__(self, file: Any) -> None:
        self.file = file

    def write(self, data: bytes) -> None:
        """Write ``data`` to the file; an error loses the connection."""
        try:
            self.file.write(data)
        except Exception:
            self.handleException()

    def _checkProducer(self) -> None:
        # A pull producer is asked for more whenever what it wrote has gone out.
        if self.producer is not None:
            self.producer.resumeProducing()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Attach a producer; a pull producer is asked for data at once."""
        self.producer = producer
        self.streamingProducer = streaming
        if not streaming:
            producer.resumeProducing()

    def unregisterProducer(self) -> None:
        """Detach the producer."""
        self.producer = None

    def stopConsuming(self) -> None:
        """Detach the producer and lose the connection."""
        self.unregisterProducer()
        self.loseConnection()

    def writeSequence(self, iovec: Any) -> None:
        """Write each piece of ``iovec`` in order."""
        self.write(b"".join(iovec))

    def loseConnection(self) -> None:
        """Close the file."""
        self.closed = 1
        try:
            self.file.close()
        except OSError:
            self.handleException()

    def getPeer(self) -> tuple[str, str]:
        """Return a placeholder peer address (a file has no peer)."""
        return ("file", "file")

    def getHost(self) -> str:
        """Return a placeholder host address."""
        return "file"

    def handleException(self) -> None:
        """An I/O error happened: nothing more is written."""
        _errors.exception("error writing to %r", self.file)

    def resumeProducing(self) -> None:
        """Nothing to do: a file is always writable."""

    def pauseProducing(self) -> None:
        """Nothing to do."""

    def stopProducing(self) -> None:
        """Close the file."""
        self.loseConnection()


class _InstanceFactory(ClientFactory):
    """Connects one protocol instance and fires a Deferred with it (for :class:`ClientCreator`)."""

    noisy = False

    def __init__(self, reactor: Any, instance: Any, deferred: Deferred[Any]) -> None:
        self.reactor = reactor
        self.instance = instance
        self.deferred: Deferred[Any] | None = deferred

    def __repr__(self) -> str:
        return f"<ClientCreator factory: {self.instance!r}>"

    def buildProtocol(self, addr: Any) -> Any:
        """Hand out the one instance, and fire the Deferred once it is connected."""
        deferred, self.deferred = self.deferred, None
        if deferred is not None:
            self.reactor.callLater(0, deferred.callback, self.instance)
        return self.instance

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        """Fail the Deferred with ``reason``."""
        deferred, self.deferred = self.deferred, None
        if deferred is not None:
            self.reactor.callLater(0, deferred.errback, reason)


class ClientCreator:
    """Connect instances of one protocol class, each handed back in a Deferred.

    Args:
        reactor: The reactor to connect with.
        protocolClass: Called with ``*args, **kwargs`` for each connection.
    """

    def __init__(self, reactor: Any, protocolClass: Callable[..., Any], *args: Any, **kwargs: Any):
        self.reactor = reactor
        self.protocolClass = protocolClass
        self.args = args
        self.kwargs = kwargs

    def _connect(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        from treadle.internet.defer import Deferred

        def cancel(deferred: Deferred[Any]) -> None:
            connector.stopConnecting()
            connector.disconnect()

        deferred: Deferred[Any] = Deferred(cancel)
        instance = self.protocolClass(*self.args, **self.kwargs)
        factory = _InstanceFactory(self.reactor, instance, deferred)
        connector = method(*args, factory=factory, **kwargs)
        return deferred

    def connectTCP(
        self, host: str, port: int, timeout: float = 30, bindAddress: Any = None
    ) -> Deferred[Any]:
        """Connect over TCP; the Deferred fires with the connected protocol."""
        return self._connect(
            self.reactor.connectTCP, host, port, timeout=timeout, bindAddress=bindAddress
        )

    def connectUNIX(self, address: str, timeout: float = 30, checkPID: int = 0) -> Deferred[Any]:
        """Connect to a UNIX socket; the Deferred fires with the connected protocol."""
        return self._connect(self.reactor.connectUNIX, address, timeout=timeout, checkPID=checkPID)

    def connectSSL(
        self,
        host: str,
        port: int,
        contextFactory: Any,
        timeout: float = 30,
        bindAddress: Any = None,
    ) -> Deferred[Any]:
        """Connect over TLS; the Deferred fires with the connected protocol."""
        return self._connect(
            self.reactor.connectSSL,
            host,
            port,
            contextFactory=contextFactory,
            timeout=timeout,
            bindAddress=bindAddress,
        )
