"""Client endpoints: ``connect(factory)`` gives a Deferred of the connected protocol.

Re-exported by :mod:`treadle.internet.endpoints`, where their documentation lives: the
classes connect through the reactor's ``connectTCP``/``connectSSL``/``connectUNIX`` with a
:class:`~treadle.internet._wrapping.WrappingFactory`, and ``HostnameEndpoint`` races the
addresses a name resolves to with an :class:`~treadle.internet._wrapping.AddressRace`.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Callable, Iterator
from typing import Any

from zope.interface import implementer

from treadle.internet import error
from treadle.internet._wrapping import AddressRace, WrappingFactory
from treadle.internet.address import HostnameAddress
from treadle.internet.defer import Deferred, fail
from treadle.internet.interfaces import IStreamClientEndpoint
from treadle.internet.protocol import Factory, Protocol, connectionDone
from treadle.python.failure import Failure

__all__ = [
    "HostnameEndpoint",
    "SSL4ClientEndpoint",
    "TCP4ClientEndpoint",
    "TCP6ClientEndpoint",
    "UNIXClientEndpoint",
    "connectProtocol",
    "wrapClientTLS",
]


def _bind_address(bindAddress: Any) -> tuple[str, int] | None:
    """Twisted takes a local address as ``"host"``, ``b"host"`` or ``(host, port)``."""
    if bindAddress is None:
        return None
    if isinstance(bindAddress, str | bytes):
        bindAddress = (bindAddress, 0)
    host, port = bindAddress
    return (host.decode() if isinstance(host, bytes) else host, int(port))


def _connect(start: Callable[[WrappingFactory], Any], protocolFactory: Any) -> Deferred[Any]:
    """Start a reactor ``connect*`` call with a wrapping factory; return its Deferred."""
    try:
        wrapping = WrappingFactory(protocolFactory)
        wrapping.remember(start(wrapping))
    except Exception:
        return fail()
    return wrapping.onConnection


@implementer(IStreamClientEndpoint)
class TCP4ClientEndpoint:
    """A TCP client endpoint; ``host`` is an IPv4 address or a name the reactor resolves.

    Args:
        reactor: The reactor (``connectTCP``).
        host: Where to connect.
        port: Its port.
        timeout: Seconds the attempt may take before it fails with ``TimeoutError``.
        bindAddress: Local address to bind: ``"host"`` or ``(host, port)``; None for any.
    """

    def __init__(
        self, reactor: Any, host: str, port: int, timeout: float = 30, bindAddress: Any = None
    ) -> None:
        self._reactor = reactor
        self._host = host
        self._port = port
        self._timeout = timeout
        self._bindAddress = _bind_address(bindAddress)

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """Connect, and build a protocol with ``protocolFactory``.

        Returns:
            A Deferred firing with the connected protocol (its ``connectionMade`` has run),
            or failing with the reason; cancel it to give up the attempt.
        """
        return _connect(
            lambda wrapping: self._reactor.connectTCP(
                self._host,
                self._port,
                wrapping,
                timeout=self._timeout,
                bindAddress=self._bindAddress,
            ),
            protocolFactory,
        )


def _loop_of(reactor: Any) -> asyncio.AbstractEventLoop:
    """The loop name lookups run on: the reactor's, or treadle's for a reactor without one
    (a test double, say)."""
    loop = getattr(reactor, "loop", None)
    if isinstance(loop, asyncio.AbstractEventLoop):
        return loop
    from treadle.internet import reactor as default

    default_loop: asyncio.AbstractEventLoop = default.loop
    return default_loop


def _resolve(reactor: Any, host: str, port: int, family: int) -> Deferred[list[Any]]:
    """Look ``host`` up (in the loop's resolver thread): the ``getaddrinfo`` list, empty
    when the name does not resolve."""
    loop = _loop_of(reactor)

    async def lookup() -> list[Any]:
        try:
            return await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            return []

    return Deferred.fromFuture(asyncio.ensure_future(lookup(), loop=loop))


def _is_ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False


@implementer(IStreamClientEndpoint)
class TCP6ClientEndpoint(TCP4ClientEndpoint):
    """A TCP client endpoint on IPv6: ``host`` is an IPv6 address or a name with one.

    Arguments as for :class:`TCP4ClientEndpoint`; a name is resolved to its first IPv6
    address (failing with :class:`~treadle.internet.error.DNSLookupError` when it has none).
    """

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """Resolve if needed, then connect; as :meth:`TCP4ClientEndpoint.connect`."""
        if _is_ipv6(self._host):
            return self._connect_to(self._host, protocolFactory)
        resolved = _resolve(self._reactor, self._host, 0, socket.AF_INET6)
        return resolved.addCallback(self._first_address).addCallback(
            self._connect_to, protocolFactory
        )

    def _first_address(self, infos: list[Any]) -> str:
        if not infos:
            raise error.DNSLookupError(f"no IPv6 address for {self._host}")
        host: str = infos[0][4][0]
        return host

    def _connect_to(self, host: str, protocolFactory: Any) -> Deferred[Any]:
        return TCP4ClientEndpoint(
            self._reactor, host, self._port, self._timeout, self._bindAddress
        ).connect(protocolFactory)


@implementer(IStreamClientEndpoint)
class SSL4ClientEndpoint:
    """A TLS client endpoint over TCP.

    Args:
        reactor: The reactor (``connectSSL``).
        host: Where to connect.
        port: Its port.
        sslContextFactory: An ``ssl.SSLContext`` or an object with ``getContext()``; its
            ``hostname`` attribute, if any, is the name the certificate must carry
            (``treadle.internet.ssl.optionsForClientTLS`` sets it).
        timeout: Seconds the attempt (handshake included) may take.
        bindAddress: Local address to bind, or None.
    """

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        sslContextFactory: Any,
        timeout: float = 30,
        bindAddress: Any = None,
    ) -> None:
        self._reactor = reactor
        self._host = host
        self._port = port
        self._sslContextFactory = sslContextFactory
        self._timeout = timeout
        self._bindAddress = _bind_address(bindAddress)

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """Connect and shake hands; as :meth:`TCP4ClientEndpoint.connect`."""
        return _connect(
            lambda wrapping: self._reactor.connectSSL(
                self._host,
                self._port,
                wrapping,
                self._sslContextFactory,
                timeout=self._timeout,
                bindAddress=self._bindAddress,
            ),
            protocolFactory,
        )


@implementer(IStreamClientEndpoint)
class UNIXClientEndpoint:
    """A UNIX-domain socket client endpoint.

    Args:
        reactor: The reactor (``connectUNIX``).
        path: The socket file.
        timeout: Seconds the attempt may take.
        checkPID: Twisted's lock-file check; passed on to the reactor.
    """

    def __init__(self, reactor: Any, path: str, timeout: float = 30, checkPID: int = 0) -> None:
        self._reactor = reactor
        self._path = path
        self._timeout = timeout
        self._checkPID = checkPID

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """Connect to the socket file; as :meth:`TCP4ClientEndpoint.connect`."""
        return _connect(
            lambda wrapping: self._reactor.connectUNIX(
                self._path, wrapping, timeout=self._timeout, checkPID=self._checkPID
            ),
            protocolFactory,
        )


@implementer(IStreamClientEndpoint)
class HostnameEndpoint:
    """Connects to a host name: every address it resolves to, the fastest one winning.

    Attempts start one after another, ``attemptDelay`` seconds apart (sooner when one
    fails), each with its own ``timeout``; the first to connect wins and the others are
    cancelled. The Deferred fails with :class:`~treadle.internet.error.DNSLookupError` when
    the name resolves to nothing, else with the last attempt's failure.

    Args:
        reactor: The reactor (``connectTCP``, ``callLater``).
        host: A host name or address, ``str`` or ``bytes`` (IDNA).
        port: The port.
        timeout: Seconds each attempt may take.
        bindAddress: Local address to bind: ``"host"`` or ``(host, port)``; None for any.
        attemptDelay: Seconds between the starts of two attempts (0.3 by default).
    """

    _DEFAULT_ATTEMPT_DELAY = 0.3

    def __init__(
        self,
        reactor: Any,
        host: str | bytes,
        port: int,
        timeout: float = 30,
        bindAddress: Any = None,
        attemptDelay: float | None = None,
    ) -> None:
        self._reactor = reactor
        self._badHostname, self._hostBytes, self._hostText = _host_forms(host)
        self._port = port
        self._timeout = timeout
        self._bindAddress = _bind_address(bindAddress)
        self._attemptDelay = self._DEFAULT_ATTEMPT_DELAY if attemptDelay is None else attemptDelay

    def __repr__(self) -> str:
        if self._badHostname:
            host = self._hostText
        elif _is_ipv6(self._hostText):
            host = f"[{self._hostText}]"
        else:
            host = self._hostBytes.decode("ascii")
        return f"<HostnameEndpoint {host}:{self._port}>"

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """Resolve the name and race its addresses; as :meth:`TCP4ClientEndpoint.connect`.

        Cancelling the Deferred, during the lookup or the attempts, fails it with
        :class:`~treadle.internet.error.ConnectingCancelledError`.
        """
        if self._badHostname:
            return fail(ValueError(f"invalid hostname: {self._hostText}"))
        race: list[AddressRace] = []
        resolution = _resolve(self._reactor, self._hostText, self._port, socket.AF_UNSPEC)

        def cancel(winner: Deferred[Any]) -> None:
            # The winner fails first: what stopping the lookup or the attempts reports
            # afterwards is then ignored.
            winner.errback(
                error.ConnectingCancelledError(HostnameAddress(self._hostBytes, self._port))
            )
            if race:
                race[0].cancel()
            elif not resolution.called:
                resolution.cancel()

        winner: Deferred[Any] = Deferred(cancel)

        def resolved(infos: list[Any]) -> None:
            if winner.called:
                return
            attempts = list(self._attempts(infos, protocolFactory))
            if not attempts:
                winner.errback(
                    error.DNSLookupError(f"no results for hostname lookup: {self._hostText}")
                )
                return
            race.append(
                AddressRace(iter(attempts), self._reactor.callLater, self._attemptDelay, winner)
            )
            race[0].start()

        def unresolved(reason: Failure) -> None:
            if not winner.called:
                winner.errback(reason)

        resolution.addCallbacks(resolved, unresolved)
        return winner

    def _attempts(
        self, infos: list[Any], protocolFactory: Any
    ) -> Iterator[Callable[[], Deferred[Any]]]:
        seen: set[str] = set()
        for family, _, _, _, sockaddr in infos:
            host = sockaddr[0]
            if host in seen or family not in (socket.AF_INET, socket.AF_INET6):
                continue
            seen.add(host)
            endpoint = TCP4ClientEndpoint(
                self._reactor, host, self._port, self._timeout, self._bindAddress
            )
            yield functools.partial(endpoint.connect, protocolFactory)


def _host_forms(host: str | bytes) -> tuple[bool, bytes, str]:
    """``(bad, IDNA bytes, text)`` of a host name given as text or bytes."""
    try:
        if isinstance(host, bytes):
            text = host.decode("ascii")
            return False, host, text
        if _is_ipv6(host) or host.isascii():
            return False, host.encode("ascii"), host
        return False, host.encode("idna"), host
    except UnicodeError:
        shown = host.decode("ascii", "backslashreplace") if isinstance(host, bytes) else host
        return True, b"", shown


# -- helpers -----------------------------------------------------------------------------------


def connectProtocol(endpoint: Any, protocol: Any) -> Deferred[Any]:
    """Connect ``endpoint`` with an already made ``protocol`` instance (no factory needed).

    Returns:
        ``endpoint.connect``'s Deferred: it fires with ``protocol`` once connected.
    """

    class OneShotFactory(Factory):
        noisy = False

        def buildProtocol(self, addr: Any) -> Any:
            return protocol

    connected: Deferred[Any] = endpoint.connect(OneShotFactory())
    return connected


class _TLSStarter(Protocol):
    """Starts TLS on a fresh connection, then connects the user's protocol to it."""

    def __init__(self, connectionCreator: Any, wrappedProtocol: Any) -> None:
        self._connectionCreator = connectionCreator
        self.wrappedProtocol = wrappedProtocol

    def connectionMade(self) -> None:
        # Writes made from now on wait for the handshake and go out encrypted.
        self.transport.startTLS(self._connectionCreator)
        self.wrappedProtocol.makeConnection(self.transport)

    def dataReceived(self, data: bytes) -> None:
        self.wrappedProtocol.dataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.wrappedProtocol.connectionLost(reason)


class _TLSStarterFactory(Factory):
    noisy = False

    def __init__(self, connectionCreator: Any, wrappedFactory: Any) -> None:
        self._connectionCreator = connectionCreator
        self._wrappedFactory = wrappedFactory

    def doStart(self) -> None:
        self._wrappedFactory.doStart()

    def doStop(self) -> None:
        self._wrappedFactory.doStop()

    def buildProtocol(self, addr: Any) -> Any:
        wrapped = self._wrappedFactory.buildProtocol(addr)
        return None if wrapped is None else _TLSStarter(self._connectionCreator, wrapped)


@implementer(IStreamClientEndpoint)
class _TLSClientEndpoint:
    def __init__(self, connectionCreator: Any, wrappedEndpoint: Any) -> None:
        self._connectionCreator = connectionCreator
        self._wrappedEndpoint = wrappedEndpoint

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """Connect the wrapped endpoint, start TLS, and fire with the user's protocol."""
        starter = _TLSStarterFactory(self._connectionCreator, protocolFactory)
        connected: Deferred[Any] = self._wrappedEndpoint.connect(starter)
        return connected.addCallback(lambda protocol: protocol.wrappedProtocol)


def wrapClientTLS(connectionCreator: Any, wrappedEndpoint: Any) -> Any:
    """Return an endpoint that speaks TLS over whatever ``wrappedEndpoint`` connects.

    Args:
        connectionCreator: The client TLS settings: ``optionsForClientTLS(hostname)``, or
            any ``ssl.SSLContext``/object with ``getContext()`` (and ``hostname``).
        wrappedEndpoint: The endpoint of the underlying connection (a
            :class:`HostnameEndpoint`, usually).

    Returns:
        A client endpoint. Its Deferred fires when the underlying connection is made, as in
        Twisted; a failed handshake then ends the connection (``connectionLost``).
    """
    return _TLSClientEndpoint(connectionCreator, wrappedEndpoint)
