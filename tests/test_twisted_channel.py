"""The HTTP channel driven the way Twisted code drives it: a Twisted transport, by hand.

A channel made without a factory, connected with ``makeConnection`` to a ``StringTransport``
and fed with ``dataReceived``, as Twisted's own tests and their users' test suites do; request
objects that offer only what Twisted's channel calls on a request (a ``proxyForInterface``
proxy, or a class of the program's own); the channel as its transport's push producer; and
the timeouts and limits a program sets on one channel.
"""

from __future__ import annotations

from typing import Any

import pytest
from zope.interface.verify import verifyObject

from treadle.internet.task import Clock
from treadle.internet.testing import StringTransport
from treadle.python.components import proxyForInterface
from treadle.web import http, iweb, server
from treadle.web.http_headers import Headers
from treadle.web.resource import Resource

#: What Twisted's tests wrap requests with: only the calls Twisted's channel makes.
RequestProxy = proxyForInterface(http._IDeprecatedHTTPChannelToRequestInterface)


class Echo(http.Request):
    """Answers with what it received: method, target, version and body."""

    def process(self) -> None:
        body = b"%s %s %s %s" % (self.method, self.uri, self.clientproto, self.content.read())
        self.setHeader(b"content-length", b"%d" % len(body))
        self.write(body)
        self.finish()


class Delayed(Echo):
    """Answers only when told to (``answer``)."""

    def process(self) -> None:
        pass

    def answer(self) -> None:
        Echo.process(self)


def proxied(request_class: type[http.Request]) -> Any:
    def make(channel: http.HTTPChannel) -> Any:
        return RequestProxy(request_class(channel))

    return make


def connected(request_factory: Any = Echo, transport: Any = None) -> tuple[Any, Any]:
    channel = http.HTTPChannel()
    channel.requestFactory = request_factory
    transport = StringTransport() if transport is None else transport
    channel.makeConnection(transport)
    return channel, transport


GET = b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"
POST = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"


