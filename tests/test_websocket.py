"""treadle.web.websocket with Twisted's API: the handshake, the events, the hand-over.

Driven by hand as Twisted's own tests drive its channel (a ``StringTransport``, no loop), and
through the pure :func:`negotiate`. The socket tier (treadle's client and server, the
``websockets`` library, limits, shutdown) is in ``test_websocket_socket.py``; hostile frames
in ``test_websocket_hostile.py``.
"""

from __future__ import annotations

import asyncio
import base64
import struct
from dataclasses import dataclass, field
from typing import Any

import pytest

from treadle.internet.error import ConnectionDone
from treadle.internet.task import Clock
from treadle.internet.testing import StringTransport
from treadle.python.failure import Failure
from treadle.web._websocket_server import Acceptance, Refusal, negotiate
from treadle.web.http_headers import Headers
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Site
from treadle.web.websocket import (
    WebSocketLimits,
    WebSocketProtocol,
    WebSocketResource,
    WebSocketTransport,
)

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3's example
HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\n"
    b"Host: localhost\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: " + KEY + b"\r\n\r\n"
)


def frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0) -> bytes:
    """A client frame (masked, as RFC 6455 §5.3 wants) with a zero-free mask."""
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        head = bytes([first, 0x80 | n])
    elif n < 65536:
        head = bytes([first, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, 0x80 | 127]) + struct.pack("!Q", n)
    key = b"\x11\x22\x33\x44"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Parse the (unmasked) frames a server sent: ``[(opcode, payload), ...]``."""
    frames = []
    while data:
        opcode = data[0] & 0x0F
        n = data[1] & 0x7F
        at = 2
        if n == 126:
            (n,) = struct.unpack("!H", data[2:4])
            at = 4
        elif n == 127:
            (n,) = struct.unpack("!Q", data[2:10])
            at = 10
        frames.append((opcode, data[at : at + n]))
        data = data[at + n :]
    return frames


@dataclass
class Recorder(WebSocketProtocol):
    """Records every event; echoes ``"request"`` with ``"response"`` as Twisted's tests do."""

    events: list[Any] = field(default_factory=list)
    transport: Any = None

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self.transport = transport
        self.events.append("started")

    def negotiationFinished(self) -> None:
        self.events.append("finished")

    def textMessageReceived(self, message: str) -> None:
        self.events.append(message)
        if message == "request":
            self.transport.sendTextMessage("response")

    def bytesMessageReceived(self, data: bytes) -> None:
        self.events.append(data)

    def pongReceived(self, payload: bytes) -> None:
        self.events.append(("pong", payload))

    def connectionLost(self, reason: Failure) -> None:
        self.events.append(("lost", reason.type))


class Factory:
    def __init__(self) -> None:
        self.built: list[Recorder] = []
        self.requests: list[Any] = []

    def buildProtocol(self, request: Any) -> Recorder:
        self.requests.append(request)
        self.built.append(Recorder())
        return self.built[-1]


def by_hand(factory: Any = None, **options: Any) -> tuple[Any, StringTransport, Factory, Site]:
    """A channel of a Site serving ``/ws``, connected to a StringTransport (no loop)."""
    factory = factory or Factory()
    root = Resource()
    root.putChild(b"ws", WebSocketResource(factory, **options))
    site = Site(root, reactor=Clock())
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport, factory, site


def opened(**options: Any) -> tuple[Any, StringTransport, Recorder, Site]:
    channel, transport, factory, site = by_hand(**options)
    channel.dataReceived(HANDSHAKE)
    assert transport.value().startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    transport.clear()
    return channel, transport, factory.built[0], site


# -- the handshake -------------------------------------------------------------------------


def test_handshake_answers_101_with_the_accept_token() -> None:
    channel, transport, factory, _ = by_hand()
    channel.dataReceived(HANDSHAKE)
    head = transport.value()
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: " + ACCEPT + b"\r\n" in head
    assert b"Upgrade: websocket\r\n" in head and head.endswith(b"\r\n\r\n")
    assert factory.built[0].events == ["started", "finished"]
    assert factory.requests[0].path == b"/ws"
    assert channel.state == "UPGRADED"


