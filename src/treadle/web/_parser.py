"""The request parser: httptools (llhttp) and the callbacks that record what it parses.

A :class:`Parser` is lent to a :class:`treadle.web.http.HTTPChannel` while a request arrives on
it. Its callbacks store what they see in the channel's fields and enforce the limits that
can be checked as the head and body arrive, raising :class:`Refused` to stop parsing with a
status code; the channel acts once ``feed_data`` returns (see :mod:`treadle.web._channel` for
what llhttp refuses by itself and what the channel checks).
"""

from __future__ import annotations

import io
import tempfile
from typing import TYPE_CHECKING, Final

import httptools

from treadle.web._framing import valid_host

if TYPE_CHECKING:
    from treadle.web._channel import HTTPChannel

__all__ = [
    "BODY",
    "CLOSING",
    "DROPPED",
    "HEAD",
    "IDLE",
    "LINGER",
    "MAX_SPARE_PARSERS",
    "SPARE_PARSERS",
    "SPOOL_SIZE",
    "Parser",
    "Refused",
]

#: Bodies larger than this are spooled to a temporary file instead of memory.
SPOOL_SIZE: Final = 1024 * 1024

# What the channel is reading, for its timeouts.
IDLE: Final = 0
HEAD: Final = 1
BODY: Final = 2
LINGER: Final = 3  # refused: draining what the client still sends before closing
CLOSING: Final = 4  # closed by us: waiting for the transport to flush what it holds


class _Dropped(dict[bytes, list[bytes]]):
    """Takes the trailer fields httptools reports, and keeps none of them."""

    def __setitem__(self, key: bytes, value: list[bytes]) -> None:
        pass


DROPPED: Final = _Dropped()


