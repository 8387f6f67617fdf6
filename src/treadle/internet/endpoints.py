"""Endpoints: where a server listens and where a client connects, as objects or as text.

``twisted.internet.endpoints`` ports to this module. A server endpoint's ``listen(factory)``
returns a Deferred that fires with the listening port (``getHost()``, ``stopListening()``)
or fails with :class:`~treadle.internet.error.CannotListenError`; a client endpoint's
``connect(factory)`` returns a Deferred that fires with the protocol ``factory`` built, once
its ``connectionMade`` has run, or fails with a
:class:`~treadle.internet.error.ConnectError` (``ConnectionRefusedError``, ``TimeoutError``,
...) or :class:`~treadle.internet.error.DNSLookupError`; cancelling it stops the attempt with
:class:`~treadle.internet.error.ConnectingCancelledError`.

:func:`serverFromString` and :func:`clientFromString` build endpoints from descriptions such
as ``tcp:8080:interface=127.0.0.1``, ``ssl:443:privateKey=key.pem:certKey=cert.pem``,
``unix:/run/app.sock``, ``systemd:domain=INET:index=0`` or ``tcp:example.com:80`` (the
grammar is in :mod:`treadle.internet._descriptions`). ``treadle web --listen`` and
``treadle.application.strports`` use the same parser: :func:`parse_server_description` reads
a description without touching the system, :func:`server_tls_context` and
:func:`inherited_socket` then load what an ``ssl:`` or ``systemd:`` description names. These
three are treadle's own names; the rest is Twisted's.

Differences from Twisted:

- The default ``backlog`` is the reactor's (2048, see ``treadle.internet._reactor``), not 50,
  so that bursts of connections are not dropped; ``backlog=50`` gives Twisted's.
- ``UNIXServerEndpoint``'s ``wantPID`` (``lockfile``) writes no lock file: a socket file is
  replaced only when nothing accepts on it, which is what the lock guarded.
- Descriptions: see :mod:`treadle.internet._descriptions` (clearer errors, all ``ValueError``).
- ``systemd:`` finds sockets by index without ``LISTEN_FDNAMES`` (see
  :mod:`treadle.internet._systemd`).
- ``StandardIOEndpoint``, ``ProcessEndpoint`` and ``wrapServerTLS`` are not provided, nor
  endpoint plugins (``IStreamServerEndpointStringParser``); ``clientFromString``'s ``tls:``
  takes no ``endpoint=``.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Callable
from typing import Any

from zope.interface import implementer

from treadle.internet import error
from treadle.internet._clients import (
    HostnameEndpoint,
    SSL4ClientEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    UNIXClientEndpoint,
    connectProtocol,
    wrapClientTLS,
)
from treadle.internet._descriptions import (
    ServerDescription,
    parse_client_description,
    parse_server_description,
    quoteStringArgument,
)
from treadle.internet._reactor import DEFAULT_BACKLOG
from treadle.internet._systemd import address_family, inherited_descriptor
from treadle.internet._tls_files import client_context, server_context
from treadle.internet.defer import Deferred, fail, succeed
from treadle.internet.interfaces import IStreamServerEndpoint

__all__ = [
    "AdoptedStreamServerEndpoint",
    "HostnameEndpoint",
    "SSL4ClientEndpoint",
    "SSL4ServerEndpoint",
    "ServerDescription",
    "TCP4ClientEndpoint",
    "TCP4ServerEndpoint",
    "TCP6ClientEndpoint",
    "TCP6ServerEndpoint",
    "UNIXClientEndpoint",
    "UNIXServerEndpoint",
    "clientFromString",
    "connectProtocol",
    "inherited_socket",
    "parse_server_description",
    "quoteStringArgument",
    "serverFromString",
    "server_tls_context",
    "wrapClientTLS",
]


def _listen(start: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
    """Call a reactor ``listen*`` method and give its port (or its error) as a Deferred."""
    try:
        port = start(*args, **kwargs)
    except Exception:
        return fail()
    return succeed(port)


# -- servers -----------------------------------------------------------------------------------


@implementer(IStreamServerEndpoint)
class _TCPServerEndpoint:
    def __init__(self, reactor: Any, port: int, backlog: int, interface: str) -> None:
        self._reactor = reactor
        self._port = port
        self._backlog = backlog
        self._interface = interface

    def listen(self, protocolFactory: Any) -> Deferred[Any]:
        """Listen for TCP connections with ``protocolFactory``.

        Returns:
            A Deferred firing with the listening port, or failing with
            :class:`~treadle.internet.error.CannotListenError`.
        """
        return _listen(
            self._reactor.listenTCP,
            self._port,
            protocolFactory,
            backlog=self._backlog,
            interface=self._interface,
        )


class TCP4ServerEndpoint(_TCPServerEndpoint):
    """A TCP server endpoint on IPv4 (an IPv6 literal ``interface`` works too).

    Args:
        reactor: The reactor (``listenTCP``).
        port: The port; 0 picks a free one (``getHost()`` of the port tells which).
        backlog: Kernel accept queue length.
        interface: Address to bind; ``""`` binds every IPv4 interface.
    """

    def __init__(
        self, reactor: Any, port: int, backlog: int = DEFAULT_BACKLOG, interface: str = ""
    ) -> None:
        super().__init__(reactor, port, backlog, interface)


class TCP6ServerEndpoint(_TCPServerEndpoint):
    """A TCP server endpoint on IPv6.

    Args:
        reactor: The reactor (``listenTCP``).
        port: The port; 0 picks a free one.
        backlog: Kernel accept queue length.
        interface: IPv6 address to bind; ``"::"`` binds every interface (IPv4 too, unless
            the system sets ``IPV6_V6ONLY`` by default).
    """

    def __init__(
        self, reactor: Any, port: int, backlog: int = DEFAULT_BACKLOG, interface: str = "::"
    ) -> None:
        super().__init__(reactor, port, backlog, interface)


@implementer(IStreamServerEndpoint)
class SSL4ServerEndpoint:
    """A TLS server endpoint over TCP.

    Args:
        reactor: The reactor (``listenSSL``).
        port: The port; 0 picks a free one.
        sslContextFactory: An ``ssl.SSLContext``, or an object whose ``getContext()``
            returns one (``treadle.internet.ssl.CertificateOptions``).
        backlog: Kernel accept queue length.
        interface: Address to bind; ``""`` binds every IPv4 interface.
    """

    def __init__(
        self,
        reactor: Any,
        port: int,
        sslContextFactory: Any,
        backlog: int = DEFAULT_BACKLOG,
        interface: str = "",
    ) -> None:
        self._reactor = reactor
        self._port = port
        self._sslContextFactory = sslContextFactory
        self._backlog = backlog
        self._interface = interface

    def listen(self, protocolFactory: Any) -> Deferred[Any]:
        """Listen for TLS connections; as :meth:`TCP4ServerEndpoint.listen`."""
        return _listen(
            self._reactor.listenSSL,
            self._port,
            protocolFactory,
            contextFactory=self._sslContextFactory,
            backlog=self._backlog,
            interface=self._interface,
        )


@implementer(IStreamServerEndpoint)
class UNIXServerEndpoint:
    """A UNIX-domain socket server endpoint.

    Args:
        reactor: The reactor (``listenUNIX``).
        address: The socket file's path. A file left by a process that is gone is replaced;
            one another process serves is not (listening fails).
        backlog: Kernel accept queue length.
        mode: Permission bits of the socket file.
        wantPID: Twisted's lock-file flag; accepted, and the check above stands for it.
    """

    def __init__(
        self,
        reactor: Any,
        address: str,
        backlog: int = DEFAULT_BACKLOG,
        mode: int = 0o666,
        wantPID: int = 0,
    ) -> None:
        self._reactor = reactor
        self._address = address
        self._backlog = backlog
        self._mode = mode
        self._wantPID = wantPID

    def listen(self, protocolFactory: Any) -> Deferred[Any]:
        """Listen on the socket file; as :meth:`TCP4ServerEndpoint.listen`."""
        return _listen(
            self._reactor.listenUNIX,
            self._address,
            protocolFactory,
            backlog=self._backlog,
            mode=self._mode,
        )


@implementer(IStreamServerEndpoint)
class AdoptedStreamServerEndpoint:
    """A server endpoint on a listening socket the process already has (socket activation).

    Args:
        reactor: The reactor (``adoptStreamPort``).
        fileno: The descriptor of a listening ``SOCK_STREAM`` socket; it is closed once
            adopted (the port keeps a duplicate), so it can be listened on only once.
        addressFamily: Its family: ``socket.AF_INET``, ``AF_INET6`` or ``AF_UNIX``.
    """

    def __init__(self, reactor: Any, fileno: int, addressFamily: socket.AddressFamily) -> None:
        self.reactor = reactor
        self.fileno = fileno
        self.addressFamily = addressFamily
        self._used = False

    def listen(self, factory: Any) -> Deferred[Any]:
        """Serve ``factory`` on the socket.

        Returns:
            A Deferred firing with the port, or failing with
            :class:`~treadle.internet.error.AlreadyListened` on a second call, or with the
            ``OSError`` of a descriptor that is not a usable socket.
        """
        if self._used:
            return fail(error.AlreadyListened())
        self._used = True
        try:
            port = self.reactor.adoptStreamPort(self.fileno, self.addressFamily, factory)
            os.close(self.fileno)
        except Exception:
            return fail()
        return succeed(port)


# -- descriptions ------------------------------------------------------------------------------


def server_tls_context(description: ServerDescription) -> ssl.SSLContext:
    """Load the certificate and key an ``ssl:`` description names into a server context.

    Raises:
        FileNotFoundError: A file it names is missing.
        PermissionError: One cannot be read.
        ValueError: They cannot be used (not a pair, encrypted key, bad chain file...).
    """
    return server_context(description)


def inherited_socket(description: ServerDescription) -> tuple[int, socket.AddressFamily]:
    """Return the descriptor and family of the socket a ``systemd:`` description names.

    Raises:
        ValueError: No such socket was passed to this process.
    """
    fd = inherited_descriptor(description.index, description.name)
    return fd, address_family(description.domain)


def _server_endpoint(reactor: Any, description: ServerDescription) -> Any:
    """The endpoint of a parsed server description (``ssl:`` files are read now)."""
    d = description
    if d.kind == "tcp":
        return TCP4ServerEndpoint(reactor, d.port, d.backlog, d.interface)
    if d.kind == "tcp6":
        return TCP6ServerEndpoint(reactor, d.port, d.backlog, d.interface)
    if d.kind == "ssl":
        return SSL4ServerEndpoint(reactor, d.port, server_tls_context(d), d.backlog, d.interface)
    if d.kind == "unix":
        return UNIXServerEndpoint(reactor, d.address, d.backlog, d.mode, int(d.lockfile))
    fd, family = inherited_socket(d)
    return AdoptedStreamServerEndpoint(reactor, fd, family)


def serverFromString(reactor: Any, description: str) -> Any:
    """Build a server endpoint from a description.

    ``tcp:80``, ``tcp:80:interface=127.0.0.1``, ``tcp6:8080``,
    ``ssl:443:privateKey=key.pem:certKey=cert.pem`` (the key defaults to ``server.pem``, the
    certificate to the key file), ``unix:/run/app.sock:mode=660``,
    ``systemd:domain=INET:index=0`` (socket activation; ``name=`` picks by
    ``FileDescriptorName``). Escape a colon inside a value with a backslash
    (:func:`quoteStringArgument` does it).

    Args:
        reactor: The reactor the endpoint listens with.
        description: The description.

    Returns:
        A server endpoint (``listen(factory)``).

    Raises:
        ValueError: The description is malformed, its kind unknown (the message names it),
            or an ``ssl:`` certificate or key cannot be used or a ``systemd:`` socket was
            not passed.
        OSError: A file an ``ssl:`` description names cannot be read.
    """
    return _server_endpoint(reactor, parse_server_description(description))


def clientFromString(reactor: Any, description: str) -> Any:
    """Build a client endpoint from a description.

    ``tcp:example.com:80`` or ``tcp:host=example.com:port=80`` (``timeout=``,
    ``bindAddress=``), ``ssl:host=example.com:port=443`` (with ``hostname=`` to verify the
    certificate, ``caCertsDir=``, ``certKey=``/``privateKey=`` for a client certificate),
    ``unix:/run/app.sock`` (``timeout=``, ``lockfile=``), ``tls:example.com:443``
    (verified against the host name; ``trustRoots=``, ``certificate=``, ``privateKey=``).

    Raises:
        ValueError: The description is malformed or its kind unknown.
        OSError: A certificate file or directory it names cannot be read.
    """
    kind, kwargs = parse_client_description(description)
    if kind == "tcp":
        return TCP4ClientEndpoint(reactor, **kwargs)
    if kind == "unix":
        return UNIXClientEndpoint(reactor, **kwargs)
    if kind == "ssl":
        options = client_context(
            kwargs.pop("hostname", None),
            kwargs.pop("caCertsDir", None),
            kwargs.pop("certKey", None),
            kwargs.pop("privateKey", None),
        )
        return SSL4ClientEndpoint(reactor, sslContextFactory=options, **kwargs)
    options = client_context(
        kwargs["host"],
        kwargs.pop("trustRoots", None),
        kwargs.pop("certificate", None),
        kwargs.pop("privateKey", None),
    )
    return wrapClientTLS(options, HostnameEndpoint(reactor, **kwargs))
