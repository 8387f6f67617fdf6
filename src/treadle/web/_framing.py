"""HTTP/1.1 protocol decisions as plain functions and tables, tested without any I/O.

Everything here answers a question the channel asks about bytes it has or will send:
which status line, which framing for a response body, whether a request's framing and
target are acceptable, and how big a head is. Nothing here touches a socket, a loop or a
resource.

The size functions define what the channel's limits count; the channel inlines the same
arithmetic on its hot path, and the tests hold the two to each other at the boundary.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from enum import Enum
from typing import Final

from treadle import __version__
from treadle.web._status import RESPONSES

__all__ = [
    "CHUNK_FRAMING_ALLOWANCE",
    "HEAD_ENDS",
    "RESPONSES",
    "SERVER_LINE",
    "SERVER_NAME",
    "Framing",
    "absolute_form_authority",
    "chunk",
    "chunk_framing_budget",
    "date_header",
    "field_line_size",
    "keeps_connection",
    "request_line_size",
    "response_framing",
    "server_and_date",
    "status_line",
    "target_error",
    "transfer_coding_error",
    "valid_host",
]


# Responses are always labelled HTTP/1.1, the highest version we speak (RFC 9110 §6.2);
# an HTTP/1.0 client is still answered with a body framing it understands (see below).
_STATUS_LINES: Final[dict[int, bytes]] = {
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


# The members as module constants: compiled code reads these as C variables, where
# ``Framing.CHUNKED`` is an attribute lookup on the enum class.
NO_BODY: Final = Framing.NONE
LENGTH: Final = Framing.LENGTH
CHUNKED: Final = Framing.CHUNKED
CLOSE_DELIMITED: Final = Framing.CLOSE


def response_framing(http11: bool, method: bytes, code: int, length_known: bool) -> Framing:
    """Choose the framing of a response body.

    A response to HEAD, and a 1xx, 204 or 304, carries no body at all (RFC 9110 §6.4.1,
    §9.3.2).

    Args:
        http11: The client spoke HTTP/1.1 (chunked is understood).
        method: The request method.
        code: The response status code.
        length_known: A ``Content-Length`` is (or will be) sent.
    """
    if method == b"HEAD" or code < 200 or code == 204 or code == 304:
        return NO_BODY
    if length_known:
        return LENGTH
    if http11:
        return CHUNKED
    return CLOSE_DELIMITED


def keeps_connection(keep_alive: bool, framing: Framing, connection: list[bytes] | None) -> bool:
    """Tell whether the connection stays open after a response (RFC 9112 §9.3, §9.6).

    Args:
        keep_alive: The request lets it (an HTTP/1.1 request without ``Connection: close``,
            an HTTP/1.0 one with ``Connection: keep-alive``) and the server means to read
            more requests on this connection.
        framing: The response's framing: a close-delimited body ends only with the
            connection.
        connection: The ``Connection`` field values the application set on the response,
            if any: ``close`` among them closes.
    """
    if not keep_alive or framing is CLOSE_DELIMITED:
        return False
    return connection is None or not any(b"close" in value.lower() for value in connection)


#: The end of a response head, by ``[keeps the connection][HTTP/1.1 client]``: the
#: ``Connection`` field it needs, and the blank line. HTTP/1.1 connections persist unless
#: told otherwise; an HTTP/1.0 client must be told that the connection stays open.
HEAD_ENDS: Final = (
    (b"Connection: close\r\n\r\n", b"Connection: close\r\n\r\n"),
    (b"Connection: keep-alive\r\n\r\n", b"\r\n"),
)


def chunk(data: bytes) -> bytes:
    """Frame ``data`` as one chunk of a chunked body (empty data must not be framed)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


#: The server's name and version: the ``Server`` field of every response and
#: ``treadle.web.server.version``.
SERVER_NAME: Final = b"treadle/" + __version__.encode("ascii")
SERVER_LINE: Final = b"Server: " + SERVER_NAME + b"\r\n"


class _DateLines:
    """The ``Date`` line of the current second, and ``Server`` with it (made once a second)."""

    __slots__ = ("both", "date", "second")

    def __init__(self) -> None:
        self.second = -1
        self.date = b""
        self.both = b""

    def refresh(self, now: int) -> None:
        self.second = now
        self.date = b"Date: " + formatdate(now, usegmt=True).encode("ascii") + b"\r\n"
        self.both = SERVER_LINE + self.date


_DATE: Final = _DateLines()


def date_header() -> bytes:
    """Return ``Date: ...\\r\\n`` for now, formatted at most once a second (IMF-fixdate)."""
    now = int(time.time())
    lines = _DATE
    if now != lines.second:
        lines.refresh(now)
    return lines.date


def server_and_date() -> bytes:
    """Return the ``Server`` and ``Date`` lines together (the usual case, one lookup)."""
    now = int(time.time())
    lines = _DATE
    if now != lines.second:
        lines.refresh(now)
    return lines.both


# -- request heads: what the limits count ------------------------------------------------------


def request_line_size(method: bytes, target: bytes) -> int:
    """Size of a request line as the limits count it: ``method SP target SP HTTP/1.x``.

    The CRLF is not counted. llhttp accepts several spaces between the parts (RFC 9112 §3
    allows a recipient to split on any whitespace); they are counted as one.
    """
    return len(method) + len(target) + 10