class Refused(Exception):
    """Raised inside a parser callback to stop parsing with a status code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class Parser:
    """An httptools parser and the callbacks it calls, lent to one channel at a time.

    httptools binds its callbacks when a parser is made. Bound to this object rather than
    to the channel, a parser can move between connections: a channel holds one only while
    a request is arriving and gives it back to ``SPARE_PARSERS`` at the end of a read that
    completed its requests, so connections that wait (for a response or for the next
    request) hold none (about 1 KiB each: the parser, llhttp's state and settings, eight
    bound callbacks).

    The callbacks only record what they see; the channel acts after ``feed_data`` returns.
    """

    __slots__ = ("channel", "llhttp")

    def __init__(self) -> None:
        self.channel: HTTPChannel = None  # type: ignore[assignment]  # set while lent
        self.llhttp = httptools.HttpRequestParser(self)

    def on_message_begin(self) -> None:
        ch = self.channel
        ch._phase = HEAD
        ch._head_started = ch._read_at
        ch._url = b""
        ch._headers = {}
        ch._repeats = 0
        ch._wire = 0
        ch._body_size = 0

    def on_url(self, url: bytes) -> None:
        # Called once per read the target spans; the method is already parsed.
        ch = self.channel
        url = ch._url = ch._url + url
        method = self.llhttp.get_method()
        # httptools makes new bytes per call: the usual methods are kept as one object each.
        method = ch._method = _METHODS.get(method, method)
        line = len(method) + len(url) + 10  # _framing.request_line_size
        ch._head_size = line + 2
        if line > ch._line_limit:
            raise Refused(414, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp drops the whitespace before a value but keeps what follows it; neither
        # belongs to the value (RFC 9112 §5). (llhttp refuses every other control byte, so
        # rstrip() removes only SP and HTAB; it returns the value itself when none trail.)
        ch = self.channel
        value = value.rstrip()
        line = len(name) + len(value) + 2  # _framing.field_line_size
        size = ch._head_size = ch._head_size + line + 2
        # One comparison guards every limit: a field line is shorter than the head holding
        # it, and fields are counted whenever the head passes _COUNT_EVERY bytes (and once
        # at its end), which bounds what a flood of tiny fields can hold in between.
        if size > ch._size_check:
            ch._check_head(line, size)
        key = _FIELD_NAMES.get(name)
        if key is None:
            key = name.lower()
        headers = ch._headers
        values = headers.get(key)
        if values is None:
            headers[key] = [value]
        else:
            values.append(value)
            ch._repeats += 1

    def on_headers_complete(self) -> None:
        ch = self.channel
        ch._phase = BODY
        version = self.llhttp.get_http_version()
        ch._version = version = _VERSIONS.get(version, version)
        if version != "1.1" and version != "1.0":
            # llhttp passes HTTP/0.9 and HTTP/2.0 through (and refuses 1.2 or 3.0 itself).
            raise Refused(505, "unsupported HTTP version")
        headers = ch._headers
        if ch._head_size > ch._count_check:
            # Fewer bytes than _MIN_FIELD_SIZE per allowed field cannot hold too many fields.
            ch._check_count(0)
        host = headers.get(b"host")
        if host is None:
            if version == "1.1":
                # RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host.
                raise Refused(400, "HTTP/1.1 request without Host")
        elif host != ch._host_seen:  # the list compare checks "exactly one" too
            _check_host(host)
            ch._host_seen = [host[0]]  # a copy: the request may change its own
        if ch._url[0] != 47:  # not origin-form ("/..."): rare
            ch._check_target()
        body = False
        if b"transfer-encoding" in headers:
            body = ch._check_chunked(version == "1.1")
        length = headers.get(b"content-length")
        if length is not None:
            body = ch._check_length(length[0])
        expect = headers.get(b"expect")
        if expect is not None and version == "1.1":
            # RFC 9110 §10.1.1: an HTTP/1.0 request's expectation MUST be ignored.
            ch._expect(expect, body)

    def on_body(self, body: bytes) -> None:
        ch = self.channel
        size = ch._body_size = ch._body_size + len(body)
        if size > ch.factory.maxRequestBodySize:
            raise Refused(413, "request body too large")
        ch._last_activity = ch._read_at
        content = ch._body
        if content is None:
            content = ch._body = io.BytesIO()
        elif size > SPOOL_SIZE and isinstance(content, io.BytesIO):
            # Large bodies move to disk; the request closes the file when it is done.
            spooled = tempfile.TemporaryFile()  # noqa: SIM115
            spooled.write(content.getbuffer())
            content = ch._body = spooled
        content.write(body)

    def on_chunk_header(self) -> None:
        # Between a chunk's size line and its end come only data and, after the last one,
        # the trailer fields: these go to DROPPED (see _check_chunked).
        ch = self.channel
        ch._chunks += 1
        ch._headers = DROPPED

    def on_chunk_complete(self) -> None:
        ch = self.channel
        headers = ch._request_headers
        assert headers is not None  # set by _check_chunked before any chunk
        ch._headers = headers

    def on_message_complete(self) -> None:
        ch = self.channel
        ch._phase = IDLE
        ch._requests_seen += 1
        keep_alive = self.llhttp.should_keep_alive()
        content = ch._body
        if content is not None:
            content.seek(0)
            ch._body = None
        ch._queue.append(
            (
                ch._method,
                ch._url,
                ch._version == "1.1",
                ch._headers,
                content,
                keep_alive,
            )
        )
        ch._continue_pending = False
        if not keep_alive:
            ch._stop_parsing = True
        elif len(ch._queue) >= ch.factory.maxPipelined:
            ch._pause_reading()


# The usual methods, versions and field names as one object each: a pending request holds
# these instead of copies made for it (httptools returns new objects for every request).
_METHODS: Final[dict[bytes, bytes]] = {
    m: m for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS")
}
_VERSIONS: Final[dict[str, str]] = {"1.1": "1.1", "1.0": "1.0"}
_FIELD_NAMES: Final[dict[bytes, bytes]] = {
    spelling: name.lower()
    for name in (
        b"Accept",
        b"Accept-Encoding",
        b"Accept-Language",
        b"Authorization",
        b"Cache-Control",
        b"Connection",
        b"Content-Length",
        b"Content-Type",
        b"Cookie",
        b"Host",
        b"If-Modified-Since",
        b"If-None-Match",
        b"Origin",
        b"Pragma",
        b"Referer",
        b"Upgrade-Insecure-Requests",
        b"User-Agent",
        b"X-Forwarded-For",
        b"X-Forwarded-Proto",
        b"X-Real-IP",
        b"X-Requested-With",
    )
    for spelling in (name, name.lower())
}

#: Parsers no connection holds, for the next request that arrives on any connection.
SPARE_PARSERS: list[Parser] = []
#: Spare parsers kept after a burst: as many requests may arrive in pieces at once.
MAX_SPARE_PARSERS: Final = 1024


def _check_host(values: list[bytes]) -> None:
    """Refuse more than one Host or an invalid one (RFC 9112 §3.2: 400)."""
    if len(values) != 1:
        raise Refused(400, "more than one Host field")
    if not valid_host(values[0]):
        raise Refused(400, "invalid Host field")
