"""HTTP/1.1 protocol decisions as plain functions and tables, tested without any I/O.

Everything here answers a question the channel asks about bytes it has or will send:
which status line, which framing for a response body, whether the connection persists.
Nothing here touches a socket, a loop or a resource.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from enum import Enum
from http import HTTPStatus

__all__ = [
    "RESPONSES",
    "Framing",
    "chunk",
    "date_header",
    "response_framing",
    "server_and_date",
    "status_line",
]

#: Reason phrases by status code (``twisted.web.http.RESPONSES``).
RESPONSES: dict[int, bytes] = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}
RESPONSES[306] = b"Reserved"

# Responses are always labelled HTTP/1.1, the highest version we speak (RFC 9110 §6.2);
# an HTTP/1.0 client is still answered with a body framing it understands (see below).
_STATUS_LINES: dict[int, bytes] = {
    code: b"HTTP/1.1 %d %s\r\n" % (code, phrase) for code, phrase in RESPONSES.items()
}


def status_line(code: int, message: bytes | None = None) -> bytes:
    """Return the status line (with CRLF) for ``code``; precomputed unless ``message`` is given."""
    if message is None:
        line = _STATUS_LINES.get(code)
        if line is not None:
            return line
        message = RESPONSES.get(code, b"Unknown Status")
    if b"\r" in message or b"\n" in message:
        raise ValueError("status message contains a line break")
    return b"HTTP/1.1 %d %s\r\n" % (code, message)


class Framing(Enum):
    """How a response body is delimited on the wire (RFC 9112 §6)."""

    NONE = "none"  # no body at all: HEAD, 1xx, 204, 304
    LENGTH = "length"  # Content-Length known up front
    CHUNKED = "chunked"  # Transfer-Encoding: chunked (HTTP/1.1 clients only)
    CLOSE = "close"  # body ends when the connection closes (HTTP/1.0 streaming)


def body_forbidden(method: bytes, code: int) -> bool:
    """True when the response must carry no body (RFC 9110 §6.4.1, §9.3.2)."""
    return method == b"HEAD" or code < 200 or code == 204 or code == 304


def response_framing(*, http11: bool, method: bytes, code: int, length_known: bool) -> Framing:
    """Choose the framing of a response body.

    Args:
        http11: The client spoke HTTP/1.1 (chunked is understood).
        method: The request method.
        code: The response status code.
        length_known: A ``Content-Length`` is (or will be) sent.
    """
    if body_forbidden(method, code):
        return Framing.NONE
    if length_known:
        return Framing.LENGTH
    if http11:
        return Framing.CHUNKED
    return Framing.CLOSE


def chunk(data: bytes) -> bytes:
    """Frame ``data`` as one chunk of a chunked body (empty data must not be framed)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


_date_second = 0
_date_line = b""
_server_and_date = b""
SERVER_LINE = b"Server: treadle\r\n"


def _refresh_date(now: int) -> None:
    global _date_second, _date_line, _server_and_date
    _date_second = now
    _date_line = b"Date: " + formatdate(now, usegmt=True).encode("ascii") + b"\r\n"
    _server_and_date = SERVER_LINE + _date_line


def date_header() -> bytes:
    """Return ``Date: ...\\r\\n`` for now, formatted at most once a second (IMF-fixdate)."""
    now = int(time.time())
    if now != _date_second:
        _refresh_date(now)
    return _date_line


def server_and_date() -> bytes:
    """Return the ``Server`` and ``Date`` lines together (the usual case, one lookup)."""
    now = int(time.time())
    if now != _date_second:
        _refresh_date(now)
    return _server_and_date