def field_line_size(name: bytes, value: bytes) -> int:
    """Size of one field line as the limits count it: ``name: value``.

    ``value`` is the field value without the optional whitespace around it (RFC 9112 §5);
    that whitespace and the CRLF are not counted. The head size adds 2 (CRLF) to the request
    line and to every field line; the empty line ending the head is not counted.
    """
    return len(name) + len(value) + 2


#: Framing bytes one chunk may carry for free: a size of 16 hex digits (the most llhttp
#: accepts before it reports an overflow of 2**64) and two CRLFs (RFC 9112 §7.1).
CHUNK_FRAMING_ALLOWANCE: Final = 20


def chunk_framing_budget(chunks: int, extensions: int, trailers: int) -> int:
    """Bytes of a chunked body that may be framing rather than data.

    llhttp checks the syntax of chunk-size lines, extensions and trailers but bounds none of
    their lengths (leading zeros and extensions are parsed and dropped). The channel counts
    every byte of a chunked body that is not data and refuses the request once the count
    exceeds this budget.

    Args:
        chunks: Chunks begun so far (``on_chunk_header`` calls).
        extensions: Bytes allowed for chunk extensions in the whole request.
        trailers: Bytes allowed for the trailer section.
    """
    return chunks * CHUNK_FRAMING_ALLOWANCE + extensions + trailers


# -- request framing and targets ---------------------------------------------------------------

# RFC 3986 §3.2.2: reg-name = *( unreserved / pct-encoded / sub-delims ); ":" separates the port.
_REG_NAME = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+,;="
# IP-literal: an IPv6 address or IPvFuture ("v" HEXDIG "." unreserved / sub-delims / ":");
# the characters are checked, not the address grammar.
_IP_LITERAL = _REG_NAME.replace(b"%", b"") + b":"
_DIGITS = b"0123456789"


def valid_host(value: bytes) -> bool:
    """True when ``value`` is a valid ``Host`` field value: ``uri-host [":" port]``.

    RFC 9110 §7.2 refers to RFC 3986 §3.2.2 for the grammar; an empty value is allowed (a
    target without an authority). A value that fails this gets 400 (RFC 9112 §3.2).
    """
    if value[:1] == b"[":
        end = value.find(b"]")
        if end < 2 or value[1:end].translate(None, _IP_LITERAL):
            return False
        rest = value[end + 1 :]
        if not rest:
            return True
        if rest[:1] != b":":
            return False
        port = rest[1:]
    else:
        host, _, port = value.partition(b":")
        if host.translate(None, _REG_NAME):
            return False
    return not port.translate(None, _DIGITS)


def absolute_form_authority(target: bytes) -> bytes:
    """Return the authority of an absolute-form request target (RFC 9112 §3.2.2).

    Only ``http`` and ``https`` targets with a host are accepted; a userinfo part
    (``user@host``) is refused as RFC 9110 §4.2.4 advises.

    Raises:
        ValueError: The target is not an acceptable absolute-form target.
    """
    scheme, sep, rest = target.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        raise ValueError("only http and https absolute-form targets are served")
    end = len(rest)
    for delimiter in (b"/", b"?", b"#"):
        found = rest.find(delimiter, 0, end)
        if found >= 0:
            end = found
    authority = rest[:end]
    if authority[:1] in (b"", b":") or b"@" in authority or not valid_host(authority):
        raise ValueError("absolute-form target without a valid host")
    return authority


def target_error(method: bytes, target: bytes) -> str | None:
    """Why a request target that is not in origin-form is refused, or None if acceptable.

    The asterisk-form passes with any method: it is for ``OPTIONS`` (RFC 9112 §3.2.4), and
    the server answers it with 405 for other methods, as Twisted does. The authority-form
    is for ``CONNECT`` only (§3.2.3, which llhttp enforces); anything else must be an
    absolute-form ``http(s)`` URI (§3.2.2).
    """
    if target == b"*":
        return None
    if method == b"CONNECT":
        return None
    try:
        absolute_form_authority(target)
    except ValueError as e:
        return str(e)
    return None


def transfer_coding_error(values: list[bytes], http11: bool) -> tuple[int, str] | None:
    """Check a request's ``Transfer-Encoding`` field lines; return ``(status, reason)`` or None.

    llhttp refuses some faults while it parses the field (``chunked`` followed by another
    coding or repeated, a ``Content-Length`` next to it) but others only after the head is
    complete (a lone ``gzip``), which is after the channel has decided here:

    - an HTTP/1.0 request with ``Transfer-Encoding`` has faulty framing: 400, then close
      (RFC 9112 §6.1);
    - ``chunked`` not the final coding: the body length cannot be determined, 400
      (RFC 9112 §6.3);
    - other codings before the final ``chunked`` (``gzip, chunked``): we decode none, 501
      (RFC 9112 §6.1: "SHOULD respond with 501").
    """
    if not http11:
        return 400, "Transfer-Encoding in an HTTP/1.0 request"
    codings = [
        coding
        for value in values
        for coding in (part.strip(b" \t").lower() for part in value.split(b","))
        if coding
    ]
    if not codings or codings[-1] != b"chunked" or b"chunked" in codings[:-1]:
        return 400, "chunked is not the final transfer coding"
    if len(codings) > 1:
        return 501, "transfer coding not implemented"
    return None
