"""Connection policies: idle timeouts, wrapping factories, connection limits.

``twisted.protocols.policies`` ports to this module.

- :class:`TimeoutMixin`: mix into a protocol to close its connection after ``timeOut``
  seconds without :meth:`~TimeoutMixin.resetTimeout`.
- :class:`ProtocolWrapper` / :class:`WrappingFactory`: put a protocol between the transport
  and the real protocol (to watch or alter the traffic) without the real one knowing.
- :class:`TimeoutFactory`: close connections idle (nothing read or written) for a period.
- :class:`LimitTotalConnectionsFactory`, :class:`LimitConnectionsByPeer`: cap connections.

Differences from Twisted, on purpose:

* A :class:`WrappingFactory` whose wrapped factory refuses a connection (``buildProtocol``
  returns None) refuses it too; Twisted's wraps the None and fails on the first event.
* :class:`LimitConnectionsByPeer` counts by the peer's host (``addr.host``); Twisted's
  indexes the address like a tuple and fails with treadle's and Twisted's own address
  objects.
* Activity on a :class:`TimeoutProtocol` whose timeout has fired (data still arriving
  while the connection closes) is ignored; Twisted's raises ``AlreadyCalled``.
* ``ThrottlingFactory``, ``SpewingFactory`` and ``TrafficLoggingFactory`` are not provided.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from zope.interface import directlyProvides, providedBy

from treadle.internet import error
from treadle.internet.interfaces import ILoggingContext
from treadle.internet.protocol import ClientFactory, Protocol, ServerFactory, connectionDone
from treadle.python.failure import Failure

__all__ = [
    "LimitConnectionsByPeer",
    "LimitTotalConnectionsFactory",
    "ProtocolWrapper",
    "TimeoutFactory",
    "TimeoutMixin",
    "TimeoutProtocol",
    "WrappingFactory",
]


def _wrapped_log_prefix(wrapper: object, wrapped: Any) -> str:
    """``"<wrapped's prefix> (<wrapper's class>)"``."""
    if ILoggingContext.providedBy(wrapped):
        prefix = wrapped.logPrefix()
    else:
        prefix = wrapped.__class__.__name__
    return f"{prefix} ({wrapper.__class__.__name__})"


def _reactor_call_later(period: float, func: Callable[[], Any]) -> Any:
    from treadle.internet import reactor

    return reactor.callLater(period, func)


class ProtocolWrapper(Protocol):
    """Stands between a transport and a protocol, passing everything through.

    To the wrapped protocol it is the transport (and provides the same interfaces as the
    real one, whose other attributes it forwards); to the transport it is the protocol.
    Subclasses override what they want to watch or change.

    Args:
        factory: The :class:`WrappingFactory` that built it (told of connect and close).
        wrappedProtocol: The real protocol.

    Attributes:
        disconnecting: True once the wrapped protocol called ``loseConnection``.
    """

    disconnecting: int = 0

    def __init__(self, factory: Any, wrappedProtocol: Any) -> None:
        self.wrappedProtocol = wrappedProtocol
        self.factory = factory

    def logPrefix(self) -> str:
        """Return the wrapped protocol's prefix followed by this class's name."""
        return _wrapped_log_prefix(self, self.wrappedProtocol)

    def makeConnection(self, transport: Any) -> None:
        """Take the transport's interfaces, register with the factory, connect the wrapped
        protocol to this wrapper."""
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        self.wrappedProtocol.makeConnection(self)

    def write(self, data: bytes) -> None:
        """Write ``data`` to the transport."""
        self.transport.write(data)

    def writeSequence(self, data: Any) -> None:
        """Write the pieces of ``data`` to the transport."""
        self.transport.writeSequence(data)

    def loseConnection(self) -> None:
        """Set :attr:`disconnecting` and close the transport."""
        self.disconnecting = 1
        self.transport.loseConnection()

    def getPeer(self) -> Any:
        """Return the transport's peer address."""
        return self.transport.getPeer()

    def getHost(self) -> Any:
        """Return the transport's host address."""
        return self.transport.getHost()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Register ``producer`` with the transport."""
        self.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        """Unregister the transport's producer."""
        self.transport.unregisterProducer()

    def stopConsuming(self) -> None:
        """Pass on to the transport."""
        self.transport.stopConsuming()

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes the wrapper lacks: the transport's own (abortConnection,
        # pauseProducing, ...). Dunder lookups (copy, pickle) are not forwarded.
        if name.startswith("__") or "transport" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.transport, name)

    def dataReceived(self, data: bytes) -> None:
        """Hand ``data`` to the wrapped protocol."""
        self.wrappedProtocol.dataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Unregister from the factory and tell the wrapped protocol."""
        self.factory.unregisterProtocol(self)
        self.wrappedProtocol.connectionLost(reason)
        # The wrapped protocol refers to this wrapper as its transport: break the cycle.
        self.wrappedProtocol = None


class WrappingFactory(ClientFactory):
    """Wraps each protocol of ``wrappedFactory`` in :attr:`protocol` (a ProtocolWrapper).

    Starting, stopping and the client callbacks pass through to the wrapped factory.

    Args:
        wrappedFactory: The factory building the real protocols.

    Attributes:
        protocols: The wrappers currently connected (a dict used as a set).
    """

    protocol: Callable[..., Any] = ProtocolWrapper

    def __init__(self, wrappedFactory: Any) -> None:
        self.wrappedFactory = wrappedFactory
        self.protocols: dict[Any, int] = {}

    def logPrefix(self) -> str:
        """Return the wrapped factory's prefix followed by this class's name."""
        return _wrapped_log_prefix(self, self.wrappedFactory)

    def doStart(self) -> None:
        """Start the wrapped factory, then this one."""
        self.wrappedFactory.doStart()
        ClientFactory.doStart(self)

    def doStop(self) -> None:
        """Stop the wrapped factory, then this one."""
        self.wrappedFactory.doStop()
        ClientFactory.doStop(self)

    def startedConnecting(self, connector: Any) -> None:
        """Pass on to the wrapped factory."""
        self.wrappedFactory.startedConnecting(connector)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        """Pass on to the wrapped factory."""
        self.wrappedFactory.clientConnectionFailed(connector, reason)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        """Pass on to the wrapped factory."""
        self.wrappedFactory.clientConnectionLost(connector, reason)

    def buildProtocol(self, addr: Any) -> Any:
        """Wrap the wrapped factory's protocol; None if it refused the connection."""
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            return None
        return self.protocol(self, wrapped)

    def registerProtocol(self, p: Any) -> None:
        """A wrapper connected."""
        self.protocols[p] = 1

    def unregisterProtocol(self, p: Any) -> None:
        """A wrapper disconnected."""
        del self.protocols[p]


