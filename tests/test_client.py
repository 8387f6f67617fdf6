"""treadle.web.client over real sockets, and side by side with Twisted's Agent.

Two tiers:

- The twin: ``tests/client_twin.py`` is one Twisted program that makes the same requests
  (GET, POST bodies of known and unknown length, chunked and empty responses, HEAD, 204/304,
  redirect chains and refusals, gzip, cookies, keep-alive, a pooled connection the server
  closed, cancellation, a connect timeout to a full backlog, TLS...) against servers this
  module starts. It runs once under real Twisted and once ported to treadle; every scenario's
  outcome (status, reason, headers, length, body, or the error and its reasons) must be the
  same, and Twisted's must be what the test expects (so a scenario both get wrong fails).
- Direct tests of treadle's client for what the twin cannot see: connections counted on the
  server, flow control of a streamed body, producers that write the wrong length, the
  endpoint and proxy paths, the pool's limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
import trustme

from treadle.internet import reactor
from treadle.internet._reactor import new_event_loop
from treadle.internet.defer import Deferred
from treadle.internet.endpoints import TCP4ClientEndpoint
from treadle.internet.error import ConnectingCancelledError
from treadle.internet.protocol import Protocol
from treadle.python.failure import Failure
from treadle.web._client import HTTPConnectionPool as ProxyPool
from treadle.web.client import (
    URI,
    Agent,
    CookieAgent,
    FileBodyProducer,
    HTTPConnectionPool,
    PartialDownloadError,
    ProxyAgent,
    RequestGenerationFailed,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
    readBody,
)
from treadle.web.http_headers import Headers
from treadle.web.iweb import UNKNOWN_LENGTH
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Request, Site

from .compat.harness import SRC, port_source
from .conftest import DEADLINE, ServerThread, wait_for

TWIN = Path(__file__).with_name("client_twin.py")

# -- the servers -------------------------------------------------------------------------------

BIG = bytes(range(256)) * 1200  # 300 KiB: several socket reads, enough to pause


class Tree(Resource):
    """Every path the twin and the direct tests ask for, answered by one leaf."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.held: list[Request] = []
        self.gone: list[str] = []
        self.peers: list[int] = []

    def render(self, request: Request) -> Any:
        path = request.path
        address = request.getClientAddress()
        self.peers.append(getattr(address, "port", 0))
        handler = getattr(self, "page_" + path.split(b"/")[1].decode(), None)
        if handler is None:
            request.setResponseCode(404)
            return b"no such page"
        return handler(request, path.split(b"/")[2:])

    def page_hello(self, request: Request, rest: list[bytes]) -> bytes:
        return b"Hello, world!"

    def page_echo(self, request: Request, rest: list[bytes]) -> bytes:
        body = request.content.read()
        report = {
            "method": request.method.decode(),
            "headers": sorted(
                [name.decode().lower(), value.decode()]
                for name, values in request.requestHeaders.getAllRawHeaders()
                for value in values
            ),
            "body_length": len(body),
            "body_start": body[:12].decode("latin-1"),
        }
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(report).encode()

    def page_chunked(self, request: Request, rest: list[bytes]) -> object:
        request.write(b"first,")
        reactor.callLater(0.01, self._second, request)
        return NOT_DONE_YET

    def _second(self, request: Request) -> None:
        request.write(b"second")
        request.finish()

    def page_status(self, request: Request, rest: list[bytes]) -> bytes:
        request.setResponseCode(int(rest[0]))
        return b""

    def page_r(self, request: Request, rest: list[bytes]) -> bytes:
        hops = int(rest[0])
        if hops == 0:
            return b"arrived"
        request.setResponseCode(302)
        request.setHeader(b"location", b"/r/%d" % (hops - 1))
        return b"on my way"

    def page_moved(self, request: Request, rest: list[bytes]) -> bytes:
        request.setResponseCode(int(rest[0]))
        request.setHeader(b"location", b"/echo")
        return b"moved"

    def page_loop(self, request: Request, rest: list[bytes]) -> bytes:
        request.setResponseCode(302)
        request.setHeader(b"location", b"/loop")
        return b"again"

    def page_noloc(self, request: Request, rest: list[bytes]) -> bytes:
        request.setResponseCode(302)
        return b"where?"

    def page_to(self, request: Request, rest: list[bytes]) -> bytes:
        request.setResponseCode(302)
        request.setHeader(b"location", request.uri.partition(b"?")[2])
        return b"elsewhere"

    def page_gzip(self, request: Request, rest: list[bytes]) -> bytes:
        request.setHeader(b"content-encoding", b"gzip")
        seen = request.getHeader(b"accept-encoding") or b"none"
        request.setHeader(b"x-accept-encoding", seen)
        return gzip.compress(b"compressed text " * 200, mtime=0)

    def page_setcookie(self, request: Request, rest: list[bytes]) -> bytes:
        request.setHeader(b"set-cookie", b"flavour=oat; Path=/")
        return b"set"

    def page_showcookie(self, request: Request, rest: list[bytes]) -> bytes:
        return request.getHeader(b"cookie") or b"no cookie"

    def page_peer(self, request: Request, rest: list[bytes]) -> bytes:
        return b"%d" % getattr(request.getClientAddress(), "port", 0)

    def page_held(self, request: Request, rest: list[bytes]) -> object:
        self.held.append(request)
        request.notifyFinish().addErrback(lambda f: self.gone.append(type(f.value).__name__))
        return NOT_DONE_YET

    def page_started(self, request: Request, rest: list[bytes]) -> object:
        # Head and a first piece sent, the rest never: a body that cannot be complete.
        request.write(b"part of it")
        return self.page_held(request, rest)

    def page_big(self, request: Request, rest: list[bytes]) -> bytes:
        return BIG

    def page_target(self, request: Request, rest: list[bytes]) -> bytes:
        return b"target " + request.uri


