"""The fake reactors of :mod:`treadle.internet.testing`: they record calls, touch no network.

Kept apart from the transports and protocols only for size; import them from
:mod:`treadle.internet.testing`.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from zope.interface import implementer

from treadle.internet.address import IPv4Address, IPv6Address, UNIXAddress
from treadle.internet.error import UnsupportedAddressFamily
from treadle.internet.interfaces import (
    IConnector,
    IHostnameResolver,
    IHostResolution,
    IListeningPort,
    IReactorCore,
    IReactorFDSet,
    IReactorPluggableNameResolver,
    IReactorSocket,
    IReactorSSL,
    IReactorTCP,
    IReactorUNIX,
)
from treadle.internet.task import Clock

__all__ = [
    "MemoryReactor",
    "MemoryReactorClock",
    "RaisingMemoryReactor",
    "SynchronousResolver",
    "_FakeConnector",
    "_FakePort",
]


def _is_ipv6(host: str) -> bool:
    """Whether ``host`` is an IPv6 literal (a ``%scope`` suffix allowed)."""
    if ":" not in host:
        return False
    try:
        socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
    except (OSError, ValueError):
        return False
    return True


@implementer(IListeningPort)
class _FakePort:
    """A listening port that listens nowhere; :meth:`getHost` returns the address given."""

    def __init__(self, hostAddress: Any) -> None:
        self._hostAddress = hostAddress

    def startListening(self) -> None:
        """Do nothing."""

    def stopListening(self) -> None:
        """Do nothing."""

    def getHost(self) -> Any:
        """Return the address given."""
        return self._hostAddress


@implementer(IConnector)
class _FakeConnector:
    """A connector that never connects; records :meth:`stopConnecting` and :meth:`disconnect`.

    Attributes:
        stoppedConnecting: True once :meth:`stopConnecting` ran.
    """

    _disconnected = False
    stoppedConnecting = False

    def __init__(self, address: Any) -> None:
        self._address = address

    def stopConnecting(self) -> None:
        """Record the call."""
        self.stoppedConnecting = True

    def disconnect(self) -> None:
        """Record the call."""
        self._disconnected = True

    def connect(self) -> None:
        """Do nothing."""

    def getDestination(self) -> Any:
        """Return the address given."""
        return self._address


@implementer(IHostResolution)
@dataclass
class _SynchronousResolution:
    name: str

    def cancel(self) -> None:
        """Cannot happen: the resolution completed before it was returned."""
        raise RuntimeError("already resolved")


@implementer(IHostnameResolver)
class SynchronousResolver:
    """Resolves every name at once to ``127.0.0.1`` (TCP, the requested port)."""

    def resolveHostName(
        self,
        resolutionReceiver: Any,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Sequence[type] | None = None,
        transportSemantics: str = "TCP",
    ) -> Any:
        """Report ``127.0.0.1:portNumber`` to ``resolutionReceiver`` before returning."""
        resolution = _SynchronousResolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        resolutionReceiver.addressResolved(IPv4Address("TCP", "127.0.0.1", portNumber))
        resolutionReceiver.resolutionComplete()
        return resolution


def _family_address(family: int, kind: Any) -> Any:
    if family == socket.AF_INET:
        return IPv4Address(kind, "0.0.0.0", 1234)
    if family == socket.AF_INET6:
        return IPv6Address(kind, "::", 1234)
    raise UnsupportedAddressFamily(f"unsupported address family {family!r}")


@implementer(
    IReactorCore,
    IReactorTCP,
    IReactorSSL,
    IReactorUNIX,
    IReactorSocket,
    IReactorFDSet,
    IReactorPluggableNameResolver,
)
class MemoryReactor:
    """A reactor that records listen and connect calls; nothing connects.

    ``listen*`` calls return ports that listen nowhere; ``connect*`` calls return connectors
    (after calling the factory's ``startedConnecting``) that never connect. A test then
    takes the factory from the record and connects it by hand, e.g. to a StringTransport.

    Attributes:
        tcpServers: ``(port, factory, backlog, interface)`` per ``listenTCP``.
        tcpClients: ``(host, port, factory, timeout, bindAddress)`` per ``connectTCP``.
        sslServers: ``(port, factory, contextFactory, backlog, interface)`` per ``listenSSL``.
        sslClients: ``(host, port, factory, contextFactory, timeout, bindAddress)``.
        unixServers: ``(address, factory, backlog, mode, wantPID)`` per ``listenUNIX``.
        unixClients: ``(address, factory, timeout, checkPID)`` per ``connectUNIX``.
        adoptedPorts: Arguments of each ``adoptStreamPort``/``adoptDatagramPort``.
        adoptedStreamConnections: Arguments of each ``adoptStreamConnection``.
        connectors: The connectors returned, in order.
        running, hasRun, hasStopped, hasCrashed, hasInstalled: What was done to it.
        whenRunningHooks: ``(callable, args, kwargs)`` waiting for :meth:`run`.
        triggers: ``{phase: {eventType: [(callable, args, kwargs)]}}``.
        readers, writers: Sets of the descriptors added.
    """

    def __init__(self) -> None:
        self.hasInstalled = False
        self.running: bool | None = False
        self.hasRun = False
        self.hasStopped = False
        self.hasCrashed = False
        self.whenRunningHooks: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self.triggers: dict[str, dict[str, list[Any]]] = {}
        self.tcpClients: list[tuple[Any, ...]] = []
        self.tcpServers: list[tuple[Any, ...]] = []
        self.sslClients: list[tuple[Any, ...]] = []
        self.sslServers: list[tuple[Any, ...]] = []
        self.unixClients: list[tuple[Any, ...]] = []
        self.unixServers: list[tuple[Any, ...]] = []
        self.adoptedPorts: list[tuple[Any, ...]] = []
        self.adoptedStreamConnections: list[tuple[Any, ...]] = []
        self.connectors: list[_FakeConnector] = []
        self.readers: set[Any] = set()
        self.writers: set[Any] = set()
        self.nameResolver: Any = SynchronousResolver()

    def installNameResolver(self, resolver: Any) -> Any:
        """Use ``resolver``; return the previous one."""
        previous, self.nameResolver = self.nameResolver, resolver
        return previous

    def install(self) -> None:
        """Record that the reactor was installed."""
        self.hasInstalled = True

    def resolve(self, name: str, timeout: Any = 10) -> Any:
        """Not supported.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError()

    def run(self) -> None:
        """Mark running, call the ``callWhenRunning`` hooks, then stop at once."""
        assert self.running is False, "MemoryReactor.run() called while running"
        self.running = True
        self.hasRun = True
        for f, args, kwargs in self.whenRunningHooks:
            f(*args, **kwargs)
        self.stop()

    def stop(self) -> None:
        """Mark stopped."""
        self.running = False
        self.hasStopped = True

    def crash(self) -> None:
        """Mark crashed (``running`` becomes None)."""
        self.running = None
        self.hasCrashed = True

    def iterate(self, delay: float = 0) -> None:
        """Not supported.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError()

    def fireSystemEvent(self, eventType: str) -> None:
        """Not supported.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError()

    def addSystemEventTrigger(
        self, phase: str, eventType: str, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> None:
        """Record the trigger in :attr:`triggers` (it is never called)."""
        phases = self.triggers.setdefault(phase, {})
        phases.setdefault(eventType, []).append((callable, args, kw))

    def removeSystemEventTrigger(self, triggerID: Any) -> None:
        """Not supported.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError()

    def callWhenRunning(self, callable: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Call at once if :meth:`run` has run, else keep it for :meth:`run`."""
        if self.running or self.hasRun:
            callable(*args, **kw)
            return
        self.whenRunningHooks.append((callable, args, kw))

    def adoptStreamPort(self, fileno: int, addressFamily: int, factory: Any) -> Any:
        """Record the call; return a port on ``0.0.0.0:1234`` or ``[::]:1234``.

        Raises:
            UnsupportedAddressFamily: The family is neither AF_INET nor AF_INET6.
        """
        address = _family_address(addressFamily, "TCP")
        self.adoptedPorts.append((fileno, addressFamily, factory))
        return _FakePort(address)

    def adoptStreamConnection(self, fileDescriptor: int, addressFamily: int, factory: Any) -> None:
        """Record the call."""
        self.adoptedStreamConnections.append((fileDescriptor, addressFamily, factory))

    def adoptDatagramPort(
        self, fileno: int, addressFamily: int, protocol: Any, maxPacketSize: int = 8192
    ) -> Any:
        """Record the call; return a UDP port on ``0.0.0.0:1234`` or ``[::]:1234``.

        Raises:
            UnsupportedAddressFamily: The family is neither AF_INET nor AF_INET6.
        """
        address = _family_address(addressFamily, "UDP")
        self.adoptedPorts.append((fileno, addressFamily, protocol, maxPacketSize))
        return _FakePort(address)

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        """Record the call; return a port whose ``getHost()`` names ``port``."""
        self.tcpServers.append((port, factory, backlog, interface))
        if _is_ipv6(interface):
            return _FakePort(IPv6Address("TCP", interface, port))
        return _FakePort(IPv4Address("TCP", "0.0.0.0", port))

    def _connector(self, factory: Any, address: Any) -> _FakeConnector:
        connector = _FakeConnector(address)
        factory.startedConnecting(connector)
        self.connectors.append(connector)
        return connector

    def connectTCP(
        self, host: str, port: int, factory: Any, timeout: float = 30, bindAddress: Any = None
    ) -> Any:
        """Record the call; return a connector that never connects."""
        self.tcpClients.append((host, port, factory, timeout, bindAddress))
        if _is_ipv6(host):
            return self._connector(factory, IPv6Address("TCP", host, port))
        return self._connector(factory, IPv4Address("TCP", host, port))

    def listenSSL(
        self, port: int, factory: Any, contextFactory: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        """Record the call; return a port on ``0.0.0.0:port``."""
        self.sslServers.append((port, factory, contextFactory, backlog, interface))
        return _FakePort(IPv4Address("TCP", "0.0.0.0", port))

    def connectSSL(
        self,
        host: str,
        port: int,
        factory: Any,
        contextFactory: Any,
        timeout: float = 30,
        bindAddress: Any = None,
    ) -> Any:
        """Record the call; return a connector that never connects."""
        self.sslClients.append((host, port, factory, contextFactory, timeout, bindAddress))
        return self._connector(factory, IPv4Address("TCP", host, port))

    def listenUNIX(
        self, address: str, factory: Any, backlog: int = 50, mode: int = 0o666, wantPID: int = 0
    ) -> Any:
        """Record the call; return a port on the path."""
        self.unixServers.append((address, factory, backlog, mode, wantPID))
        return _FakePort(UNIXAddress(address))

    def connectUNIX(
        self, address: str, factory: Any, timeout: float = 30, checkPID: int = 0
    ) -> Any:
        """Record the call; return a connector that never connects."""
        self.unixClients.append((address, factory, timeout, checkPID))
        return self._connector(factory, UNIXAddress(address))

    def addReader(self, reader: Any) -> None:
        """Add ``reader`` to :attr:`readers`."""
        self.readers.add(reader)

    def removeReader(self, reader: Any) -> None:
        """Remove ``reader`` from :attr:`readers`, if there."""
        self.readers.discard(reader)

    def addWriter(self, writer: Any) -> None:
        """Add ``writer`` to :attr:`writers`."""
        self.writers.add(writer)

    def removeWriter(self, writer: Any) -> None:
        """Remove ``writer`` from :attr:`writers`, if there."""
        self.writers.discard(writer)

    def getReaders(self) -> list[Any]:
        """Return the readers."""
        return list(self.readers)

    def getWriters(self) -> list[Any]:
        """Return the writers."""
        return list(self.writers)

    def removeAll(self) -> list[Any]:
        """Remove every reader and writer; return them."""
        removed = list(self.readers | self.writers)
        self.readers.clear()
        self.writers.clear()
        return removed


class MemoryReactorClock(MemoryReactor, Clock):
    """A :class:`MemoryReactor` that is also a :class:`Clock` (``callLater``, ``advance``)."""

    def __init__(self) -> None:
        MemoryReactor.__init__(self)
        Clock.__init__(self)


@implementer(IReactorTCP, IReactorSSL, IReactorUNIX, IReactorSocket, IReactorPluggableNameResolver)
class RaisingMemoryReactor:
    """A reactor whose ``listen*``/``adoptStreamPort`` raise one exception and whose
    ``connect*``/``adoptDatagramPort``/``adoptStreamConnection`` raise another.

    Args:
        listenException: Raised by the listening methods.
        connectException: Raised by the connecting methods.
    """

    def __init__(
        self,
        listenException: BaseException | None = None,
        connectException: BaseException | None = None,
    ) -> None:
        self._listenException = listenException
        self._connectException = connectException
        self.nameResolver: Any = SynchronousResolver()

    def _fail_listen(self) -> Any:
        raise self._listenException or RuntimeError("listen refused by RaisingMemoryReactor")

    def _fail_connect(self) -> Any:
        raise self._connectException or RuntimeError("connect refused by RaisingMemoryReactor")

    def installNameResolver(self, nameResolver: Any) -> Any:
        """Use ``nameResolver``; return the previous one."""
        previous, self.nameResolver = self.nameResolver, nameResolver
        return previous

    def adoptStreamPort(self, fileno: int, addressFamily: int, factory: Any) -> Any:
        """Raise the listen exception."""
        return self._fail_listen()

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        """Raise the listen exception."""
        return self._fail_listen()

    def connectTCP(
        self, host: str, port: int, factory: Any, timeout: float = 30, bindAddress: Any = None
    ) -> Any:
        """Raise the connect exception."""
        return self._fail_connect()

    def listenSSL(
        self, port: int, factory: Any, contextFactory: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        """Raise the listen exception."""
        return self._fail_listen()

    def connectSSL(
        self,
        host: str,
        port: int,
        factory: Any,
        contextFactory: Any,
        timeout: float = 30,
        bindAddress: Any = None,
    ) -> Any:
        """Raise the connect exception."""
        return self._fail_connect()

    def listenUNIX(
        self, address: str, factory: Any, backlog: int = 50, mode: int = 0o666, wantPID: int = 0
    ) -> Any:
        """Raise the listen exception."""
        return self._fail_listen()

    def connectUNIX(
        self, address: str, factory: Any, timeout: float = 30, checkPID: int = 0
    ) -> Any:
        """Raise the connect exception."""
        return self._fail_connect()

    def adoptDatagramPort(
        self, fileDescriptor: int, addressFamily: int, protocol: Any, maxPacketSize: int
    ) -> Any:
        """Raise the connect exception (as Twisted's does)."""
        return self._fail_connect()

    def adoptStreamConnection(self, fileDescriptor: int, addressFamily: int, factory: Any) -> None:
        """Raise the connect exception."""
        self._fail_connect()