def test_the_upgrade_request_is_finished_and_logged_as_101() -> None:
    channel, _, factory, _ = by_hand()
    channel.dataReceived(HANDSHAKE)
    request = factory.requests[0]
    assert request.finished and request.code == 101
    fired: list[object] = []
    request.notifyFinish().addCallback(fired.append)
    assert fired == [None]


def test_a_plain_get_is_refused_as_twisted_does() -> None:
    channel, transport, factory, _ = by_hand()
    channel.dataReceived(b"GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n")
    answer = transport.value()
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.endswith(b"websocket protocol negotiation error")
    assert b"Content-Type: text/plain" in answer
    assert factory.built == []
    assert channel.state == "IDLE"  # an ordinary request: the connection stays usable


def test_other_methods_are_not_allowed() -> None:
    channel, transport, _, _ = by_hand()
    channel.dataReceived(b"POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 405 ")


def test_an_upgrade_to_another_protocol_is_answered_then_closed() -> None:
    root = Resource()
    site = Site(root, reactor=Clock())
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nPRI * junk"
    )
    assert transport.value().startswith(b"HTTP/1.1 404 ")
    assert b"Connection: close" in transport.value()
    assert transport.disconnecting


def test_frames_in_the_handshakes_packet_are_delivered_after_negotiation() -> None:
    channel, _, factory, _ = by_hand()
    channel.dataReceived(HANDSHAKE + frame(1, b"early") + frame(2, b"\x00\x01"))
    assert factory.built[0].events == ["started", "finished", "early", b"\x00\x01"]


def test_bytes_held_while_the_resource_decides_are_delivered() -> None:
    """A resource may answer later (NOT_DONE_YET); what arrives meanwhile is kept."""
    parked: list[Any] = []

    class Later(Resource):
        def __init__(self, ws: WebSocketResource) -> None:
            super().__init__()
            self.ws = ws

        def render_GET(self, request: Any) -> Any:
            parked.append(request)
            return NOT_DONE_YET

    factory = Factory()
    later = Later(WebSocketResource(factory))
    root = Resource()
    root.putChild(b"ws", later)
    channel = Site(root, reactor=Clock()).buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(HANDSHAKE + frame(1, b"one"))
    channel.dataReceived(frame(1, b"two"))
    assert channel.state == "UPGRADING" and transport.value() == b""
    later.ws.render(parked[0])
    assert factory.built[0].events == ["started", "finished", "one", "two"]


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        (b"Sec-WebSocket-Version", b"8", "unsupported Sec-WebSocket-Version"),
        (b"Sec-WebSocket-Key", b"c2hvcnQ=", "missing or invalid Sec-WebSocket-Key"),
        (b"Sec-WebSocket-Key", b"not base64!", "missing or invalid Sec-WebSocket-Key"),
        (b"Upgrade", b"h2c", "no 'Upgrade: websocket'"),
        (b"Connection", b"keep-alive", "no 'Connection: upgrade'"),
    ],
)
def test_negotiate_refuses_a_bad_handshake(field: bytes, value: bytes, why: str) -> None:
    headers = Headers(
        {
            b"Host": [b"x"],
            b"Upgrade": [b"websocket"],
            b"Connection": [b"keep-alive, Upgrade"],
            b"Sec-WebSocket-Version": [b"13"],
            b"Sec-WebSocket-Key": [KEY],
        }
    )
    assert isinstance(negotiate(b"GET", b"HTTP/1.1", headers, WebSocketLimits()), Acceptance)
    headers.setRawHeaders(field, [value])
    outcome = negotiate(b"GET", b"HTTP/1.1", headers, WebSocketLimits())
    assert isinstance(outcome, Refusal)
    assert outcome.code == 400 and outcome.why == why
    if field == b"Sec-WebSocket-Version":
        assert outcome.headers == ((b"Sec-WebSocket-Version", b"13"),)


def test_negotiate_refuses_http_10_and_other_methods() -> None:
    headers = Headers(
        {
            b"Host": [b"x"],
            b"Upgrade": [b"WebSocket"],
            b"Connection": [b"upgrade"],
            b"Sec-WebSocket-Version": [b"13"],
            b"Sec-WebSocket-Key": [KEY],
        }
    )
    assert isinstance(negotiate(b"GET", b"HTTP/1.1", headers, WebSocketLimits()), Acceptance)
    assert isinstance(negotiate(b"GET", b"HTTP/1.0", headers, WebSocketLimits()), Refusal)
    assert isinstance(negotiate(b"HEAD", b"HTTP/1.1", headers, WebSocketLimits()), Refusal)


