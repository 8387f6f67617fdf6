"""Test doubles for Twisted-style protocols: a string transport, a memory reactor, a clock.

``twisted.internet.testing`` (and the older ``twisted.test.proto_helpers``) port to this
module. Connect a protocol to a :class:`StringTransport`, feed it bytes with
``dataReceived`` and read what it wrote with ``value()``; hand code that listens or connects
a :class:`MemoryReactor`, which records the calls instead of touching the network; drive time
with :class:`Clock` (or :class:`MemoryReactorClock`, both at once). To check what code logs,
observe :data:`treadle.logger.globalLogPublisher` with an :class:`EventLoggingObserver`.

These follow Twisted's transport contract (``write``, ``loseConnection``, ``getPeer``,
producers). :class:`treadle.web.testing.StringTransport` is a different double: it stands in
for the *asyncio* transport under treadle's HTTP channel.

The fake reactors are defined in a private module (for size) and re-exported here.

Differences from Twisted: a :class:`RaisingMemoryReactor` given no exception raises
``RuntimeError`` (Twisted's raises ``TypeError`` from ``raise None``); ``adoptStreamPort`` and
``adoptDatagramPort`` refuse an unknown address family with ``ValueError`` (treadle has no
``UnsupportedAddressFamily`` yet). Not provided: ``LineSendingProtocol`` (it is built on
``treadle.protocols.basic``, a layer above this one).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from io import BytesIO
from typing import Any, Protocol, overload

from zope.interface import implementer

from treadle.internet import error, protocol
from treadle.internet._memoryreactor import (
    MemoryReactor,
    MemoryReactorClock,
    RaisingMemoryReactor,
    SynchronousResolver,
    _FakeConnector,
    _FakePort,
)
from treadle.internet.address import IPv4Address
from treadle.internet.defer import Deferred
from treadle.internet.interfaces import IConsumer, IPushProducer, ITransport, IUDPTransport
from treadle.internet.task import Clock, LoopingCall
from treadle.logger import ILogObserver, LogEvent
from treadle.python.failure import Failure

__all__ = [
    "AccumulatingProtocol",
    "Clock",
    "EventLoggingObserver",
    "FakeDatagramTransport",
    "MemoryReactor",
    "MemoryReactorClock",
    "NonStreamingProducer",
    "RaisingMemoryReactor",
    "StringIOWithoutClosing",
    "StringTransport",
    "StringTransportWithDisconnection",
    "SynchronousResolver",
    "_FakeConnector",
    "_FakePort",
    "waitUntilAllDisconnected",
]


class AccumulatingProtocol(protocol.Protocol):
    """A protocol that keeps what it receives and tells when it connects and disconnects.

    If its factory has a ``protocolConnectionMade`` Deferred, ``connectionMade`` fires it with
    the protocol (once, then sets it to None).

    Attributes:
        made: 1 once ``connectionMade`` ran.
        data: Every byte received so far.
        closed: 1 once ``connectionLost`` ran.
        closedReason: The Failure ``connectionLost`` was given.
        closedDeferred: Set it to a Deferred to have it fired (with None) on
            ``connectionLost``.
    """

    made: int = 0
    closed: int = 0
    closedReason: Failure | None = None
    closedDeferred: Deferred[None] | None = None
    data: bytes = b""

    def connectionMade(self) -> None:
        """Record the connection and fire the factory's ``protocolConnectionMade``."""
        self.made = 1
        factory = self.factory
        waiting = getattr(factory, "protocolConnectionMade", None)
        if waiting is not None:
            factory.protocolConnectionMade = None
            waiting.callback(self)

    def dataReceived(self, data: bytes) -> None:
        """Append ``data`` to :attr:`data`."""
        self.data += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Record the end and fire :attr:`closedDeferred`."""
        self.closed = 1
        self.closedReason = reason
        deferred, self.closedDeferred = self.closedDeferred, None
        if deferred is not None:
            deferred.callback(None)


@implementer(IUDPTransport)
class FakeDatagramTransport:
    """Records datagrams written (only ``write``; the rest of the interface is missing).

    Attributes:
        written: ``(packet, addr)`` pairs, in order.
    """

    noAddr = object()

    def __init__(self) -> None:
        self.written: list[tuple[bytes, Any]] = []

    def write(self, packet: bytes, addr: Any = noAddr) -> None:
        """Record ``packet`` sent to ``addr``."""
        self.written.append((packet, addr))


@implementer(ITransport, IConsumer, IPushProducer)
class StringTransport:
    """A transport that keeps what is written and records what is asked of it; no I/O.

    Args:
        hostAddress: What :meth:`getHost` returns (``IPv4Address("TCP", "10.0.0.1",
            12345)`` when None).
        peerAddress: What :meth:`getPeer` returns (``IPv4Address("TCP", "192.168.1.1",
            54321)`` when None).
        lenient: Allow pausing and resuming after ``loseConnection`` (refused by default,
            so code that expects data after closing is caught).

    Attributes:
        disconnecting: True once :meth:`loseConnection` (or :meth:`abortConnection`) ran.
        disconnected: True once :meth:`abortConnection` ran.
        connected: True (a test may set it; ``StringTransportWithDisconnection`` clears it).
        producer: The registered producer, or None.
        streaming: Whether it is a push producer (None when none is registered).
        producerState: This transport as a producer: ``"producing"``, ``"paused"`` or
            ``"stopped"``.
        io: The written bytes since the last :meth:`clear` (read them with :meth:`value`).
    """

    disconnecting: bool = False
    disconnected: bool = False
    producer: Any = None
    streaming: bool | None = None
    hostAddr: Any = None
    peerAddr: Any = None
    producerState: str = "producing"

    def __init__(
        self, hostAddress: Any = None, peerAddress: Any = None, lenient: bool = False
    ) -> None:
        self.clear()
        if hostAddress is not None:
            self.hostAddr = hostAddress
        if peerAddress is not None:
            self.peerAddr = peerAddress
        self.connected = True
        self._lenient = lenient

    def clear(self) -> None:
        """Forget what was written so far (a test helper, not a transport method)."""
        self.io = BytesIO()

    def value(self) -> bytes:
        """Return everything written since the last :meth:`clear` (a test helper)."""
        return self.io.getvalue()

    def write(self, data: bytes) -> None:
        """Keep ``data``; writing after ``loseConnection`` is allowed, as in Twisted.

        Raises:
            TypeError: ``data`` is not ``bytes`` (a ``str`` is the usual mistake).
        """
        if not isinstance(data, bytes):
            raise TypeError(f"Data must be bytes, not {type(data).__name__}")
        self.io.write(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        """Keep the concatenation of ``data``.

        Raises:
            TypeError: An item is a ``str``.
        """
        self.io.write(b"".join(data))

    def loseConnection(self) -> None:
        """Set :attr:`disconnecting`; nothing else happens (no ``connectionLost``)."""
        self.disconnecting = True

    def abortConnection(self) -> None:
        """Set :attr:`disconnected` and :attr:`disconnecting`."""
        self.disconnected = True
        self.loseConnection()

    def getPeer(self) -> Any:
        """Return the peer address given, or ``IPv4Address("TCP", "192.168.1.1", 54321)``."""
        if self.peerAddr is None:
            return IPv4Address("TCP", "192.168.1.1", 54321)
        return self.peerAddr

    def getHost(self) -> Any:
        """Return the host address given, or ``IPv4Address("TCP", "10.0.0.1", 12345)``."""
        if self.hostAddr is None:
            return IPv4Address("TCP", "10.0.0.1", 12345)
        return self.hostAddr

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Record ``producer`` (nothing ever asks it for data).

        Raises:
            RuntimeError: A producer is already registered.
        """
        if self.producer is not None:
            raise RuntimeError("Cannot register two producers")
        self.producer = producer
        self.streaming = streaming

    def unregisterProducer(self) -> None:
        """Forget the producer.

        Raises:
            RuntimeError: None is registered.
        """
        if self.producer is None:
            raise RuntimeError("Cannot unregister a producer unless one is registered")
        self.producer = None
        self.streaming = None

    def _checkState(self) -> None:
        if self.disconnecting and not self._lenient:
            raise RuntimeError("Cannot resume producing after loseConnection")
        if self.producerState == "stopped":
            raise RuntimeError("Cannot resume a stopped producer")

    def pauseProducing(self) -> None:
        """Record that the protocol paused reading.

        Raises:
            RuntimeError: After ``loseConnection`` (unless lenient) or ``stopProducing``.
        """
        self._checkState()
        self.producerState = "paused"

    def stopProducing(self) -> None:
        """Record that reading stopped for good."""
        self.producerState = "stopped"

    def resumeProducing(self) -> None:
        """Record that reading resumed (raises as :meth:`pauseProducing`)."""
        self._checkState()
        self.producerState = "producing"


