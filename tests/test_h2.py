"""HTTP/2 connections over an in-memory transport, time driven by a Clock, h2 as the client.

:class:`H2Client` opens a connection to a site the way a real one arrives: an HTTP/1.1
channel takes the transport, sees the connection preface and hands over to the HTTP/2
connection. Its client side is h2 itself (an independent state machine), so what the server
frames is checked by a second implementation. Attack tests live in ``test_h2_attacks.py``,
real clients over sockets in ``test_h2_clients.py``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from hyperframe.frame import GoAwayFrame

from treadle.internet.error import ConnectionAborted, ConnectionLost
from treadle.internet.task import Clock
from treadle.web._h2_channel import H2Connection
from treadle.web._h2_fields import response_fields
from treadle.web._h2_limits import STREAM_SPOOL_SIZE
from treadle.web.http import HTTPChannel
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Request, Site

from .conftest import Held

GOAWAY_TYPE = 0x7


class Wire:
    """An asyncio transport in memory: what the server writes waits for the client."""

    def __init__(self) -> None:
        self.protocol: Any = None
        self.written = bytearray()
        self.closed = False
        self.aborted = False
        self.reading = True

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def write(self, data: bytes) -> None:
        assert not (self.closed or self.aborted), "write after close"
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("10.0.0.1", 40000), "sockname": ("10.0.0.2", 8080)}.get(name, default)


class Response:
    """What one stream received: headers, body, how it ended."""

    def __init__(self) -> None:
        self.informational: list[list[tuple[bytes, bytes]]] = []
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self.ended = False
        self.reset: int | None = None

    @property
    def status(self) -> int:
        return int(dict(self.headers)[b":status"])

    def header(self, name: bytes) -> bytes | None:
        return dict(self.headers).get(name)


class H2Client:
    """An h2 client connected to ``site`` through an in-memory wire.

    Args:
        site: The site; its timers run on ``clock``.
        settings: The client's SETTINGS (e.g. a small INITIAL_WINDOW_SIZE).
        clock: The clock (a new one when None).
        read: Acknowledge received data (reopening windows) as it arrives.
    """

    def __init__(
        self,
        site: Site,
        settings: dict[int, int] | None = None,
        clock: Clock | None = None,
        read: bool = True,
    ) -> None:
        self.clock = clock or Clock()
        site._clock = self.clock
        self.site = site
        self.read = read
        self.ack_every_frame = False
        self.window_updates = 0
        self.wire = Wire()
        channel = site.buildProtocol(None)
        self.wire.protocol = channel
        channel.connection_made(self.wire)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.conn.initiate_connection()
        self.responses: dict[int, Response] = {}
        self.events: list[h2.events.Event] = []
        self.goaway: GoAwayFrame | None = None
        self._partial = b""
        self.pump()
        assert isinstance(self.wire.protocol, H2Connection)
        self.server: H2Connection = self.wire.protocol

    def send_raw(self, data: bytes) -> None:
        """Feed ``data`` to the server as one read, then take what it answers."""
        self.wire.protocol.data_received(data)
        self.pump()

    def pump(self) -> None:
        """Exchange bytes until both sides are quiet."""
        for _ in range(1000):
            progressed = False
            data = self.conn.data_to_send()
            if data and not self.wire.is_closing():
                self.wire.protocol.data_received(data)
                progressed = True
            self.clock.advance(0)
            written = bytes(self.wire.written)
            self.wire.written.clear()
            if written:
                for event in self.conn.receive_data(self._without_goaway(written)):
                    self._take(event)
                progressed = True
            if not progressed:
                return
        raise AssertionError("the connection never went quiet")

    def _without_goaway(self, data: bytes) -> bytes:
        """``data`` without its GOAWAY frames, which are kept in :attr:`goaway`: h2 takes no
        frame after a GOAWAY, and a graceful one is followed by the streams' last frames."""
        buffered = self._partial + data
        kept = bytearray()
        at = 0
        while len(buffered) - at >= 9:
            length = int.from_bytes(buffered[at : at + 3], "big")
            end = at + 9 + length
            if end > len(buffered):
                break
            if buffered[at + 3] == GOAWAY_TYPE:
                frame = GoAwayFrame(0)
                frame.parse_body(memoryview(buffered[at + 9 : end]))
                self.goaway = frame
            else:
                kept += buffered[at:end]
            at = end
        self._partial = buffered[at:]
        return bytes(kept)

    def _take(self, event: h2.events.Event) -> None:
        self.events.append(event)
        if isinstance(event, h2.events.ResponseReceived):
            self.responses[event.stream_id].headers = list(event.headers)
        elif isinstance(event, h2.events.InformationalResponseReceived):
            self.responses[event.stream_id].informational.append(list(event.headers))
        elif isinstance(event, h2.events.DataReceived):
            self.responses[event.stream_id].body += event.data
            size = event.flow_controlled_length
            if self.ack_every_frame and size:
                # As some clients do: both windows reopened on every DATA frame.
                if event.stream_ended is None:
                    self.conn.increment_flow_control_window(size, event.stream_id)
                    self.window_updates += 1
                self.conn.increment_flow_control_window(size)
                self.window_updates += 1
            elif self.read and size:
                self.conn.acknowledge_received_data(size, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.responses[event.stream_id].ended = True
        elif isinstance(event, h2.events.StreamReset):
            self.responses[event.stream_id].reset = event.error_code

    def request(
        self,
        path: bytes = b"/",
        method: bytes = b"GET",
        headers: Iterable[tuple[bytes, bytes]] = (),
        body: bytes | None = None,
        end: bool = True,
        pump: bool = True,
    ) -> int:
        """Open a stream with a request; returns its id. ``body`` goes out as the window allows."""
        sid = self.conn.get_next_available_stream_id()
        self.responses[sid] = Response()
        fields = [
            (b":method", method),
            (b":scheme", b"http"),
            (b":authority", b"example.com"),
            (b":path", path),
            *headers,
        ]
        self.conn.send_headers(sid, fields, end_stream=end and body is None)
        if body is not None:
            self.send_body(sid, body, end=end)
        elif pump:
            self.pump()
        return sid

    def send_body(self, sid: int, body: bytes, end: bool = True) -> None:
        """Send ``body`` on stream ``sid`` in pieces the windows allow."""
        view = memoryview(body)
        while True:
            window = min(
                self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size
            )
            piece, view = view[:window], view[window:]
            self.conn.send_data(sid, piece.tobytes(), end_stream=end and not view)
            self.pump()
            if not view:
                return
            assert self.conn.local_flow_control_window(sid) > 0, (
                "the server never opened the window"
            )

    def get(self, path: bytes = b"/", **kwargs: Any) -> Response:
        return self.responses[self.request(path, **kwargs)]


class Echo(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return b"%s %s %s" % (request.method, request.uri, request.clientproto)

    def render_POST(self, request: Request) -> bytes:
        return b"got %d bytes" % len(request.content.read())

    def render_HEAD(self, request: Request) -> bytes:
        return b"a body HEAD never carries"


class Recorder(Resource):
    """Keeps every request open, and what happened to it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Request] = []
        self.endings: list[object] = []

    def render(self, request: Request) -> object:
        self.requests.append(request)
        request.notifyFinish().addBoth(self.endings.append)
        return NOT_DONE_YET


def client_for(resource: Resource, **kwargs: Any) -> H2Client:
    site = Site(resource, timeout=kwargs.pop("timeout", 60))
    return H2Client(site, **kwargs)


# -- the connection preface hands over ---------------------------------------------------------


def test_the_preface_hands_the_connection_to_http2() -> None:
    client = client_for(Echo())
    response = client.get(b"/a?x=1")
    assert response.status == 200
    assert bytes(response.body) == b"GET /a?x=1 HTTP/2"
    assert response.ended
    names = [name for name, _ in response.headers]
    assert names == [b":status", b"server", b"date", b"content-type", b"content-length"]
    assert response.header(b"content-length") == b"17"
    # The channel counted with the factory is the HTTP/2 connection now.
    assert client.site.connections == frozenset({client.server})


def test_http11_is_still_served_beside_it() -> None:
    site = Site(Echo())
    site._clock = Clock()
    channel = site.buildProtocol(None)
    wire = Wire()
    wire.protocol = channel
    channel.connection_made(wire)
    channel.data_received(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    site._clock.advance(0)
    assert isinstance(wire.protocol, HTTPChannel)
    assert wire.written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert wire.written.endswith(b"GET /x HTTP/1.1")


def test_the_request_is_the_sites_and_sees_http2() -> None:
    seen: list[Request] = []

    class Look(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            seen.append(request)
            return b""

    client = client_for(Look())
    client.get(b"/p/q?a=1&a=2", headers=[(b"cookie", b"a=1"), (b"cookie", b"b=2")])
    (request,) = seen
    assert type(request) is Request
    assert request.clientproto == b"HTTP/2"
    assert request.path == b"/p/q"
    assert request.args == {b"a": [b"1", b"2"]}
    assert request.prepath == [b"p", b"q"] or request.postpath == [b"p", b"q"]
    assert request.getHeader(b"host") == b"example.com"
    assert request.getRequestHostname() == b"example.com"
    assert request.received_cookies == {b"a": b"1", b"b": b"2"}
    assert request.getClientAddress().host == "10.0.0.1"
    assert request.getHost().port == 8080
    assert not request.isSecure()
    assert request.channel.stream_id == 1


def test_post_bodies_arrive_whole_even_large_ones() -> None:
    client = client_for(Echo())
    small = client.get(b"/", method=b"POST", body=b"x" * 100)
    assert bytes(small.body) == b"got 100 bytes"
    large = client.get(b"/", method=b"POST", body=b"y" * (2 * 1024 * 1024 + 5))
    assert bytes(large.body) == b"got 2097157 bytes"


def test_a_body_over_the_limit_is_refused_with_413() -> None:
    site = Site(Echo())
    site.maxRequestBodySize = 1000
    client = H2Client(site)
    declared = client.get(b"/", method=b"POST", headers=[(b"content-length", b"1001")], end=False)
    assert declared.status == 413
    assert declared.ended
    assert declared.reset == 0  # RST_STREAM(NO_ERROR): stop sending the body
    sent = client.get(b"/", method=b"POST", body=b"z" * 1500)
    assert sent.status == 413
    exact = client.get(b"/", method=b"POST", body=b"z" * 1000)
    assert bytes(exact.body) == b"got 1000 bytes"


def test_expect_100_continue_is_answered_before_the_body() -> None:
    client = client_for(Echo())
    sid = client.request(b"/", method=b"POST", headers=[(b"expect", b"100-continue")], end=False)
    response = client.responses[sid]
    assert response.informational == [[(b":status", b"100")]]
    assert not response.headers
    client.send_body(sid, b"abc")
    assert bytes(response.body) == b"got 3 bytes"


def test_responses_without_a_body() -> None:
    class NoContent(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            request.setResponseCode(204)
            return b""

    head = client_for(Echo()).get(b"/", method=b"HEAD")
    assert head.status == 200 and head.body == b"" and head.ended
    empty = client_for(NoContent()).get(b"/")
    assert empty.status == 204 and empty.body == b"" and empty.ended


# -- NOT_DONE_YET, streaming, several streams --------------------------------------------------


def test_not_done_yet_streams_and_finishes_later() -> None:
    held = Recorder()
    client = client_for(held)
    sid = client.request(b"/")
    (request,) = held.requests
    request.setHeader(b"x-kind", b"stream")
    request.write(b"one ")
    client.pump()
    response = client.responses[sid]
    assert response.status == 200
    assert response.header(b"x-kind") == b"stream"
    assert response.header(b"content-length") is None
    assert bytes(response.body) == b"one " and not response.ended
    request.write("two")
    request.finish()
    client.pump()
    assert bytes(response.body) == b"one two" and response.ended
    assert held.endings == [None]
    assert client.server.streams == {}


def test_streams_are_answered_in_any_order() -> None:
    held = Held(immediate={b"/now": b"now"})
    client = client_for(held)
    slow = client.request(b"/slow")
    fast = client.request(b"/now")
    assert bytes(client.responses[fast].body) == b"now"
    assert not client.responses[slow].headers
    held.release(b"later")
    client.pump()
    assert bytes(client.responses[slow].body) == b"later"


def test_a_client_reset_reaches_the_request() -> None:
    held = Recorder()
    client = client_for(held)
    sid = client.request(b"/")
    client.conn.reset_stream(sid, 8)
    client.pump()
    (ending,) = held.endings
    assert ending.check(ConnectionLost)  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError):
        held.requests[0].finish()
    assert client.server.streams == {}


def test_errors_become_500_or_a_reset() -> None:
    class Broken(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            if request.path == b"/late":
                request.write(b"partial")
            raise ValueError("broken")

    client = client_for(Broken())
    early = client.get(b"/early")
    assert early.status == 500
    late = client.get(b"/late")
    assert bytes(late.body) == b"partial"
    assert late.reset is not None and not late.ended


def test_the_access_log_says_http2(tmp_path: Any) -> None:
    log = tmp_path / "access.log"
    site = Site(Echo(), logPath=str(log))
    site.doStart()
    H2Client(site).get(b"/logged")
    site.doStop()
    assert '"GET /logged HTTP/2" 200 18' in log.read_text()


def test_request_trailers_are_kept_apart_from_the_headers() -> None:
    seen: list[Request] = []

    class Look(Resource):
        isLeaf = True

        def render_POST(self, request: Request) -> bytes:
            seen.append(request)
            return b"ok"

    client = client_for(Look())
    sid = client.request(b"/", method=b"POST", body=b"data", end=False)
    client.conn.send_headers(sid, [(b"x-checksum", b"abc")], end_stream=True)
    client.pump()
    assert bytes(client.responses[sid].body) == b"ok"
    assert not seen[0].requestHeaders.hasHeader(b"x-checksum")
    assert seen[0].requestTrailers.getRawHeaders(b"x-checksum") == [b"abc"]
    assert seen[0].content.read() == b"data"


# -- producers and flow control ---------------------------------------------------------------


class PushProducer:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


def test_a_push_producer_follows_the_flow_control_window() -> None:
    held = Recorder()
    client = client_for(
        held, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000}, read=False
    )
    sid = client.request(b"/")
    (request,) = held.requests
    producer = PushProducer()
    request.registerProducer(producer, True)
    request.write(b"a" * 70_000)
    client.pump()
    response = client.responses[sid]
    assert len(response.body) == 1000  # the window, no more
    assert producer.calls == ["pause"]
    # The client reads: windows open, the stream drains, the producer resumes.
    client.read = True
    client.conn.acknowledge_received_data(1000, sid)
    client.pump()
    assert len(response.body) == 70_000
    assert producer.calls == ["pause", "resume"]
    request.unregisterProducer()
    request.finish()
    client.pump()
    assert response.ended


def test_a_pull_producer_is_asked_while_the_stream_has_room() -> None:
    held = Recorder()
    client = client_for(held)
    sid = client.request(b"/")
    (request,) = held.requests
    pieces = [b"x" * 1000] * 5

    class Pull:
        def resumeProducing(self) -> None:
            if pieces:
                request.write(pieces.pop())
            else:
                request.unregisterProducer()
                request.finish()

        def stopProducing(self) -> None:
            raise AssertionError("not stopped")

    request.registerProducer(Pull(), False)
    client.pump()
    assert len(client.responses[sid].body) == 5000
    assert client.responses[sid].ended


def test_a_reset_stops_the_producer() -> None:
    held = Recorder()
    client = client_for(held)
    sid = client.request(b"/")
    producer = PushProducer()
    held.requests[0].registerProducer(producer, True)
    client.conn.reset_stream(sid, 8)
    client.pump()
    assert producer.calls == ["stop"]


# -- timeouts and shutdown ----------------------------------------------------------------------


def test_an_idle_connection_is_closed_after_the_timeout() -> None:
    client = client_for(Echo(), timeout=5)
    client.get(b"/")
    client.clock.advance(4)
    assert not client.wire.closed
    client.clock.advance(2)
    client.pump()
    assert client.wire.closed
    assert client.goaway is not None and client.goaway.error_code == 0


def test_a_connection_that_opens_no_stream_gets_the_head_timeout() -> None:
    site = Site(Echo())
    site.headTimeout = 2
    client = H2Client(site)
    client.clock.advance(3)
    assert client.wire.closed


def test_a_body_that_stops_arriving_gets_408() -> None:
    site = Site(Echo())
    site.bodyTimeout = 3
    client = H2Client(site)
    sid = client.request(b"/", method=b"POST", body=b"part", end=False)
    client.clock.advance(4)
    client.pump()
    assert client.responses[sid].status == 408


def test_graceful_shutdown_finishes_streams_and_refuses_new_ones() -> None:
    held = Recorder()
    client = client_for(held)
    first = client.request(b"/")
    client.server.close_when_idle()
    client.pump()
    assert client.goaway is not None
    assert (client.goaway.last_stream_id, client.goaway.error_code) == (first, 0)
    assert not client.wire.closed
    (request,) = held.requests
    request.write(b"done")
    request.finish()
    client.pump()
    assert bytes(client.responses[first].body) == b"done"
    assert client.responses[first].ended
    assert client.wire.closed


def test_a_stream_opened_after_goaway_is_refused() -> None:
    held = Recorder()
    client = client_for(held)
    first = client.request(b"/")
    server = client.server
    server.close_when_idle()
    # The GOAWAY is on the wire; the client sends another stream before reading it.
    later = client.conn.get_next_available_stream_id()
    client.responses[later] = Response()
    client.conn.send_headers(
        later,
        [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a"), (b":path", b"/")],
        end_stream=True,
    )
    server.data_received(client.conn.data_to_send())
    client.pump()
    assert len(held.requests) == 1
    assert client.responses[later].reset == 7  # REFUSED_STREAM: safe to retry elsewhere
    held.requests[0].finish()
    client.pump()
    assert client.responses[first].ended
    assert client.wire.closed


def test_abort_tells_every_stream() -> None:
    held = Recorder()
    client = client_for(held)
    client.request(b"/a")
    client.request(b"/b")
    client.server.abort()
    assert client.wire.aborted
    client.server.connection_lost(None)
    assert [ending.check(ConnectionAborted) for ending in held.endings] == [  # type: ignore[attr-defined]
        ConnectionAborted,
        ConnectionAborted,
    ]


def test_response_fields_drop_connection_management() -> None:
    head = (
        b"HTTP/1.1 404 Not Found\r\nServer: x\r\nConnection: close\r\nKeep-Alive: 5\r\n"
        b"Transfer-Encoding: chunked\r\nX-Odd:  spaced  \r\nSet-Cookie: a=1\r\nSet-Cookie: b=2"
    )
    assert response_fields(head) == [
        (b":status", b"404"),
        (b"server", b"x"),
        (b"x-odd", b"spaced"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]


def test_large_bodies_go_out_in_frames_the_window_allows() -> None:
    body = bytes(range(256)) * 4096  # 1 MiB

    class Big(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            return body

    client = client_for(Big())
    response = client.get(b"/")
    assert bytes(response.body) == body
    assert response.header(b"content-length") == b"%d" % len(body)


def test_content_written_to_a_spooled_file_is_closed() -> None:
    seen: list[Any] = []

    class Keep(Resource):
        isLeaf = True

        def render_POST(self, request: Request) -> bytes:
            seen.append(request.content)
            return b"ok"

    client = client_for(Keep())
    client.get(b"/", method=b"POST", body=b"q" * (STREAM_SPOOL_SIZE + 1))
    (content,) = seen
    assert not isinstance(content, io.BytesIO)
    assert content.closed


def test_only_a_connection_that_opens_with_the_preface_switches() -> None:
    site = Site(Echo())
    site._clock = Clock()
    channel = site.buildProtocol(None)
    wire = Wire()
    wire.protocol = channel
    channel.connection_made(wire)
    channel.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    site._clock.advance(0)
    channel.data_received(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    site._clock.advance(0)
    assert wire.protocol is channel
    assert wire.written.count(b"HTTP/1.1 200 OK") == 1
    assert b"505 HTTP Version Not Supported" in wire.written  # refused as HTTP/1.x
