"""How a client endpoint turns a factory's connection into a Deferred, and how
``HostnameEndpoint`` races its addresses.

:class:`WrappingFactory` stands between the reactor's connector and the user's factory: it
builds the user's protocol inside a :class:`WrappingProtocol`, which connects it and fires the
Deferred (with the user's protocol) once its ``connectionMade`` has run; a failed attempt fails
the Deferred with the connector's reason; cancelling the Deferred stops the attempt and fails it
with :class:`~treadle.internet.error.ConnectingCancelledError`. This is Twisted's design, and
``transport.protocol`` is the wrapper as there.

:class:`AddressRace` is Happy Eyeballs (RFC 8305) as Twisted's ``HostnameEndpoint`` does it:
one attempt per resolved address, in the resolver's order, a new one every ``attemptDelay``
seconds while none has succeeded; the first connection wins and the others are cancelled.
Unlike Twisted, an attempt that fails starts the next one at once (RFC 8305, section 5)
rather than when the delay runs out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from zope.interface import directlyProvides

from treadle.internet import error
from treadle.internet.defer import Deferred
from treadle.internet.interfaces import (
    IFileDescriptorReceiver,
    IHalfCloseableProtocol,
    IHandshakeListener,
    ILoggingContext,
)
from treadle.internet.protocol import ClientFactory, Protocol, connectionDone
from treadle.python.failure import Failure

__all__ = ["AddressRace", "WrappingFactory", "WrappingProtocol"]


class WrappingProtocol(Protocol):
    """Connects the user's protocol, then fires the connection Deferred with it.

    Args:
        connected: Fired with ``wrapped`` once its ``connectionMade`` has run.
        wrapped: The user's protocol; every event is handed on to it.
    """

    def __init__(self, connected: Deferred[Any], wrapped: Any) -> None:
        self._connectedDeferred = connected
        self._wrappedProtocol = wrapped
        for interface in (IHalfCloseableProtocol, IFileDescriptorReceiver, IHandshakeListener):
            if interface.providedBy(wrapped):
                directlyProvides(self, interface)

    def logPrefix(self) -> str:
        """Return the wrapped protocol's log prefix (or its class name)."""
        if ILoggingContext.providedBy(self._wrappedProtocol):
            return str(self._wrappedProtocol.logPrefix())
        return str(self._wrappedProtocol.__class__.__name__)

    def connectionMade(self) -> None:
        """Connect the wrapped protocol to this transport, then fire the Deferred."""
        self._wrappedProtocol.makeConnection(self.transport)
        if not self._connectedDeferred.called:
            self._connectedDeferred.callback(self._wrappedProtocol)

    def dataReceived(self, data: bytes) -> None:
        """Hand ``data`` to the wrapped protocol."""
        self._wrappedProtocol.dataReceived(data)

    def fileDescriptorReceived(self, descriptor: int) -> None:
        """Hand a received descriptor to the wrapped protocol."""
        self._wrappedProtocol.fileDescriptorReceived(descriptor)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Tell the wrapped protocol that the connection ended."""
        self._wrappedProtocol.connectionLost(reason)

    def readConnectionLost(self) -> None:
        """Tell a half-closeable wrapped protocol that the peer stopped sending."""
        self._wrappedProtocol.readConnectionLost()

    def writeConnectionLost(self) -> None:
        """Tell a half-closeable wrapped protocol that its writing side closed."""
        self._wrappedProtocol.writeConnectionLost()

    def handshakeCompleted(self) -> None:
        """Tell a handshake listener that the TLS handshake completed."""
        self._wrappedProtocol.handshakeCompleted()


class WrappingFactory(ClientFactory):
    """The factory a client endpoint gives the reactor for one attempt.

    Args:
        wrapped: The user's factory.

    Attributes:
        onConnection: Fires with the user's connected protocol, or fails with the reason the
            attempt failed; cancelling it stops the attempt.
    """

    def __init__(self, wrapped: Any) -> None:
        self._wrappedFactory = wrapped
        self._connector: Any = None
        self.onConnection: Deferred[Any] = Deferred(self._cancel)

    def remember(self, connector: Any) -> None:
        """Note the connector of the attempt (in case ``startedConnecting`` was not called)."""
        if self._connector is None:
            self._connector = connector

    def startedConnecting(self, connector: Any) -> None:
        """Remember the connector, to stop it if the Deferred is cancelled."""
        self._connector = connector

    def _cancel(self, deferred: Deferred[Any]) -> None:
        connector = self._connector
        if connector is None:
            deferred.errback(error.ConnectingCancelledError(None))
            return
        deferred.errback(error.ConnectingCancelledError(connector.getDestination()))
        with contextlib.suppress(error.NotConnectingError):
            connector.stopConnecting()

    def doStart(self) -> None:
        """Pass the start on to the user's factory."""
        self._wrappedFactory.doStart()

    def doStop(self) -> None:
        """Pass the stop on to the user's factory."""
        self._wrappedFactory.doStop()

    def buildProtocol(self, addr: Any) -> WrappingProtocol | None:
        """Build the user's protocol, wrapped; a refusal or an error fails the Deferred.

        Returns:
            The wrapper, or None when the user's factory raised or returned None (the
            Deferred then fails with that error, or with
            :class:`~treadle.internet.error.NoProtocol`).
        """
        try:
            protocol = self._wrappedFactory.buildProtocol(addr)
            if protocol is None:
                raise error.NoProtocol()
        except Exception:
            if not self.onConnection.called:
                self.onConnection.errback()
            return None
        return WrappingProtocol(self.onConnection, protocol)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        """Fail the Deferred with ``reason`` (unless it was cancelled already)."""
        if not self.onConnection.called:
            self.onConnection.errback(reason)