def test_negotiate_agrees_to_compression_and_a_subprotocol() -> None:
    headers = Headers(
        {
            b"Host": [b"x"],
            b"Upgrade": [b"websocket"],
            b"Connection": [b"Upgrade"],
            b"Sec-WebSocket-Version": [b"13"],
            b"Sec-WebSocket-Key": [KEY],
            b"Sec-WebSocket-Extensions": [b"permessage-deflate; client_max_window_bits"],
            b"Sec-WebSocket-Protocol": [b"chat, superchat"],
        }
    )
    outcome = negotiate(b"GET", b"HTTP/1.1", headers, WebSocketLimits(), ("superchat", "chat"))
    assert isinstance(outcome, Acceptance)
    assert b"Sec-WebSocket-Extensions: permessage-deflate" in outcome.head
    assert b"Sec-WebSocket-Protocol: superchat\r\n" in outcome.head
    assert outcome.subprotocol == "superchat"
    plain = negotiate(b"GET", b"HTTP/1.1", headers, WebSocketLimits(compression=False))
    assert isinstance(plain, Acceptance)
    assert b"Sec-WebSocket-Extensions" not in plain.head
    assert b"Sec-WebSocket-Protocol" not in plain.head


def test_negotiate_takes_the_first_acceptable_deflate_offer_alone() -> None:
    headers = Headers(
        {
            b"Host": [b"x"],
            b"Upgrade": [b"websocket"],
            b"Connection": [b"Upgrade"],
            b"Sec-WebSocket-Version": [b"13"],
            b"Sec-WebSocket-Key": [KEY],
            b"Sec-WebSocket-Extensions": [
                b"x-unknown, permessage-deflate; client_max_window_bits=10, permessage-deflate"
            ],
        }
    )
    outcome = negotiate(b"GET", b"HTTP/1.1", headers, WebSocketLimits())
    assert isinstance(outcome, Acceptance)
    assert b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10\r\n" in (
        outcome.head
    )
    assert outcome.head.count(b"permessage-deflate") == 1


def test_origin_allow_list() -> None:
    def answer(origin: bytes | None) -> bytes:
        channel, transport, _, _ = by_hand(allowedOrigins=["https://Example.com"])
        line = b"" if origin is None else b"Origin: " + origin + b"\r\n"
        channel.dataReceived(HANDSHAKE[:-2] + line + b"\r\n")
        return transport.value()

    assert answer(b"https://example.com").startswith(b"HTTP/1.1 101 ")
    assert answer(b"https://evil.example").startswith(b"HTTP/1.1 403 ")
    assert answer(None).startswith(b"HTTP/1.1 403 ")


def test_a_factory_answering_none_refuses_with_403() -> None:
    class Nobody:
        def buildProtocol(self, request: Any) -> None:
            return None

    channel, transport, _, _ = by_hand(Nobody())
    channel.dataReceived(HANDSHAKE)
    assert transport.value().startswith(b"HTTP/1.1 403 ")


# -- messages and events (Twisted's FramingAndFragmentationTests, and more) ---------------


def test_a_complete_frame_is_one_message() -> None:
    channel, _, proto, _ = opened()
    channel.dataReceived(frame(2, b"abcdef"))
    assert proto.events[2:] == [b"abcdef"]


def test_one_frame_across_two_reads() -> None:
    channel, _, proto, _ = opened()
    data = frame(1, b"abcdef")
    channel.dataReceived(data[:8])
    assert proto.events[2:] == []
    channel.dataReceived(data[8:])
    assert proto.events[2:] == ["abcdef"]


@pytest.mark.parametrize(("opcode", "expected"), [(1, "abcdef"), (2, b"abcdef")])
def test_one_message_across_two_frames(opcode: int, expected: object) -> None:
    channel, _, proto, _ = opened()
    channel.dataReceived(frame(opcode, b"ab", fin=False) + frame(0, b"cdef"))
    assert proto.events[2:] == [expected]


def test_a_text_message_split_inside_a_character() -> None:
    channel, _, proto, _ = opened()
    text = "naïve ☃".encode()
    channel.dataReceived(frame(1, text[:3], fin=False) + frame(0, text[3:]))
    assert proto.events[2:] == ["naïve ☃"]