def split_responses(data: bytes) -> list[tuple[bytes, dict[bytes, bytes], bytes]]:
    """Responses framed by Content-Length: (status line, headers, body)."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status, *lines = head.split(b"\r\n")
        headers = dict(line.split(b": ", 1) for line in lines)
        length = int(headers[b"Content-Length"])
        out.append((status, headers, rest[:length]))
        data = rest[length:]
    return out


# -- request objects of Twisted's interface only ----------------------------------------------


def test_a_proxied_request_is_driven_through_twisteds_calls() -> None:
    channel, transport = connected(proxied(Echo))
    channel.dataReceived(POST)
    [(status, _headers, body)] = split_responses(transport.value())
    assert status == b"HTTP/1.1 200 OK"
    assert body == b"POST /p HTTP/1.1 hello"
    assert not transport.disconnecting


def test_proxied_requests_byte_at_a_time_and_pipelined() -> None:
    channel, transport = connected(proxied(Echo))
    data = GET + POST
    for i in range(len(data)):
        channel.dataReceived(data[i : i + 1])
    bodies = [body for _, _, body in split_responses(transport.value())]
    assert bodies == [b"GET /a?x=1 HTTP/1.1 ", b"POST /p HTTP/1.1 hello"]


def test_requests_lists_the_request_being_answered_as_the_factory_made_it() -> None:
    channel, transport = connected(proxied(Delayed))
    channel.dataReceived(GET + POST)
    assert transport.value() == b""
    answered = 0
    while channel.requests:
        [request] = channel.requests
        assert isinstance(request, RequestProxy)
        request.original.answer()
        answered += 1
    assert answered == 2
    assert len(split_responses(transport.value())) == 2


def test_connection_close_is_echoed_to_a_proxied_request() -> None:
    channel, transport = connected(proxied(Echo))
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert b"\r\nConnection: close\r\n" in transport.value()
    assert transport.disconnecting


def test_a_request_class_of_twisteds_interface_only() -> None:
    # Not a treadle Request at all: it writes through the channel as Twisted's requests do.
    class Bare:
        def __init__(self, channel: Any) -> None:
            self.channel = channel
            self.requestHeaders = Headers()
            self.responseHeaders = Headers()
            self.body = b""

        def parseCookies(self) -> None:
            pass

        def gotLength(self, length: int | None) -> None:
            self.length = length

        def handleContentChunk(self, data: bytes) -> None:
            self.body += data

        def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
            answer = b"%s %d %s" % (command, self.length or 0, self.body)
            headers = [(b"Content-Length", b"%d" % len(answer))]
            self.channel.writeHeaders(version, b"200", b"OK", headers)
            self.channel.write(answer)
            self.channel.requestDone(self)

        def connectionLost(self, reason: Any) -> None:
            pass

    channel, transport = connected(Bare)
    channel.dataReceived(POST + GET)
    assert [b for _, _, b in split_responses(transport.value())] == [b"POST 5 hello", b"GET 0 "]


def test_wire_requests_provide_twisteds_channel_to_request_interface() -> None:
    channel, _ = connected()
    assert verifyObject(http._IDeprecatedHTTPChannelToRequestInterface, http.Request(channel))


# -- outside a running loop ---------------------------------------------------------------------


def test_without_a_loop_the_first_write_goes_out_at_once() -> None:
    channel, transport = connected()
    request = http.Request(channel)
    request.setResponseCode(200)
    request.responseHeaders.setRawHeaders(b"test", [b"lemur"])
    request.write(b"Hello")
    assert transport.value().endswith(b"\r\n\r\n5\r\nHello\r\n")
    request.write(b"World!")
    assert transport.value().endswith(b"6\r\nWorld!\r\n")
    assert b"Transfer-Encoding: chunked\r\n" in transport.value()


def test_a_pull_producer_is_driven_without_a_loop() -> None:
    class Pull:
        def __init__(self, request: http.Request) -> None:
            self.request = request
            self.count = 0

        def resumeProducing(self) -> None:
            self.request.write(b"%d" % self.count)
            self.count += 1
            if self.count == 5:
                self.request.unregisterProducer()
                self.request.finish()

        def stopProducing(self) -> None:
            pass

    class Producing(http.Request):
        def process(self) -> None:
            self.registerProducer(Pull(self), False)

    channel, transport = connected(Producing)
    channel.dataReceived(GET)
    body = transport.value().partition(b"\r\n\r\n")[2]
    assert body == b"1\r\n0\r\n1\r\n1\r\n1\r\n2\r\n1\r\n3\r\n1\r\n4\r\n0\r\n\r\n"


def test_plain_requests_send_no_default_content_type_but_site_requests_do() -> None:
    channel, transport = connected()
    channel.dataReceived(GET)
    assert b"Content-Type" not in transport.value()
    assert http.Request.defaultContentType is None
    assert server.Request.defaultContentType == b"text/html"


# -- the channel as its transport's producer ----------------------------------------------------


def test_the_channel_registers_as_its_transports_push_producer() -> None:
    channel, transport = connected()
    assert transport.producer is channel and transport.streaming
    channel.loseConnection()
    assert transport.producer is None


def test_pausing_the_channel_pauses_the_responses_producer() -> None:
    channel, _transport = connected(Delayed)
    channel.dataReceived(GET)
    events: list[str] = []

    class Push:
        def pauseProducing(self) -> None:
            events.append("pause")

        def resumeProducing(self) -> None:
            events.append("resume")

        def stopProducing(self) -> None:
            events.append("stop")

    [request] = channel.requests
    request.registerProducer(Push(), True)
    channel.pauseProducing()
    channel.resumeProducing()
    channel.stopProducing()
    assert events == ["pause", "resume", "stop"]


def test_an_idle_paused_channel_pauses_reading_until_resumed() -> None:
    channel, transport = connected()
    channel.pauseProducing()
    assert transport.producerState == "paused"
    channel.dataReceived(GET)
    assert transport.producerState == "paused"  # the client reads nothing: no more requests
    channel.resumeProducing()
    assert transport.producerState == "producing"
    assert transport.value().startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_request_cannot_register_two_producers() -> None:
    channel, _ = connected(Delayed)
    channel.dataReceived(GET)
    [request] = channel.requests
    producer = object()  # never called: writing is not paused
    request.registerProducer(producer, True)
    with pytest.raises(ValueError, match="before the previous one"):
        request.registerProducer(producer, True)
    request.unregisterProducer()
    assert request.producer is None


# -- per-channel timeouts and limits ------------------------------------------------------------


def test_timeout_and_call_later_set_on_the_channel() -> None:
    clock = Clock()
    channel = http.HTTPChannel()
    channel.timeOut = 100
    channel.callLater = clock.callLater
    transport = StringTransport()
    channel.makeConnection(transport)
    assert channel.timeOut == 100 and channel.callLater == clock.callLater
    clock.advance(99)
    assert not transport.disconnecting and transport.producer is channel
    clock.advance(1)
    assert transport.disconnecting and transport.producer is None


def test_set_timeout_returns_the_previous_one() -> None:
    channel = http.HTTPChannel(http.HTTPFactory(timeout=30))
    assert channel.setTimeout(5) == 30
    assert channel.timeOut == 5


def test_a_factory_timeout_of_none_means_no_timeout() -> None:
    factory = http.HTTPFactory(timeout=None)
    assert factory.timeOut > 300 * 24 * 3600
    factory.timeOut = 7
    assert factory.timeOut == 7


@pytest.mark.parametrize(("limit", "value"), [("maxHeaders", 2), ("totalHeadersSize", 30)])
def test_header_limits_set_on_one_channel(limit: str, value: int) -> None:
    assert getattr(http.HTTPChannel, limit) in (http.MAX_HEADERS, http.MAX_HEAD_SIZE)
    channel = http.HTTPChannel()
    setattr(channel, limit, value)
    channel.requestFactory = Echo
    transport = StringTransport()
    channel.makeConnection(transport)
    assert getattr(channel, limit) == value
    channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 431 ")


def test_a_subclass_gives_limits_and_timeout_as_class_attributes() -> None:
    class Strict(http.HTTPChannel):
        maxHeaders = 1
        timeOut = 12

    factory = http.HTTPFactory()
    factory.protocol = Strict
    channel = factory.buildProtocol(None)
    assert channel.maxHeaders == 1 and channel.timeOut == 12
    assert factory.asyncio_protocol_factory() is not None
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: h\r\nA: 1\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 431 ")


# -- Twisted's other channel methods ------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "connection", "persistent", "echoed"),
    [
        (b"HTTP/1.1", None, True, None),
        (b"HTTP/1.1", b"close", False, [b"close"]),
        (b"HTTP/1.0", None, False, None),
        (b"HTTP/0.9", None, False, None),
    ],
)
def test_check_persistence(
    version: bytes, connection: bytes | None, persistent: bool, echoed: Any
) -> None:
    channel = http.HTTPChannel()
    request = http.Request(channel)
    if connection is not None:
        request.requestHeaders.setRawHeaders(b"connection", [connection])
    assert channel.checkPersistence(request, version) is persistent
    assert request.responseHeaders.getRawHeaders(b"connection") == echoed


def test_write_headers_turns_line_breaks_into_spaces() -> None:
    channel, transport = connected()
    channel.writeHeaders(b"HTTP/1.1", b"200", b"OK", [(b"Foo", b"a\r\nb\nc")])
    assert transport.value() == b"HTTP/1.1 200 OK\r\nFoo: a b c\r\n\r\n"


def test_peer_host_and_security_of_the_channel() -> None:
    channel, transport = connected()
    assert channel.getPeer() == transport.getPeer()
    assert channel.getHost() == transport.getHost()
    assert not channel.isSecure()


def test_twisted_names_that_modules_import() -> None:
    assert http.H2_ENABLED is True
    assert iweb.INonQueuedRequestFactory.providedBy(object()) is False
    assert "HTTPClient" not in http.__all__  # deprecated: reached by attribute only


def test_a_site_channel_driven_by_hand() -> None:
    class Leaf(Resource):
        isLeaf = True

        def render_GET(self, request: server.Request) -> bytes:
            return b"leaf"

    channel = http.HTTPChannel()
    channel.site = server.Site(Leaf())
    channel.requestFactory = server.Request
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(GET)
    assert transport.value().endswith(b"\r\n\r\nleaf")
    assert b"Content-Type: text/html\r\n" in transport.value()