class LimitConnectionsByPeer(WrappingFactory):
    """Refuses connections beyond :attr:`maxConnectionsPerPeer` from one host.

    Attributes:
        maxConnectionsPerPeer: Simultaneous connections allowed per peer host (5).
        peerConnections: Current connections per host.
    """

    maxConnectionsPerPeer: int = 5

    def startFactory(self) -> None:
        """Start counting from zero."""
        self.peerConnections: dict[Any, int] = {}

    def buildProtocol(self, addr: Any) -> Any:
        """Refuse (None) when the peer host has its maximum, else wrap a protocol."""
        host = getattr(addr, "host", addr)
        count = self.peerConnections.get(host, 0)
        if count >= self.maxConnectionsPerPeer:
            return None
        wrapper = WrappingFactory.buildProtocol(self, addr)
        if wrapper is not None:
            self.peerConnections[host] = count + 1
            wrapper._peer_host = host
        return wrapper

    def unregisterProtocol(self, p: Any) -> None:
        """Count one connection fewer for its host."""
        WrappingFactory.unregisterProtocol(self, p)
        host = p.__dict__.get("_peer_host")
        left = self.peerConnections.get(host, 0) - 1
        if left > 0:
            self.peerConnections[host] = left
        else:
            self.peerConnections.pop(host, None)


class LimitTotalConnectionsFactory(ServerFactory):
    """Caps simultaneous connections at :attr:`connectionLimit`.

    Beyond the limit a connection gets :attr:`overflowProtocol` (to say "busy", say), or is
    closed at once when that is None. Each protocol is wrapped in a
    :class:`ProtocolWrapper` to count its end.

    Attributes:
        connectionLimit: The cap (None: no limit).
        connectionCount: Connections open now.
        overflowProtocol: Protocol class for connections beyond the cap, or None.
    """

    connectionCount: int = 0
    connectionLimit: int | None = None
    overflowProtocol: Callable[[], Any] | None = None

    def buildProtocol(self, addr: Any) -> Any:
        """Build :attr:`protocol` (or the overflow protocol past the cap), wrapped."""
        if self.connectionLimit is None or self.connectionCount < self.connectionLimit:
            assert self.protocol is not None, f"{self!r}.protocol is not set"
            wrapped = self.protocol()
        elif self.overflowProtocol is None:
            return None
        else:
            wrapped = self.overflowProtocol()
        wrapped.factory = self
        wrapper = ProtocolWrapper(self, wrapped)
        self.connectionCount += 1
        return wrapper

    def registerProtocol(self, p: Any) -> None:
        """Nothing to do: counted when built."""

    def unregisterProtocol(self, p: Any) -> None:
        """Count one connection fewer."""
        self.connectionCount -= 1