def test_send_text_bytes_and_ping() -> None:
    _, transport, proto, _ = opened()
    proto.transport.sendTextMessage("hé")
    proto.transport.sendBytesMessage(b"\x00\xff")
    proto.transport.ping(b"123")
    assert server_frames(transport.value()) == [(1, "hé".encode()), (2, b"\x00\xff"), (9, b"123")]


class CountingTransport(StringTransport):
    """A StringTransport that keeps each write apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        super().write(data)


def opened_counting(**options: Any) -> tuple[Any, CountingTransport, Recorder]:
    factory = Factory()
    root = Resource()
    root.putChild(b"ws", WebSocketResource(factory, **options))
    channel = Site(root, reactor=Clock()).buildProtocol(None)
    transport = CountingTransport()
    channel.makeConnection(transport)
    channel.dataReceived(HANDSHAKE)
    transport.writes.clear()
    return channel, transport, factory.built[0]


def test_the_answers_to_one_read_go_out_in_one_write() -> None:
    channel, transport, _ = opened_counting()
    channel.dataReceived(b"".join(frame(1, b"request") for _ in range(8)) + frame(9, b"p"))
    assert len(transport.writes) == 1
    assert server_frames(transport.writes[0]) == [(1, b"response")] * 8 + [(10, b"p")]


def test_many_answers_to_one_read_are_written_in_bounded_batches() -> None:
    channel, transport, _ = opened_counting()
    channel.dataReceived(b"".join(frame(1, b"request") for _ in range(300)))
    assert [len(server_frames(w)) for w in transport.writes] == [128, 128, 44]


def test_answers_reaching_the_high_water_mark_are_written_at_once() -> None:
    channel, transport, proto = opened_counting(limits=WebSocketLimits(writeHighWater=16_000))
    big = b"x" * 15_000

    def answer(message: str) -> None:
        proto.transport.sendTextMessage(message)
        if message == "big":
            proto.transport.sendBytesMessage(big)

    proto.textMessageReceived = answer  # type: ignore[method-assign]
    reads = frame(1, b"small") + frame(1, b"big") + frame(1, b"after") + frame(1, b"big")
    channel.dataReceived(reads + frame(1, b"last"))
    assert [server_frames(w) for w in transport.writes] == [
        [(1, b"small"), (1, b"big"), (2, big), (1, b"after"), (1, b"big"), (2, big)],
        [(1, b"last")],
    ]


def test_a_close_after_answers_follows_them() -> None:
    channel, transport, _ = opened_counting()
    channel.dataReceived(frame(1, b"request") + frame(8, struct.pack("!H", 1000)))
    assert server_frames(b"".join(transport.writes)) == [
        (1, b"response"),
        (8, struct.pack("!H", 1000)),
    ]
    assert transport.disconnecting


def test_a_ping_payload_is_at_most_125_bytes() -> None:
    _, _, proto, _ = opened()
    with pytest.raises(ValueError):
        proto.transport.ping(b"x" * 126)


def test_sends_in_one_turn_of_the_loop_are_gathered_when_corked() -> None:
    """What the async form's ``send`` does: one write per turn of the loop."""
    _, transport, proto = opened_counting()
    wire = proto.transport

    async def turn() -> None:
        wire.cork()
        for i in range(3):
            wire.sendTextMessage(f"m{i}")
        assert transport.writes == []
        await asyncio.sleep(0)
        assert [server_frames(w) for w in transport.writes] == [
            [(1, b"m0"), (1, b"m1"), (1, b"m2")]
        ]

    asyncio.run(turn())
    wire.cork()  # without a running loop: written at once
    wire.sendTextMessage("now")
    assert server_frames(transport.writes[-1]) == [(1, b"now")]


def test_a_ping_is_answered_and_a_pong_delivered() -> None:
    channel, transport, proto, _ = opened()
    channel.dataReceived(frame(9, b"hi") + frame(10, b"yo"))
    assert server_frames(transport.value()) == [(10, b"hi")]
    assert proto.events[2:] == [("pong", b"yo")]