class AddressRace:
    """Connects to one address after another until one connection is made.

    Args:
        attempts: Yields a function per address; each starts an attempt with the factory
            and returns its Deferred.
        call_later: The reactor's ``callLater``.
        delay: Seconds between the starts of two attempts.
        winner: Fired with the first connected protocol, or failed with the last failure
            once every attempt failed.
    """

    def __init__(
        self,
        attempts: Iterator[Callable[[], Deferred[Any]]],
        call_later: Callable[..., Any],
        delay: float,
        winner: Deferred[Any],
    ) -> None:
        self._attempts = attempts
        self._call_later = call_later
        self._delay = delay
        self._winner = winner
        self._pending: list[Deferred[Any]] = []
        self._failures: list[Failure] = []
        self._next_call: Any = None
        self._exhausted = False
        self.finished = False

    def start(self) -> None:
        """Start the first attempt."""
        self._start_next()

    def _start_next(self) -> None:
        self._next_call = None
        if self.finished:
            return
        attempt = next(self._attempts, None)
        if attempt is None:
            self._exhausted = True
            self._check_lost()
            return
        deferred = attempt()
        self._pending.append(deferred)
        if not self.finished:
            self._next_call = self._call_later(self._delay, self._start_next)
        deferred.addCallbacks(self._won, self._lost, (deferred,), None, (deferred,), None)

    def _won(self, protocol: Any, deferred: Deferred[Any]) -> None:
        # Only a pending attempt can connect: the others were cancelled (failed) already.
        self._pending.remove(deferred)
        self.finished = True
        self._stop_others()
        self._winner.callback(protocol)

    def _lost(self, reason: Failure, deferred: Deferred[Any]) -> None:
        self._pending.remove(deferred)
        if self.finished:
            return  # cancelled by the race's end
        self._failures.append(reason)
        if self._next_call is not None:
            # Nothing to wait for: the next address is tried at once.
            self._next_call.cancel()
            self._start_next()
        else:
            self._check_lost()

    def _check_lost(self) -> None:
        if self._pending or not self._exhausted or self.finished:
            return
        self.finished = True
        self._winner.errback(self._failures[-1])

    def _stop_others(self) -> None:
        if self._next_call is not None:
            self._next_call.cancel()
            self._next_call = None
        for other in list(self._pending):
            other.cancel()

    def cancel(self) -> None:
        """Stop every attempt (the winner's canceller fails the winner itself)."""
        self.finished = True
        self._stop_others()