class TimeoutProtocol(ProtocolWrapper):
    """A wrapper that closes the connection after ``timeoutPeriod`` seconds without any
    data read or written.

    Args:
        factory: A :class:`TimeoutFactory` (its ``callLater`` schedules the timeout).
        wrappedProtocol: The real protocol.
        timeoutPeriod: Seconds of idleness allowed; None for no timeout.
    """

    def __init__(self, factory: Any, wrappedProtocol: Any, timeoutPeriod: float | None) -> None:
        ProtocolWrapper.__init__(self, factory, wrappedProtocol)
        self.timeoutCall: Any = None
        self.timeoutPeriod: float | None = None
        self.setTimeout(timeoutPeriod)

    def setTimeout(self, timeoutPeriod: float | None = None) -> None:
        """Cancel the current timeout and, unless ``timeoutPeriod`` is None, start a new one."""
        self.cancelTimeout()
        self.timeoutPeriod = timeoutPeriod
        if timeoutPeriod is not None:
            self.timeoutCall = self.factory.callLater(timeoutPeriod, self.timeoutFunc)

    def cancelTimeout(self) -> None:
        """Cancel the timeout, if any (also when it has fired already)."""
        self.timeoutPeriod = None
        if self.timeoutCall:
            with contextlib.suppress(error.AlreadyCalled, error.AlreadyCancelled):
                self.timeoutCall.cancel()
            self.timeoutCall = None

    def resetTimeout(self) -> None:
        """Start the idle period over (there was activity); nothing once it has expired."""
        call = self.timeoutCall
        if call is not None and call.active():
            call.reset(self.timeoutPeriod)

    def write(self, data: bytes) -> None:
        """Reset the timeout and write."""
        self.resetTimeout()
        ProtocolWrapper.write(self, data)

    def writeSequence(self, seq: Any) -> None:
        """Reset the timeout and write."""
        self.resetTimeout()
        ProtocolWrapper.writeSequence(self, seq)

    def dataReceived(self, data: bytes) -> None:
        """Reset the timeout and pass ``data`` on."""
        self.resetTimeout()
        ProtocolWrapper.dataReceived(self, data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Cancel the timeout and pass the end on."""
        self.cancelTimeout()
        ProtocolWrapper.connectionLost(self, reason)

    def timeoutFunc(self) -> None:
        """The connection was idle too long: close it (override to do otherwise)."""
        self.loseConnection()


class TimeoutFactory(WrappingFactory):
    """Wraps each protocol in a :class:`TimeoutProtocol`.

    Args:
        wrappedFactory: The factory building the real protocols.
        timeoutPeriod: Seconds of idleness allowed (30 minutes by default).
    """

    protocol = TimeoutProtocol

    def __init__(self, wrappedFactory: Any, timeoutPeriod: float = 30 * 60) -> None:
        self.timeoutPeriod = timeoutPeriod
        WrappingFactory.__init__(self, wrappedFactory)

    def buildProtocol(self, addr: Any) -> Any:
        """Wrap the wrapped factory's protocol with this factory's timeout."""
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            return None
        return self.protocol(self, wrapped, timeoutPeriod=self.timeoutPeriod)

    def callLater(self, period: float, func: Callable[[], Any]) -> Any:
        """Schedule ``func`` on the reactor (tests replace this with a Clock's)."""
        return _reactor_call_later(period, func)


class TimeoutMixin:
    """Gives a protocol one idle timeout: after :attr:`timeOut` seconds without
    :meth:`resetTimeout`, :meth:`timeoutConnection` closes the connection.

    Call :meth:`setTimeout` (in ``connectionMade``) to start it and :meth:`resetTimeout`
    when the peer shows signs of life; ``setTimeout(None)`` (in ``connectionLost``) stops
    it. Tests assign a :class:`~treadle.internet.task.Clock`'s ``callLater`` to the
    :attr:`callLater` attribute.

    Attributes:
        timeOut: The current period in seconds, or None.
    """

    timeOut: float | None = None
    __timeoutCall: Any = None
    transport: Any

    def callLater(self, period: float, func: Callable[[], Any]) -> Any:
        """Schedule ``func`` in ``period`` seconds on the reactor."""
        return _reactor_call_later(period, func)

    def resetTimeout(self) -> None:
        """Start the period over; nothing happens when no timeout is pending."""
        if self.__timeoutCall is not None and self.timeOut is not None:
            self.__timeoutCall.reset(self.timeOut)

    def setTimeout(self, period: float | None) -> float | None:
        """Set the period (restarting it), or stop the timeout with None.

        Args:
            period: Seconds, or None for no timeout.

        Returns:
            The previous period.
        """
        previous = self.timeOut
        self.timeOut = period
        if self.__timeoutCall is not None:
            if period is None:
                with contextlib.suppress(error.AlreadyCancelled, error.AlreadyCalled):
                    self.__timeoutCall.cancel()
                self.__timeoutCall = None
            else:
                self.__timeoutCall.reset(period)
        elif period is not None:
            self.__timeoutCall = self.callLater(period, self.__timedOut)
        return previous

    def __timedOut(self) -> None:
        self.__timeoutCall = None
        self.timeoutConnection()

    def timeoutConnection(self) -> None:
        """The timeout expired: close the connection (``loseConnection``, as Twisted; it
        flushes first). Override to do otherwise."""
        self.transport.loseConnection()