def test_the_peers_close_is_answered_and_the_connection_closed() -> None:
    channel, transport, proto, site = opened()
    channel.dataReceived(frame(8, struct.pack("!H", 1000) + b"bye"))
    assert server_frames(transport.value()) == [(8, struct.pack("!H", 1000) + b"bye")]
    assert transport.disconnecting
    channel.connectionLost(Failure(ConnectionDone()))
    assert proto.events[-1] == ("lost", ConnectionDone)
    assert proto.transport.closeCode == 1000
    assert channel not in site.connections


def test_lose_connection_sends_close_and_waits_for_the_answer() -> None:
    channel, transport, proto, _ = opened()
    proto.transport.loseConnection(4000)
    assert server_frames(transport.value()) == [(8, struct.pack("!H", 4000))]
    assert not transport.disconnecting  # the peer answers first (RFC 6455 §7.1.2)
    channel.dataReceived(frame(8, struct.pack("!H", 4000)))
    assert transport.disconnecting


def test_the_close_handshake_times_out() -> None:
    clock = Clock()
    factory = Factory()
    root = Resource()
    root.putChild(b"ws", WebSocketResource(factory, limits=WebSocketLimits(closeTimeout=5)))
    channel = Site(root, reactor=clock).buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(HANDSHAKE)
    factory.built[0].transport.loseConnection()
    clock.advance(4.9)
    assert not transport.disconnecting
    clock.advance(0.2)
    assert transport.disconnecting  # dropped: the peer never answered


def test_keepalive_pings_a_silent_peer_then_drops_it() -> None:
    clock = Clock()
    factory = Factory()
    root = Resource()
    limits = WebSocketLimits(pingInterval=10, pongTimeout=5)
    root.putChild(b"ws", WebSocketResource(factory, limits=limits))
    channel = Site(root, reactor=clock).buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(HANDSHAKE)
    transport.clear()
    clock.advance(10)
    [(opcode, payload)] = server_frames(transport.value())
    assert opcode == 9
    channel.dataReceived(frame(10, payload))  # answered: alive, and not passed on
    assert factory.built[0].events == ["started", "finished"]
    transport.clear()
    clock.advance(5)
    clock.advance(10)  # silent again: pinged again
    assert [op for op, _ in server_frames(transport.value())] == [9]
    transport.clear()
    clock.advance(5)
    assert server_frames(transport.value()) == [
        (8, struct.pack("!H", 1011) + b"keepalive ping timeout")
    ]
    assert transport.disconnecting


def test_a_busy_peer_is_not_pinged() -> None:
    clock = Clock()
    factory = Factory()
    root = Resource()
    root.putChild(b"ws", WebSocketResource(factory, limits=WebSocketLimits(pingInterval=10)))
    channel = Site(root, reactor=clock).buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(HANDSHAKE)
    transport.clear()
    for _ in range(5):
        clock.advance(6)
        channel.dataReceived(frame(1, b"tick"))
    assert transport.value() == b""


def test_an_error_in_a_callback_closes_with_1011(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Recorder):
        def textMessageReceived(self, message: str) -> None:
            raise ValueError("boom")

    class BrokenFactory:
        def buildProtocol(self, request: Any) -> Broken:
            return Broken()

    channel, transport, _, _ = by_hand(BrokenFactory())
    channel.dataReceived(HANDSHAKE)
    transport.clear()
    with caplog.at_level("ERROR", "treadle.error"):
        channel.dataReceived(frame(1, b"x") + frame(1, b"never seen"))
    assert server_frames(transport.value()) == [(8, struct.pack("!H", 1011) + b"internal error")]
    assert transport.disconnecting
    assert "boom" in caplog.text


def test_sending_after_close_does_nothing() -> None:
    _, transport, proto, _ = opened()
    proto.transport.loseConnection()
    transport.clear()
    proto.transport.sendTextMessage("late")
    assert transport.value() == b""


def test_messages_sent_from_negotiation_started_follow_the_101() -> None:
    class Eager(Recorder):
        def negotiationStarted(self, transport: WebSocketTransport) -> None:
            super().negotiationStarted(transport)
            transport.sendTextMessage("hello")

    class EagerFactory:
        def buildProtocol(self, request: Any) -> Eager:
            return Eager()

    channel, transport, _, _ = by_hand(EagerFactory())
    channel.dataReceived(HANDSHAKE)
    head, _, rest = transport.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert server_frames(rest) == [(1, b"hello")]


