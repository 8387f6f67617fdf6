"""WebSocket over real sockets: treadle's client and server, the ``websockets`` library, limits.

Under both the stdlib loop and uvloop. treadle's client tests run the server and the client on
one loop; the ``websockets`` tests use its blocking client against a server thread.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import textwrap
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets.exceptions
import websockets.sync.client as ws_client

from tests.conftest import DEADLINE, Hello, ServerThread, host_port, wait_for
from treadle.internet import reactor
from treadle.internet._reactor import new_event_loop
from treadle.internet.error import ConnectionDone
from treadle.internet.testing import AccumulatingProtocol
from treadle.python.failure import Failure
from treadle.web.resource import Resource
from treadle.web.script import ResourceScript
from treadle.web.server import NOT_DONE_YET, Site
from treadle.web.static import File
from treadle.web.websocket import (
    ConnectionRejected,
    WebSocket,
    WebSocketClientEndpoint,
    WebSocketLimits,
    WebSocketProtocol,
    WebSocketResource,
    WebSocketTransport,
)


class Peer(WebSocketProtocol):
    """Both sides' protocol in these tests (as Twisted's ``MyWSP``)."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.pongs: list[bytes] = []
        self.lost: Failure | None = None
        self.finished = False
        self.replies: asyncio.Queue[Any] = asyncio.Queue()

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        self.finished = True

    def textMessageReceived(self, message: str) -> None:
        if message == "request":
            self.transport.sendTextMessage("response")
        else:
            self.replies.put_nowait(message)

    def bytesMessageReceived(self, data: bytes) -> None:
        if data == b"request":
            self.transport.sendBytesMessage(b"\x00resp\x01onse\xff")
        else:
            self.replies.put_nowait(data)

    def pongReceived(self, payload: bytes) -> None:
        self.pongs.append(payload)
        self.replies.put_nowait(("pong", payload))

    def connectionLost(self, reason: Failure) -> None:
        self.lost = reason
        self.replies.put_nowait(("lost", reason.type))


class PeerFactory:
    def __init__(self) -> None:
        self.built: list[Peer] = []

    def buildProtocol(self, request_or_url: Any) -> Peer:
        self.built.append(Peer())
        return self.built[-1]


class Weird(Resource):
    """Answers 102 (the odd rejection wsproto reports without a body)."""

    def render_GET(self, request: Any) -> bytes:
        request.setResponseCode(102)
        return b""


class Slow(Resource):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Any] = []

    def render_GET(self, request: Any) -> Any:
        self.requests.append(request)
        return NOT_DONE_YET


def tree(factory: Any, **options: Any) -> tuple[Resource, Slow]:
    root = Resource()
    root.putChild(b"connect", WebSocketResource(factory, **options))
    root.putChild(b"hello", Hello())
    root.putChild(b"processing", Weird())
    slow = Slow()
    root.putChild(b"slow", slow)
    return root, slow


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Iterator[Callable[[Coroutine[Any, Any, Any]], Any]]:
    """Run a coroutine on a new loop: the server and treadle's client share it."""

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        loop = asyncio.new_event_loop() if request.param == "asyncio" else new_event_loop()
        try:
            return loop.run_until_complete(asyncio.wait_for(coro, DEADLINE))
        finally:
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    yield runner


async def serving(
    site: Site, body: Callable[[str], Awaitable[Any]]
) -> Any:  # the site listens while ``body(base_url)`` runs
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    try:
        return await body(f"http://127.0.0.1:{port.getHost().port}")
    finally:
        port.stopListening()
        for channel in list(site.connections):
            channel.abort()
        await asyncio.sleep(0)


async def next_reply(peer: Peer) -> Any:
    return await asyncio.wait_for(peer.replies.get(), DEADLINE)


async def close(peer: Peer) -> None:
    """Close a client and wait until its connection is gone (no transport left behind)."""
    peer.transport.loseConnection()
    while (await next_reply(peer))[0] != "lost":
        pass


# -- treadle's client and server (Twisted's WebSocketTests, over sockets) -------------------


