"""UDP ports: Twisted's ``listenUDP`` and its datagram transport, on the loop's reader callbacks.

A :class:`UDPPort` is bound synchronously (an address in use raises
:class:`~treadle.internet.error.CannotListenError` at the call, as in Twisted) and is the
transport of its :class:`~treadle.internet.protocol.DatagramProtocol`: ``write(datagram,
addr)`` sends at once (UDP has no send buffer to manage: a datagram the kernel cannot take
is dropped, as the network may drop any), and datagrams received go to
``datagramReceived(datagram, (host, port))``. ``connect(host, port)`` restricts the port to
one peer, whose ICMP refusals then reach ``connectionRefused()``.

The socket is watched with ``loop.add_reader`` rather than asyncio's datagram endpoints:
the port must exist (and may be written to) before the loop runs, and reading in a loop of
``recvfrom`` calls up to a bound per wake-up keeps one busy port from starving the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import Any

from zope.interface import implementer

from treadle.internet.address import IPv4Address, IPv6Address
from treadle.internet.error import (
    CannotListenError,
    InvalidAddressError,
    MessageLengthError,
)
from treadle.internet.interfaces import IListeningPort, IUDPTransport

__all__ = ["UDPPort"]

log = logging.getLogger("treadle.error")

#: Datagrams read per wake-up before the loop serves others (Twisted reads up to 256 too).
MAX_DATAGRAMS_PER_READ = 256


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@implementer(IUDPTransport, IListeningPort)
class UDPPort:
    """A bound UDP socket and the transport of one datagram protocol.

    Args:
        get_loop: Returns the loop that watches the socket.
        port: Port to bind (0 picks a free one; see :meth:`getHost`).
        protocol: A ``DatagramProtocol``.
        interface: Address to bind; an IPv6 literal gives an IPv6 socket.
        maxPacketSize: Largest datagram read.

    Raises:
        CannotListenError: The address is in use or cannot be bound.
    """

    def __init__(
        self,
        get_loop: Callable[[], asyncio.AbstractEventLoop],
        port: int,
        protocol: Any,
        interface: str = "",
        maxPacketSize: int = 8192,
    ) -> None:
        self.protocol = protocol
        self.maxPacketSize = maxPacketSize
        self._connected_to: tuple[str, int] | None = None
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        self._family = family
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((interface or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
        except OSError as e:
            sock.close()
            raise CannotListenError(interface, port, e) from e
        sock.setblocking(False)
        self.socket: socket.socket | None = sock
        self._loop = get_loop()
        self._loop.add_reader(sock.fileno(), self._read)
        protocol.makeConnection(self)

    # -- receiving --------------------------------------------------------------------------

    def _read(self) -> None:
        sock = self.socket
        for _ in range(MAX_DATAGRAMS_PER_READ):
            if sock is None or self.socket is None:
                return
            try:
                data, addr = sock.recvfrom(self.maxPacketSize)
            except BlockingIOError:
                return
            except ConnectionRefusedError:
                # An ICMP "port unreachable" for what a connected port sent.
                if self._connected_to is not None:
                    self._call(self.protocol.connectionRefused)
                continue
            except OSError:
                log.exception("error reading from UDP port %r", self)
                return
            self._call(self.protocol.datagramReceived, data, (addr[0], addr[1]))

    def _call(self, method: Callable[..., object], *args: Any) -> None:
        try:
            method(*args)
        except Exception:
            log.exception("Unhandled error in %r", method)

    # -- sending ----------------------------------------------------------------------------

    def write(self, datagram: bytes, addr: tuple[str, int] | None = None) -> None:
        """Send ``datagram`` to ``addr`` (to the connected peer when None).

        Raises:
            MessageLengthError: The datagram is too long to send.
            InvalidAddressError: ``addr`` is not an IP address (UDP sends to addresses;
                resolve names first), or is given on a connected port, or is missing on an
                unconnected one.
        """
        sock = self.socket
        if sock is None:
            return
        connected = self._connected_to
        if connected is not None and addr is not None and addr != connected:
            raise InvalidAddressError(addr, "this port is connected to another address")
        if connected is None:
            if addr is None:
                raise InvalidAddressError(addr, "an unconnected port needs an address")
            if not _is_ip(addr[0]):
                raise InvalidAddressError(addr[0], "not an IP address")
        try:
            if connected is not None:
                sock.send(datagram)
            else:
                sock.sendto(datagram, addr)  # type: ignore[arg-type]  # checked above
        except BlockingIOError:
            pass  # the kernel's buffer is full: the datagram is lost, as UDP may lose any
        except ConnectionRefusedError:
            self._call(self.protocol.connectionRefused)
        except OSError as e:
            if e.errno == errno.EMSGSIZE:
                raise MessageLengthError(f"datagram of {len(datagram)} bytes is too long") from e
            raise

    def writeSequence(self, seq: list[bytes], addr: tuple[str, int] | None = None) -> None:
        """Send the concatenation of ``seq`` as one datagram."""
        self.write(b"".join(seq), addr)

    def connect(self, host: str, port: int) -> None:
        """Talk to ``host:port`` only: ``write(data)`` sends there, others are not heard.

        Raises:
            RuntimeError: The port is connected already.
            InvalidAddressError: ``host`` is not an IP address.
        """
        if self._connected_to is not None:
            raise RuntimeError("already connected, reconnecting is not currently supported")
        if not _is_ip(host):
            raise InvalidAddressError(host, "not an IP address")
        assert self.socket is not None
        self.socket.connect((host, port))
        self._connected_to = (host, port)

    # -- the port ---------------------------------------------------------------------------

    def getHost(self) -> IPv4Address | IPv6Address:
        """Return the address the port is bound to."""
        sock = self.socket
        host, port = sock.getsockname()[:2] if sock is not None else ("", 0)
        if self._family == socket.AF_INET6:
            return IPv6Address("UDP", host, port)
        return IPv4Address("UDP", host, port)

    def setBroadcastAllowed(self, enabled: bool) -> None:
        """Allow (or not) sending to broadcast addresses."""
        if self.socket is not None:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, int(enabled))

    def getBroadcastAllowed(self) -> bool:
        """Whether sending to broadcast addresses is allowed."""
        if self.socket is None:
            return False
        return bool(self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST))

    def startListening(self) -> None:
        """Nothing to do: the port listens from its creation."""

    def stopListening(self) -> Any:
        """Close the socket; the protocol's ``stopProtocol`` runs.

        Returns:
            A Deferred that has fired.
        """
        from treadle.internet._deferred import succeed

        sock, self.socket = self.socket, None
        if sock is not None:
            with contextlib.suppress(ValueError, RuntimeError, OSError):
                self._loop.remove_reader(sock.fileno())
            sock.close()
            self._call(self.protocol.doStop)
        return succeed(None)

    loseConnection = stopListening

    def logPrefix(self) -> str:
        """Return the prefix of the port's log lines: its protocol's class name."""
        return type(self.protocol).__name__

    def __repr__(self) -> str:
        where = self.getHost() if self.socket is not None else "closed"
        return f"<UDPPort {where}>"