class RawServer(socketserver.ThreadingTCPServer):
    """A TCP server whose every connection is handled by ``handle(sock)`` in a thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        class Handler(socketserver.BaseRequestHandler):
            def handle(inner) -> None:
                handle(inner.request)

        super().__init__(("127.0.0.1", 0), Handler)
        self.connections = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections += 1
        super().process_request(request, client_address)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


def read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    return data


def closes_second_request(sock: socket.socket) -> None:
    """Answers a connection's first request; closes it on the second, unanswered."""
    if read_head(sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
        read_head(sock)


def close_delimited(sock: socket.socket) -> None:
    if read_head(sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\nX-Kind: close-delimited\r\n\r\nall of it")


def truncated(sock: socket.socket) -> None:
    if read_head(sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")


def garbage(sock: socket.socket) -> None:
    if read_head(sock):
        sock.sendall(b"SPDY/9 nonsense\r\n\r\n")


class Blackhole:
    """A listening socket whose accept queue is full: connecting to it hangs (SYNs dropped)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self.fillers.append(filler)

    def close(self) -> None:
        for filler in self.fillers:
            filler.close()
        self.sock.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Servers:
    """The servers of this module: a treadle site over TCP and TLS, and raw ones."""

    def __init__(self, tmp: Path) -> None:
        self.thread = ServerThread("asyncio")
        self.tree = Tree()
        site = Site(self.tree)
        self.base = self.thread.serve(site)
        self.other = self.thread.serve(site)
        ca = trustme.CA()
        cert = ca.issue_cert("localhost", "127.0.0.1")
        self.ca_path = tmp / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_path))
        context = __import__("ssl").create_default_context(__import__("ssl").Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        tls_port = self.thread.call(
            lambda: reactor.listenSSL(0, site, context, interface="127.0.0.1")
        )
        self.thread.ports.append(tls_port)
        self.tls = f"https://localhost:{tls_port.getHost().port}"
        self.closing = RawServer(closes_second_request)
        self.close_delimited = RawServer(close_delimited)
        self.truncated = RawServer(truncated)
        self.garbage = RawServer(garbage)
        self.blackhole = Blackhole()
        self.refused = free_port()

    def config(self) -> dict[str, str]:
        return {
            "base": self.base,
            "other": self.other,
            "tls": self.tls,
            "ca": str(self.ca_path),
            "closing": self.closing.url,
            "close_delimited": self.close_delimited.url,
            "truncated": self.truncated.url,
            "blackhole": f"http://127.0.0.1:{self.blackhole.port}/",
            "refused": f"http://127.0.0.1:{self.refused}/",
        }

    def stop(self) -> None:
        for raw in (self.closing, self.close_delimited, self.truncated, self.garbage):
            raw.shutdown()
            raw.server_close()
        self.blackhole.close()
        self.thread.stop()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    running = Servers(tmp_path_factory.mktemp("client"))
    try:
        yield running
    finally:
        running.stop()


# -- the twin ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def twin(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the twin program under Twisted and under treadle, side by side."""
    folder = tmp_path_factory.mktemp("twin")
    ported = folder / "client_twin.py"
    ported.write_text(port_source(TWIN.read_text()))
    config = json.dumps(servers.config())
    env = dict(os.environ, PYTHONPATH=str(SRC), PYTHONDONTWRITEBYTECODE="1")
    procs = {
        side: subprocess.Popen(
            [sys.executable, "-W", "ignore", str(path), config],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=folder,
        )
        for side, path in (("twisted", TWIN), ("treadle", ported))
    }
    results: dict[str, Any] = {}
    for side, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, f"{side} twin failed:\n{err.decode()[-3000:]}"
        results[side] = json.loads(out.decode().strip().splitlines()[-1])
    return results


def _body(result: dict[str, Any]) -> Any:
    return json.loads(result["body"])


#: What each scenario must give under Twisted (and so under treadle): the twin's checks of
#: itself. A scenario listed here with None only has to be the same on both sides.
EXPECTED: dict[str, Callable[[dict[str, Any]], object]] = {
    "get": lambda r: r["code"] == 200 and r["body"] == "Hello, world!" and r["length"] == 13,
    "get_with_headers": lambda r: ["x-custom", "two"] in _body(r)["headers"],
    "post_file": lambda r: _body(r)["body_length"] == 200000
    and ["content-length", "200000"] in _body(r)["headers"],
    "post_chunked": lambda r: _body(r)["body_length"] == 15000
    and ["transfer-encoding", "chunked"] in _body(r)["headers"],
    "post_empty": lambda r: ["content-length", "0"] in _body(r)["headers"],
    "chunked_response": lambda r: r["length"] == "UNKNOWN" and r["body"] == "first,second",
    "head": lambda r: (
        r["length"] == 0 and r["body"] == "" and ["content-length", "13"] in r["headers"]
    ),
    "no_content": lambda r: r["code"] == 204 and r["length"] == 0,
    "not_modified": lambda r: r["code"] == 304 and r["length"] == 0,
    "not_found": lambda r: r["code"] == 404,
    "redirect_chain": lambda r: r == {"code": 200, "body": "arrived", "chain": [302, 302, 302]},
    "redirect_post_strict": lambda r: (
        r == {"error": "ResponseFailed", "reasons": ["PageRedirect"], "statuses": ["302"]}
    ),
    "redirect_post_see_other": lambda r: _body(r)["method"] == "GET",
    "redirect_post_browser_like": lambda r: _body(r)["method"] == "GET",
    "redirect_307_browser_like": lambda r: r["reasons"] == ["PageRedirect"],
    "redirect_loop": lambda r: r["reasons"] == ["InfiniteRedirection"],
    "redirect_no_location": lambda r: r["reasons"] == ["RedirectWithNoLocation"],
    "redirect_drops_sensitive_headers": lambda r: ["x-keep", "kept"] in _body(r)["headers"]
    and "authorization" not in {name for name, _ in _body(r)["headers"]},
    "gzip_decoded": lambda r: r["body"] == "compressed text " * 200
    and ["x-accept-encoding", "gzip"] in r["headers"]
    and "content-encoding" not in {name for name, _ in r["headers"]},
    "gzip_undecoded": lambda r: ["content-encoding", "gzip"] in r["headers"],
    "cookies": lambda r: r["second"]["body"] == "flavour=oat" and r["jar"] == ["flavour"],
    "keep_alive": lambda r: r == {"connections": 1},
    "not_persistent": lambda r: r["connections"] == 3
    and ["connection", "close"] in _body(r["echo"])["headers"],
    "retry_on_closed": lambda r: r == {"bodies": ["first", "first"]},
    "no_retry_for_post": lambda r: r["error"] == "ResponseNeverReceived",
    "cancel_waiting": lambda r: (
        r == {"error": "ResponseNeverReceived", "reasons": ["CancelledError"], "statuses": [None]}
    ),
    "connect_timeout": lambda r: r == {"error": "TimeoutError"},
    "refused": lambda r: r == {"error": "ConnectionRefusedError"},
    "bad_scheme": lambda r: r == {"error": "SchemeNotSupported"},
    "tls_trusted": lambda r: r["code"] == 200 and r["body"] == "Hello, world!",
    "tls_untrusted": lambda r: r["error"] == "ResponseNeverReceived",
    "close_delimited": lambda r: (
        r["error"] == "PartialDownloadError" and r["partial"] == "all of it"
    ),
    "truncated": lambda r: r["reasons"] == ["ConnectionDone", "_DataLoss"],
    "streaming": lambda r: (
        r["events"] == ["made", "data", "ResponseDone"] and r["size"] == len(BIG)
    ),
    "invalid_method": lambda r: r == {"error": "ValueError"},
    "invalid_uri": lambda r: r == {"error": "ValueError"},
}  # fmt: skip

#: Parts of an outcome that differ for a documented reason (and are dropped before comparing).
DIFFERENT: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    # The untrusted certificate's error inside ResponseNeverReceived: pyOpenSSL's SSL.Error
    # under Twisted, the standard library's SSLCertVerificationError under treadle.
    "tls_untrusted": lambda r: {k: v for k, v in r.items() if k != "reasons"},
}


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_same_as_twisted(twin: dict[str, Any], scenario: str) -> None:
    twisted, treadle = twin["twisted"][scenario], twin["treadle"][scenario]
    assert EXPECTED[scenario](twisted), f"Twisted's own outcome is not the expected one: {twisted}"
    normalise = DIFFERENT.get(scenario, lambda r: r)
    assert normalise(treadle) == normalise(twisted)


def test_untrusted_certificate_is_the_reason(twin: dict[str, Any]) -> None:
    assert twin["treadle"]["tls_untrusted"]["reasons"] == ["SSLCertVerificationError"]


# -- running treadle's client in this process --------------------------------------------------


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Iterator[Callable[[Coroutine[Any, Any, Any]], Any]]:
    """Run a coroutine on a new loop (the reactor's while it runs)."""

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        loop = asyncio.new_event_loop() if request.param == "asyncio" else new_event_loop()
        try:
            return loop.run_until_complete(asyncio.wait_for(coro, DEADLINE))
        finally:
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    yield runner


async def fetch(agent: Any, url: str, method: bytes = b"GET", **kw: Any) -> tuple[Any, bytes]:
    response = await agent.request(method, url.encode(), **kw)
    return response, await readBody(response)


def test_pooled_requests_share_one_connection(run: Any, servers: Servers) -> None:
    async def main() -> list[bytes]:
        pool = HTTPConnectionPool(reactor)
        agent = Agent(reactor, pool=pool)
        bodies = [(await fetch(agent, servers.base + "/peer"))[1] for _ in range(4)]
        assert pool.idleConnections("127.0.0.1", 0) == 0  # keys are (scheme, host, port)
        await pool.closeCachedConnections()
        return bodies

    bodies = run(main())
    assert len(set(bodies)) == 1


def test_pool_keeps_at_most_max_persistent_per_host(run: Any, servers: Servers) -> None:
    async def main() -> set[bytes]:
        pool = HTTPConnectionPool(reactor)
        pool.maxPersistentPerHost = 1
        agent = Agent(reactor, pool=pool)
        # Three at once need three connections; only one is kept afterwards.
        first = await asyncio.gather(*(fetch(agent, servers.base + "/peer") for _ in range(3)))
        assert len({body for _, body in first}) == 3
        later = [(await fetch(agent, servers.base + "/peer"))[1] for _ in range(3)]
        await pool.closeCachedConnections()
        return set(later)

    assert len(run(main())) == 1


def test_idle_connections_close_after_cached_connection_timeout(run: Any, servers: Servers) -> None:
    async def main() -> list[bytes]:
        pool = HTTPConnectionPool(reactor)
        pool.cachedConnectionTimeout = 0.05
        agent = Agent(reactor, pool=pool)
        one = (await fetch(agent, servers.base + "/peer"))[1]
        await asyncio.sleep(0.2)
        two = (await fetch(agent, servers.base + "/peer"))[1]
        await pool.closeCachedConnections()
        return [one, two]

    one, two = run(main())
    assert one != two


def test_close_cached_connections_closes_them(run: Any, servers: Servers) -> None:
    async def main() -> None:
        pool = HTTPConnectionPool(reactor)
        agent = Agent(reactor, pool=pool)
        await fetch(agent, servers.base + "/hello")
        idle = [conn for conns in pool._idle.values() for conn in conns]
        assert len(idle) == 1
        await pool.closeCachedConnections()
        assert idle[0].lost
        assert not pool._idle

    run(main())


def test_response_fires_after_the_connection_is_back_in_the_pool(
    run: Any, servers: Servers
) -> None:
    async def main() -> None:
        pool = HTTPConnectionPool(reactor)
        agent = Agent(reactor, pool=pool)
        response = await agent.request(b"GET", (servers.base + "/hello").encode())
        seen: list[int] = []
        d = readBody(response)
        d.addCallback(lambda _: seen.append(sum(map(len, pool._idle.values()))))
        await d
        assert seen == [1]
        await pool.closeCachedConnections()

    run(main())


class Slow(Protocol):
    """A body protocol that pauses its transport after every piece until told to go on."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.reason: Failure | None = None
        self.done: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.pieces.append(data)
        self.transport.pauseProducing()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.reason = reason
        self.done.callback(None)


def test_paused_body_waits_and_resumes(run: Any, servers: Servers) -> None:
    async def main() -> Slow:
        agent = Agent(reactor)
        response = await agent.request(b"GET", (servers.base + "/big").encode())
        assert response.length == len(BIG)
        protocol = Slow()
        response.deliverBody(protocol)
        while not protocol.done.called:
            count = len(protocol.pieces)
            await asyncio.sleep(0.01)
            assert len(protocol.pieces) == count  # nothing arrives while paused
            protocol.transport.resumeProducing()
            await asyncio.sleep(0.01)
        return protocol

    protocol = run(main())
    assert b"".join(protocol.pieces) == BIG
    assert len(protocol.pieces) > 1
    assert protocol.reason is not None and protocol.reason.check(ResponseDone)


def test_stop_producing_gives_the_body_up(run: Any, servers: Servers) -> None:
    async def main() -> Slow:
        agent = Agent(reactor, pool=HTTPConnectionPool(reactor))
        response = await agent.request(b"GET", (servers.base + "/big").encode())
        protocol = Slow()
        response.deliverBody(protocol)
        protocol.transport.stopProducing()
        await protocol.done
        return protocol

    protocol = run(main())
    assert protocol.reason is not None and protocol.reason.check(ResponseFailed)
    assert len(b"".join(protocol.pieces)) < len(BIG)


def test_deliver_body_twice_is_refused(run: Any, servers: Servers) -> None:
    async def main() -> None:
        response = await Agent(reactor).request(b"GET", (servers.base + "/hello").encode())
        assert await readBody(response) == b"Hello, world!"
        with pytest.raises(RuntimeError, match="already finished"):
            readBody(response)

    run(main())


def test_exception_in_data_received_fails_the_body(run: Any, servers: Servers) -> None:
    class Broken(Slow):
        def dataReceived(self, data: bytes) -> None:
            raise ValueError("boom")

    async def main() -> Broken:
        response = await Agent(reactor).request(b"GET", (servers.base + "/big").encode())
        protocol = Broken()
        response.deliverBody(protocol)
        await protocol.done
        return protocol

    protocol = run(main())
    assert protocol.reason is not None
    failed = protocol.reason.value
    assert isinstance(failed, ResponseFailed)
    assert failed.reasons[0].check(ValueError)


class Exact:
    """A body producer announcing ``length`` and writing ``data``."""

    def __init__(self, length: Any, data: bytes) -> None:
        self.length = length
        self.data = data
        self.stopped = False

    def startProducing(self, consumer: Any) -> Deferred[None]:
        consumer.write(self.data)
        d: Deferred[None] = Deferred()
        reactor.callLater(0, d.callback, None)
        return d

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        self.stopped = True


@pytest.mark.parametrize(
    ("length", "data", "message"),
    [(5, b"too long", "too many bytes written"), (10, b"short", "too few bytes written")],
)
def test_wrong_body_length_fails_the_request(
    run: Any, servers: Servers, length: int, data: bytes, message: str
) -> None:
    async def main() -> BaseException:
        agent = Agent(reactor)
        with pytest.raises(RequestGenerationFailed) as caught:
            await agent.request(
                b"POST", (servers.base + "/echo").encode(), None, Exact(length, data)
            )
        return caught.value

    failed = run(main())
    assert str(failed.reasons[0].value) == message


def test_body_of_unknown_length_is_chunked(run: Any, servers: Servers) -> None:
    async def main() -> bytes:
        producer = Exact(UNKNOWN_LENGTH, b"x" * 1000)
        agent = Agent(reactor)
        _, body = await fetch(agent, servers.base + "/echo", b"POST", bodyProducer=producer)
        return body

    report = json.loads(run(main()))
    assert report["body_length"] == 1000
    assert ["transfer-encoding", "chunked"] in report["headers"]


def test_large_body_is_paced_by_the_socket(run: Any, servers: Servers) -> None:
    data = os.urandom(3 * 1024 * 1024)

    async def main() -> bytes:
        agent = Agent(reactor)
        producer = FileBodyProducer(io.BytesIO(data))
        _, body = await fetch(agent, servers.base + "/echo", b"POST", bodyProducer=producer)
        return body

    report = json.loads(run(main()))
    assert report["body_length"] == len(data)


def test_cancel_while_connecting(run: Any, servers: Servers) -> None:
    async def main() -> None:
        d = Agent(reactor).request(b"GET", f"http://127.0.0.1:{servers.blackhole.port}/".encode())
        await asyncio.sleep(0.05)
        d.cancel()
        with pytest.raises(ConnectingCancelledError):
            await d

    run(main())


def test_cancel_drops_the_server_side_connection(run: Any, servers: Servers) -> None:
    before, held = len(servers.tree.gone), len(servers.tree.held)

    async def main() -> None:
        d = Agent(reactor).request(b"GET", (servers.base + "/held").encode())
        while len(servers.tree.held) == held:
            await asyncio.sleep(0.01)
        d.cancel()
        with pytest.raises(ResponseNeverReceived):
            await d

    run(main())
    wait_for(lambda: len(servers.tree.gone) > before, "the server to see the client leave")


def test_read_body_cancel_aborts(run: Any, servers: Servers) -> None:
    # A body the server never finishes: a whole body could already be buffered (and
    # readBody's Deferred fired) by the time the test cancels it, on a loaded machine.
    before = len(servers.tree.gone)

    async def main() -> None:
        response = await Agent(reactor).request(b"GET", (servers.base + "/started").encode())
        d = readBody(response)
        d.cancel()
        with pytest.raises(Exception) as caught:
            await d
        assert type(caught.value).__name__ == "CancelledError"

    run(main())
    wait_for(lambda: len(servers.tree.gone) > before, "the server to see the client leave")


def test_invalid_response_fails(run: Any, servers: Servers) -> None:
    async def main() -> None:
        with pytest.raises(ResponseFailed) as caught:
            await Agent(reactor).request(b"GET", servers.garbage.url.encode())
        assert not isinstance(caught.value, ResponseNeverReceived)

    run(main())


def test_partial_download_keeps_what_arrived(run: Any, servers: Servers) -> None:
    async def main() -> None:
        response = await Agent(reactor).request(b"GET", servers.close_delimited.url.encode())
        assert response.headers.getRawHeaders(b"x-kind") == [b"close-delimited"]
        with pytest.raises(PartialDownloadError) as caught:
            await readBody(response)
        assert caught.value.response == b"all of it"

    run(main())


def test_connect_timeout(run: Any, servers: Servers) -> None:
    async def main() -> None:
        agent = Agent(reactor, connectTimeout=0.05)
        with pytest.raises(Exception) as caught:
            await agent.request(b"GET", f"http://127.0.0.1:{servers.blackhole.port}/".encode())
        assert type(caught.value).__module__ == "treadle.internet.error"
        assert type(caught.value).__name__ == "TimeoutError"

    run(main())


class Endpoints:
    """An IAgentEndpointFactory connecting every URI to one TCP port, counting its uses."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.uris: list[bytes] = []

    def endpointForURI(self, uri: URI) -> Any:
        self.uris.append(uri.toBytes())
        return TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)


def test_agent_using_endpoint_factory(run: Any, servers: Servers) -> None:
    port = int(servers.base.rsplit(":", 1)[1])
    factory = Endpoints(port)

    async def main() -> list[bytes]:
        pool = HTTPConnectionPool(reactor)
        agent = Agent.usingEndpointFactory(reactor, factory, pool=pool)
        bodies = []
        for _ in range(2):
            _, body = await fetch(agent, "http://example.invalid/peer")
            bodies.append(body)
        _, big = await fetch(agent, "http://example.invalid/big")
        assert big == BIG
        producer = FileBodyProducer(io.BytesIO(b"y" * 300000))
        _, echoed = await fetch(
            agent, "http://example.invalid/echo", b"POST", bodyProducer=producer
        )
        assert json.loads(echoed)["body_length"] == 300000
        await pool.closeCachedConnections()
        return bodies

    bodies = run(main())
    assert len(set(bodies)) == 1  # kept alive over the endpoint's transport too
    assert factory.uris[0] == b"http://example.invalid/peer"


def test_proxy_agent_sends_the_absolute_uri(run: Any, servers: Servers) -> None:
    port = int(servers.base.rsplit(":", 1)[1])

    async def main() -> tuple[Any, bytes]:
        agent = ProxyAgent(TCP4ClientEndpoint(reactor, "127.0.0.1", port), reactor)
        return await fetch(agent, "http://example.com/target?q=1")

    response, body = run(main())
    assert body == b"target http://example.com/target?q=1"
    assert response.request.absoluteURI == b"http://example.com/target?q=1"


def test_cookie_agent_keeps_an_explicit_cookie(run: Any, servers: Servers) -> None:
    jar = CookieJar()

    async def main() -> bytes:
        agent = CookieAgent(Agent(reactor), jar)
        await fetch(agent, servers.base + "/setcookie")
        headers = Headers({b"cookie": [b"mine=1"]})
        return (await fetch(agent, servers.base + "/showcookie", headers=headers))[1]

    assert run(main()) == b"mine=1"


def test_proxy_pool_is_the_same_stack() -> None:
    assert issubclass(HTTPConnectionPool, ProxyPool)
    assert HTTPConnectionPool.maxPersistentPerHost == 2
    assert HTTPConnectionPool.cachedConnectionTimeout == 240


def test_request_before_the_reactor_runs(servers: Servers) -> None:
    """As in Twisted programs: requests made first, then the loop runs them."""
    loop = reactor.loop  # no loop runs in this thread: the reactor's own
    d = Agent(reactor).request(b"GET", (servers.base + "/hello").encode()).addCallback(readBody)
    result = loop.run_until_complete(asyncio.wait_for(d.asFuture(loop), DEADLINE))
    assert result == b"Hello, world!"


@pytest.mark.parametrize(
    ("uri", "parts"),
    [
        (b"http://example.com/a;p?q#f", (b"http", b"example.com", 80, b"/a;p?q")),
        (b"https://example.com:8443", (b"https", b"example.com", 8443, b"/")),
        (b"http://[::1]:81/x", (b"http", b"::1", 81, b"/x")),
        (b"https://h:notaport/", (b"https", b"h:notaport", 443, b"/")),
    ],
)
def test_uri_from_bytes(uri: bytes, parts: tuple[bytes, bytes, int, bytes]) -> None:
    from twisted.web.client import URI as TwistedURI

    ours, theirs = URI.fromBytes(uri), TwistedURI.fromBytes(uri)
    assert (ours.scheme, ours.host, ours.port, ours.originForm) == parts
    assert (theirs.scheme, theirs.host, theirs.port, theirs.originForm) == parts
    assert ours.toBytes() == theirs.toBytes()


def test_every_public_name_of_twisted_web_client() -> None:
    import twisted.web.client

    import treadle.web.client

    missing = [n for n in twisted.web.client.__all__ if not hasattr(treadle.web.client, n)]
    assert missing == []
