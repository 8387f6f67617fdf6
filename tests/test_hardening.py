"""Hostile clients: malformed and smuggling requests, limits, floods, slow clients, faults.

The corpus runs over raw sockets against a real server (under asyncio and uvloop); each entry
is followed by a probe request on the same connection, which must never be answered after a
refusal (no byte of a refused request is parsed as a new request), and by a normal request
on a fresh connection (the server is still alive). Limits are tested exactly at their
boundary on the in-memory channel (limit passes, limit + 1 fails), and where reads matter
over sockets too.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from treadle.internet import reactor
from treadle.internet.error import ConnectionAborted, ConnectionLost
from treadle.internet.task import Clock
from treadle.web import _framing
from treadle.web.http import (
    MAX_BODY_SIZE,
    MAX_CHUNK_EXTENSIONS_SIZE,
    MAX_FIELD_LINE_SIZE,
    MAX_HEAD_SIZE,
    MAX_HEADERS,
    MAX_REQUEST_LINE_SIZE,
    MAX_TRAILER_SIZE,
    HTTPChannel,
)
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Request, Site
from treadle.web.testing import StringTransport, connect

from .conftest import LOOP_KINDS, Held, ServerThread, host_port, wait_for

# -- helpers ---------------------------------------------------------------------------------

PROBE = b"GET /smuggled HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


class Echo(Resource):
    """Answers with what it understood of the request (the path included, to spot smuggling)."""

    isLeaf = True

    def _echo(self, request: Request) -> bytes:
        body = request.content.read()
        host = request.getHeader(b"host") or b"-"
        return b"%s %s host=%s body=%d:%s" % (
            request.method,
            request.path,
            host,
            len(body),
            body[:64],
        )

    render_GET = render_POST = render_PUT = render_OPTIONS = _echo


def exchange(url: str, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a new connection; return everything received until the server closes."""
    with socket.create_connection(host_port(url), timeout=timeout) as sock:
        # The server may refuse early; what it answered is still readable.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def split_responses(data: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Split a byte stream into responses (1xx skipped); Content-Length or chunked bodies."""
    responses = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete response head: {data[:200]!r}"
        lines = head.split(b"\r\n")
        match = re.match(rb"HTTP/1\.1 (\d{3}) ", lines[0])
        assert match, f"bad status line: {lines[0]!r}"
        status = int(match.group(1))
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if status < 200:
            data = rest
            continue
        if b"content-length" in headers:
            length = int(headers[b"content-length"])
            body, data = rest[:length], rest[length:]
        elif headers.get(b"transfer-encoding") == b"chunked":
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    _, _, rest = rest.partition(b"\r\n")
                    break
                body += rest[:size]
                rest = rest[size + 2 :]
            data = rest
        else:
            body, data = rest, b""
        responses.append((status, headers, body))
    return responses


def statuses(data: bytes) -> tuple[int, ...]:
    return tuple(status for status, _, _ in split_responses(data))


