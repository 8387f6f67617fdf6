"""Outgoing connections: Twisted's connector, on ``loop.create_connection``.

``reactor.connectTCP`` (``connectSSL``, ``connectUNIX``) returns a :class:`Connector`. It tells
its ``ClientFactory`` what happens, in Twisted's order: ``doStart``, ``startedConnecting``,
then either ``buildProtocol(addr)`` and the protocol's ``makeConnection`` or
``clientConnectionFailed(connector, reason)``; once a connection ends, the protocol's
``connectionLost`` and then ``clientConnectionLost(connector, reason)``. From either of those
a factory may call ``connector.connect()`` to try again (which is how
``ReconnectingClientFactory`` works); when it does not, the factory's ``doStop`` follows.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any, Literal

from treadle.internet._transport import Connection
from treadle.internet.address import IPv4Address, IPv6Address, UNIXAddress
from treadle.internet.error import (
    DNSLookupError,
    NotConnectingError,
    TimeoutError,
    UserError,
    getConnectError,
)
from treadle.python.failure import Failure

__all__ = ["Connector"]

log = logging.getLogger("treadle.error")

Destination = tuple[Literal["tcp", "unix"], str, int]


class Connector:
    """One outgoing connection of a client factory, which it can make again.

    Args:
        get_loop: Returns the loop to connect on.
        factory: The ``ClientFactory``.
        destination: ``("tcp", host, port)`` or ``("unix", path, 0)``.
        timeout: Seconds an attempt may take.
        bindAddress: Local ``(host, port)`` to bind before connecting.
        ssl_context: TLS context, for ``connectSSL``.
        server_hostname: Name the server's certificate must carry (TLS).

    Attributes:
        state: ``"disconnected"``, ``"connecting"`` or ``"connected"``.
        factory: The client factory.
        transport: The connected transport, or None.
    """

    def __init__(
        self,
        get_loop: Callable[[], asyncio.AbstractEventLoop],
        factory: Any,
        destination: Destination,
        timeout: float,
        bindAddress: tuple[str, int] | None,
        *,
        ssl_context: Any = None,
        server_hostname: str | None = None,
    ) -> None:
        self._get_loop = get_loop
        self.factory = factory
        self._destination = destination
        self.timeout = timeout
        self.bindAddress = bindAddress
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname
        self.state: Literal["disconnected", "connecting", "connected"] = "disconnected"
        self.transport: Any = None
        self._attempt: asyncio.Task[Any] | None = None
        self._factory_started = False
        self.connect()

    def connect(self) -> None:
        """Start an attempt (again, after a failure or a lost connection).

        Raises:
            RuntimeError: An attempt is in progress or the connection is up.
        """
        if self.state != "disconnected":
            raise RuntimeError(f"can't connect in this state: {self.state}")
        self.state = "connecting"
        if not self._factory_started:
            self.factory.doStart()
            self._factory_started = True
        self.factory.startedConnecting(self)
        if self.state != "connecting":  # stopConnecting() from startedConnecting
            return
        loop = self._get_loop()
        self._attempt = asyncio.ensure_future(self._open(loop), loop=loop)
        self._attempt.add_done_callback(self._opened)

    async def _open(self, loop: asyncio.AbstractEventLoop) -> Any:
        kind, host, port = self._destination

        def connection() -> Connection:
            return Connection(self.factory, False, on_lost=self._lost, on_made=self._made)

        if kind == "unix":
            opening = loop.create_unix_connection(connection, host)
        else:
            opening = loop.create_connection(
                connection,
                host,
                port,
                ssl=self._ssl_context,
                server_hostname=self._server_hostname if self._ssl_context else None,
                local_addr=self.bindAddress,
            )
        return await asyncio.wait_for(opening, self.timeout)

    def _opened(self, attempt: asyncio.Task[Any]) -> None:
        self._attempt = None
        if attempt.cancelled():
            self._failed(UserError(None, "connection attempt cancelled"))
            return
        exc = attempt.exception()
        if exc is not None:
            error: BaseException
            if isinstance(exc, asyncio.TimeoutError | TimeoutError):
                error = TimeoutError(None, "connection attempt timed out")
            elif isinstance(exc, socket.gaierror):
                # As Twisted: a name that does not resolve is a DNSLookupError.
                error = DNSLookupError(
                    f"DNS lookup failed: address {self._destination[1]!r} not found: {exc}"
                )
            else:
                error = getConnectError(exc)
            self._failed(error)

    def _made(self, protocol: Any) -> None:
        self.state = "connected"
        self.transport = getattr(protocol, "transport", None)

    def _failed(self, error: BaseException) -> None:
        self.state = "disconnected"
        self._report(self.factory.clientConnectionFailed, Failure(error))

    def _lost(self, reason: Failure) -> None:
        self.state = "disconnected"
        self.transport = None
        self._report(self.factory.clientConnectionLost, reason)

    def _report(self, hook: Callable[[Any, Failure], Any], reason: Failure) -> None:
        try:
            hook(self, reason)
        except Exception:
            log.exception("Unhandled error in %r", hook)
        if self.state == "disconnected" and self._factory_started:
            self._factory_started = False
            self.factory.doStop()

    def stopConnecting(self) -> None:
        """Cancel the attempt in progress; the factory hears ``clientConnectionFailed``.

        Raises:
            NotConnectingError: No attempt is in progress.
        """
        if self.state != "connecting":
            raise NotConnectingError("we're not trying to connect")
        attempt, self._attempt = self._attempt, None
        if attempt is not None:
            attempt.remove_done_callback(self._opened)
            attempt.cancel()
        self._failed(UserError(None, "connection attempt cancelled"))

    def disconnect(self) -> None:
        """Cancel the attempt, or close the connection if it is up."""
        if self.state == "connecting":
            self.stopConnecting()
        elif self.state == "connected" and self.transport is not None:
            self.transport.loseConnection()

    def getDestination(self) -> IPv4Address | IPv6Address | UNIXAddress:
        """Return the address this connector connects to."""
        kind, host, port = self._destination
        if kind == "unix":
            return UNIXAddress(host)
        if ":" in host:
            return IPv6Address("TCP", host, port)
        return IPv4Address("TCP", host, port)

    def __repr__(self) -> str:
        return f"<Connector to {self.getDestination()} {self.state}>"