class StringTransportWithDisconnection(StringTransport):
    """A :class:`StringTransport` whose ``loseConnection`` calls the protocol's
    ``connectionLost`` (with ``ConnectionDone``), once.

    As in Twisted, it clears :attr:`connected` but leaves ``disconnecting`` False.

    Attributes:
        protocol: The protocol to tell; the test sets it.
    """

    protocol: Any

    def loseConnection(self) -> None:
        """Disconnect: call ``protocol.connectionLost`` the first time."""
        if self.connected:
            self.connected = False
            self.protocol.connectionLost(Failure(error.ConnectionDone("Bye.")))


class StringIOWithoutClosing(BytesIO):
    """A ``BytesIO`` whose ``close`` does nothing, so it can be read after a protocol closed it."""

    def close(self) -> None:
        """Do nothing."""


class NonStreamingProducer:
    """A pull producer that writes ``b"0"`` to ``b"9"``, one per ``resumeProducing``, then
    unregisters and fires :attr:`result`.

    Attributes:
        counter: How many writes were made.
        stopped: True once :meth:`stopProducing` ran.
        result: A Deferred fired (with None) when done or stopped.
    """

    counter = 0
    stopped = False

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.result: Deferred[None] = Deferred()

    def resumeProducing(self) -> None:
        """Write the next number.

        Raises:
            RuntimeError: Asked again after finishing or stopping.
        """
        if self.consumer is None or self.counter >= 10:
            raise RuntimeError("BUG: resume after unregister/stop.")
        self.consumer.write(b"%d" % (self.counter,))
        self.counter += 1
        if self.counter == 10:
            self.consumer.unregisterProducer()
            self._done()

    def pauseProducing(self) -> None:
        """Never valid for a pull producer.

        Raises:
            RuntimeError: Always.
        """
        raise RuntimeError("BUG: pause should never be called.")

    def _done(self) -> None:
        self.consumer = None
        result = self.result
        del self.result
        result.callback(None)

    def stopProducing(self) -> None:
        """Stop, and fire :attr:`result`."""
        self.stopped = True
        self._done()