def get_ok(url: str, path: str = "/alive") -> None:
    """A normal request on a fresh connection gets its 200."""
    data = exchange(url, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
    assert statuses(data) == (200,), data[:300]


@pytest.fixture(scope="module", params=LOOP_KINDS)
def corpus_server(request: pytest.FixtureRequest) -> Iterator[tuple[ServerThread, Site, str]]:
    thread = ServerThread(str(request.param))
    site = Site(Echo())
    site.lingerTime = 0.5
    try:
        yield thread, site, thread.serve(site)
    finally:
        thread.stop()


# -- the corpus ------------------------------------------------------------------------------

H = b"Host: x\r\n"
POST = b"POST / HTTP/1.1\r\nHost: x\r\n"
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"

# (id, bytes sent before PROBE, statuses answered on the connection). A refusal is always the
# last response: the PROBE after it is never answered. Entries that llhttp accepts on purpose
# (documented leniencies) list the PROBE's 200 too.
CORPUS: list[tuple[str, bytes, tuple[int, ...]]] = [
    # request line
    ("lowercase method", b"get / HTTP/1.1\r\n" + H + b"\r\n", (400,)),
    ("unknown method", b"FOO / HTTP/1.1\r\n" + H + b"\r\n", (400,)),
    ("method with <", b"G<T / HTTP/1.1\r\n" + H + b"\r\n", (400,)),
    ("tab after method", b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n", (400,)),
    ("leading space", b" GET / HTTP/1.1\r\n" + H + b"\r\n", (400,)),
    ("RTSP method over HTTP", b"SETUP / HTTP/1.1\r\n" + H + b"\r\n", (400,)),
    ("HTTP/0.9 simple request", b"GET /\r\n\r\n", (505,)),
    ("HTTP/0.9 version", b"GET / HTTP/0.9\r\n\r\n", (505,)),
    ("HTTP/2.0 version", b"GET / HTTP/2.0\r\n" + H + b"\r\n", (505,)),
    # (The HTTP/2 preface is no longer refused: it switches the connection to h2c, test_h2.py.)
    (
        "HTTP/2 preface later in a connection",
        b"GET / HTTP/1.1\r\n" + H + b"\r\n" + b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        (200, 505),
    ),
    ("HTTP/1.2", b"GET / HTTP/1.2\r\n" + H + b"\r\n", (400,)),
    ("HTTP/3.0", b"GET / HTTP/3.0\r\n" + H + b"\r\n", (400,)),
    ("lowercase version", b"GET / http/1.1\r\n" + H + b"\r\n", (400,)),
    ("version suffix", b"GET / HTTP/1.1x\r\n" + H + b"\r\n", (400,)),
    ("space after version", b"GET / HTTP/1.1 \r\n" + H + b"\r\n", (400,)),
    ("empty target", b"GET  HTTP/1.1\r\n" + H + b"\r\n", (400,)),
    ("CTL in target", b"GET /\x01 HTTP/1.1\r\n" + H + b"\r\n", (400,)),
    ("DEL in target", b"GET /\x7f HTTP/1.1\r\n" + H + b"\r\n", (400,)),
    ("8-bit target", b"GET /\xff HTTP/1.1\r\n" + H + b"\r\n", (400,)),
    ("NUL in target", b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n", (400,)),
    ("relative target", b"GET abc HTTP/1.1\r\n" + H + b"\r\n", (400,)),
    ("ftp absolute-form", b"GET ftp://h/ HTTP/1.1\r\n" + H + b"\r\n", (400,)),
    ("absolute-form without host", b"GET http:///p HTTP/1.1\r\n" + H + b"\r\n", (400,)),
    ("absolute-form userinfo", b"GET http://u@h/ HTTP/1.1\r\n" + H + b"\r\n", (400,)),
    ("absolute-form bad port", b"GET http://h:x/ HTTP/1.1\r\n" + H + b"\r\n", (400,)),
    ("bare LF line ends", b"GET / HTTP/1.1\nHost: x\n\n", (400,)),
    ("bare CR line end", b"GET / HTTP/1.1\r" + H + b"\r\n", (400,)),
    (
        "TLS on the plain port",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
        (400,),
    ),
    ("NUL bytes", b"\x00" * 32, (400,)),
    # Host
    (
        "HTTP/1.1 without Host is served, as Twisted serves it",
        b"GET / HTTP/1.1\r\n\r\n",
        (200, 200),
    ),
    ("two Host lines", b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", (400,)),
    ("two Host lines in HTTP/1.0", b"GET / HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n", (400,)),
    ("Host with a space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", (400,)),
    ("Host with a path", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", (400,)),
    ("Host with userinfo", b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", (400,)),
    ("Host with a bad port", b"GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", (400,)),
    ("Host with an open bracket", b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", (400,)),
    # field lines
    ("space before colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", (400,)),
    ("tab before colon", b"GET / HTTP/1.1\r\n" + H + b"X\t: a\r\n\r\n", (400,)),
    ("NUL in value", b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n", (400,)),
    ("CTL in value", b"GET / HTTP/1.1\r\n" + H + b"X: a\x01b\r\n\r\n", (400,)),
    ("DEL in value", b"GET / HTTP/1.1\r\n" + H + b"X: a\x7fb\r\n\r\n", (400,)),
    ("bare CR in value", b"GET / HTTP/1.1\r\n" + H + b"X: a\rb\r\n\r\n", (400,)),
    ("bare LF after value", b"GET / HTTP/1.1\r\n" + H + b"X: a\n\r\n", (400,)),
    ("NUL in name", b"GET / HTTP/1.1\r\n" + H + b"X\x00: a\r\n\r\n", (400,)),
    ("parenthesis in name", b"GET / HTTP/1.1\r\n" + H + b"X(): a\r\n\r\n", (400,)),
    ("UTF-8 in name", b"GET / HTTP/1.1\r\n" + H + b"X\xc3\xa9: a\r\n\r\n", (400,)),
    ("empty name", b"GET / HTTP/1.1\r\n" + H + b": a\r\n\r\n", (400,)),
    ("line without colon", b"GET / HTTP/1.1\r\n" + H + b"Xy\r\n\r\n", (400,)),
    ("obs-fold with space", b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n", (400,)),
    ("obs-fold with tab", b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n\tb\r\n\r\n", (400,)),
    ("folded first line", b"GET / HTTP/1.1\r\n " + H + b"\r\n", (400,)),
    ("VT in Transfer-Encoding", POST + b"Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", (400,)),
    # Content-Length
    ("two different lengths", POST + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", (400,)),
    ("two equal lengths", POST + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\nab", (400,)),
    ("length list", POST + b"Content-Length: 2, 2\r\n\r\nab", (400,)),
    ("length with plus", POST + b"Content-Length: +2\r\n\r\nab", (400,)),
    ("negative length", POST + b"Content-Length: -1\r\n\r\n", (400,)),
    ("hex length", POST + b"Content-Length: 0x2\r\n\r\nab", (400,)),
    ("space inside length", POST + b"Content-Length: 1 1\r\n\r\nab", (400,)),
    ("empty length", POST + b"Content-Length: \r\n\r\n", (400,)),
    ("length of 2**64", POST + b"Content-Length: 18446744073709551616\r\n\r\n", (400,)),
    ("length of 2**64-1", POST + b"Content-Length: 18446744073709551615\r\n\r\n", (413,)),
    ("length over the limit", POST + b"Content-Length: %d\r\n\r\n" % (MAX_BODY_SIZE + 1), (413,)),
    ("space before length colon", POST + b"Content-Length : 2\r\n\r\nab", (400,)),
    # Transfer-Encoding
    (
        "length then chunked",
        POST + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        (400,),
    ),
    (
        "chunked then length",
        POST + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        (400,),
    ),
    ("chunked not last", POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", (400,)),
    ("gzip only", POST + b"Transfer-Encoding: gzip\r\n\r\nab", (400,)),
    ("identity only", POST + b"Transfer-Encoding: identity\r\n\r\nab", (400,)),
    ("gzip then chunked", POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", (501,)),
    (
        "identity then chunked",
        POST + b"Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
        (501,),
    ),
    (
        "gzip and chunked lines",
        POST + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        (501,),
    ),
    (
        "chunked and gzip lines",
        POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n",
        (400,),
    ),
    ("chunked twice", POST + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", (400,)),
    ("xchunked", POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", (400,)),
    ("chunked with a parameter", POST + b"Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n", (400,)),
    ("empty Transfer-Encoding", POST + b"Transfer-Encoding: \r\n\r\n", (400,)),
    (
        "Transfer-Encoding in HTTP/1.0",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        (400,),
    ),
    # chunked bodies
    ("chunk size 0x", CHUNKED + b"0x5\r\nhello\r\n0\r\n\r\n", (400,)),
    ("chunk size with plus", CHUNKED + b"+5\r\nhello\r\n0\r\n\r\n", (400,)),
    ("negative chunk size", CHUNKED + b"-5\r\nhello\r\n0\r\n\r\n", (400,)),
    ("chunk size overflow", CHUNKED + b"10000000000000005\r\nhello\r\n0\r\n\r\n", (400,)),
    ("space before chunk extension", CHUNKED + b"5 ;a=b\r\nhello\r\n0\r\n\r\n", (400,)),
    ("space after chunk size", CHUNKED + b"5 \r\nhello\r\n0\r\n\r\n", (400,)),
    ("CTL in chunk extension", CHUNKED + b"5;\x01\r\nhello\r\n0\r\n\r\n", (400,)),
    ("bare LF after chunk extension", CHUNKED + b"5;a\nhello\r\n0\r\n\r\n", (400,)),
    ("bare LF after chunk size", CHUNKED + b"5\nhello\r\n0\r\n\r\n", (400,)),
    ("missing chunk size", CHUNKED + b"\r\nhello\r\n0\r\n\r\n", (400,)),
    ("chunk longer than its size", CHUNKED + b"5\r\nhelloXX\r\n0\r\n\r\n", (400,)),
    ("bare LF after chunk data", CHUNKED + b"5\r\nhello\n0\r\n\r\n", (400,)),
    ("bad trailer name", CHUNKED + b"0\r\nX T: 1\r\n\r\n", (400,)),
    ("NUL in trailer", CHUNKED + b"0\r\nX: a\x00\r\n\r\n", (400,)),
    # upgrades and expectations
    (
        "Upgrade with a body",
        POST + b"Connection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 5\r\n\r\nhello",
        (501,),
    ),
    (
        "Upgrade we do not speak",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        (200,),
    ),
    ("CONNECT", b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", (501,)),
    ("unknown expectation", b"GET / HTTP/1.1\r\n" + H + b"Expect: magic\r\n\r\n", (417,)),
    (
        "100-continue over the limit",
        POST + b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (MAX_BODY_SIZE + 1),
        (413,),
    ),
    # limits at their defaults
    (
        "request line over the limit",
        b"GET /%s HTTP/1.1\r\n" % (b"a" * MAX_REQUEST_LINE_SIZE) + H + b"\r\n",
        (414,),
    ),
    (
        "field line over the limit",
        b"GET / HTTP/1.1\r\n" + H + b"X: %s\r\n\r\n" % (b"a" * MAX_FIELD_LINE_SIZE),
        (431,),
    ),
    (
        "too many fields",
        b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n" * MAX_HEADERS + b"\r\n",
        (431,),
    ),
    (
        "head over the limit",
        b"GET / HTTP/1.1\r\n" + H + b"X: %s\r\n" % (b"a" * 8000) * 9 + b"\r\n",
        (431,),
    ),
    # pipelines: the refusal comes after the answers already due
    (
        "refusal after a good request",
        b"GET /1 HTTP/1.1\r\n" + H + b"\r\nGET / HTTP/9.9\r\n\r\n",
        (200, 400),
    ),
    (
        "Connection: close, then more",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        (200,),
    ),
    ("HTTP/1.0, then more", b"GET / HTTP/1.0\r\n\r\n", (200,)),
    # accepted on purpose (documented leniencies): the probe is answered too
    ("empty lines before a request", b"\r\n\r\n" + b"GET / HTTP/1.1\r\n" + H + b"\r\n", (200, 200)),
    ("two spaces in the request line", b"GET  /  HTTP/1.1\r\n" + H + b"\r\n", (200, 200)),
    ("absolute-form target", b"GET http://a.example/p HTTP/1.1\r\n" + H + b"\r\n", (200, 200)),
    ("asterisk-form OPTIONS", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", (200, 200)),
    ("trailing whitespace in values", POST + b"Content-Length: 2 \r\n\r\nab", (200, 200)),
]


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 60
    assert len({name for name, _, _ in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize(("name", "data", "expected"), CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus(
    corpus_server: tuple[ServerThread, Site, str], name: str, data: bytes, expected: tuple[int, ...]
) -> None:
    _thread, _site, url = corpus_server
    received = exchange(url, data + PROBE)
    responses = split_responses(received)
    assert tuple(r[0] for r in responses) == expected, received[:500]
    answered_probe = any(body.startswith(b"GET /smuggled ") for _, _, body in responses)
    assert answered_probe == (len(expected) == 2 and expected[0] == 200 == expected[1])
    for status, headers, body in responses:
        if status == 400:
            # Twisted's answer to a malformed request: the status line alone, then the close.
            assert (headers, body) == ({}, b"")
            continue
        if status >= 400:
            assert headers[b"connection"] == b"close"
            # The channel's own page: the status, nothing of the request (405 and CONNECT's
            # 501 are the resource layer's pages).
            if status != 405 and not name.startswith("CONNECT"):
                assert re.fullmatch(
                    rb"<html><body><h1>%d [A-Za-z -]+</h1></body></html>" % status, body
                )
    get_ok(url)


def test_corpus_details(corpus_server: tuple[ServerThread, Site, str]) -> None:
    """What the server made of the accepted leniencies."""
    _thread, _site, url = corpus_server
    absolute = split_responses(
        exchange(
            url, b"GET http://a.example:81/p?q HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
    )
    assert absolute[0][2] == b"GET /p host=a.example:81 body=0:"
    trailing = split_responses(
        exchange(url, POST + b"X: a \t\r\nConnection: close\r\nContent-Length: 2 \r\n\r\nab")
    )
    assert trailing[0][2] == b"POST / host=x body=2:ab"
    chunked = split_responses(
        exchange(
            url,
            CHUNKED.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
            + b"3;name=value\r\nabc\r\n0\r\nX-Checksum: 1\r\nHost: evil\r\n\r\n",
        )
    )
    # Trailers are dropped: "Host: evil" arriving after the body changes nothing.
    assert chunked[0][2] == b"POST / host=x body=3:abc"


def test_error_pages_do_not_reflect_input(serve: Any) -> None:
    class Only(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            return b"ok"

    root = Resource()
    root.putChild(b"only", Only())
    url = serve(root)
    missing = split_responses(
        exchange(url, b"GET /<script>x</script> HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    )
    assert missing[0][0] == 404 and b"<script>" not in missing[0][2]
    not_allowed = split_responses(
        exchange(url, b'DELETE /only/"<b>" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    )
    assert not_allowed[0][0] == 405 and b"<b>" not in not_allowed[0][2]
    not_implemented = split_responses(
        exchange(url, b"PROPFIND /only/<i> HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    )
    assert not_implemented[0][0] == 501 and b"<i>" not in not_implemented[0][2]
    assert b"PROPFIND" in not_implemented[0][2]


@pytest.mark.parametrize(
    "attempt",
    [
        lambda r: r.setHeader(b"X-A\r\nSet-Cookie", b"v"),
        lambda r: r.setHeader("X-A: b", "v"),
        lambda r: r.setHeader(b"", b"v"),
        lambda r: r.setHeader(b"X-A", b"v\r\nSet-Cookie: x=1"),
        lambda r: r.setHeader(b"X-A", "v\nx"),
        lambda r: r.setHeader(b"X-A", b"v\x00"),
        lambda r: r.responseHeaders.addRawHeader(b"X-A\n", b"v"),
        lambda r: r.redirect(b"/next\r\n\r\n<script>"),
        lambda r: r.setResponseCode(200, b"OK\r\nX-Injected: 1"),
        lambda r: r.addCookie(b"k", b"v\r\nX: 1"),
    ],
)
def test_response_splitting_through_the_api_is_refused(attempt: Callable[[Request], None]) -> None:
    refused: list[BaseException] = []

    class Splitter(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            try:
                attempt(request)
            except ValueError as e:
                refused.append(e)
            return b"ok"

    transport = feed(Site(Splitter()), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert len(refused) == 1
    assert split_responses(transport.value())[0][2] == b"ok"
    assert b"Set-Cookie" not in transport.value() and b"X-Injected" not in transport.value()


# -- limits at their boundary (in memory: exact) ---------------------------------------------


def feed(site: Site, *parts: bytes) -> StringTransport:
    channel, transport = connect(site)
    for part in parts:
        channel.data_received(part)
    return transport


def status_of(transport: StringTransport) -> int:
    found = statuses(transport.value())
    assert found, transport.value()
    return found[-1]


def request_with_line(size: int) -> bytes:
    """A GET whose request line counts exactly ``size`` (see _framing.request_line_size)."""
    target = b"/" + b"a" * (size - _framing.request_line_size(b"GET", b"/"))
    assert _framing.request_line_size(b"GET", target) == size
    return b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target


@pytest.mark.parametrize("limit", [MAX_REQUEST_LINE_SIZE, 100])
def test_request_line_limit(limit: int) -> None:
    site = Site(Echo())
    site.maxRequestLineSize = limit
    assert status_of(feed(site, request_with_line(limit))) == 200
    assert status_of(feed(site, request_with_line(limit + 1))) == 414
    # Split across reads, the count is the same.
    data = request_with_line(limit + 1)
    assert status_of(feed(site, *(data[i : i + 7] for i in range(0, len(data), 7)))) == 414


def field_line(size: int, name: bytes = b"X-Pad") -> bytes:
    value = b"v" * (size - _framing.field_line_size(name, b""))
    assert _framing.field_line_size(name, value) == size
    return name + b": " + value + b"\r\n"


@pytest.mark.parametrize("limit", [MAX_FIELD_LINE_SIZE, 64])
def test_field_line_limit(limit: int) -> None:
    site = Site(Echo())
    site.maxFieldLineSize = limit
    head = b"GET / HTTP/1.1\r\nHost: x\r\n"
    assert status_of(feed(site, head + field_line(limit) + b"\r\n")) == 200
    assert status_of(feed(site, head + field_line(limit + 1) + b"\r\n")) == 431
    # Whitespace around the value is not counted.
    padded = field_line(limit).replace(b": ", b":   ").replace(b"\r\n", b" \t\r\n")
    assert status_of(feed(site, head + padded + b"\r\n")) == 200


def head_of_size(size: int, *extra: bytes) -> bytes:
    """A GET whose head counts exactly ``size``: request line and field lines with CRLFs."""
    lines = [b"GET / HTTP/1.1", b"Host: x", *extra]
    used = sum(len(line) + 2 for line in lines)
    while size - used > 0:
        take = min(size - used, 4000)
        if take < 12:  # too small for a line of its own: grow the previous padding line
            lines[-1] += b"v" * take
            used += take
            break
        lines.append(field_line(take - 2)[:-2])
        used += take
    data = b"\r\n".join(lines) + b"\r\n\r\n"
    assert len(data) == size + 2  # the empty line ending the head is not counted
    return data


@pytest.mark.parametrize("limit", [MAX_HEAD_SIZE, 1000])
def test_head_size_limit(limit: int) -> None:
    site = Site(Echo())
    site.maxHeadSize = limit
    assert status_of(feed(site, head_of_size(limit))) == 200
    assert status_of(feed(site, head_of_size(limit + 1))) == 431


@pytest.mark.parametrize("limit", [MAX_HEAD_SIZE, 1000])
def test_head_size_limit_holds_when_the_head_trickles_in(limit: int) -> None:
    """Split into small reads the head is counted the same (the per-read bound is lower)."""
    site = Site(Echo())
    site.maxHeadSize = limit
    for size, expected in ((limit, 200), (limit + 1, 431)):
        data = head_of_size(size)
        assert status_of(feed(site, *(data[i : i + 5] for i in range(0, len(data), 5)))) == (
            expected
        )


def test_one_endless_field_line_is_cut_off_after_one_read_beyond_the_head_limit() -> None:
    """httptools buffers a value until its line ends: the channel bounds that by reads."""
    site = Site(Echo())
    channel, transport = connect(site)
    channel.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nX: ")
    sent = 0
    while not transport.value() and sent < 10 * MAX_HEAD_SIZE:
        channel.data_received(b"a" * 4096)
        sent += 4096
    assert status_of(transport) == 431
    assert sent <= MAX_HEAD_SIZE + 4096


@pytest.mark.parametrize("limit", [MAX_HEADERS, 3])
def test_field_count_limit(limit: int) -> None:
    site = Site(Echo())
    site.maxHeaders = limit
    head = b"GET / HTTP/1.1\r\nHost: x\r\n"
    # Host is a field too; repeated names count each time.
    assert status_of(feed(site, head + b"X: a\r\n" * (limit - 1) + b"\r\n")) == 200
    assert status_of(feed(site, head + b"X: a\r\n" * limit + b"\r\n")) == 431


def body_request(size: int, *extra: bytes) -> bytes:
    return POST + b"".join(extra) + b"Content-Length: %d\r\n\r\n" % size + b"b" * size


def test_body_limit_with_content_length() -> None:
    site = Site(Echo())
    site.maxRequestBodySize = 1000
    assert status_of(feed(site, body_request(1000))) == 200
    assert status_of(feed(site, body_request(1001))) == 413


def test_default_body_limit_is_ten_mebibytes() -> None:
    assert MAX_BODY_SIZE == 10 * 1024 * 1024
    site = Site(Echo())
    assert status_of(feed(site, body_request(MAX_BODY_SIZE))) == 200
    transport = feed(site, POST + b"Content-Length: %d\r\n\r\n" % (MAX_BODY_SIZE + 1))
    assert status_of(transport) == 413


def chunked_request(sizes: list[int], extension: bytes = b"", trailer: bytes = b"") -> bytes:
    chunks = b"".join(b"%x%s\r\n%s\r\n" % (n, extension, b"c" * n) for n in sizes)
    return CHUNKED + chunks + b"0\r\n" + trailer + b"\r\n"


def test_body_limit_with_chunks() -> None:
    site = Site(Echo())
    site.maxRequestBodySize = 1000
    assert status_of(feed(site, chunked_request([600, 400]))) == 200
    assert status_of(feed(site, chunked_request([600, 401]))) == 413


@pytest.mark.parametrize("limit", [1000, 1001])
def test_expect_100_continue_at_the_body_limit(limit: int) -> None:
    site = Site(Echo())
    site.maxRequestBodySize = 1000
    transport = feed(site, POST + b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % limit)
    if limit <= 1000:
        assert transport.value() == b"HTTP/1.1 100 Continue\r\n\r\n"
    else:
        assert transport.value().startswith(b"HTTP/1.1 413 ") and transport.closed


def test_chunk_framing_budget_at_its_boundary() -> None:
    """Extensions (and leading zeros) are bounded per request by the framing budget.

    The budget is counted over reads that fall wholly inside the body, so the test feeds the
    head, the framing under test and the end of the body as separate reads.
    """
    site = Site(Echo())
    budget = _framing.chunk_framing_budget(1, MAX_CHUNK_EXTENSIONS_SIZE, MAX_TRAILER_SIZE)
    # framing of "5;<ext>\r\nhello\r\n": size digit, extension, two CRLFs.
    for extension_size, expected in ((budget - 5, 200), (budget - 4, 400)):
        extension = b";" + b"e" * (extension_size - 1)
        transport = feed(site, CHUNKED, b"5%s\r\nhello\r\n" % extension, b"0\r\n\r\n")
        assert status_of(transport) == expected
    # Leading zeros are framing too.
    for digits, expected in ((budget - 4, 200), (budget - 3, 400)):
        transport = feed(site, CHUNKED, b"0" * (digits - 1) + b"5\r\nhello\r\n", b"0\r\n\r\n")
        assert status_of(transport) == expected


def test_chunk_size_digits_llhttp_enforces() -> None:
    """llhttp refuses a chunk size of 2**64 or more: 16 significant hex digits at most."""
    site = Site(Echo())
    site.maxRequestBodySize = 4
    transport = feed(site, CHUNKED + b"ffffffffffffffff\r\nabcde")
    assert status_of(transport) == 413  # 16 digits parse; the body limit then applies
    transport = feed(site, CHUNKED + b"10000000000000000\r\nabcde")
    assert status_of(transport) == 400


def test_endless_chunk_extension_is_cut_off() -> None:
    site = Site(Echo())
    channel, transport = connect(site)
    channel.data_received(CHUNKED + b"5;a=")
    sent = 0
    while not transport.value() and sent < 1024 * 1024:
        channel.data_received(b"b" * 1000)
        sent += 1000
    assert status_of(transport) == 400
    assert sent <= MAX_CHUNK_EXTENSIONS_SIZE + MAX_TRAILER_SIZE + 1000


@pytest.mark.parametrize("limit", [MAX_TRAILER_SIZE, 100])
def test_trailer_limit(limit: int) -> None:
    site = Site(Echo())
    site.maxTrailerSize = limit
    ok = field_line(limit - 2, b"X-Trailer")
    assert status_of(feed(site, chunked_request([3], trailer=ok))) == 200
    too_big = field_line(limit - 1, b"X-Trailer")
    assert status_of(feed(site, chunked_request([3], trailer=too_big))) == 431


def test_trailers_are_not_merged_into_headers() -> None:
    site = Site(Echo())
    transport = feed(site, chunked_request([3], trailer=b"Host: evil\r\nX: 1\r\n"))
    assert split_responses(transport.value())[0][2] == b"POST / host=x body=3:ccc"


def test_connection_limit_over_sockets(serve: Any, server: ServerThread) -> None:
    site = Site(Echo())
    site.maxConnections = 3
    url = serve(site)
    held = [socket.create_connection(host_port(url), timeout=10) for _ in range(3)]
    try:
        for sock in held:  # the limit itself is served
            sock.sendall(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        wait_for(lambda: server.call(lambda: len(site.connections)) == 3)
        assert statuses(exchange(url, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")) == (503,)
        held.pop().close()
        wait_for(lambda: server.call(lambda: len(site.connections)) == 2)
        get_ok(url)
    finally:
        for sock in held:
            sock.close()


def test_a_big_head_in_many_reads_over_a_socket(serve: Any) -> None:
    """A head exactly at the limit, sent in small pieces, is served (per-read bound is exact)."""
    site = Site(Echo())
    site.maxHeadSize = 20000
    url = serve(site)
    for size, expected in ((20000, 200), (20001, 431)):
        data = head_of_size(size, b"Connection: close")
        with socket.create_connection(host_port(url), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(0, len(data), 1500):
                sock.sendall(data[i : i + 1500])
                time.sleep(0.001)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        assert statuses(received) == (expected,)


# -- pipelining ------------------------------------------------------------------------------


def test_a_thousand_pipelined_requests_are_answered_in_order(serve: Any) -> None:
    url = serve(Echo())
    data = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(999))
    data += b"GET /999 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    responses = split_responses(exchange(url, data, timeout=30))
    assert [body for _, _, body in responses] == [
        b"GET /%d host=x body=0:" % i for i in range(1000)
    ]


class Mixed(Resource):
    """Answers by the path's first letter: ``s`` small, ``b`` large, ``d`` a turn later,
    ``w`` streamed in two writes; the body names the path."""

    isLeaf = True

    def render_GET(self, request: Request) -> object:
        path = request.path
        kind = path[1:2]
        if kind == b"b":
            return path + b"x" * (64 * 1024)
        if kind == b"d":
            asyncio.get_running_loop().call_soon(lambda: (request.write(path), request.finish()))
            return NOT_DONE_YET
        if kind == b"w":
            request.write(path)
            asyncio.get_running_loop().call_soon(lambda: (request.write(b"!"), request.finish()))
            return NOT_DONE_YET
        return path


def test_pipelined_responses_of_every_kind_keep_their_order(serve: Any) -> None:
    """Small answers held back for one write, large, later and streamed ones, in one batch."""
    url = serve(Mixed())
    paths = [b"/%s%d" % (b"sbsdsws"[i % 7 : i % 7 + 1], i) for i in range(200)]
    data = b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p for p in paths[:-1])
    data += b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % paths[-1]
    responses = split_responses(exchange(url, data, timeout=30))
    expected = [
        p + b"x" * (64 * 1024) if p[1:2] == b"b" else p + b"!" if p[1:2] == b"w" else p
        for p in paths
    ]
    assert [body for _, _, body in responses] == expected


@contextlib.contextmanager
def buffer_peak(server: ServerThread, site: Site) -> Iterator[list[int]]:
    """Sample the largest transport write buffer of ``site`` every 2 ms while in the block."""
    from treadle.internet.task import LoopingCall

    peak = [0]

    def sample() -> None:
        for channel in site.connections:
            if channel.asyncio_transport is not None:
                peak[0] = max(peak[0], channel.asyncio_transport.get_write_buffer_size())

    looping = server.call(lambda: LoopingCall(sample))
    server.call(lambda: looping.start(0.002))
    try:
        yield peak
    finally:
        server.call(looping.stop)


class Big(Resource):
    isLeaf = True
    body = b"x" * (256 * 1024)

    def render_GET(self, request: Request) -> bytes:
        return self.body


def test_pipelined_requests_to_a_client_that_does_not_read(
    serve: Any, server: ServerThread
) -> None:
    """Answers wait while the client reads nothing: memory stays bounded, order is kept."""
    site = Site(Big())
    url = serve(site)
    with (
        buffer_peak(server, site) as peak,
        socket.create_connection(host_port(url), timeout=30) as sock,
    ):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        # 60 answers of 256 KiB: far more than the kernel's socket buffers hold.
        requests = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 59
        sock.sendall(requests + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(0.5)  # the client reads nothing for a while
        assert peak[0] < 4 * 1024 * 1024
        received = bytearray()
        while chunk := sock.recv(1024 * 1024):
            received += chunk
    responses = split_responses(bytes(received))
    assert len(responses) == 60
    assert all(len(body) == len(Big.body) for _, _, body in responses)
    assert peak[0] < 4 * 1024 * 1024


@pytest.mark.parametrize("limit", [16, 3])
def test_pipeline_queue_limit(limit: int) -> None:
    """Reading pauses once ``maxPipelined`` requests wait behind the one being answered."""
    held = Held()
    site = Site(held)
    site.maxPipelined = limit
    channel, transport = connect(site)
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    channel.data_received(request)  # being answered
    for _ in range(limit - 1):
        channel.data_received(request)
    assert transport.reading
    channel.data_received(request)
    assert not transport.reading
    assert len(held.pending) == 1
    for _ in range(limit + 1):
        held.pending[-1].finish()
    assert transport.reading
    assert statuses(transport.value()) == (200,) * (limit + 1)


def test_no_response_after_connection_close_even_when_pipelined_later(serve: Any) -> None:
    url = serve(Echo())
    with socket.create_connection(host_port(url), timeout=10) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(0.05)
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    assert [body for _, _, body in split_responses(received)] == [b"GET /a host=x body=0:"]


# -- slow clients ----------------------------------------------------------------------------


def test_slowloris(serve: Any, server: ServerThread) -> None:
    """500 connections trickling a head neither block a normal client nor outlive headTimeout."""
    site = Site(Echo())
    site.headTimeout = 0.5
    url = serve(site)
    address = host_port(url)
    socks = []
    try:
        for _ in range(500):
            sock = socket.create_connection(address, timeout=10)
            sock.sendall(b"GET / HTTP/1.1\r\n")
            socks.append(sock)
        for sock in socks:
            sock.sendall(b"X: y\r\n")
        get_ok(url)  # served while 500 heads trickle
        # Keep trickling; every connection must get its 408 (only the head timeout gives
        # one here) and be closed.
        closed: set[int] = set()
        timed_out: set[int] = set()
        for sock in socks:
            sock.setblocking(False)
        deadline = time.monotonic() + 10
        while len(closed) < len(socks) and time.monotonic() < deadline:
            for i, sock in enumerate(socks):
                if i in closed:
                    continue
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    try:
                        sock.send(b"Y")
                    except OSError:
                        closed.add(i)
                    continue
                except OSError:
                    closed.add(i)
                    continue
                if b"HTTP/1.1 408 " in data:
                    timed_out.add(i)
                if not data or i in timed_out:
                    closed.add(i)
            time.sleep(0.02)
        assert len(closed) == len(socks)
        assert len(timed_out) > len(socks) // 2  # the others' 408 may be lost to a reset
        wait_for(lambda: server.call(lambda: len(site.connections)) == 0)
    finally:
        for sock in socks:
            sock.close()


def test_a_client_that_stops_reading_mid_response_is_dropped() -> None:
    clock = Clock()
    held = Held()
    site = Site(held, timeout=5)
    channel, transport = connect(site, clock)
    channel.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    held.pending[0].write(b"x" * 100)
    channel.pause_writing()  # what the transport does when its buffer fills
    clock.advance(4)
    channel.resume_writing()  # progress: the client read something
    channel.pause_writing()
    clock.pump([1] * 4)
    assert not transport.aborted
    clock.pump([1] * 2)
    assert transport.aborted


class NeverDrains(StringTransport):
    """A transport whose peer reads nothing: what is written stays buffered."""

    def get_write_buffer_size(self) -> int:
        return sum(map(len, self.written))


def test_a_closed_connection_whose_client_reads_nothing_is_aborted() -> None:
    clock = Clock()
    site = Site(Big(), timeout=5)
    site._clock = clock
    channel = site.buildProtocol(None)
    transport = NeverDrains()
    channel.connection_made(transport)  # type: ignore[arg-type]
    channel.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert transport.closed and not transport.aborted
    clock.pump([1] * 9)
    assert not transport.aborted
    clock.pump([1] * 2)
    assert transport.aborted


def test_empty_lines_do_not_keep_an_idle_connection_open() -> None:
    clock = Clock()
    site = Site(Echo(), timeout=5)
    channel, transport = connect(site, clock)
    channel.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    for _ in range(6):
        clock.advance(1)
        channel.data_received(b"\r\n")
    assert transport.closed


def test_a_chunked_body_of_framing_only_times_out() -> None:
    clock = Clock()
    site = Site(Echo())
    channel, transport = connect(site, clock)
    channel.data_received(CHUNKED)
    for _ in range(int(site.bodyTimeout) + 2):
        clock.advance(1)
        channel.data_received(b"0")  # leading zeros: framing, not data
    assert status_of(transport) == 408


# -- faults ----------------------------------------------------------------------------------


class Tracked(Resource):
    """Keeps weak references to its requests and records how each one ended."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: weakref.WeakSet[Request] = weakref.WeakSet()
        self.outcomes: list[str] = []
        self.rendered = threading.Event()

    def render(self, request: Request) -> object:
        self.requests.add(request)
        request.notifyFinish().addCallbacks(
            lambda _: self.outcomes.append("finished"),
            lambda failure: self.outcomes.append(failure.type.__name__),
        )
        self.rendered.set()
        if request.path == b"/stream":
            request.write(b"first part")
            return NOT_DONE_YET
        if request.path == b"/hold":
            return NOT_DONE_YET
        return b"done"


DISCONNECT_POINTS = {
    "mid-request-line": b"GET /hol",
    "mid-head": b"GET /hold HTTP/1.1\r\nHost: x\r\nX-Long: aaaa",
    "mid-body": POST + b"Content-Length: 100\r\n\r\nonly part",
    "mid-chunked-body": CHUNKED + b"5\r\nhel",
    "waiting for a response": b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n",
    "mid-response": b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
    "with requests queued": b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n" * 3,
    "after a refusal": b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
}


@pytest.mark.parametrize("point", list(DISCONNECT_POINTS))
@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_client_leaving_at_any_point_leaves_nothing_behind(
    serve: Any, server: ServerThread, point: str, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    resource = Tracked()
    site = Site(resource)
    url = serve(site)
    with caplog.at_level(logging.ERROR, logger="treadle"):
        sock = socket.create_connection(host_port(url), timeout=10)
        sock.sendall(DISCONNECT_POINTS[point])
        if point in ("waiting for a response", "mid-response", "with requests queued"):
            assert resource.rendered.wait(10)
        else:
            time.sleep(0.05)
        if how == "reset":
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        sock.close()
        wait_for(lambda: server.call(lambda: len(site.connections)) == 0)
        if resource.rendered.is_set():
            wait_for(lambda: server.call(lambda: list(resource.outcomes)) != [])
            assert server.call(lambda: list(resource.outcomes)) in (
                ["ConnectionDone"],
                ["ConnectionLost"],
            )

        def leftovers() -> tuple[int, int]:
            gc.collect()
            channels = [
                o for o in gc.get_objects() if isinstance(o, HTTPChannel) and o.factory is site
            ]
            return len(channels), len(resource.requests)

        wait_for(lambda: server.call(leftovers) == (0, 0))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    get_ok(url)


class Faulty(Resource):
    """Fails in every way a resource can, on its own connection only."""

    isLeaf = True

    def render_GET(self, request: Request) -> object:
        kind = request.path
        if kind == b"/raise":
            raise RuntimeError("boom in render")
        if kind == b"/deferred":
            from treadle.internet.defer import Deferred

            d: Deferred[bytes] = Deferred()
            d.addCallback(lambda _: 1 / 0)
            reactor.callLater(0.01, d.callback, None)
            return d
        if kind == b"/calllater":

            def later() -> None:
                raise RuntimeError("boom in callLater")

            reactor.callLater(0.01, later)
            reactor.callLater(0.05, request.finish)
            return NOT_DONE_YET
        if kind == b"/async":

            async def fail() -> bytes:
                await asyncio.sleep(0.01)
                raise ValueError("boom in a coroutine")

            return fail()
        if kind == b"/after-start":
            request.write(b"partial")
            reactor.callLater(0.01, self._fail_late, request)
            return NOT_DONE_YET
        if kind == b"/write-after-loss":
            request.notifyFinish().addErrback(lambda _: self._write_after_loss(request))
            return NOT_DONE_YET
        return b"fine"

    def _fail_late(self, request: Request) -> None:
        request.processingFailed(RuntimeError("boom after the head was sent"))

    def _write_after_loss(self, request: Request) -> None:
        request.write(b"nobody listens")  # ignored, as in Twisted
        try:
            request.finish()
        except RuntimeError:
            self.finish_raised = True


@pytest.mark.parametrize("kind", ["raise", "deferred", "calllater", "async", "after-start"])
def test_errors_in_one_response_touch_no_other_connection(
    serve: Any, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = serve(Faulty())
    address = host_port(url)
    with socket.create_connection(address, timeout=10) as bystander:
        bystander.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert bystander.recv(65536).endswith(b"fine")
        with caplog.at_level(logging.CRITICAL + 1):
            received = exchange(
                url, b"GET /%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % kind.encode()
            )
        if kind in ("raise", "deferred", "async"):
            assert statuses(received) == (500,)
        elif kind == "calllater":
            assert statuses(received) == (200,)
        else:
            assert received.startswith(b"HTTP/1.1 200 ") and not received.endswith(b"0\r\n\r\n")
        bystander.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert bystander.recv(65536).endswith(b"fine")
    get_ok(url)


def test_writing_after_the_client_left_never_raises_except_finish(
    serve: Any, server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    faulty = Faulty()
    site = Site(faulty)
    url = serve(site)
    with socket.create_connection(host_port(url), timeout=10) as sock:
        sock.sendall(b"GET /write-after-loss HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: server.call(lambda: len(site.connections)) == 1)
    wait_for(lambda: getattr(faulty, "finish_raised", False))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_drain_writer_stops_quietly_when_the_client_resets(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """drain() lets the loss arrive: no writes keep hitting the dead socket (asyncio warns)."""
    ended = threading.Event()

    class Endless(Resource):
        isLeaf = True

        async def render_GET(self, request: Request) -> None:
            try:
                while True:
                    request.write(b"e" * 65536)
                    await request.drain()
            finally:
                ended.set()

    url = serve(Endless())
    with caplog.at_level(logging.WARNING):
        sock = socket.create_connection(host_port(url), timeout=10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
        assert ended.wait(10)
        time.sleep(0.1)
    assert not [r for r in caplog.records if "socket.send() raised" in r.getMessage()]


# -- backpressure ----------------------------------------------------------------------------

STREAM_SIZE = 64 * 1024 * 1024
PIECE = b"z" * (64 * 1024)


class PushStream(Resource):
    """Streams STREAM_SIZE bytes from a push producer driven by the loop."""

    isLeaf = True

    def render_GET(self, request: Request) -> object:
        producer = _PushProducer(request)
        request.registerProducer(producer, True)
        producer.resumeProducing()
        return NOT_DONE_YET


class _PushProducer:
    def __init__(self, request: Request) -> None:
        self.request = request
        self.left = STREAM_SIZE
        self.paused = False
        self.scheduled = False
        self.stopped = False

    def _tick(self) -> None:
        self.scheduled = False
        if self.paused or self.stopped:
            return
        piece = PIECE[: min(len(PIECE), self.left)]
        self.request.write(piece)
        self.left -= len(piece)
        if not self.left:
            self.request.unregisterProducer()
            self.request.finish()
            return
        self._schedule()

    def _schedule(self) -> None:
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self._tick)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._schedule()

    def stopProducing(self) -> None:
        self.stopped = True


class PullStream(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> object:
        request.registerProducer(_PullProducer(request), False)
        return NOT_DONE_YET


class _PullProducer:
    def __init__(self, request: Request) -> None:
        self.request = request
        self.left = STREAM_SIZE

    def resumeProducing(self) -> None:
        piece = PIECE[: min(len(PIECE), self.left)]
        self.request.write(piece)
        self.left -= len(piece)
        if not self.left:
            self.request.unregisterProducer()
            self.request.finish()

    def stopProducing(self) -> None:
        pass


class DrainStream(Resource):
    isLeaf = True

    async def render_GET(self, request: Request) -> None:
        left = STREAM_SIZE
        while left:
            piece = PIECE[: min(len(PIECE), left)]
            request.write(piece)
            left -= len(piece)
            await request.drain()
        request.finish()


@pytest.mark.parametrize("resource", [PushStream, PullStream, DrainStream])
def test_a_slow_reader_keeps_the_server_buffer_bounded(
    serve: Any, server: ServerThread, resource: type[Resource]
) -> None:
    site = Site(resource())
    url = serve(site)
    received = bytearray()
    with (
        buffer_peak(server, site) as peak,
        socket.create_connection(host_port(url), timeout=30) as sock,
    ):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reads = 0
        while chunk := sock.recv(256 * 1024):
            received += chunk
            reads += 1
            if reads % 16 == 0:
                time.sleep(0.002)  # a slow reader
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"Transfer-Encoding: chunked" in head
    assert dechunk(body) == (PIECE * (STREAM_SIZE // len(PIECE)))
    assert peak[0] < 4 * 1024 * 1024, peak[0]


def dechunk(data: bytes) -> bytes:
    """Decode a complete chunked body in linear time."""
    out = []
    pos = 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end], 16)
        if size == 0:
            assert data[end:] == b"\r\n\r\n"
            return b"".join(out)
        out.append(data[end + 2 : end + 2 + size])
        assert data[end + 2 + size : end + 4 + size] == b"\r\n"
        pos = end + 4 + size


# -- limits hold however the bytes arrive (regressions) ----------------------------------------


class NeverReadsTheBody(Resource):
    """Like a static file answering POST: it never looks at the request body."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return b"file"


def test_a_huge_chunk_extension_in_one_read_is_refused_even_unread() -> None:
    site = Site(NeverReadsTheBody())
    extension = b";" + b"e" * (100 * 1024)
    transport = feed(site, CHUNKED + b"5" + extension + b"\r\nhello\r\n0\r\n\r\n")
    assert status_of(transport) == 400
    assert transport.closed


def test_a_huge_chunk_extension_over_a_socket_closes_the_connection(serve: Any) -> None:
    url = serve(Site(NeverReadsTheBody()))
    extension = b";" + b"e" * (100 * 1024)
    data = exchange(url, CHUNKED + b"5" + extension + b"\r\nhello\r\n0\r\n\r\n" + PROBE)
    assert statuses(data) == (400,)


def test_whitespace_around_values_counts_against_the_head_limit() -> None:
    site = Site(Echo())
    site.maxHeadSize = 4096
    padded = b"GET / HTTP/1.1\r\nHost: x\r\nX:" + b" " * 20000 + b"y\r\n\r\n"
    assert status_of(feed(site, padded)) == 431


def test_an_endless_body_read_in_one_piece_still_hits_the_body_limit() -> None:
    site = Site(NeverReadsTheBody())
    site.maxRequestBodySize = 1000
    transport = feed(site, POST + b"Content-Length: 2000\r\n\r\n" + b"b" * 2000)
    assert status_of(transport) == 413


# -- ending responses: complete, or visibly short (regressions) --------------------------------


class WritesThenCloses(Resource):
    """Writes a little, then closes the connection in the same callback."""

    isLeaf = True

    def render_GET(self, request: Request) -> object:
        request.write(b"partial")
        request.channel.loseConnection()
        return NOT_DONE_YET


def test_what_was_written_goes_out_before_lose_connection(serve: Any) -> None:
    url = serve(Site(WritesThenCloses()))
    data = exchange(url, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Transfer-Encoding: chunked" in head
    # The part written, and no last chunk: the client can tell the body is incomplete.
    assert body == b"7\r\npartial\r\n"


class WritesThenReturnsNone(Resource):
    """A render that writes and then returns None, as a mistaken port might."""

    isLeaf = True

    def render_GET(self, request: Request) -> None:
        request.write(b"partial")


def test_a_render_returning_none_after_writing_ends_short_and_is_logged(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = serve(Site(WritesThenReturnsNone()))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        data = exchange(url, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"0\r\n\r\n" not in body  # never complete
    assert b"partial" in body
    messages = [r.getMessage() for r in caplog.records]
    assert any("WritesThenReturnsNone returned NoneType" in m and "short" in m for m in messages)


class ReturnsAnInt(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> int:
        return 42


def test_the_log_names_the_resource_that_returned_something_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        transport = feed(Site(ReturnsAnInt()), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(transport) == 500
    assert any("Resource ReturnsAnInt returned int" in r.getMessage() for r in caplog.records)


def test_responses_cut_off_at_shutdown_learn_the_connection_was_lost(
    serve: Any, server: ServerThread
) -> None:
    held = Held()
    site = Site(held)
    url = serve(site)
    outcomes: list[object] = []
    with socket.create_connection(host_port(url), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: server.call(lambda: len(held.pending)) == 1, "the request")

        def watch() -> None:
            held.pending[0].notifyFinish().addBoth(outcomes.append)

        server.call(watch)
        drained = asyncio.run_coroutine_threadsafe(site.shutdown(grace=0.05), server.loop)
        assert drained.result(10) is False
    wait_for(lambda: outcomes, "the notification")
    failure = outcomes[0]
    assert isinstance(getattr(failure, "value", None), ConnectionAborted), failure
    assert isinstance(failure.value, ConnectionLost)  # type: ignore[attr-defined]
