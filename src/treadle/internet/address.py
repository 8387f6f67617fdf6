"""Endpoint addresses as Twisted reports them (``getHost()``, ``getClientAddress()``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["HostnameAddress", "IPv4Address", "IPv6Address", "UNIXAddress", "from_sockname"]


@dataclass(frozen=True, slots=True)
class IPv4Address:
    """An IPv4 socket address: ``type`` is ``"TCP"``, ``host`` dotted-quad, ``port`` an int."""

    type: Literal["TCP", "UDP"]
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class IPv6Address:
    """An IPv6 socket address: ``type`` is ``"TCP"``, ``host`` without brackets, ``port`` an int."""

    type: Literal["TCP", "UDP"]
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class UNIXAddress:
    """A UNIX-domain socket address; ``name`` is the path (None for an unnamed peer)."""

    name: str | None


@dataclass(frozen=True, slots=True)
class HostnameAddress:
    """A host name and port, as a ``HostnameEndpoint`` connects to (``hostname`` is bytes)."""

    hostname: bytes
    port: int


def from_sockname(sockname: object) -> IPv4Address | IPv6Address | UNIXAddress:
    """Turn what ``socket.getsockname()``/``getpeername()`` return into an address object."""
    if isinstance(sockname, tuple):
        host, port = sockname[0], sockname[1]
        if ":" in host:
            return IPv6Address("TCP", host, port)
        return IPv4Address("TCP", host, port)
    if isinstance(sockname, bytes):
        sockname = sockname.decode("utf-8", "replace")
    return UNIXAddress(sockname if isinstance(sockname, str) and sockname else None)
