"""ProxyClient as a Twisted protocol, and the proxies given a reactor that is not treadle's."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from treadle.internet import reactor
from treadle.internet.error import ConnectionDone
from treadle.internet.testing import MemoryReactor, StringTransportWithDisconnection
from treadle.python.failure import Failure
from treadle.web._proxy_relay import uses_pool
from treadle.web.http import HTTPFactory
from treadle.web.proxy import (
    HTTPConnectionPool,
    ProxyClient,
    ProxyClientFactory,
    ProxyRequest,
    ReverseProxy,
    ReverseProxyRequest,
    ReverseProxyResource,
)
from treadle.web.resource import Resource
from treadle.web.server import Site
from treadle.web.test.requesthelper import DummyChannel, DummyRequest

from .conftest import Hello, ServerThread, host_port, wait_for


def connect(client: ProxyClient) -> StringTransportWithDisconnection:
    transport = StringTransportWithDisconnection()
    transport.protocol = client
    client.makeConnection(transport)
    return transport


def sent(transport: StringTransportWithDisconnection) -> tuple[bytes, dict[bytes, bytes], bytes]:
    head, _, body = transport.value().partition(b"\r\n\r\n")
    line, *fields = head.split(b"\r\n")
    return line, dict(field.split(b": ", 1) for field in fields), body


def test_request_goes_out_in_http10_with_connection_close_and_the_body() -> None:
    father = DummyRequest([b"foo"])
    headers = {b"accept": b"text/html", b"content-length": b"4"}
    client = ProxyClient(b"POST", b"/foo?x=1", b"HTTP/1.1", headers, b"body", father)
    line, fields, body = sent(connect(client))
    assert line == b"POST /foo?x=1 HTTP/1.0"
    assert fields == {b"accept": b"text/html", b"content-length": b"4", b"connection": b"close"}
    assert body == b"body"


def test_hop_by_hop_request_fields_are_cleaned_up_in_place() -> None:
    headers = {
        b"accept": b"*/*",
        b"connection": b"keep-alive, x-private",
        b"x-private": b"1",
        b"keep-alive": b"300",
        b"proxy-connection": b"keep-alive",
        b"te": b"trailers",
        b"upgrade": b"websocket",
        b"expect": b"100-continue",
        b"transfer-encoding": b"chunked",
    }
    client = ProxyClient(b"PUT", b"/", b"HTTP/1.1", headers, b"12345", None)
    assert client.headers is headers
    assert headers == {b"accept": b"*/*", b"content-length": b"5", b"connection": b"close"}
    factory = ProxyClientFactory(b"GET", b"/x", b"HTTP/1.0", {b"a": b"b"}, b"data", None)
    proto = factory.buildProtocol(None)
    assert isinstance(proto, ProxyClient)
    assert (proto.command, proto.rest, proto.data) == (b"GET", b"/x", b"data")
    assert proto.headers == {b"a": b"b", b"connection": b"close"}


def test_response_is_relayed_and_ends_at_its_content_length() -> None:
    father = DummyRequest([b"foo"])
    father.responseHeaders.setRawHeaders(b"server", [b"ours"])
    client = ProxyClient(b"GET", b"/foo", b"HTTP/1.0", {}, b"", father)
    transport = connect(client)
    client.dataReceived(
        b"HTTP/1.0 404 Not Here\r\nServer: theirs\r\nX-A: 1\r\nX-A: 2\r\n"
        b"Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 5\r\n\r\nhel"
    )
    assert (father.responseCode, father.responseMessage) == (404, b"Not Here")
    assert father.written == [b"hel"] and not father.finished and transport.connected
    client.dataReceived(b"lo")
    assert b"".join(father.written) == b"hello" and father.finished == 1
    assert not transport.connected  # closed once the response was complete
    fields = dict(father.responseHeaders.getAllRawHeaders())
    assert fields == {b"Server": [b"theirs"], b"X-A": [b"1", b"2"], b"Content-Length": [b"5"]}


def test_a_close_delimited_response_ends_with_the_connection() -> None:
    father = DummyRequest([])
    client = ProxyClient(b"GET", b"/", b"HTTP/1.0", {}, b"", father)
    transport = connect(client)
    client.dataReceived(b"HTTP/1.0 200 OK\r\n\r\nsome ")
    client.dataReceived(b"data")
    assert not father.finished
    transport.loseConnection()
    assert b"".join(father.written) == b"some data" and father.finished == 1


def test_a_client_that_leaves_closes_the_origin_connection() -> None:
    father = DummyRequest([])
    client = ProxyClient(b"GET", b"/", b"HTTP/1.0", {}, b"", father)
    transport = connect(client)
    client.dataReceived(b"HTTP/1.0 200 OK\r\n\r\nfirst")
    father.processingFailed(Failure(ConnectionDone("client gone")))
    assert not transport.connected
    client.dataReceived(b"more")  # too late: nobody to write to
    assert father.written == [b"first"] and father.finished == 0


def test_connection_failed_is_twisteds_gateway_error() -> None:
    father = DummyRequest([b"foo"])
    factory = ProxyClientFactory(b"GET", b"/foo", b"HTTP/1.0", {}, b"", father)
    factory.clientConnectionFailed(None, None)
    assert (father.responseCode, father.responseMessage) == (501, b"Gateway error")
    assert b"".join(father.written) == b"<H1>Could not connect</H1>" and father.finished == 1


def test_the_pool_serves_asyncio_reactors_and_other_reactors_connect() -> None:
    assert uses_pool(None) and uses_pool(reactor)
    assert not uses_pool(MemoryReactor())


def test_forward_proxy_request_asks_another_reactor_to_connect() -> None:
    memory = MemoryReactor()
    request = ProxyRequest(DummyChannel(), False, memory)
    request.content.write(b"payload")
    request.requestReceived(b"POST", b"http://example.com:8080/a/b?c=d", b"HTTP/1.0")
    [(host, port, factory, _timeout, _bind)] = memory.tcpClients
    assert (host, port) == ("example.com", 8080)
    assert isinstance(factory, ProxyClientFactory) and factory.father is request
    assert (factory.command, factory.rest, factory.version) == (b"POST", b"/a/b?c=d", b"HTTP/1.0")
    assert factory.headers == {b"host": b"example.com:8080"} and factory.data == b"payload"
    default_port = ProxyRequest(DummyChannel(), False, memory)
    default_port.requestReceived(b"GET", b"http://example.com", b"HTTP/1.0")
    assert memory.tcpClients[1][:2] == ("example.com", 80)
    assert memory.tcpClients[1][2].rest == b"/"
    assert memory.tcpClients[1][2].headers == {b"host": b"example.com"}


class Server:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port


def test_reverse_proxy_request_goes_to_the_factorys_server() -> None:
    memory = MemoryReactor()
    request = ReverseProxyRequest(DummyChannel(), False, memory)
    request.factory = Server("example.com", 1234)
    request.requestReceived(b"GET", b"/foo/bar?x", b"HTTP/1.0")
    [(host, port, factory, _timeout, _bind)] = memory.tcpClients
    assert (host, port, factory.rest) == ("example.com", 1234, b"/foo/bar?x")
    assert factory.headers == {b"host": b"example.com"}
    # Without one of its own, the request's factory is its channel's.
    channel = DummyChannel()
    channel.factory = Server("elsewhere", 99)  # type: ignore[attr-defined]
    assert ReverseProxyRequest(channel, False, memory).factory.port == 99


def test_reverse_proxy_resource_asks_another_reactor_to_connect() -> None:
    memory = MemoryReactor()
    root = Resource()
    root.putChild(b"index", ReverseProxyResource("127.0.0.1", 1234, b"/path", memory))
    channel = Site(root).buildProtocol(None)
    transport = StringTransportWithDisconnection()
    transport.protocol = channel
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /index/page?foo=bar HTTP/1.1\r\nHost: x\r\nAccept: a/b\r\n\r\n")
    [(host, port, factory, _timeout, _bind)] = memory.tcpClients
    assert (host, port) == ("127.0.0.1", 1234)
    assert isinstance(factory, ProxyClientFactory)
    assert factory.rest == b"/path/page?foo=bar"
    assert factory.headers == {b"host": b"127.0.0.1:1234", b"accept": b"a/b"}
    channel.connectionLost(Failure(ConnectionDone()))


# -- over real sockets -----------------------------------------------------------------------


def test_proxy_client_factory_with_treadles_reactor_fetches_from_an_origin(
    server: ServerThread,
) -> None:
    _, origin = host_port(server.serve(Hello()))
    father = DummyRequest([])
    headers = {b"host": b"127.0.0.1:%d" % origin}
    factory = ProxyClientFactory(b"GET", b"/", b"HTTP/1.1", headers, b"", father)
    server.call(reactor.connectTCP, "127.0.0.1", origin, factory)
    wait_for(lambda: server.call(lambda: father.finished), what="the relayed response")
    assert father.responseCode == 200
    assert b"".join(father.written) == b"Hello, world!"


def test_reverse_proxy_channel_over_real_sockets(server: ServerThread) -> None:
    _, origin = host_port(server.serve(Hello()))
    pool = HTTPConnectionPool()
    request_factory = type("Pooled", (ReverseProxyRequest,), {"pool": pool})
    factory: Any = HTTPFactory()
    factory.protocol = type("Channel", (ReverseProxy,), {"requestFactory": request_factory})
    factory.host, factory.port = "127.0.0.1", origin
    url = server.serve(factory)
    try:
        response = httpx.get(url + "/anything?x=1", timeout=10)
        assert response.status_code == 200 and response.text == "Hello, world!"
        assert server.call(pool.idleConnections, "127.0.0.1", origin) == 1
    finally:
        asyncio.run_coroutine_threadsafe(_close(pool), server.loop).result(10)


async def _close(pool: HTTPConnectionPool) -> None:
    await pool.closeCachedConnections()
