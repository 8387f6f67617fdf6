"""Trailer fields: those a request's body ended with, and those a response ends with.

Twisted Web has no trailer API (its channel drops request trailers and its responses cannot
carry any); treadle adds one next to ``requestHeaders``/``responseHeaders``:

- ``request.requestTrailers``: a :class:`~treadle.web.http_headers.Headers` of the trailer
  fields the client sent after a chunked HTTP/1.1 body or after an HTTP/2 request body;
  empty when it sent none. The body is read whole before a resource renders, so they are
  there by render time. They are never merged into ``requestHeaders`` (RFC 9110 §6.5.1),
  they count against the trailer limit (``maxTrailerSize``, 431 beyond; on HTTP/2 also the
  header list size, beyond which h2 resets the stream), and fields that may not be trailers
  (:data:`FORBIDDEN`) are dropped.
- ``request.responseTrailers``: a :class:`TrailerHeaders` (a ``Headers`` refusing, with
  ``ValueError``, the names of :data:`FORBIDDEN`) the resource fills at any time before
  ``finish()``. They are sent after the body: on HTTP/2 as a last HEADERS frame carrying
  END_STREAM, after every DATA frame flow control let out; on HTTP/1.1 in the trailer
  section of a chunked body (``0``, the fields, a blank line). A response with trailers
  to send goes out chunked even when its whole body is known at once (a resource returning
  bytes), where it would otherwise get a ``Content-Length``. Where the response cannot be
  chunked they are dropped, silently, as the client has no way to receive them: an
  HTTP/1.0 client, a response with a ``Content-Length`` field of the resource's own, and
  responses without a body (HEAD, 204, 304). treadle adds no ``Trailer`` field announcing
  them and does not wait for ``TE: trailers``: RFC 9112 §7.1.2 lets a chunked response
  carry trailers for any client (curl prints them, h11 and httpx read past them), and a
  resource may set ``Trailer`` in ``responseHeaders`` itself. HTTP/2 clients that do not
  use trailers (httpx) see the stream end as usual.

Both are made on first use: a request that touches neither costs nothing more. They are
properties of :class:`~treadle.web._request_helpers.RequestHelpers` (a base ``http.Request``
has anyway: one more base would lengthen every lookup through the request's MRO) over
class-level defaults, never fields of the compiled core, whose per-request path reads one
flag, ``_trailing``, that ``responseTrailers`` sets when it is made (a byte that fits in the
core's padding).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

from treadle.web.http_headers import Headers, _encode_name, canonical_name

__all__ = [
    "FORBIDDEN",
    "LAST_CHUNK",
    "TrailerHeaders",
    "check_names",
    "h2_fields",
    "received",
    "trailer_section",
]

error_log = logging.getLogger("treadle.error")

#: The end of a chunked body without trailers.
LAST_CHUNK: Final = b"0\r\n\r\n"

#: Fields that may not be trailers (RFC 9110 §6.5.1): those framing the message, routing it,
#: modifying the request, authenticating, controlling the response or telling how to process
#: the content, and HTTP/1.1's connection fields (RFC 9113 §8.2.2 forbids them in HTTP/2).
FORBIDDEN: Final = frozenset(
    {
        # framing and connection
        b"content-length",
        b"transfer-encoding",
        b"trailer",
        b"te",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"upgrade",
        # routing and request modifiers
        b"host",
        b"expect",
        b"max-forwards",
        b"range",
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
        b"if-range",
        b"cache-control",
        b"pragma",
        # authentication and cookies
        b"authorization",
        b"proxy-authorization",
        b"www-authenticate",
        b"proxy-authenticate",
        b"cookie",
        b"set-cookie",
        # response control data and processing of the content
        b"age",
        b"date",
        b"expires",
        b"location",
        b"retry-after",
        b"vary",
        b"warning",
        b"content-type",
        b"content-encoding",
        b"content-range",
    }
)


def _check_name(name: str | bytes) -> None:
    if _encode_name(name) in FORBIDDEN:
        raise ValueError(f"{name!r} may not be sent as a trailer field (RFC 9110 §6.5.1)")


def check_names(headers: Headers) -> None:
    """Refuse ``headers`` as response trailers if a field of it may not be one.

    Raises:
        ValueError: A name of :data:`FORBIDDEN` is among them.
    """
    for name in headers._raw:
        _check_name(name)


class TrailerHeaders(Headers):
    """The ``Headers`` of ``request.responseTrailers``: refuses fields that may not be trailers.

    Raises:
        ValueError: From ``setRawHeaders``/``addRawHeader`` (and the constructor) for a name
            in :data:`FORBIDDEN`, besides what ``Headers`` refuses.
    """

    __slots__ = ()

    def setRawHeaders(self, name: str | bytes, values: Sequence[str | bytes]) -> None:
        """As :meth:`Headers.setRawHeaders`, refusing names of :data:`FORBIDDEN`."""
        _check_name(name)
        super().setRawHeaders(name, values)

    def addRawHeader(self, name: str | bytes, value: str | bytes) -> None:
        """As :meth:`Headers.addRawHeader`, refusing names of :data:`FORBIDDEN`."""
        _check_name(name)
        super().addRawHeader(name, value)


def received(request: Any, raw: dict[bytes, list[bytes]]) -> None:
    """Give ``request`` the trailer fields ``raw`` (lowercased names) that its body ended with,
    less those that may not be trailers."""
    if any(name in FORBIDDEN for name in raw):
        raw = {name: values for name, values in raw.items() if name not in FORBIDDEN}
    if raw and hasattr(request, "requestTrailers"):  # (not a bare RequestCore)
        request.requestTrailers = Headers._from_raw(raw)


def _to_send(request: Any) -> dict[bytes, list[bytes]] | None:
    """The trailer fields ``request`` has to send, or None (none set)."""
    trailers: Headers | None = getattr(request, "_response_trailers", None)
    if trailers is None or not trailers._raw:
        return None
    raw = trailers._raw
    refused = [name for name in raw if name in FORBIDDEN]
    if refused:
        # Only a Headers assigned and changed since, or one changed through its dict, gets
        # here: TrailerHeaders refuses these names as they are set.
        error_log.warning(
            "trailer fields that may not be trailers dropped from the response to %r: %s",
            request,
            b", ".join(refused).decode("latin-1"),
        )
        raw = {name: values for name, values in raw.items() if name not in FORBIDDEN}
    return raw


def trailer_section(request: Any) -> bytes:
    """The end of ``request``'s chunked body: the last chunk, its trailer fields, a blank line."""
    raw = _to_send(request)
    if not raw:
        return LAST_CHUNK
    lines = [b"0\r\n"]
    for name, values in raw.items():
        cname = canonical_name(name)
        for value in values:
            lines.append(cname + b": " + value + b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def h2_fields(request: Any) -> list[tuple[bytes, bytes]] | None:
    """``request``'s trailer fields as HTTP/2 fields (lowercased names), or None when it has
    none, or when it did not finish (a stream refused after the resource set some)."""
    if request is None or not getattr(request, "finished", False):
        return None
    raw = _to_send(request)
    if not raw:
        return None
    return [(name, value) for name, values in raw.items() for value in values]
