"""Endpoints of ``treadle web``: ``--listen`` descriptions parsed, then opened.

The grammar is :mod:`treadle.internet.endpoints`' (``serverFromString``'s): this module only
adds what the command needs around it. :func:`parse_endpoint` accepts a bare port as
``tcp:PORT`` (as ``twistd web --port`` once did) and turns a malformed description into a
:class:`UsageError` that names it; :func:`listen` opens an endpoint with the reactor, with
``SO_REUSEPORT`` for the workers of ``--workers`` and HTTP/2 and HTTP/1.1 announced over TLS
(ALPN), and turns every failure into a one-line :class:`StartupError`; :func:`listening_on`
words the startup line. :mod:`treadle._cli.main` re-exports them.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl

from treadle._cli.errors import StartupError, UsageError
from treadle.internet import reactor
from treadle.internet._reactor import ListeningPort
from treadle.internet.endpoints import (
    ServerDescription,
    inherited_socket,
    parse_server_description,
    server_tls_context,
)
from treadle.internet.error import CannotListenError
from treadle.web.server import Site

__all__ = ["Endpoint", "listen", "listening_on", "parse_endpoint", "systemd_socket"]

#: One parsed ``--listen`` description (the endpoints module's own type): ``kind``
#: (``tcp``, ``tcp6``, ``ssl``, ``unix``, ``systemd``), the ``description`` it came from, and
#: the parameters of its kind.
Endpoint = ServerDescription


def parse_endpoint(text: str) -> Endpoint:
    """Parse a ``--listen`` description, as ``serverFromString`` does.

    A bare ``PORT`` means ``tcp:PORT`` (the description then reads ``tcp:PORT``). See
    :func:`treadle.internet.endpoints.parse_server_description` for the kinds: ``tcp``,
    ``tcp6``, ``ssl``, ``unix`` and ``systemd``.

    Args:
        text: The description.

    Returns:
        The endpoint; nothing is opened or checked on disk.

    Raises:
        UsageError: The description is malformed; the message quotes it.
    """
    if text.isdigit():
        text = f"tcp:{text}"
    try:
        return parse_server_description(text)
    except ValueError as e:
        raise UsageError(f"bad endpoint {text!r}: {e}") from None


# -- listening --------------------------------------------------------------------------------


def _tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    try:
        context = server_tls_context(endpoint)
    except (OSError, ValueError) as e:
        raise StartupError(f"{endpoint.description}: {e}") from None
    # ALPN (h2, then http/1.1) comes from the Site's acceptableProtocols() in listenSSL.
    return context


def systemd_socket(endpoint: Endpoint) -> tuple[int, socket.AddressFamily]:
    """Return the descriptor and family of the socket a ``systemd:`` endpoint names.

    Raises:
        StartupError: systemd passed no such socket to this process.
    """
    try:
        return inherited_socket(endpoint)
    except ValueError as e:
        raise StartupError(f"cannot listen on {endpoint.description}: {e}") from None


def _open(endpoint: Endpoint, site: Site, reuse_port: bool) -> ListeningPort:
    port: ListeningPort
    if endpoint.kind in ("tcp", "tcp6"):
        port = reactor.listenTCP(
            endpoint.port, site, endpoint.backlog, endpoint.interface, reusePort=reuse_port
        )
    elif endpoint.kind == "ssl":
        port = reactor.listenSSL(
            endpoint.port,
            site,
            _tls_context(endpoint),
            endpoint.backlog,
            endpoint.interface,
            reusePort=reuse_port,
        )
    elif endpoint.kind == "unix":
        port = reactor.listenUNIX(endpoint.address, site, endpoint.backlog, endpoint.mode)
    else:
        fd, family = systemd_socket(endpoint)
        # Every worker of --workers adopts its own copy of the one socket systemd passed:
        # the kernel spreads connections among them with no SO_REUSEPORT needed.
        port = reactor.adoptStreamPort(fd, family, site)
        os.close(fd)  # the port holds a duplicate, as AdoptedStreamServerEndpoint does
    return port


def listen(endpoint: Endpoint, site: Site, reuse_port: bool = False) -> ListeningPort:
    """Open ``endpoint`` for ``site`` with the reactor.

    Args:
        endpoint: A parsed description.
        site: The site to serve.
        reuse_port: Listen with ``SO_REUSEPORT`` (``tcp``, ``tcp6``, ``ssl``).

    Returns:
        The listening port; connections are accepted once the reactor runs.

    Raises:
        StartupError: The port is in use, the address cannot be bound, the certificate or
            key cannot be loaded, or systemd passed no such socket.
    """
    try:
        return _open(endpoint, site, reuse_port)
    except CannotListenError as e:
        reason = getattr(e.socketError, "strerror", None) or e.socketError
        raise StartupError(f"cannot listen on {endpoint.description}: {reason}") from None
    except OSError as e:  # e.g. an interface name that does not resolve, or not a socket
        raise StartupError(f"cannot listen on {endpoint.description}: {e.strerror or e}") from None


def listening_on(endpoint: Endpoint, sock: socket.socket) -> str:
    """Say where ``endpoint``, bound as ``sock``, is reached, for the startup line.

    A specific address gives its URL: ``http://127.0.0.1:8080/``, ``https://[::1]:8443/``.
    A wildcard address is not one a browser can open, so it is named in words, followed by
    the loopback URL that does open from this machine: ``port 8080 of every IPv4 interface
    (open http://127.0.0.1:8080/)``. A UNIX socket gives ``unix:PATH``.
    """
    if sock.family == socket.AF_UNIX:
        return f"unix:{sock.getsockname() or endpoint.address}"
    scheme = "https" if endpoint.kind == "ssl" else "http"
    host, port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        if ipaddress.ip_address(host).is_unspecified:
            # Linux accepts IPv4 on such a socket too unless IPV6_V6ONLY is set (the
            # net.ipv6.bindv6only sysctl decides the default): say what this one does.
            v6only = sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
            which = "IPv6" if v6only else "IPv6 and IPv4"
            return f"port {port} of every {which} interface (open {scheme}://[::1]:{port}/)"
        return f"{scheme}://[{host}]:{port}/"
    if ipaddress.ip_address(host).is_unspecified:
        return f"port {port} of every IPv4 interface (open {scheme}://127.0.0.1:{port}/)"
    return f"{scheme}://{host}:{port}/"