def test_producers_follow_the_transport() -> None:
    channel, _, proto, _ = opened()
    events: list[str] = []

    class Producer:
        def pauseProducing(self) -> None:
            events.append("paused")

        def resumeProducing(self) -> None:
            events.append("resumed")

        def stopProducing(self) -> None:
            events.append("stopped")

    producer = Producer()
    proto.transport.attachProducer(producer)
    with pytest.raises(RuntimeError):
        proto.transport.attachProducer(Producer())
    channel.pause_writing()  # what the asyncio transport calls on its protocol
    channel.resume_writing()
    assert events == ["paused", "resumed"]
    proto.transport.detachProducer()
    channel.pause_writing()
    assert events == ["paused", "resumed"]
    proto.transport.attachProducer(producer)  # paused at once: the transport is full
    assert events == ["paused", "resumed", "paused"]
    channel.connectionLost(Failure(ConnectionDone()))
    assert events[-1] == "stopped"


def test_shutdown_closes_an_upgraded_connection_with_1001() -> None:
    channel, transport, _, site = opened()
    assert channel in site.connections
    channel.close_when_idle()  # what site.shutdown() does to each connection
    assert server_frames(transport.value()) == [
        (8, struct.pack("!H", 1001) + b"server shutting down")
    ]


# -- the channel's hand-over hook ------------------------------------------------------------


def test_switch_protocol_refuses_a_request_that_did_not_ask_to_upgrade() -> None:
    seen: list[Any] = []

    class Grab(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> Any:
            seen.append(request)
            return NOT_DONE_YET

    channel = Site(Grab(), reactor=Clock()).buildProtocol(None)
    channel.makeConnection(StringTransport())
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(RuntimeError, match="did not ask to upgrade"):
        channel.switch_protocol(seen[0], object(), b"HTTP/1.1 101 Switching Protocols\r\n\r\n")


def test_switch_protocol_hands_over_bytes_loss_and_flow_control() -> None:
    seen: list[Any] = []

    class Grab(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> Any:
            seen.append(request)
            return NOT_DONE_YET

    class Raw:
        def __init__(self) -> None:
            self.calls: list[Any] = []

        def connection_made(self, transport: Any) -> None:
            self.calls.append("made")

        def data_received(self, data: bytes) -> None:
            self.calls.append(data)

        def eof_received(self) -> None:
            self.calls.append("eof")

        def connection_lost(self, exc: Exception | None) -> None:
            self.calls.append(("lost", exc))

        def pause_writing(self) -> None:
            self.calls.append("pause")

        def resume_writing(self) -> None:
            self.calls.append("resume")

        def close_when_idle(self) -> None:
            self.calls.append("close")

    site = Site(Grab(), reactor=Clock())
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: raw\r\n\r\nfirst"
    )
    channel.dataReceived(b"second")
    raw = Raw()
    assert channel.switch_protocol(seen[0], raw, b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
    assert transport.value() == b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
    channel.dataReceived(b"third")
    channel.pause_writing()
    channel.resume_writing()
    channel.close_when_idle()
    channel.connectionLost(Failure(ConnectionDone()))
    assert raw.calls == [
        "made",
        b"firstsecond",
        b"third",
        "pause",
        "resume",
        "close",
        ("lost", None),
    ]
    assert channel not in site.connections


def test_negotiate_checks_the_key_length() -> None:
    assert len(base64.b64decode(KEY)) == 16


def test_the_state_table_moves_of_an_upgrade() -> None:
    from treadle.web import _state as s

    # The Upgrade request completes (keep-alive or not), then its answer switches.
    assert s.next_state(s.next_state(s.IDLE, s.UPGRADE), s.SWITCH) == s.UPGRADED
    assert s.next_state(s.DONE, s.UPGRADE) == s.UPGRADING
    # Nothing is parsed any more, and the connection ends as any other.
    for state in (s.UPGRADING, s.UPGRADED):
        assert state > s.DONE
        assert s.next_state(state, s.STOP) == state
        assert s.next_state(state, s.CLOSE) == s.CLOSING
        assert s.next_state(state, s.ABORT) == s.ABORTED
        assert s.next_state(state, s.LOST) == s.CLOSED
    for state, event in ((s.HEAD, s.UPGRADE), (s.IDLE, s.SWITCH), (s.UPGRADED, s.SWITCH)):
        with pytest.raises(s.ChannelStateError):
            s.next_state(state, event)
