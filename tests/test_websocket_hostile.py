"""Hostile WebSocket frames over raw sockets: each gets RFC 6455's close code, nothing leaks.

Every case opens a real connection, sends bytes that break RFC 6455 (§5.2 framing, §5.4
fragmentation, §5.5 control frames, §5.6 and §8.1 UTF-8, §7.4 close codes) or the limits
(RFC 6455 §7.4.1's ``1009``), and checks that the server answers with a close frame of the
right code, then closes the TCP connection; that the program's protocol heard of the end
once; that the site counts no connection afterwards; and that nothing was logged as an
error (no exception escaped).
"""

from __future__ import annotations

import socket
import struct
import time
import zlib
from typing import Any

import pytest

from tests.conftest import DEADLINE, host_port, wait_for
from tests.test_websocket import HANDSHAKE, frame
from treadle.python.failure import Failure
from treadle.web.resource import Resource
from treadle.web.server import Site
from treadle.web.websocket import WebSocketLimits, WebSocketResource, WebSocketTransport

SMALL = WebSocketLimits(maxMessageSize=1024, maxFrameSize=2048)
DEFLATE_OFFER = b"Sec-WebSocket-Extensions: permessage-deflate\r\n"


class Counting:
    """Counts what the program hears; echoes text so a valid exchange can be checked."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        pass

    def textMessageReceived(self, message: str) -> None:
        self.transport.sendTextMessage(message)

    def bytesMessageReceived(self, data: bytes) -> None:
        self.log.append(("bytes", len(data)))

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        self.log.append("lost")


class Factory:
    def __init__(self) -> None:
        self.log: list[Any] = []
        self.built = 0

    def buildProtocol(self, request: Any) -> Counting:
        self.built += 1
        return Counting(self.log)


@pytest.fixture
def hostile(serve: Any) -> Any:
    factory = Factory()
    root = Resource()
    root.putChild(b"ws", WebSocketResource(factory, limits=SMALL))
    site = Site(root)
    base = serve(site)
    return base, site, factory


def connect(base: str, offer: bytes = b"") -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(host_port(base), timeout=DEADLINE)
    sock.sendall(HANDSHAKE[:-2] + offer + b"\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed during the handshake: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock, rest


def read_until_closed(sock: socket.socket, data: bytes) -> bytes:
    """Everything the server sends until it closes the connection."""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def close_frame(data: bytes) -> tuple[int, bytes]:
    """The code and reason of the server's last frame, which must be a close frame."""
    frames = []
    while data:
        n = data[1] & 0x7F
        at = 2
        if n == 126:
            (n,) = struct.unpack("!H", data[2:4])
            at = 4
        frames.append((data[0] & 0x0F, data[at : at + n]))
        data = data[at + n :]
    opcode, payload = frames[-1]
    assert opcode == 8, frames
    (code,) = struct.unpack("!H", payload[:2])
    return code, payload[2:]


def expect_close(
    hostile: Any, attack: bytes, code: int, caplog: pytest.LogCaptureFixture, offer: bytes = b""
) -> None:
    base, site, factory = hostile
    with caplog.at_level("ERROR", "treadle.error"):
        sock, rest = connect(base, offer)
        with sock:
            sock.sendall(attack)
            got, _ = close_frame(read_until_closed(sock, rest))
        assert got == code
        wait_for(lambda: not site.connections, "the site to forget the connection")
        wait_for(lambda: factory.log.count("lost") == factory.built, "connectionLost")
    assert factory.log.count("lost") == 1
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text


def masked_raw(first: int, length_bytes: bytes, payload: bytes = b"") -> bytes:
    """A frame with a hand-made length field (mask bit set, zero mask)."""
    return (
        bytes([first]) + bytes([0x80 | length_bytes[0]]) + length_bytes[1:] + b"\0\0\0\0" + payload
    )