def test_text_and_bytes_messages(run: Any) -> None:
    servers = PeerFactory()
    site = Site(tree(servers)[0])

    async def body(base: str) -> None:
        client: Peer = await WebSocketClientEndpoint.new(reactor, base + "/connect").connect(
            PeerFactory()
        )
        assert client.finished and servers.built[0].finished
        client.transport.sendTextMessage("request")
        assert await next_reply(client) == "response"
        client.transport.sendBytesMessage(b"request")
        assert await next_reply(client) == b"\x00resp\x01onse\xff"
        await close(client)

    run(serving(site, body))


def test_ping_pong(run: Any) -> None:
    site = Site(tree(PeerFactory())[0])

    async def body(base: str) -> None:
        client = await WebSocketClientEndpoint.new(reactor, base + "/connect").connect(
            PeerFactory()
        )
        client.transport.ping(b"123")
        assert await next_reply(client) == ("pong", b"123")
        await close(client)

    run(serving(site, body))


def test_lose_connection_ends_both_sides(run: Any) -> None:
    servers = PeerFactory()
    site = Site(tree(servers)[0])

    async def body(base: str) -> None:
        client = await WebSocketClientEndpoint.new(reactor, "ws" + base[4:] + "/connect").connect(
            PeerFactory()
        )
        client.transport.loseConnection()
        assert await next_reply(client) == ("lost", ConnectionDone)
        assert await next_reply(servers.built[0]) == ("lost", ConnectionDone)
        assert servers.built[0].transport.closeCode == 1000
        await asyncio.sleep(0)
        assert not site.connections

    run(serving(site, body))


@pytest.mark.parametrize(
    ("path", "code"), [("/hello", 200), ("/nowhere", 404), ("/processing", 102)]
)
def test_a_plain_http_answer_rejects_the_connection(run: Any, path: str, code: int) -> None:
    site = Site(tree(PeerFactory())[0])

    async def body(base: str) -> None:
        with pytest.raises(ConnectionRejected) as rejected:
            await WebSocketClientEndpoint.new(reactor, base + path).connect(PeerFactory())
        assert rejected.value.response.code == code

    run(serving(site, body))


def test_a_slow_rejection_streams_its_body(run: Any) -> None:
    root, slow = tree(PeerFactory())
    site = Site(root)

    async def body(base: str) -> None:
        connecting = asyncio.ensure_future(
            WebSocketClientEndpoint.new(reactor, base + "/slow").connect(PeerFactory())
        )
        await asyncio.sleep(0.05)
        assert not connecting.done()
        wait_for(lambda: slow.requests, "the request")
        request = slow.requests[0]
        request.write(b"")
        with pytest.raises(ConnectionRejected) as rejected:
            await connecting
        protocol = AccumulatingProtocol()
        rejected.value.response.deliverBody(protocol)
        request.write(b"hello")
        request.write(b"world")
        request.finish()

        async def until_closed() -> None:
            while protocol.closedReason is None:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(until_closed(), DEADLINE)
        assert protocol.data == b"helloworld"
        assert protocol.closedReason.type is ConnectionDone  # as Twisted's

    run(serving(site, body))


def test_connect_fails_when_the_server_just_closes(run: Any) -> None:
    async def body() -> None:
        async def close_at_once(reader: Any, writer: Any) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.close()

        server = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(ConnectionDone):
                await WebSocketClientEndpoint.new(reactor, f"ws://127.0.0.1:{port}/").connect(
                    PeerFactory()
                )
        finally:
            server.close()

    run(body())


def test_connect_gives_up_after_the_open_timeout(run: Any) -> None:
    from treadle.internet.error import TimeoutError as OpenTimeout

    async def body() -> None:
        async def never_answer(reader: Any, writer: Any) -> None:
            await reader.read()  # until the client gives up
            writer.close()

        server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        limits = WebSocketLimits(openTimeout=0.1)
        endpoint = WebSocketClientEndpoint.new(reactor, f"ws://127.0.0.1:{port}/", limits=limits)
        try:
            with pytest.raises(OpenTimeout):
                await endpoint.connect(PeerFactory())
        finally:
            server.close()

    run(body())


