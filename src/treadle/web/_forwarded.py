"""Who the client really is behind a reverse proxy: ``Forwarded`` and ``X-Forwarded-*``.

Behind nginx or a load balancer, every connection comes from the proxy; the client's
address, the scheme it used and the host it asked for arrive in headers the proxy adds.
Those headers are believed only from peers the site trusts (``--forwarded-allow-ips``):
anyone else could send them to pose as another client or claim TLS.

A chain of proxies appends one entry per hop, so the list is read from the right (the hop
nearest to us) leftwards, skipping entries that are themselves trusted proxies; the first
untrusted address is the client (if every entry is trusted, the leftmost is). The scheme and
host come from the same hop when the proxy sent one value per hop, else from the nearest
hop. ``Forwarded`` (RFC 7239) wins over ``X-Forwarded-For``/``-Proto``/``-Host``/``-Port``
when both are present. Values that do not parse are ignored, never half-used.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ForwardedView", "ProxyTrust", "forwarded_view"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# A host as it may appear in a Host header: a name, an IPv4 address or a bracketed IPv6
# literal, with an optional port. Anything else (spaces, slashes, CR/LF) is refused.
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?$")
_SCHEMES = {"http", "https"}


class ProxyTrust:
    """The peers whose forwarding headers are believed.

    Args:
        allowed: Addresses and networks (``"127.0.0.1"``, ``"10.0.0.0/8"``, ``"::1"``),
            ``"*"`` for every peer, or ``"unix"`` for connections over a UNIX socket.

    Raises:
        ValueError: An entry is not an address, a network, ``*`` or ``unix``.
    """

    def __init__(self, allowed: Iterable[str]) -> None:
        self.everyone = False
        self.unix = False
        self._networks: list[_Network] = []
        for entry in allowed:
            entry = entry.strip()
            if not entry:
                continue
            if entry == "*":
                self.everyone = True
            elif entry == "unix":
                self.unix = True
            else:
                try:
                    self._networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ValueError(
                        f"--forwarded-allow-ips: {entry!r} is not an IP address, a network "
                        "(10.0.0.0/8), '*' or 'unix'"
                    ) from None

    @classmethod
    def parse(cls, text: str) -> ProxyTrust:
        """Build from a comma-separated list, as given on the command line."""
        return cls(text.split(","))

    def trusts(self, host: str | None) -> bool:
        """Whether a peer at ``host`` (an IP address; None for a UNIX socket) is trusted."""
        if self.everyone:
            return True
        if host is None:
            return self.unix
        address = _ip(host)
        return address is not None and any(address in net for net in self._networks)


@dataclass(frozen=True)
class ForwardedView:
    """What the trusted proxies said about the client (None where they said nothing usable).

    Attributes:
        client: The client's IP address.
        client_port: Its port (0 when not given).
        scheme: ``"http"`` or ``"https"``.
        host: The ``Host`` the client asked for (with a port if it gave one).
        port: The port it connected to, when given apart from the host.
    """

    client: str | None = None
    client_port: int = 0
    scheme: str | None = None
    host: bytes | None = None
    port: int | None = None


def forwarded_view(
    headers: dict[bytes, list[bytes]], trust: ProxyTrust, peer: str | None
) -> ForwardedView | None:
    """Read the forwarding headers of a request from ``peer``, if ``trust`` believes it.

    Args:
        headers: The request's raw headers (lower-case names).
        trust: Which peers are believed.
        peer: The connection's peer IP address (None for a UNIX socket).

    Returns:
        The forwarded view, or None when the peer is not trusted or sent no such header.
    """
    if not trust.trusts(peer):
        return None
    if b"forwarded" in headers:
        return _from_forwarded(headers[b"forwarded"], trust)
    if b"x-forwarded-for" in headers or b"x-forwarded-proto" in headers:
        return _from_x_forwarded(headers, trust)
    return None


def _from_x_forwarded(headers: dict[bytes, list[bytes]], trust: ProxyTrust) -> ForwardedView:
    hops = _split(headers.get(b"x-forwarded-for"))
    index = _client_index([_node(h) for h in hops], trust)
    client, client_port = _node_address(hops[index]) if index is not None else (None, 0)
    scheme = _pick(_split(headers.get(b"x-forwarded-proto")), index, len(hops))
    host = _pick(_split(headers.get(b"x-forwarded-host")), index, len(hops))
    port = _pick(_split(headers.get(b"x-forwarded-port")), index, len(hops))
    return ForwardedView(
        client=client,
        client_port=client_port,
        scheme=_scheme(scheme),
        host=_host(host),
        port=_port(port),
    )


def _from_forwarded(values: list[bytes], trust: ProxyTrust) -> ForwardedView:
    elements = [_forwarded_pairs(item) for item in _split(values)]
    index = _client_index([e.get("for") for e in elements], trust)
    chosen = elements[index] if index is not None else (elements[-1] if elements else {})
    client, client_port = _node_address(chosen.get("for")) if index is not None else (None, 0)
    return ForwardedView(
        client=client,
        client_port=client_port,
        scheme=_scheme(chosen.get("proto")),
        host=_host(chosen.get("host")),
    )


def _split(values: list[bytes] | None) -> list[str]:
    if not values:
        return []
    text = ",".join(v.decode("latin-1") for v in values)
    return [item.strip() for item in text.split(",") if item.strip()]


def _forwarded_pairs(element: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for pair in element.split(";"):
        name, sep, value = pair.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"')
        pairs.setdefault(name.strip().lower(), value)
    return pairs


def _node(text: str | None) -> str | None:
    """The IP address of a node (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``), else None."""
    host, _ = _node_address(text)
    return host


def _node_address(text: str | None) -> tuple[str | None, int]:
    if not text:
        return None, 0
    port = 0
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None, 0
        host, rest = text[1:end], text[end + 1 :]
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, tail = text.partition(":")
        port = int(tail) if tail.isdigit() else 0
    else:
        host = text
    address = _ip(host)
    return (str(address), port if port < 65536 else 0) if address is not None else (None, 0)


def _client_index(nodes: list[str | None], trust: ProxyTrust) -> int | None:
    """Index of the client among the hops: the nearest hop that is not a trusted proxy."""
    for index in range(len(nodes) - 1, -1, -1):
        node = nodes[index]
        if node is None or not trust.trusts(node):
            return index if node is not None else None
    return 0 if nodes and nodes[0] is not None else None


def _pick(values: list[str], index: int | None, hops: int) -> str | None:
    if not values:
        return None
    if index is not None and len(values) == hops:
        return values[index]
    return values[-1]


def _scheme(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.lower()
    return value if value in _SCHEMES else None


def _host(value: str | None) -> bytes | None:
    if value is None or not _HOST.match(value):
        return None
    return value.encode("ascii")


def _port(value: str | None) -> int | None:
    if value is None or not value.isdigit():
        return None
    port = int(value)
    return port if 0 < port < 65536 else None


def _ip(text: str) -> _Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