CASES = [
    # RFC 6455 §5.1: a client's frames are masked.
    ("unmasked client frame", b"\x81\x05hello", 1002),
    # §5.2: reserved bits need an extension that defines them.
    ("RSV1 without an extension", frame(1, b"hi", rsv=0x40), 1002),
    ("RSV2", frame(1, b"hi", rsv=0x20), 1002),
    ("RSV3", frame(1, b"hi", rsv=0x10), 1002),
    ("reserved data opcode", frame(3, b"x"), 1002),
    ("reserved control opcode", frame(0xB, b"x"), 1002),
    # §5.5: control frames are short and never fragmented.
    ("fragmented ping", frame(9, b"x", fin=False), 1002),
    ("ping of 126 bytes", frame(9, b"x" * 126), 1002),
    ("close of 126 bytes", frame(8, struct.pack("!H", 1000) + b"x" * 124), 1002),
    # §5.4: fragments continue a message that began, one message at a time.
    ("continuation without a start", frame(0, b"x"), 1002),
    ("interleaved data frames", frame(1, b"a", fin=False) + frame(2, b"b"), 1002),
    ("text after unfinished text", frame(1, b"a", fin=False) + frame(1, b"b"), 1002),
    # §5.2: lengths use the shortest form; the 64-bit form's top bit is 0.
    ("length not minimal (16-bit)", masked_raw(0x81, b"\x7e\x00\x05", b"hello"), 1002),
    ("length not minimal (64-bit)", masked_raw(0x81, b"\x7f" + struct.pack("!Q", 5), b"x"), 1002),
    (
        "64-bit length with its top bit",
        masked_raw(0x82, b"\x7f" + struct.pack("!Q", 1 << 63)),
        1002,
    ),
    # §8.1: text is UTF-8, checked as it arrives and at the message's end.
    ("invalid UTF-8", frame(1, b"\xff\xfe"), 1007),
    ("invalid UTF-8 across fragments", frame(1, b"\xce", fin=False) + frame(0, b"A"), 1007),
    ("UTF-8 cut at the message's end", frame(1, b"a\xce"), 1007),
    ("surrogate in UTF-8", frame(1, b"\xed\xa0\x80"), 1007),
    # §7.4: close codes the peer may not send, and a reason that is not UTF-8.
    ("close code 999", frame(8, struct.pack("!H", 999)), 1002),
    ("close code 1004", frame(8, struct.pack("!H", 1004)), 1002),
    ("close code 1005", frame(8, struct.pack("!H", 1005)), 1002),
    ("close code 1006", frame(8, struct.pack("!H", 1006)), 1002),
    ("close code 1015", frame(8, struct.pack("!H", 1015)), 1002),
    ("close code 2999", frame(8, struct.pack("!H", 2999)), 1002),
    ("close code 5000", frame(8, struct.pack("!H", 5000)), 1002),
    ("close with a 1-byte payload", frame(8, b"\x03"), 1002),
    ("close reason not UTF-8", frame(8, struct.pack("!H", 1000) + b"\xff"), 1007),
    # The limits (RFC 6455 §7.4.1, 1009): exactly at the limit passes, see the socket tests.
    (
        "frame over maxFrameSize, announced",
        masked_raw(0x82, b"\x7e" + struct.pack("!H", 2049)),
        1009,
    ),
    ("message over maxMessageSize", frame(2, b"x" * 1000, fin=False) + frame(0, b"x" * 25), 1009),
    ("text over maxMessageSize", frame(1, b"x" * 1025), 1009),
]


@pytest.mark.parametrize(("name", "attack", "code"), CASES, ids=[c[0] for c in CASES])
def test_hostile_frame_gets_its_close_code(
    hostile: Any, caplog: pytest.LogCaptureFixture, name: str, attack: bytes, code: int
) -> None:
    expect_close(hostile, attack, code, caplog)


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
def test_a_valid_close_is_echoed(hostile: Any, caplog: pytest.LogCaptureFixture, code: int) -> None:
    expect_close(hostile, frame(8, struct.pack("!H", code) + b"bye"), code, caplog)


def deflated(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_a_compressed_message_within_the_limit_passes(hostile: Any) -> None:
    base, _, _ = hostile
    sock, rest = connect(base, DEFLATE_OFFER)
    with sock:
        sock.sendall(frame(1, deflated(b"a" * 1024), rsv=0x40))
        data = rest
        while len(data) < 2:
            data += sock.recv(4096)
        assert data[0] & 0x40  # the echo came back compressed too
        n = data[1] & 0x7F
        while len(data) < 2 + n:
            data += sock.recv(4096)
        inflater = zlib.decompressobj(-15)
        assert inflater.decompress(data[2 : 2 + n] + b"\x00\x00\xff\xff") == b"a" * 1024


def test_a_compression_bomb_is_stopped_at_the_limit(
    hostile: Any, caplog: pytest.LogCaptureFixture
) -> None:
    bomb = deflated(b"\0" * (64 << 20))  # 64 MiB of zeros in some 64 KiB
    assert len(bomb) > 2048  # over maxFrameSize itself: send it in small frames
    pieces = [bomb[i : i + 1024] for i in range(0, len(bomb), 1024)]
    attack = frame(2, pieces[0], fin=False, rsv=0x40) + b"".join(
        frame(0, piece, fin=False) for piece in pieces[1:]
    )
    started = time.monotonic()
    expect_close(hostile, attack, 1009, caplog, DEFLATE_OFFER)
    assert time.monotonic() - started < 2  # inflated no further than the limit


def test_a_one_frame_bomb_within_the_frame_limit(
    hostile: Any, caplog: pytest.LogCaptureFixture
) -> None:
    bomb = deflated(b"\0" * (1 << 20))  # 1 MiB of zeros in about a kilobyte
    assert len(bomb) < 2048
    expect_close(hostile, frame(2, bomb, rsv=0x40), 1009, caplog, DEFLATE_OFFER)


def test_rsv1_on_a_continuation_with_compression(
    hostile: Any, caplog: pytest.LogCaptureFixture
) -> None:
    attack = frame(2, deflated(b"ab"), fin=False, rsv=0x40) + frame(0, b"", rsv=0x40)
    expect_close(hostile, attack, 1002, caplog, DEFLATE_OFFER)


def test_invalid_deflate_data(hostile: Any, caplog: pytest.LogCaptureFixture) -> None:
    expect_close(hostile, frame(2, b"\xff\xff\xff\xff", rsv=0x40), 1007, caplog, DEFLATE_OFFER)


def test_garbage_after_the_handshake_never_crashes(
    hostile: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import random

    rng = random.Random(6455)
    base, site, factory = hostile
    with caplog.at_level("ERROR", "treadle.error"):
        for _ in range(20):
            sock, rest = connect(base)
            with sock:
                sock.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
                sock.shutdown(socket.SHUT_WR)
                read_until_closed(sock, rest)
        wait_for(lambda: not site.connections, "every connection to end")
        wait_for(lambda: factory.log.count("lost") == factory.built == 20, "connectionLost")
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
