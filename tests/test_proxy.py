"""The reverse proxy over real sockets: treadle and stdlib upstreams, httpx and raw clients."""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from treadle.web.http import HTTPFactory
from treadle.web.proxy import (
    HTTPConnectionPool,
    Proxy,
    ProxyClient,
    ProxyClientFactory,
    ProxyRequest,
    ReverseProxyResource,
    forwarded_request_headers,
    strip_hop_by_hop,
)
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Request, Site

from .conftest import DEADLINE, Hello, ServerThread, host_port, raw_request, wait_for

# -- upstream resources ----------------------------------------------------------------------


class Echo(Resource):
    """Describes the request it got as JSON, for every method."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        address = request.getClientAddress()
        report = {
            "method": request.method.decode(),
            "uri": request.uri.decode(),
            "headers": [
                [name.decode().lower(), value.decode()]
                for name, values in request.requestHeaders.getAllRawHeaders()
                for value in values
            ],
            "body": request.content.read().decode("latin-1"),
            "peer": getattr(address, "port", 0),
        }
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"x-upstream", b"yes")
        request.addCookie(b"a", b"1")
        request.addCookie(b"b", b"2")
        if request.method == b"POST":
            request.setResponseCode(201, b"Made It")
        return json.dumps(report).encode()


def header(report: dict[str, Any], name: str) -> list[str]:
    return [v for n, v in report["headers"] if n == name]


class Held(Resource):
    """Answers nothing until released; records when its client went away."""

    isLeaf = True

    def __init__(self, first: bytes = b"") -> None:
        super().__init__()
        self.first = first
        self.requests: list[Request] = []
        self.arrived = threading.Event()
        self.gone = threading.Event()

    def render_GET(self, request: Request) -> object:
        if self.first:
            request.write(self.first)
        request.notifyFinish().addErrback(lambda _: self.gone.set())
        self.requests.append(request)
        self.arrived.set()
        return NOT_DONE_YET

    def release(self, data: bytes) -> None:
        for request in self.requests:
            request.write(data)
            request.finish()
        self.requests.clear()


class Firehose(Resource):
    """Writes as fast as its client takes it, awaiting drain between writes.

    ``parked`` is set while a drain really waits for the transport (backpressure), not
    merely passes through.
    """

    isLeaf = True
    piece = b"x" * 65536

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total
        self.written = 0
        self.parked = threading.Event()

    async def render_GET(self, request: Request) -> None:
        request.setHeader(b"content-length", b"%d" % self.total)
        while self.written < self.total:
            request.write(self.piece)
            self.written += len(self.piece)
            drained = asyncio.ensure_future(request.drain())
            await asyncio.sleep(0)  # let the drain run to its first suspension
            if not drained.done():
                self.parked.set()
            await drained
            self.parked.clear()


# -- a stdlib upstream (HTTP/1.0, close-delimited, hand-made heads) --------------------------


class StdlibHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    requests_on_connection = 0

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.requests_on_connection += 1
        route = getattr(self, "route_" + self.path.strip("/").replace("-", "_"), None)
        assert route is not None, self.path
        route()

    do_POST = do_GET

    def _finish_body(self, body: bytes) -> None:
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def route_close_delimited(self) -> None:
        # HTTP/1.0 with no Content-Length: the body ends when the connection closes.
        self.protocol_version = "HTTP/1.0"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"part one, ")
        self.wfile.flush()
        time.sleep(0.02)
        self.wfile.write(b"part two")
        self.close_connection = True

    def route_conn_close(self) -> None:
        self.send_response(200)
        self.send_header("Connection", "close")
        self._finish_body(b"closing")

    def route_hop(self) -> None:
        self.send_response(200)
        self.send_header("Connection", "X-Up")
        self.send_header("X-Up", "1")
        self.send_header("Keep-Alive", "timeout=5")
        self.send_header("X-Kept", "yes")
        self._finish_body(b"hop")

    def route_interim(self) -> None:
        self.send_response_only(100)
        self.end_headers()
        self.send_response_only(103)
        self.send_header("Link", "</style.css>; rel=preload")
        self.end_headers()
        self.send_response(200)
        self._finish_body(b"after interim")

    def route_truncated(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.write(b"only ten..")
        self.close_connection = True

    def route_garbage(self) -> None:
        self.wfile.write(b"this is not HTTP\r\n\r\n")
        self.close_connection = True

    def route_flaky(self) -> None:
        # The second request on a connection is read, then the connection is closed without
        # an answer: what a client sees when a server times a keep-alive connection out.
        if self.requests_on_connection > 1:
            self.close_connection = True
            return
        self.send_response(200)
        self._finish_body(b"flaky %d" % self.requests_on_connection)


@pytest.fixture
def stdlib_upstream() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StdlibHandler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


# -- fixtures --------------------------------------------------------------------------------


def run(server: ServerThread, fn: Callable[[], Any], timeout: float = 10) -> Any:
    """Run ``fn`` on the server loop and wait for the awaitable it returns."""

    async def runner() -> Any:
        return await fn()

    return asyncio.run_coroutine_threadsafe(runner(), server.loop).result(timeout)


class Proxies:
    """Starts upstream Sites and proxies to them; closes every connection afterwards."""

    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.pools: list[HTTPConnectionPool] = []
        self.sites: list[Site] = []

    def upstream(self, resource: Resource, **site_kwargs: Any) -> int:
        site = Site(resource, **site_kwargs)
        self.sites.append(site)
        return host_port(self.server.serve(site))[1]

    def proxy(self, port: int, path: bytes = b"", **kwargs: Any) -> tuple[str, HTTPConnectionPool]:
        pool = HTTPConnectionPool()
        self.pools.append(pool)
        proxy = ReverseProxyResource("127.0.0.1", port, path, pool=pool, **kwargs)
        return self.server.serve(proxy), pool

    def idle(self, pool: HTTPConnectionPool, port: int) -> int:
        return int(self.server.call(pool.idleConnections, "127.0.0.1", port))

    def close(self) -> None:
        for pool in self.pools:
            run(self.server, pool.closeCachedConnections)
        # Let every upstream see its proxy connections close before the loop stops.
        for site in self.sites:
            wait_for(
                lambda site=site: self.server.call(lambda: len(site.connections)) == 0,
                what="the upstream to see its proxy connections close",
            )


@pytest.fixture
def proxies(server: ServerThread) -> Iterator[Proxies]:
    p = Proxies(server)
    try:
        yield p
    finally:
        p.close()


# -- the pure parts --------------------------------------------------------------------------


def test_hop_by_hop_fields_and_the_ones_connection_names_are_dropped() -> None:
    headers = [
        (b"Connection", b"keep-alive, X-Private"),
        (b"X-Private", b"1"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Proxy-Connection", b"keep-alive"),
        (b"TE", b"trailers"),
        (b"Trailer", b"X-T"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Upgrade", b"websocket"),
        (b"Accept", b"*/*"),
        (b"x-kept", b"a"),
    ]
    assert strip_hop_by_hop(headers) == [(b"Accept", b"*/*"), (b"x-kept", b"a")]


def test_forwarded_headers() -> None:
    fields = forwarded_request_headers(
        [
            (b"Host", b"public.example"),
            (b"X-Forwarded-For", b"10.0.0.1"),
            (b"X-Forwarded-Host", b"forged"),
            (b"X-Forwarded-Proto", b"forged"),
            (b"Content-Length", b"999"),
            (b"Accept", b"*/*"),
        ],
        host=b"10.9.9.9:8080",
        client_ip="127.0.0.2",
        proto=b"https",
        body_length=3,
    )
    assert fields == [
        (b"Host", b"10.9.9.9:8080"),
        (b"Accept", b"*/*"),
        (b"X-Forwarded-For", b"10.0.0.1, 127.0.0.2"),
        (b"X-Forwarded-Host", b"public.example"),
        (b"X-Forwarded-Proto", b"https"),
        (b"Content-Length", b"3"),
    ]


def test_get_child_quotes_the_segment_as_twisted_does() -> None:
    proxy = ReverseProxyResource("example.com", 80, b"/base")
    child = proxy.getChild(b"a b/c~", None)  # type: ignore[arg-type]
    assert child.path == b"/base/a%20b%2Fc~"
    assert (child.host, child.port, child.pool) == ("example.com", 80, proxy.pool)
    assert child.getChild(b"", None).path == b"/base/a%20b%2Fc~/"  # type: ignore[arg-type]


# -- forwarding ------------------------------------------------------------------------------


def test_method_path_query_headers_and_body_are_forwarded(proxies: Proxies) -> None:
    upstream = proxies.upstream(Echo())
    root = Resource()
    pool = HTTPConnectionPool()
    proxies.pools.append(pool)
    root.putChild(b"api", ReverseProxyResource("127.0.0.1", upstream, b"/v1", pool=pool))
    url = proxies.server.serve(root)
    body = bytes(range(256)) * 400  # 100 KiB: sent upstream in more than one piece
    with httpx.Client(timeout=10) as client:
        response = client.post(
            url + "/api/users/a%2Fb?page=2&q=%20x",
            content=body,
            headers={"X-Custom": "kept", "X-Forwarded-For": "10.1.1.1"},
        )
        assert response.status_code == 201
        assert response.reason_phrase == "Made It"
        assert response.headers["x-upstream"] == "yes"
        assert response.headers["content-type"] == "application/json"
        assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
        report = response.json()
        assert report["method"] == "POST"
        assert report["uri"] == "/v1/users/a%2Fb?page=2&q=%20x"
        assert report["body"] == body.decode("latin-1")
        assert header(report, "content-length") == [str(len(body))]
        assert header(report, "x-custom") == ["kept"]
        assert header(report, "host") == [f"127.0.0.1:{upstream}"]
        assert header(report, "x-forwarded-for") == ["10.1.1.1, 127.0.0.1"]
        assert header(report, "x-forwarded-host") == [f"127.0.0.1:{host_port(url)[1]}"]
        assert header(report, "x-forwarded-proto") == ["http"]

        # The proxy itself and its root path map to the base path.
        assert client.get(url + "/api").json()["uri"] == "/v1"
        assert client.get(url + "/api/").json()["uri"] == "/v1/"


def test_chunked_request_body_goes_upstream_with_a_length(proxies: Proxies) -> None:
    url, _ = proxies.proxy(proxies.upstream(Echo()))
    response = httpx.put(url + "/x", content=iter([b"abc", b"def"]), timeout=10)
    report = response.json()
    assert report["method"] == "PUT"
    assert report["body"] == "abcdef"
    assert header(report, "content-length") == ["6"]
    assert header(report, "transfer-encoding") == []


def test_hop_by_hop_headers_are_removed_both_ways(proxies: Proxies, stdlib_upstream: int) -> None:
    url, _ = proxies.proxy(proxies.upstream(Echo()))
    report = httpx.get(
        url + "/",
        headers={
            "Connection": "keep-alive, X-Secret",
            "X-Secret": "1",
            "Keep-Alive": "timeout=5",
            "Proxy-Connection": "keep-alive",
            "TE": "trailers",
            "Trailer": "X-T",
            "Upgrade": "foo/1",
            "X-Custom": "kept",
        },
        timeout=10,
    ).json()
    names = {name for name, _ in report["headers"]}
    assert names.isdisjoint(
        {"x-secret", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}
    )
    assert "x-custom" in names
    assert header(report, "connection") in ([], ["keep-alive"])  # the proxy's own, if any

    url, _ = proxies.proxy(stdlib_upstream)
    response = httpx.get(url + "/hop", timeout=10)
    assert response.text == "hop"
    assert response.headers["x-kept"] == "yes"
    assert "x-up" not in response.headers
    assert "keep-alive" not in response.headers


def test_host_is_the_upstream_unless_preserved(proxies: Proxies) -> None:
    upstream = proxies.upstream(Echo())
    url, _ = proxies.proxy(upstream, preserve_host=True)
    report = httpx.get(url + "/", headers={"Host": "public.example"}, timeout=10).json()
    assert header(report, "host") == ["public.example"]
    assert header(report, "x-forwarded-host") == ["public.example"]


# -- response framing ------------------------------------------------------------------------


def test_streaming_relays_each_piece_as_it_arrives(proxies: Proxies, server: ServerThread) -> None:
    held = Held(first=b"first piece\n")
    url, _ = proxies.proxy(proxies.upstream(held))
    with httpx.Client(timeout=5) as client, client.stream("GET", url + "/s") as response:
        assert response.headers["transfer-encoding"] == "chunked"
        pieces = response.iter_raw()
        # The read deadline is httpx's timeout: the first piece comes while the second
        # has not even been written upstream.
        assert next(pieces) == b"first piece\n"
        assert server.call(lambda: len(held.requests)) == 1
        server.call(held.release, b"second piece\n")
        assert b"".join(pieces) == b"second piece\n"


def test_close_delimited_http10_upstream(proxies: Proxies, stdlib_upstream: int) -> None:
    url, pool = proxies.proxy(stdlib_upstream)
    with httpx.Client(timeout=10) as client:
        response = client.get(url + "/close-delimited")
        assert response.status_code == 200
        assert response.text == "part one, part two"
        assert proxies.idle(pool, stdlib_upstream) == 0  # ended by close: nothing to reuse
        response = client.get(url + "/conn-close")
        assert response.text == "closing"
        assert proxies.idle(pool, stdlib_upstream) == 0  # Connection: close is honoured


def test_interim_responses_are_skipped(proxies: Proxies, stdlib_upstream: int) -> None:
    url, pool = proxies.proxy(stdlib_upstream)
    response = httpx.get(url + "/interim", timeout=10)
    assert response.status_code == 200
    assert response.text == "after interim"
    assert "link" not in response.headers
    wait_for(lambda: proxies.idle(pool, stdlib_upstream) == 1, what="1 idle upstream connection")


def test_head_then_get_on_the_same_upstream_connection(proxies: Proxies) -> None:
    root = Resource()
    root.putChild(b"hello", Hello())
    root.putChild(b"held", Held())
    root.putChild(b"echo", Echo())
    upstream = proxies.upstream(root)
    url, pool = proxies.proxy(upstream)
    with httpx.Client(timeout=10) as client:
        head = client.head(url + "/hello")
        assert head.status_code == 200
        assert head.headers["content-length"] == "13"
        assert head.content == b""
        wait_for(lambda: proxies.idle(pool, upstream) == 1, what="1 idle upstream connection")
        assert client.get(url + "/hello").text == "Hello, world!"
        peers = {client.get(url + "/echo").json()["peer"] for _ in range(2)}
        assert len(peers) == 1
    wait_for(lambda: proxies.idle(pool, upstream) == 1, what="1 idle upstream connection")


def test_sequential_requests_share_one_upstream_connection(proxies: Proxies) -> None:
    upstream = proxies.upstream(Echo())
    url, pool = proxies.proxy(upstream)
    peers = set()
    # A new client connection each time: only the upstream side is pooled.
    with httpx.Client(timeout=10, headers={"Connection": "close"}) as client:
        for i in range(5):
            report = client.get(url + f"/n/{i}").json()
            assert report["uri"] == f"/n/{i}"
            peers.add(report["peer"])
    assert len(peers) == 1
    wait_for(lambda: proxies.idle(pool, upstream) == 1, what="1 idle upstream connection")


def test_pool_keeps_at_most_max_persistent_idle(proxies: Proxies, server: ServerThread) -> None:
    held = Held()
    upstream = proxies.upstream(held)
    url, pool = proxies.proxy(upstream)
    pool.maxPersistentPerHost = 2
    host, port = host_port(url)
    socks = [socket.create_connection((host, port), timeout=5) for _ in range(4)]
    try:
        for s in socks:
            s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: server.call(lambda: len(held.requests)) == 4, what="4 held requests")
        server.call(held.release, b"done")
        for s in socks:
            assert s.recv(65536).startswith(b"HTTP/1.1 200 OK")
    finally:
        for s in socks:
            s.close()
    # Four connections were used; two are kept idle, the other two are closed.
    site = proxies.sites[-1]
    wait_for(lambda: server.call(lambda: len(site.connections)) == 2, what="2 upstream connections")
    assert proxies.idle(pool, upstream) == 2


def test_idle_connection_closed_by_the_upstream_is_forgotten(proxies: Proxies) -> None:
    upstream = proxies.upstream(Echo(), timeout=0.1)
    url, pool = proxies.proxy(upstream)
    first = httpx.get(url + "/", timeout=10).json()["peer"]
    wait_for(lambda: proxies.idle(pool, upstream) == 0, what="0 idle upstream connections")
    second = httpx.get(url + "/", timeout=10).json()["peer"]
    assert first != second


def test_reused_connection_closed_unanswered_retries_idempotent_requests(
    proxies: Proxies, stdlib_upstream: int
) -> None:
    url, pool = proxies.proxy(stdlib_upstream)
    assert httpx.get(url + "/flaky", timeout=10).text == "flaky 1"
    wait_for(lambda: proxies.idle(pool, stdlib_upstream) == 1, what="1 idle upstream connection")
    # The pooled connection is closed unanswered; GET is sent again on a fresh one...
    assert httpx.get(url + "/flaky", timeout=10).text == "flaky 1"
    # ...but POST is not idempotent: the client gets the 502.
    assert httpx.post(url + "/flaky", content=b"x", timeout=10).status_code == 502


# -- failures --------------------------------------------------------------------------------


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port that refuses connections: bound for the whole test, never listening.

    Releasing it instead would let another process on the machine take it meanwhile.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def test_502_when_the_upstream_refuses(
    proxies: Proxies, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = proxies.proxy(closed_port)
    response = httpx.get(url + "/<script>", timeout=10)
    assert response.status_code == 502
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "Bad Gateway" in response.text
    assert "could not be reached" in response.text
    assert "<script>" not in response.text
    assert any("failed" in r.getMessage() for r in caplog.records)


def test_502_on_garbage(proxies: Proxies, stdlib_upstream: int) -> None:
    url, pool = proxies.proxy(stdlib_upstream)
    response = httpx.get(url + "/garbage", timeout=10)
    assert response.status_code == 502
    assert "no valid response" in response.text
    assert proxies.idle(pool, stdlib_upstream) == 0


def test_upstream_failing_mid_body_drops_the_client(
    proxies: Proxies, stdlib_upstream: int, caplog: pytest.LogCaptureFixture
) -> None:
    url, pool = proxies.proxy(stdlib_upstream)
    with caplog.at_level(logging.ERROR, logger="treadle.error"), httpx.Client(timeout=10) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(url + "/truncated")
        # A fresh connection works; the broken upstream one was not pooled.
        assert client.get(url + "/conn-close").text == "closing"
    assert proxies.idle(pool, stdlib_upstream) == 0
    assert any("mid-response" in str(r.exc_info and r.exc_info[1]) for r in caplog.records)


def test_504_on_upstream_timeout_and_the_upstream_is_let_go(proxies: Proxies) -> None:
    held = Held()
    url, _ = proxies.proxy(proxies.upstream(held), timeout=0.2)
    started = time.monotonic()
    response = httpx.get(url + "/", timeout=10)
    assert response.status_code == 504
    assert "Gateway Timeout" in response.text
    # A 504 rather than the client's own timeout: the proxy gave up, and not before 0.2 s.
    assert time.monotonic() - started >= 0.2
    assert held.gone.wait(DEADLINE)


def test_client_leaving_cancels_the_upstream_request(
    proxies: Proxies, server: ServerThread
) -> None:
    held = Held(first=b"started")
    upstream = proxies.upstream(held)
    url, pool = proxies.proxy(upstream)
    with socket.create_connection(host_port(url), timeout=5) as s:
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert held.arrived.wait(5)
        assert b"started" in s.recv(65536)
    assert held.gone.wait(5)
    assert proxies.idle(pool, upstream) == 0


def test_slow_client_slows_the_upstream_down(proxies: Proxies) -> None:
    firehose = Firehose(total=512 * 1024 * 1024)
    url, _ = proxies.proxy(proxies.upstream(firehose))
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.settimeout(5)
        s.connect(host_port(url))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200 OK")
        # The client reads no more: once the buffers on the way are full the upstream's
        # drain() must wait for the transport, far below the total, and go on waiting:
        # a thousand turns of the loop (each polling the sockets) bring no more writes.
        wait_for(firehose.parked.is_set, "the upstream to be held back by its drain()")

        async def writes_during_many_turns() -> int:
            before = firehose.written
            for _ in range(1000):
                await asyncio.sleep(0)
            return firehose.written - before

        turns = asyncio.run_coroutine_threadsafe(writes_during_many_turns(), proxies.server.loop)
        assert turns.result(DEADLINE) == 0
        assert firehose.parked.is_set()
        assert firehose.written < 64 * 1024 * 1024


# -- the forward proxy (Proxy, ProxyRequest, ProxyClient, ProxyClientFactory) ------------------


def forward_proxy(
    proxies: Proxies, request_class: type[ProxyRequest] = ProxyRequest, **attributes: Any
) -> tuple[str, HTTPConnectionPool]:
    """Serve a forward :class:`Proxy` (Twisted's way: an HTTPFactory whose protocol is it)."""
    pool = HTTPConnectionPool()
    proxies.pools.append(pool)
    request_factory = type("TestProxyRequest", (request_class,), {"pool": pool, **attributes})
    channel: Any = type("TestProxy", (Proxy,), {"requestFactory": request_factory})
    factory = HTTPFactory()
    factory.protocol = channel
    return proxies.server.serve(factory), pool


def through(proxy_url: str, url: str, data: bytes | None = None) -> tuple[int, Any, bytes]:
    """Fetch ``url`` with urllib through the proxy at ``proxy_url``: (status, headers, body)."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": proxy_url}), NoRaise()
    )
    with opener.open(url, data=data, timeout=10) as response:
        return response.status, response.headers, response.read()


class NoRaise(urllib.request.HTTPErrorProcessor):
    def http_response(self, request: Any, response: Any) -> Any:
        return response


def test_forward_proxy_fetches_absolute_uris_with_urllib(proxies: Proxies) -> None:
    origin = proxies.upstream(Echo())
    proxy_url, pool = forward_proxy(proxies)
    status, headers, body = through(proxy_url, f"http://127.0.0.1:{origin}/a/b?x=1&y=%20")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["x-upstream"] == "yes"
    assert headers.get_all("set-cookie") == ["a=1", "b=2"]
    report = json.loads(body)
    assert report["method"] == "GET"
    assert report["uri"] == "/a/b?x=1&y=%20"  # origin-form, as an origin server expects
    assert header(report, "host") == [f"127.0.0.1:{origin}"]
    assert not header(report, "proxy-connection")
    assert proxies.idle(pool, origin) == 1  # kept for the next request


def test_forward_proxy_post_body_status_and_reason(proxies: Proxies) -> None:
    origin = proxies.upstream(Echo())
    proxy_url, _ = forward_proxy(proxies)
    request = (
        b"POST http://127.0.0.1:%d/form HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        b"Proxy-Connection: keep-alive\r\nKeep-Alive: 30\r\nContent-Length: 5\r\n"
        b"Connection: close\r\n\r\nhello" % (origin, origin)
    )
    answer = raw_request(proxy_url, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 Made It\r\n")
    report = json.loads(body)
    assert report["method"] == "POST" and report["body"] == "hello"
    assert header(report, "content-length") == ["5"]
    assert not header(report, "keep-alive") and not header(report, "proxy-connection")


def test_forward_proxy_head_and_keep_alive_share_one_origin_connection(proxies: Proxies) -> None:
    origin = proxies.upstream(Hello())
    proxy_url, pool = forward_proxy(proxies)
    target = f"http://127.0.0.1:{origin}/".encode()
    with socket.create_connection(host_port(proxy_url), timeout=10) as s:
        reader = s.makefile("rb")
        for method in (b"HEAD", b"GET"):
            s.sendall(b"%s %s HTTP/1.1\r\nHost: x\r\n\r\n" % (method, target))
            assert reader.readline() == b"HTTP/1.1 200 OK\r\n"
            fields = {}
            while (line := reader.readline()) != b"\r\n":
                name, _, value = line.partition(b":")
                fields[name.lower()] = value.strip()
            assert fields[b"content-length"] == b"13"
            if method == b"GET":
                assert reader.read(13) == b"Hello, world!"
    assert proxies.idle(pool, origin) == 1


class ShoutingClient(ProxyClient):
    """Twisted's pattern for rewriting responses: override the client's callbacks."""

    def handleHeader(self, key: bytes, value: bytes) -> None:
        if key.lower() != b"content-length":  # the body changes size... not here, but as usual
            ProxyClient.handleHeader(self, key, value)

    def handleEndHeaders(self) -> None:
        self.father.responseHeaders.addRawHeader(b"x-rewritten", b"1")

    def handleResponsePart(self, buffer: bytes) -> None:
        ProxyClient.handleResponsePart(self, buffer.upper())


class ShoutingFactory(ProxyClientFactory):
    protocol = ShoutingClient


class ShoutingRequest(ProxyRequest):
    protocols = {b"http": ShoutingFactory}


def test_subclassed_client_rewrites_the_response(proxies: Proxies) -> None:
    origin = proxies.upstream(Hello())
    proxy_url, _ = forward_proxy(proxies, ShoutingRequest)
    status, headers, body = through(proxy_url, f"http://127.0.0.1:{origin}/")
    assert (status, body) == (200, b"HELLO, WORLD!")
    assert headers["x-rewritten"] == "1"


def test_forward_proxy_cannot_connect_answers_twisteds_gateway_error(
    proxies: Proxies, closed_port: int
) -> None:
    proxy_url, _ = forward_proxy(proxies)
    status, headers, body = through(proxy_url, f"http://127.0.0.1:{closed_port}/")
    assert (status, body) == (501, b"<H1>Could not connect</H1>")
    assert headers["content-type"] == "text/html"


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"CONNECT example.com:443 HTTP/1.1", 501),
        (b"GET https://example.com/ HTTP/1.1", 501),
        (b"GET /relative HTTP/1.1", 400),
    ],
)
def test_forward_proxy_refuses_what_it_cannot_fetch(
    proxies: Proxies, request_line: bytes, status: int
) -> None:
    proxy_url, _ = forward_proxy(proxies)
    answer = raw_request(
        proxy_url, request_line + b"\r\nHost: example.com\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 %d " % status)
    assert b"<h1>" in answer


def test_forward_proxy_504_and_the_origin_is_let_go(proxies: Proxies) -> None:
    held = Held()
    origin = proxies.upstream(held)
    proxy_url, _ = forward_proxy(proxies, timeout=0.2)
    status, _, body = through(proxy_url, f"http://127.0.0.1:{origin}/slow")
    assert status == 504 and b"Gateway Timeout" in body
    assert held.gone.wait(DEADLINE)


def test_forward_proxy_client_leaving_cancels_the_origin_request(proxies: Proxies) -> None:
    held = Held(first=b"started")
    origin = proxies.upstream(held)
    proxy_url, pool = forward_proxy(proxies)
    with socket.create_connection(host_port(proxy_url), timeout=5) as s:
        s.sendall(b"GET http://127.0.0.1:%d/slow HTTP/1.1\r\nHost: x\r\n\r\n" % origin)
        assert held.arrived.wait(5)
        assert b"started" in s.recv(65536)
    assert held.gone.wait(5)
    assert proxies.idle(pool, origin) == 0


def test_forward_proxy_close_delimited_http10_origin(
    proxies: Proxies, stdlib_upstream: int
) -> None:
    proxy_url, _ = forward_proxy(proxies)
    status, headers, body = through(
        proxy_url, f"http://127.0.0.1:{stdlib_upstream}/close-delimited"
    )
    assert (status, body) == (200, b"part one, part two")
    assert headers["content-type"] == "text/plain"