def waitUntilAllDisconnected(reactor: Any, protocols: Sequence[Any]) -> Deferred[Any]:
    """Return a Deferred that fires once no protocol's transport is ``connected``.

    Checks every 10 ms on ``reactor`` (a reactor or a :class:`Clock`).
    """

    def check() -> None:
        if not any(p.transport.connected for p in protocols):
            loop.stop()

    loop = LoopingCall(check)
    loop.clock = reactor
    return loop.start(0.01, now=True)


class _CleansUp(Protocol):
    """What :meth:`EventLoggingObserver.createWithCleanup` needs of a test case."""

    def addCleanup(self, function: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Run ``function`` when the test ends."""


class _Publisher(Protocol):
    """What :meth:`EventLoggingObserver.createWithCleanup` needs of a publisher."""

    def addObserver(self, observer: Any) -> None:
        """Start giving events to ``observer``."""

    def removeObserver(self, observer: Any) -> None:
        """Stop giving events to ``observer``."""


@implementer(ILogObserver)
class EventLoggingObserver(Sequence[LogEvent]):
    """A log observer that keeps every event it is given, for a test to inspect.

    It is a read-only sequence of the events, oldest first: ``len(observer)``,
    ``observer[0]["log_failure"]``, ``for event in observer``. Unlike
    :class:`~treadle.logger.LimitedHistoryLogObserver` it keeps them all.

    Usage in a test::

        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        code_under_test()
        [event] = events
        self.assertIsInstance(event["log_failure"].value, ValueError)
    """

    def __init__(self) -> None:
        self._events: list[LogEvent] = []

    def __call__(self, event: LogEvent) -> None:
        """Keep ``event``."""
        self._events.append(event)

    def __len__(self) -> int:
        """Return how many events were observed."""
        return len(self._events)

    @overload
    def __getitem__(self, index: int) -> LogEvent: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[LogEvent]: ...

    def __getitem__(self, index: int | slice) -> LogEvent | Sequence[LogEvent]:
        """Return the event (or a list of the events) at ``index``."""
        return self._events[index]

    def __iter__(self) -> Iterator[LogEvent]:
        """Iterate over the events, oldest first."""
        return iter(self._events)

    @classmethod
    def createWithCleanup(
        cls, testInstance: _CleansUp, publisher: _Publisher
    ) -> EventLoggingObserver:
        """Return a new observer added to ``publisher`` until ``testInstance`` ends.

        Args:
            testInstance: The running test; the observer is removed from ``publisher`` by
                its ``addCleanup`` (trial's and :mod:`unittest`'s test cases have one).
            publisher: What to observe, usually
                :data:`~treadle.logger.globalLogPublisher`.

        Returns:
            The observer, already observing.
        """
        observer = cls()
        publisher.addObserver(observer)
        testInstance.addCleanup(publisher.removeObserver, observer)
        return observer
