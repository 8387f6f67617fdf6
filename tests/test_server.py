"""The resource layer over real sockets with real clients: the issue's core behaviours."""

from __future__ import annotations

import asyncio
import gc
import http.client
import logging
import re
import socket
import threading
import time
import weakref
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from treadle.internet import reactor
from treadle.internet.base import DelayedCall
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Request, Site
from treadle.web.testing import connect

from .conftest import Held, ServerThread, raw_request

DELAY = 0.3


class Delayed(Resource):
    """The asynchronous-responses pattern: callLater, NOT_DONE_YET, write (a str), finish."""

    isLeaf = True

    def _render_later(self, request: Request) -> None:
        request.write("<html><body>Thanks for waiting.</body></html>")
        request.finish()

    def render_GET(self, request: Request) -> object:
        reactor.callLater(DELAY, self._render_later, request)
        return NOT_DONE_YET


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return b"Hello, world!"


class Chatty(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> object:
        for i in range(50):
            request.write(b"line %d\n" % i)
        reactor.callLater(0.01, self._more, request)
        return NOT_DONE_YET

    def _more(self, request: Request) -> None:
        for i in range(50, 100):
            request.write(f"line {i}\n")
        request.finish()


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.005)


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


def root_with(**children: Resource) -> Resource:
    root = Resource()
    for name, child in children.items():
        root.putChild(name.encode(), child)
    return root


# -- the delayed resource --------------------------------------------------------------------


def test_delayed_resource_answers_after_the_delay(serve: Any) -> None:
    url = serve(Delayed())
    started = time.monotonic()
    response = httpx.get(url + "/", timeout=10)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.text == "<html><body>Thanks for waiting.</body></html>"
    assert elapsed >= DELAY * 0.95


def test_hundred_delayed_requests_wait_together_not_in_turn(serve: Any) -> None:
    url = serve(Delayed())
    host, port = host_port(url)

    async def one() -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
        return data

    async def all_of_them() -> list[bytes]:
        return await asyncio.gather(*(one() for _ in range(100)))

    started = time.monotonic()
    results = asyncio.run(all_of_them())
    elapsed = time.monotonic() - started
    # Written and finished in one callback: one response with a Content-Length.
    assert all(
        r.endswith(b"\r\n\r\n<html><body>Thanks for waiting.</body></html>") for r in results
    )
    assert all(b"Content-Length: 45\r\n" in r for r in results)
    # Served one after another they would take 100 x DELAY = 30 s.
    assert elapsed < DELAY * 15


