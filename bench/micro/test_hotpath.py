"""In-process micro-benchmarks of the hot path: parse → render → frame, no sockets.

Run with ``python -m pytest bench/micro --benchmark-only`` (pytest-benchmark, the ``bench``
extra). Each benchmark feeds request bytes to a channel whose transport discards what it is
given, so the figures are treadle's own cost per request, free of kernel and network noise;
a regression on the hot path shows here without ``wrk``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from treadle.internet import reactor
from treadle.internet.task import Clock
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Request, Site
from treadle.web.testing import connect

WRK_GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
BROWSER_GET = (
    b"GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"
    b"Cookie: a=1; b=2\r\nConnection: keep-alive\r\n\r\n"
)
POST = (
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 1024\r\n\r\nname=treadle&pad=" + b"x" * (1024 - 17)
)


class NullTransport:
    """Discards writes; enough transport for the channel's hot path."""

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1)


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return b"Hello, world!"


class Echo(Resource):
    isLeaf = True

    def render_POST(self, request: Request) -> bytes:
        return request.args[b"name"][0]


class Streamed(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> object:
        request.write(b"Hello, ")
        request.write(b"world!")
        request.finish()
        return NOT_DONE_YET


def channel_for(resource: Resource) -> Any:
    channel, _ = connect(Site(resource), Clock())
    channel.asyncio_transport = NullTransport()
    # What the loop's call_soon costs a request, without a test clock's growing list of
    # calls (the held first write schedules one flush per response).
    channel.call_soon = deque(maxlen=1).append
    return channel


@pytest.mark.parametrize(
    ("name", "resource", "data"),
    [
        ("hello-wrk", Hello(), WRK_GET),
        ("hello-browser", Hello(), BROWSER_GET),
        ("post-1k", Echo(), POST),
        ("streamed", Streamed(), WRK_GET),
        ("pipelined-16", Hello(), WRK_GET * 16),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_request(benchmark: Any, name: str, resource: Resource, data: bytes) -> None:
    channel = channel_for(resource)
    benchmark(channel.data_received, data)


def test_call_later(benchmark: Any) -> None:
    benchmark(lambda: reactor.callLater(60, int).cancel())
