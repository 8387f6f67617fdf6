"""How an agent gets its connections: straight from the loop, or from an endpoint.

:class:`StandardEndpointFactory` is what a plain ``Agent`` uses: its
:meth:`~StandardEndpointFactory.open` connects with the loop's ``create_connection`` (TLS
through the standard library for ``https``) and maps failures to Twisted's errors; its
``endpointForURI`` gives the equivalent ``HostnameEndpoint`` to code that asks.
:func:`open_endpoint` carries a pool connection (an :class:`asyncio.Protocol`) over a
Twisted endpoint's transport, for ``Agent.usingEndpointFactory`` and ``ProxyAgent``.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from collections.abc import Hashable
from typing import Any

from zope.interface import implementer

from treadle.internet import error as _error
from treadle.internet._transport import context_of
from treadle.internet.address import HostnameAddress
from treadle.internet.endpoints import HostnameEndpoint, wrapClientTLS
from treadle.internet.protocol import Factory, Protocol
from treadle.python.failure import Failure
from treadle.web import _client
from treadle.web._iclient import IAgentEndpointFactory
from treadle.web._newclient import URI, ResponseNeverReceived
from treadle.web.error import SchemeNotSupported

__all__ = ["StandardEndpointFactory", "open_endpoint"]

#: Twisted's HostnameEndpoint waits this long for a connection when no timeout is given.
DEFAULT_CONNECT_TIMEOUT = 30.0


def _bind_address(bindAddress: Any) -> tuple[str, int] | None:
    if bindAddress is None:
        return None
    if isinstance(bindAddress, str | bytes):
        bindAddress = (bindAddress, 0)
    host, port = bindAddress[0], bindAddress[1]
    return (host.decode() if isinstance(host, bytes) else host, int(port))


@implementer(IAgentEndpointFactory)
class StandardEndpointFactory:
    """TCP for ``http``, TLS over TCP for ``https``: the default Agent's destinations.

    The Agent itself connects with the loop directly (:meth:`open`); :meth:`endpointForURI`
    gives the equivalent endpoint for code that asks for it.
    """

    def __init__(
        self, reactor: Any, policy: Any, connectTimeout: float | None, bindAddress: Any
    ) -> None:
        self._reactor = reactor
        self._policyForHTTPS = policy
        self._connectTimeout = connectTimeout
        self._bindAddress = bindAddress

    def _check(self, uri: URI) -> str:
        if uri.scheme not in (b"http", b"https", b"ws", b"wss"):
            raise SchemeNotSupported(f"Unsupported scheme: {uri.scheme!r}")
        try:
            return uri.host.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(
                f"The host of the provided URI ({uri.host!r}) contains non-ASCII octets, "
                "it should be ASCII decodable."
            ) from None

    def endpointForURI(self, uri: URI) -> Any:
        """Return a ``HostnameEndpoint`` (wrapped in TLS for ``https``) for ``uri``.

        Raises:
            SchemeNotSupported: The scheme is not ``http``/``https`` (or ``ws``/``wss``).
        """
        host = self._check(uri)
        timeout = self._connectTimeout or DEFAULT_CONNECT_TIMEOUT
        endpoint = HostnameEndpoint(
            self._reactor, host, uri.port, timeout=timeout, bindAddress=self._bindAddress
        )
        if uri.scheme in (b"http", b"ws"):
            return endpoint
        return wrapClientTLS(self._policyForHTTPS.creatorForNetloc(uri.host, uri.port), endpoint)

    async def open(
        self, pool: _client.HTTPConnectionPool, key: Hashable, uri: URI
    ) -> _client._Connection:
        """Connect to ``uri``'s host with the loop, TLS for ``https``.

        Raises:
            ConnectingCancelledError: The attempt was cancelled.
            TimeoutError, ConnectionRefusedError, DNSLookupError, ConnectError: Twisted's
                errors for a failed attempt.
            ResponseNeverReceived: The TLS handshake failed (with the ``ssl`` error inside).
        """
        host = self._check(uri)
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        server_hostname: str | None = None
        if uri.scheme in (b"https", b"wss"):
            creator = self._policyForHTTPS.creatorForNetloc(uri.host, uri.port)
            tls = context_of(creator, client=True)
            server_hostname = getattr(creator, "hostname", None) or host
        opening = loop.create_connection(
            functools.partial(_client._Connection, pool, key),
            host,
            uri.port,
            ssl=tls,
            server_hostname=server_hostname,
            local_addr=_bind_address(self._bindAddress),
        )
        timeout = self._connectTimeout or DEFAULT_CONNECT_TIMEOUT
        try:
            _, conn = await asyncio.wait_for(opening, timeout)
        except asyncio.CancelledError:
            raise _error.ConnectingCancelledError(HostnameAddress(uri.host, uri.port)) from None
        except TimeoutError:
            raise _error.TimeoutError(None, "connection attempt timed out") from None
        except ssl.SSLError as e:
            raise ResponseNeverReceived([Failure(e)]) from None
        except socket.gaierror as e:
            raise _error.DNSLookupError(f"address {host!r} not found: {e}") from None
        except OSError as e:
            raise _error.getConnectError(e) from None
        return conn


class _EndpointProtocol(Protocol):
    """Carries a pool connection over a Twisted transport (an endpoint's connection)."""

    def __init__(self, conn: _client._Connection) -> None:
        self.conn = conn

    def connectionMade(self) -> None:
        self.conn.connection_made(_TransportShim(self.transport))
        self.transport.registerProducer(_WriteFlow(self.conn), True)

    def dataReceived(self, data: bytes) -> None:
        self.conn.data_received(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        clean = reason is None or reason.check(_error.ConnectionDone) is not None
        cause = None if clean or reason is None else reason.value
        self.conn.connection_lost(cause if isinstance(cause, Exception) else None)


class _WriteFlow:
    """Pauses the connection's request body while the Twisted transport's buffer is full."""

    def __init__(self, conn: _client._Connection) -> None:
        self._conn = conn

    def pauseProducing(self) -> None:
        self._conn.pause_writing()

    def resumeProducing(self) -> None:
        self._conn.resume_writing()

    def stopProducing(self) -> None:
        pass


class _TransportShim(asyncio.Transport):
    """An asyncio transport's face on a Twisted transport, for :class:`_client._Connection`."""

    def __init__(self, transport: Any) -> None:
        super().__init__()
        self._t = transport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._t.write(bytes(data))

    def close(self) -> None:
        self._t.loseConnection()

    def abort(self) -> None:
        abort = getattr(self._t, "abortConnection", None)
        (abort or self._t.loseConnection)()

    def is_closing(self) -> bool:
        return bool(getattr(self._t, "disconnecting", False))

    def pause_reading(self) -> None:
        self._t.pauseProducing()

    def resume_reading(self) -> None:
        self._t.resumeProducing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        get = getattr(self._t, "get_extra_info", None)
        return get(name, default) if get is not None else default


async def open_endpoint(
    pool: _client.HTTPConnectionPool, key: Hashable, endpoint: Any
) -> _client._Connection:
    """Connect ``endpoint`` and return the pool connection riding on its transport."""
    conn: _client._Connection | None = None

    def build(addr: Any) -> Protocol:
        nonlocal conn
        conn = _client._Connection(pool, key)
        return _EndpointProtocol(conn)

    factory = Factory()
    factory.buildProtocol = build  # type: ignore[method-assign]
    await endpoint.connect(factory)
    assert conn is not None
    return conn
