"""Which request and response fields a proxy passes on, and which it replaces.

Private to :mod:`treadle.web.proxy`, which re-exports the public names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from treadle.web._client import connection_tokens

__all__ = [
    "DEFAULT_TIMEOUT",
    "HOP_BY_HOP",
    "forwarded_request_headers",
    "origin_request_headers",
    "strip_hop_by_hop",
]

#: Hop-by-hop fields (RFC 9110 §7.6.1): they describe one connection and are never forwarded,
#: nor are the fields a ``Connection`` header names. ``Proxy-Connection`` is the pre-standard
#: spelling some clients still send.
HOP_BY_HOP: Final = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    )
)

#: Seconds to wait for the upstream's response head, and then between two pieces of its body
#: (nginx's proxy_read_timeout is 60 s too).
DEFAULT_TIMEOUT: Final = 60.0

# Set from the request itself; what the client sent under these names is not forwarded.
_REPLACED: Final = frozenset(
    (
        b"host",
        b"content-length",
        b"expect",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
    )
)


def strip_hop_by_hop(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Return ``headers`` without the hop-by-hop fields (RFC 9110 §7.6.1).

    Args:
        headers: ``(name, value)`` pairs; names in any case.

    Returns:
        The pairs to forward, in their original order, without ``Connection``, the fields it
        names, and the fields in :data:`HOP_BY_HOP`.
    """
    pairs = list(headers)
    named = connection_tokens([v for n, v in pairs if n.lower() == b"connection"])
    return [(n, v) for n, v in pairs if n.lower() not in HOP_BY_HOP and n.lower() not in named]


def forwarded_request_headers(
    headers: Iterable[tuple[bytes, bytes]],
    *,
    host: bytes,
    client_ip: str | None,
    proto: bytes,
    body_length: int | None,
) -> list[tuple[bytes, bytes]]:
    """Return the header fields to send upstream for a request with ``headers``.

    Args:
        headers: The client's ``(name, value)`` pairs.
        host: The ``Host`` to send upstream.
        client_ip: The client's address, appended to ``X-Forwarded-For`` (None: not known,
            e.g. a UNIX socket; nothing is appended).
        proto: ``b"http"`` or ``b"https"``: how the client reached us.
        body_length: ``Content-Length`` to send, or None for a request without a body.

    Returns:
        ``Host`` first, then the client's end-to-end fields in order, then the
        ``X-Forwarded-*`` fields and ``Content-Length``.
    """
    pairs = strip_hop_by_hop(headers)
    out: list[tuple[bytes, bytes]] = [(b"Host", host)]
    forwarded_for: list[bytes] = []
    client_host: bytes | None = None
    for name, value in pairs:
        lower = name.lower()
        if lower in _REPLACED:
            if lower == b"x-forwarded-for":
                forwarded_for.append(value)
            elif lower == b"host" and client_host is None:
                client_host = value
            continue
        out.append((name, value))
    if client_ip is not None:
        forwarded_for.append(client_ip.encode("ascii"))
    if forwarded_for:
        out.append((b"X-Forwarded-For", b", ".join(forwarded_for)))
    if client_host is not None:
        out.append((b"X-Forwarded-Host", client_host))
    out.append((b"X-Forwarded-Proto", proto))
    if body_length is not None:
        out.append((b"Content-Length", b"%d" % body_length))
    return out


def origin_request_headers(headers: dict[bytes, bytes], body_length: int) -> None:
    """Make a client's request fields fit to send to an origin server, in place.

    What :class:`~treadle.web.proxy.ProxyClient` does to the ``headers`` it is given, as
    Twisted's does (``Proxy-Connection`` and ``Keep-Alive`` removed, ``Connection: close``
    set), and the rest of RFC 9110 §7.6.1: the other hop-by-hop fields and those the
    client's ``Connection`` names are removed, and so is ``Expect`` (the body is here
    already). A body the client sent chunked has been decoded by the server: it gets a
    ``Content-Length`` instead of its ``Transfer-Encoding``.

    Args:
        headers: ``{name: value}`` (names in any case, usually lowercase as
            ``getAllHeaders()`` gives them); changed in place.
        body_length: The length of the body that will be sent.
    """
    lower = {name.lower(): name for name in headers}
    named = connection_tokens([headers[lower[b"connection"]]] if b"connection" in lower else None)
    chunked = b"transfer-encoding" in lower
    for low, name in lower.items():
        if low in HOP_BY_HOP or low in named or low == b"expect":
            del headers[name]
    if chunked:
        headers.pop(lower.get(b"content-length", b"content-length"), None)
        headers[b"content-length"] = b"%d" % body_length
    headers[b"connection"] = b"close"