def test_a_new_client_is_answered_while_a_hundred_are_pending(
    serve: Any, server: ServerThread
) -> None:
    gate = Held()
    url = serve(root_with(gate=gate, hello=Hello()))
    host, port = host_port(url)
    socks = []
    try:
        for _ in range(100):
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(b"GET /gate HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(s)
        wait_for(lambda: server.call(lambda: len(gate.pending)) == 100)
        response = httpx.get(url + "/hello", timeout=5)
        assert response.text == "Hello, world!"
        assert server.call(lambda: len(gate.pending)) == 100  # all still waiting
        server.call(gate.release)
        for s in socks:
            data = b""
            while not data.endswith(b"released"):
                chunk = s.recv(4096)
                assert chunk, "connection closed early"
                data += chunk
            assert b"released" in data
    finally:
        for s in socks:
            s.close()


# -- streaming -------------------------------------------------------------------------------


def test_many_writes_keep_their_order_for_every_client(serve: Any) -> None:
    url = serve(Chatty())
    expected = "".join(f"line {i}\n" for i in range(100))
    assert httpx.get(url, timeout=10).text == expected

    host, port = host_port(url)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.read().decode() == expected
    conn.close()

    raw = raw_request(url, b"GET / HTTP/1.0\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"chunked" not in head
    assert body.decode() == expected


# -- abandonment -----------------------------------------------------------------------------


class Abandonable(Resource):
    """Schedules a long DelayedCall and cancels it when the client leaves."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.cancelled = 0
        self.calls: list[DelayedCall] = []
        self.requests: weakref.WeakSet[Request] = weakref.WeakSet()

    def render_GET(self, request: Request) -> object:
        call = reactor.callLater(60, request.finish)
        self.calls.append(call)
        self.requests.add(request)
        request.notifyFinish().addErrback(self._client_left, call)
        return NOT_DONE_YET

    def _client_left(self, failure: Any, call: DelayedCall) -> None:
        call.cancel()
        self.cancelled += 1


def test_abandoned_requests_fire_their_errbacks_and_leave_nothing(
    serve: Any, server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    resource = Abandonable()
    site = Site(root_with(slow=resource, hello=Hello()))
    url = serve(site)
    host, port = host_port(url)
    total = 2000
    batch = 200
    with caplog.at_level(logging.ERROR, logger="treadle"):
        for start in range(0, total, batch):
            socks = []
            for _ in range(batch):
                s = socket.create_connection((host, port), timeout=10)
                s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
                socks.append(s)
            wait_for(lambda n=start + batch: server.call(lambda: len(resource.calls)) == n)
            for s in socks:
                s.close()
            wait_for(lambda n=start + batch: server.call(lambda: resource.cancelled) == n)
    assert server.call(lambda: all(not c.active() for c in resource.calls))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # Nothing kept: every connection gone, every request collectable.
    wait_for(lambda: server.call(lambda: len(site.connections)) == 0)
    resource.calls.clear()
    wait_for(lambda: server.call(lambda: (gc.collect(), len(resource.requests))[1]) == 0)
    assert httpx.get(url + "/hello", timeout=5).text == "Hello, world!"


# -- async def -------------------------------------------------------------------------------


class AsyncHello(Resource):
    isLeaf = True

    async def render_GET(self, request: Request) -> bytes:
        await asyncio.sleep(0.01)
        return b"async hello " + request.path


class AsyncWaiter(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.cancelled = threading.Event()

    async def render_GET(self, request: Request) -> bytes:
        self.started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return b"never"


def test_async_render_returning_bytes(serve: Any) -> None:
    url = serve(AsyncHello())
    response = httpx.get(url + "/x", timeout=10)
    assert response.text == "async hello /x"
    assert response.headers["content-length"] == str(len("async hello /x"))


def test_awaitable_is_cancelled_when_the_client_leaves(serve: Any) -> None:
    waiter = AsyncWaiter()
    url = serve(root_with(wait=waiter, hello=Hello()))
    host, port = host_port(url)
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        assert waiter.started.wait(10)
    assert waiter.cancelled.wait(10)
    assert httpx.get(url + "/hello", timeout=5).text == "Hello, world!"


def test_deferred_returned_from_render(serve: Any) -> None:
    from treadle.internet.task import deferLater

    class Later(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> object:
            return deferLater(reactor, 0.01, lambda: b"from a Deferred")

    assert httpx.get(serve(Later()), timeout=10).text == "from a Deferred"


# -- the usual HTTP behaviours ---------------------------------------------------------------


class Echo(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return repr(sorted(request.args.items())).encode()

    def render_POST(self, request: Request) -> bytes:
        return repr(sorted(request.args.items())).encode()


class Broken(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        # What was set for a body that never came must not describe the error page.
        request.setHeader(b"content-encoding", b"gzip")
        request.setHeader(b"cache-control", b"max-age=3600")
        request.addCookie(b"step", b"1")
        raise ValueError("secret detail")


def test_keep_alive_and_pipelining_over_a_socket(serve: Any) -> None:
    url = serve(Echo())
    data = b"".join(
        b"GET /?n=%d HTTP/1.1\r\nHost: x\r\n%s\r\n"
        % (i, b"Connection: close\r\n" if i == 9 else b"")
        for i in range(10)
    )
    raw = raw_request(url, data)
    positions = [raw.index(b"[(b'n', [b'%d'])]" % i) for i in range(10)]
    assert positions == sorted(positions)
    assert raw.count(b"HTTP/1.1 200 OK") == 10

    with httpx.Client(timeout=10) as client:
        for i in range(5):
            assert client.get(url + f"/?k={i}").text == repr([(b"k", [str(i).encode()])])


def test_head_405_404_and_500(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    url = serve(root_with(hello=Hello(), broken=Broken()))
    head = httpx.head(url + "/hello", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == "13"

    not_allowed = httpx.delete(url + "/hello", timeout=10)
    assert not_allowed.status_code == 405
    assert not_allowed.headers["allow"] == "HEAD, GET"

    assert httpx.get(url + "/missing", timeout=10).status_code == 404

    with caplog.at_level(logging.ERROR, logger="treadle.error"), httpx.Client(timeout=10) as client:
        failed = client.get(url + "/broken")
        assert failed.status_code == 500
        assert "secret detail" not in failed.text
        assert "Processing Failed" in failed.text
        assert failed.headers["content-type"] == "text/html"
        for name in ("content-encoding", "cache-control", "set-cookie"):
            assert name not in failed.headers  # README: the page carries its own only
        # The connection stays usable after the error.
        assert client.get(url + "/hello").text == "Hello, world!"
    assert any(
        "secret detail" in r.getMessage() or (r.exc_info and "secret detail" in str(r.exc_info[1]))
        for r in caplog.records
    )


def test_tracebacks_only_when_asked(serve: Any) -> None:
    site = Site(Broken())
    site.displayTracebacks = True
    response = httpx.get(serve(site), timeout=10)
    assert response.status_code == 500
    assert "ValueError: secret detail" in response.text


def test_post_urlencoded_and_multipart_args(serve: Any) -> None:
    url = serve(Echo())
    response = httpx.post(url + "/?q=1", data={"name": "treadle", "x": "a&b"}, timeout=10)
    assert response.text == repr([(b"name", [b"treadle"]), (b"q", [b"1"]), (b"x", [b"a&b"])])
    response = httpx.post(
        url, data={"field": "value"}, files={"upload": ("f.txt", b"file bytes\x00\xff")}, timeout=10
    )
    assert response.text == repr([(b"field", [b"value"]), (b"upload", [b"file bytes\x00\xff"])])


def test_malformed_multipart_is_a_400(serve: Any) -> None:
    url = serve(Echo())
    response = httpx.post(
        url,
        content=b"--nope\r\ngarbage",
        headers={"content-type": "multipart/form-data; boundary=b"},
        timeout=10,
    )
    assert response.status_code == 400


def test_chunked_request_body_and_100_continue_over_a_socket(serve: Any) -> None:
    class Body(Resource):
        isLeaf = True

        def render_PUT(self, request: Request) -> bytes:
            return b"len=%d" % len(request.content.read())

    url = serve(Body())
    host, port = host_port(url)
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(
            b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        assert s.recv(4096).endswith(b"len=11")
        s.sendall(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        assert s.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"abc")
        assert s.recv(4096).endswith(b"len=3")


def test_malformed_request_over_a_socket_gets_400_and_close(serve: Any) -> None:
    url = serve(Hello())
    raw = raw_request(url, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400 ")
    assert httpx.get(url, timeout=5).text == "Hello, world!"


def test_percent_encoded_utf8_arguments(serve: Any) -> None:
    url = serve(Echo())
    response = httpx.get(url + "/?n=caf%C3%A9&plus=a+b", timeout=10)
    assert response.text == repr([(b"n", ["café".encode()]), (b"plus", [b"a b"])])


# -- Twisted's pages and headers for odd render results ------------------------------------------


class ReturnsAnInt(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> object:
        return 12345


def test_a_render_returning_no_bytes_gets_twisteds_500_page(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = serve(root_with(**{"not-bytes": ReturnsAnInt()}))
    with caplog.at_level(logging.CRITICAL, logger="treadle.error"):
        raw = raw_request(url, b"GET /not-bytes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 ")
    assert b"\r\nContent-Type: text/html; charset=utf-8" in head
    # Twisted's page, byte for byte but for the addresses in the (escaped) reprs.
    expected = (
        b"\n<html>\n  <head><title>500 - Request did not return bytes</title></head>\n"
        b"  <body>\n    <h1>Request did not return bytes</h1>\n"
        b"    <p>Request: <pre>&lt;Request at 0xADDR method=GET uri=/not-bytes "
        b"clientproto=HTTP/1.1&gt;</pre><br />"
        b"Resource: <pre>&lt;tests.test_server.ReturnsAnInt object at 0xADDR&gt;</pre><br />"
        b"Value: <pre>12345</pre></p>\n  </body>\n</html>\n"
    )
    assert re.sub(rb"0x[0-9a-f]+", b"0xADDR", body) == expected


class Moved(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setResponseCode(301)
        request.setHeader(b"location", b"/elsewhere")
        return b""


class FinishesAtOnce(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> object:
        request.finish()
        return NOT_DONE_YET


def _head(url: str, request: bytes) -> bytes:
    raw = raw_request(url, request + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return raw.partition(b"\r\n\r\n")[0].lower()


def test_the_default_content_type_follows_twisteds_rule(serve: Any) -> None:
    url = serve(root_with(moved=Moved(), finish=FinishesAtOnce(), hello=Hello()))
    # An empty rendered body goes out with Content-Length: 0 and so without a type...
    moved = _head(url, b"GET /moved")
    assert b"\r\ncontent-length: 0" in moved and b"content-type" not in moved
    # ...but a HEAD answer, a finish() without a write and a body have the default one.
    assert b"\r\ncontent-type: text/html\r\n" in _head(url, b"HEAD /moved")
    assert b"\r\ncontent-type: text/html\r\n" in _head(url, b"GET /finish")
    assert b"\r\ncontent-type: text/html\r\n" in _head(url, b"GET /hello")


# -- Twisted's answers on the wire: asterisk targets, CONNECT, traversal after a miss -------


def test_asterisk_targets_are_answered_by_the_server(serve: Any) -> None:
    url = serve(Resource())
    options = raw_request(url, b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = options.split(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: 0" in head
    assert b"Content-Type" not in head
    other = raw_request(url, b"GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert other.startswith(b"HTTP/1.1 405 ") and b"\r\nAllow: OPTIONS\r\n" in other


def test_connect_is_not_implemented(serve: Any) -> None:
    class Page(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            return b"page"

    reply = raw_request(serve(Page()), b"CONNECT / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 501 ")


def test_traversal_walks_through_a_missing_child() -> None:
    # As Twisted: a NoResource is its own child, so the whole path ends up in prepath.
    from treadle.web.resource import NoResource, getChildForRequest

    class Seen(Resource):
        def getChild(self, path: bytes, request: Any) -> Any:
            return NoResource()

    root = Resource()
    root.putChild(b"a", Seen())
    request = Request(connect(Site(root))[0])
    request.postpath = [b"a", b"b", b"c", b""]
    found = getChildForRequest(root, request)
    assert isinstance(found, NoResource)
    assert (request.prepath, request.postpath) == ([b"a", b"b", b"c", b""], [])
    assert request.childLink(b"x") == b"x"


class PathsSeen(Resource):
    """A leaf recording the paths traversal left it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[list[bytes], list[bytes], list[bytes]]] = []

    def render_GET(self, request: Request) -> bytes:
        self.seen.append((request.prepath, request.postpath, request.sitepath))
        return b"seen"


def test_a_leaf_at_the_root_sees_the_whole_path() -> None:
    # A leaf root is rendered without a walk: the paths are what the walk would leave.
    leaf = PathsSeen()
    channel, transport = connect(Site(leaf))
    for target in (b"/", b"/a/b", b"/a%20b/", b"/?q=1"):
        channel.data_received(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value().count(b"200 OK") == 4
    assert leaf.seen == [
        ([], [b""], []),
        ([], [b"a", b"b"], []),
        ([], [b"a b", b""], []),
        ([], [b""], []),
    ]


def test_a_site_class_finding_resources_its_own_way_is_asked_for_a_leaf_root() -> None:
    asked: list[bytes] = []
    elsewhere = PathsSeen()

    class Redirecting(Site):
        def getResourceFor(self, request: Request) -> Any:
            asked.append(request.path)
            return elsewhere

    leaf = PathsSeen()
    channel, transport = connect(Redirecting(leaf))
    channel.data_received(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    assert asked == [b"/x"] and len(elsewhere.seen) == 1 and leaf.seen == []
    assert b"200 OK" in transport.value()


def test_a_root_that_is_no_resource_yet_is_waited_for() -> None:
    # A Deferred root has no isLeaf: the walk takes it, and renders what it gives.
    from treadle.internet.defer import Deferred

    leaf = PathsSeen()
    pending: Deferred[Any] = Deferred()
    channel, transport = connect(Site(pending))  # type: ignore[arg-type]
    channel.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value() == b""
    pending.callback(leaf)
    assert b"200 OK" in transport.value() and leaf.seen == [([], [b"a"], [])]