def test_client_subprotocols_and_extra_headers(run: Any) -> None:
    async def tell(ws: WebSocket) -> None:
        await ws.send(f"{ws.subprotocol} {ws.request.getHeader('x-token')}")

    site = Site(tree(tell, subprotocols=["v1"])[0])

    async def body(base: str) -> None:
        endpoint = WebSocketClientEndpoint.new(
            reactor, base + "/connect", headers=((b"X-Token", b"t0k"),), subprotocols=("v0", "v1")
        )
        ws = await endpoint.open()
        assert ws.subprotocol == "v1"
        assert await ws.receive() == "v1 t0k"
        await ws.wait_closed()

    run(serving(site, body))


# -- the async form ------------------------------------------------------------------------


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


def test_async_handler_and_async_client(run: Any) -> None:
    site = Site(tree(echo)[0])

    async def body(base: str) -> None:
        async with await WebSocketClientEndpoint.new(reactor, base + "/connect").open() as ws:
            await ws.send("hi")
            assert await ws.receive() == "hi"
            await ws.send(b"\x00" * 100_000)
            assert await ws.receive() == b"\x00" * 100_000
        assert ws.closed and ws.close_code == 1000

    run(serving(site, body))


def test_a_handler_that_returns_closes_with_1000_and_one_that_raises_with_1011(
    run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def once(ws: WebSocket) -> None:
        message = await ws.receive()
        if message == "fail":
            raise RuntimeError("handler failed")
        await ws.send("done")

    site = Site(tree(once)[0])

    async def body(base: str) -> list[Any]:
        codes = []
        for text in ("ok", "fail"):
            ws = await WebSocketClientEndpoint.new(reactor, base + "/connect").open()
            await ws.send(text)
            messages = [message async for message in ws]
            codes.append((messages, ws.close_code))
        return codes

    with caplog.at_level("ERROR", "treadle.error"):
        assert run(serving(site, body)) == [(["done"], 1000), ([], 1011)]
    assert "handler failed" in caplog.text


def test_treadle_client_against_the_websockets_server(run: Any) -> None:
    import websockets.asyncio.server as ws_server

    async def body() -> None:
        async def handler(connection: Any) -> None:
            async for message in connection:
                await connection.send(message)

        async with ws_server.serve(handler, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            endpoint = WebSocketClientEndpoint.new(reactor, f"ws://127.0.0.1:{port}/")
            async with await endpoint.open() as ws:
                for message in ("text", b"bytes", "x" * 200_000):
                    await ws.send(message)
                    assert await ws.receive() == message

    run(body())


def test_wss_with_a_trusted_certificate(run: Any) -> None:
    import ssl

    import trustme

    from treadle.internet import ssl as tssl
    from treadle.web.client import BrowserLikePolicyForHTTPS

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    trust = tssl.Certificate.loadPEM(ca.cert_pem.bytes())
    site = Site(tree(echo)[0])

    async def body() -> None:
        port = reactor.listenSSL(0, site, context, interface="127.0.0.1")
        try:
            url = f"wss://localhost:{port.getHost().port}/connect"
            policy = BrowserLikePolicyForHTTPS(trustRoot=trust)
            async with await WebSocketClientEndpoint.new(reactor, url, policy).open() as ws:
                await ws.send("over TLS")
                assert await ws.receive() == "over TLS"
        finally:
            port.stopListening()
            for channel in list(site.connections):
                channel.abort()
            await asyncio.sleep(0)

    run(body())


# -- the websockets library against the server --------------------------------------------


def ws_url(base: str, path: str = "/connect") -> str:
    return "ws" + base[4:] + path


@pytest.fixture
def serve_ws(serve: Any) -> Iterator[Callable[[Any], str]]:
    """``serve``, and at the end wait until the site's connections are all gone."""
    sites: list[Site] = []

    def serving(resource: Any) -> str:
        site = resource if isinstance(resource, Site) else Site(resource)
        sites.append(site)
        return str(serve(site))

    yield serving
    for site in sites:
        wait_for(lambda: not site.connections, "the connections to end")  # noqa: B023


def test_websockets_client_with_compression(serve_ws: Any) -> None:
    base = serve_ws(tree(echo)[0])
    with ws_client.connect(ws_url(base)) as ws:
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        for message in ("hello", "é" * 50_000, b"\x01\x02" * 100_000):
            ws.send(message)
            assert ws.recv(timeout=DEADLINE) == message


def test_websockets_client_without_compression(serve_ws: Any) -> None:
    base = serve_ws(tree(echo)[0])
    with ws_client.connect(ws_url(base), compression=None) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send("plain")
        assert ws.recv(timeout=DEADLINE) == "plain"


def test_twisted_style_protocol_with_the_websockets_client(serve_ws: Any) -> None:
    factory = PeerFactory()
    base = serve_ws(tree(factory)[0])
    with ws_client.connect(ws_url(base)) as ws:
        ws.send("request")
        assert ws.recv(timeout=DEADLINE) == "response"
        ws.send(b"request")
        assert ws.recv(timeout=DEADLINE) == b"\x00resp\x01onse\xff"
        ws.ping(b"abc").wait(DEADLINE)
    wait_for(lambda: factory.built[0].lost is not None, "connectionLost")
    assert factory.built[0].lost.type is ConnectionDone


@pytest.mark.parametrize("compression", ["deflate", None])
def test_a_message_over_the_limit_closes_with_1009(serve_ws: Any, compression: Any) -> None:
    base = serve_ws(tree(echo, limits=WebSocketLimits(maxMessageSize=1000))[0])
    with ws_client.connect(ws_url(base), compression=compression) as ws:
        ws.send("a" * 1000)
        assert ws.recv(timeout=DEADLINE) == "a" * 1000  # exactly the limit passes
        ws.send("a" * 1001)
        with pytest.raises(websockets.exceptions.ConnectionClosedError) as closed:
            ws.recv(timeout=DEADLINE)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_subprotocol_is_agreed(serve_ws: Any) -> None:
    async def which(ws: WebSocket) -> None:
        await ws.send(str(ws.subprotocol))

    base = serve_ws(tree(which, subprotocols=["v2", "v1"])[0])
    with ws_client.connect(ws_url(base), subprotocols=["v1", "v2"]) as ws:
        assert ws.subprotocol == "v2"
        assert ws.recv(timeout=DEADLINE) == "v2"


def test_origin_allow_list_over_a_socket(serve_ws: Any) -> None:
    base = serve_ws(tree(echo, allowedOrigins=["http://good.example"])[0])
    with ws_client.connect(ws_url(base), origin="http://good.example") as ws:
        ws.send("ok")
        assert ws.recv(timeout=DEADLINE) == "ok"
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        ws_client.connect(ws_url(base), origin="http://evil.example")
    assert refused.value.response.status_code == 403


# -- the site's limits and shutdown ---------------------------------------------------------


def test_websocket_connections_count_against_max_connections(serve_ws: Any) -> None:
    site = Site(tree(echo)[0])
    site.maxConnections = 1
    base = serve_ws(site)
    with ws_client.connect(ws_url(base)) as ws:
        ws.send("held")
        assert ws.recv(timeout=DEADLINE) == "held"
        with socket.create_connection(host_port(base), timeout=DEADLINE) as sock:
            assert sock.recv(100).startswith(b"HTTP/1.1 503 ")
    wait_for(lambda: not site.connections, "the connection to end")


def test_graceful_shutdown_sends_1001(server: ServerThread) -> None:
    site = Site(tree(echo)[0])
    base = server.serve(site)
    with ws_client.connect(ws_url(base)) as ws:
        ws.send("before")
        assert ws.recv(timeout=DEADLINE) == "before"
        drained = asyncio.run_coroutine_threadsafe(site.shutdown(5), server.loop)
        with pytest.raises(websockets.exceptions.ConnectionClosedOK) as closed:
            ws.recv(timeout=DEADLINE)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert drained.result(DEADLINE) is True
    assert not site.connections


def test_a_peer_that_reads_nothing_is_dropped(serve_ws: Any) -> None:
    async def flood(ws: WebSocket) -> None:
        blob = b"x" * 65536
        while not ws.closed:
            ws._wire.sendBytesMessage(blob)  # ignoring backpressure on purpose
            await asyncio.sleep(0)

    limits = WebSocketLimits(maxQueuedBytes=1 << 20, compression=False)
    site = Site(tree(flood, limits=limits)[0])
    base = serve_ws(site)
    host, port = host_port(base)
    with socket.create_connection((host, port), timeout=DEADLINE) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(
            b"GET /connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        assert sock.recv(12) == b"HTTP/1.1 101"
        wait_for(lambda: not site.connections, "the connection to be dropped")


def test_an_upgrade_pipelined_behind_a_request_comes_after_its_response(serve_ws: Any) -> None:
    """The plain response is held for the batch's one write; the 101 must not overtake it."""
    factory = PeerFactory()
    base = serve_ws(tree(factory)[0])
    with socket.create_connection(host_port(base), timeout=DEADLINE) as sock:
        sock.sendall(
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        received = b""
        while received.count(b"\r\n\r\n") < 2:
            chunk = sock.recv(4096)
            assert chunk, f"closed early: {received!r}"
            received += chunk
        first, _, rest = received.partition(b"\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 200 OK\r\n")
        assert rest.startswith(b"Hello, world!HTTP/1.1 101 ")
        # The connection now speaks WebSocket: a masked "request" gets "response" back.
        mask = b"\x01\x02\x03\x04"
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"request"))
        sock.sendall(b"\x81\x87" + mask + payload)
        frame = rest.partition(b"\r\n\r\n")[2]
        while len(frame) < 10:
            chunk = sock.recv(4096)
            assert chunk, f"closed early: {frame!r}"
            frame += chunk
        assert frame[:10] == b"\x81\x08response"


def test_await_send_waits_for_a_slow_reader(serve_ws: Any) -> None:
    sent: list[int] = []

    async def producer(ws: WebSocket) -> None:
        for i in range(100_000):
            await ws.send(b"y" * 4096)
            sent.append(i)

    site = Site(tree(producer, limits=WebSocketLimits(compression=False))[0])
    base = serve_ws(site)
    with ws_client.connect(ws_url(base), compression=None, max_queue=1, close_timeout=0.2) as ws:
        ws.recv(timeout=DEADLINE)

        def stalled() -> bool:
            # The reader stopped: the sender waits (what the kernel buffers is all it sent).
            before = len(sent)
            time.sleep(0.05)
            return before == len(sent) > 0

        wait_for(stalled, "the sender to stall")
        before = len(sent)
        assert before < 10_000  # 40 MB were never queued
        received = 0
        while len(sent) == before and received < 20_000:
            ws.recv(timeout=DEADLINE)
            received += 1
        wait_for(lambda: len(sent) > before, "the sender to go on")


# -- .rpy scripts --------------------------------------------------------------------------


def test_an_rpy_importing_twisted_web_websocket_runs_unchanged(
    serve_ws: Any, tmp_path: Path
) -> None:
    script = tmp_path / "chat.rpy"
    script.write_text(
        textwrap.dedent(
            """
            from twisted.web.websocket import WebSocketResource

            class Shout:
                def negotiationStarted(self, transport):
                    self.transport = transport
                def negotiationFinished(self):
                    pass
                def textMessageReceived(self, message):
                    self.transport.sendTextMessage(message.upper())
                def bytesMessageReceived(self, data):
                    pass
                def pongReceived(self, payload):
                    pass
                def connectionLost(self, reason):
                    pass

            class Factory:
                def buildProtocol(self, request):
                    return Shout()

            resource = WebSocketResource(Factory())
            """
        )
    )
    root = File(str(tmp_path))
    root.processors = {".rpy": ResourceScript}
    base = serve_ws(root)
    with ws_client.connect(ws_url(base, "/chat.rpy")) as ws:
        ws.send("hello")
        assert ws.recv(timeout=DEADLINE) == "HELLO"


def test_close_frame_payload_helper() -> None:
    assert struct.pack("!H", 1001) == b"\x03\xe9"
