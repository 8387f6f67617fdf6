"""treadle.web._websocket_frames: RFC 6455 frames as bytes in, events out (no I/O).

The codec is driven as the connection drives it (``feed`` then ``next`` until ``NEED_DATA``),
with frames made independently here (``tests.test_websocket.frame``) and by the codec's own
serializer on the other side, split at every byte, many in one read, compressed with zlib as a
peer would.
"""

from __future__ import annotations

import itertools
import os
import struct
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_websocket import frame
from treadle.web._websocket_frames import (
    BINARY,
    CLOSE,
    FAIL,
    NEED_DATA,
    PING,
    PONG,
    TEXT,
    Deflate,
    FrameCodec,
    close_payload,
    unmask,
)

MiB = 1 << 20


def server(max_frame: int = MiB, max_message: int = MiB, deflate: Deflate | None = None) -> Any:
    return FrameCodec(False, max_frame, max_message, deflate)


def client(max_frame: int = MiB, max_message: int = MiB, deflate: Deflate | None = None) -> Any:
    return FrameCodec(True, max_frame, max_message, deflate)


def pull(codec: FrameCodec) -> list[tuple[Any, ...]]:
    """Every event the bytes fed so far hold."""
    events: list[tuple[Any, ...]] = []
    while True:
        kind = codec.next()
        if kind == NEED_DATA:
            return events
        if kind == TEXT:
            events.append(("text", codec.text))
        elif kind == BINARY:
            events.append(("bytes", codec.data))
        elif kind == PING:
            events.append(("ping", codec.data))
        elif kind == PONG:
            events.append(("pong", codec.data))
        elif kind == CLOSE:
            events.append(("close", codec.code, codec.reason))
        else:
            assert kind == FAIL
            events.append(("fail", codec.code))


def feed(codec: FrameCodec, *chunks: bytes) -> list[tuple[Any, ...]]:
    events = []
    for chunk in chunks:
        codec.feed(chunk)
        events += pull(codec)
    return events


def deflated(data: bytes, compressor: Any = None) -> bytes:
    """``data`` compressed as one message (RFC 7692 §7.2.1: the tail left off)."""
    compressor = compressor or zlib.compressobj(9, zlib.DEFLATED, -15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def deflate() -> Deflate:
    return Deflate(15, False, 15, False)


# A stream with each length form: 7-bit, 16-bit (126..65535) and 64-bit (65536 and up).
MIXED = [
    frame(1, "héllo".encode()),
    frame(2, bytes(range(256)) * 2),  # 512 bytes: a 16-bit length
    frame(9, b"are you there"),
    frame(1, b"x" * 126),  # the smallest 16-bit length
    frame(2, b"\x00" * 125),  # the largest 7-bit one
    frame(1, "naïve".encode()[:3], fin=False),
    frame(10, b"pong in the middle"),
    frame(0, "naïve".encode()[3:]),
    frame(8, struct.pack("!H", 1000) + b"bye"),
]
MIXED_EVENTS = [
    ("text", "héllo"),
    ("bytes", bytes(range(256)) * 2),
    ("ping", b"are you there"),
    ("text", "x" * 126),
    ("bytes", b"\x00" * 125),
    ("pong", b"pong in the middle"),
    ("text", "naïve"),
    ("close", 1000, "bye"),
]


def test_a_stream_in_one_read() -> None:
    assert feed(server(), b"".join(MIXED)) == MIXED_EVENTS


def test_the_stream_split_at_every_byte() -> None:
    stream = b"".join(MIXED)
    for at in range(1, len(stream)):
        assert feed(server(), stream[:at], stream[at:]) == MIXED_EVENTS, at


def test_the_stream_one_byte_at_a_time() -> None:
    stream = b"".join(MIXED)
    assert feed(server(), *(stream[i : i + 1] for i in range(len(stream)))) == MIXED_EVENTS


def test_a_64_bit_length_split_in_its_head_and_payload() -> None:
    payload = os.urandom(70_000)
    data = frame(2, payload)
    assert data[1] == 0x80 | 127
    for at in [*range(1, 16), 1000, 65_535, len(data) - 1]:
        assert feed(server(), data[:at], data[at:]) == [("bytes", payload)], at
    # and in many small reads: held, then joined once
    reads = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    assert feed(server(), *reads) == [("bytes", payload)]


def test_many_frames_in_one_read() -> None:
    data = b"".join(frame(1, b"message %d" % i) for i in range(1000))
    events = feed(server(), data)
    assert events == [("text", f"message {i}") for i in range(1000)]


def test_many_fragments_in_one_read_build_one_message() -> None:
    pieces = [frame(2, b"a", fin=False)] + [frame(0, b"b", fin=False)] * 5000 + [frame(0, b"c")]
    assert feed(server(), b"".join(pieces)) == [("bytes", b"a" + b"b" * 5000 + b"c")]


def test_empty_messages_and_control_frames() -> None:
    data = frame(1, b"") + frame(2, b"") + frame(9) + frame(10) + frame(8)
    assert feed(server(), data) == [
        ("text", ""),
        ("bytes", b""),
        ("ping", b""),
        ("pong", b""),
        ("close", 1005, ""),  # no status code: 1005 (RFC 6455 §7.1.5)
    ]


def test_nothing_is_parsed_after_a_close_or_a_failure() -> None:
    codec = server()
    assert feed(codec, frame(8, struct.pack("!H", 1001)) + frame(1, b"late")) == [
        ("close", 1001, "")
    ]
    assert feed(codec, frame(1, b"later")) == []
    codec = server()
    assert feed(codec, frame(3, b"?") + frame(1, b"late")) == [("fail", 1002)]
    assert feed(codec, frame(1, b"later")) == []


@pytest.mark.parametrize("code", [1000, 1003, 1011, 1012, 1013, 1014, 3000, 4999])
def test_close_codes_a_peer_may_send(code: int) -> None:
    assert feed(server(), frame(8, struct.pack("!H", code) + b"why")) == [("close", code, "why")]


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_close_codes_a_peer_may_not_send(code: int) -> None:
    assert feed(server(), frame(8, struct.pack("!H", code))) == [("fail", 1002)]


# -- the checks, each with its close code ----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x81\x02hi", 1002),  # unmasked, to a server
        (frame(1, b"hi", rsv=0x40), 1002),  # RSV1 without permessage-deflate
        (frame(1, b"hi", rsv=0x20), 1002),
        (frame(1, b"hi", rsv=0x10), 1002),
        (frame(3, b""), 1002),
        (frame(7, b""), 1002),
        (frame(0xB, b""), 1002),
        (frame(0xF, b""), 1002),
        (frame(9, b"", fin=False), 1002),
        (frame(10, b"x" * 126), 1002),
        (frame(8, b"\x03"), 1002),
        (frame(8, struct.pack("!H", 1000) + b"\xc3"), 1007),
        (frame(0, b"x"), 1002),
        (frame(2, b"x", fin=False) + frame(1, b"y"), 1002),
        (frame(1, b"\xc3\x28"), 1007),
        (frame(1, b"\xf4\x90\x80\x80"), 1007),  # above U+10FFFF
        (frame(1, b"\xc0\xaf"), 1007),  # overlong
        (frame(1, b"ok\xe2\x82", fin=False) + frame(0, b""), 1007),  # cut at the end
        (frame(1, b"\xce", fin=False) + frame(0, b"A", fin=False), 1007),  # before the end
    ],
)
def test_a_broken_frame_fails_with_its_code(data: bytes, code: int) -> None:
    assert feed(server(), data)[-1] == ("fail", code)


def test_invalid_utf8_fails_as_soon_as_a_fragment_shows_it() -> None:
    codec = server()
    assert feed(codec, frame(1, b"\xce", fin=False)) == []  # may still become valid
    assert feed(codec, frame(0, b"A", fin=False)) == [("fail", 1007)]


def test_lengths_in_their_shortest_form_only() -> None:
    mask = b"\x00\x00\x00\x00"
    long16 = b"\x82\xfe" + struct.pack("!H", 125) + mask + b"x" * 125
    long64 = b"\x82\xff" + struct.pack("!Q", 65535) + mask + b"x" * 65535
    top_bit = b"\x82\xff" + struct.pack("!Q", 1 << 63) + mask
    for data in (long16, long64, top_bit):
        assert feed(server(), data) == [("fail", 1002)]


def test_a_server_must_not_mask_and_a_client_must() -> None:
    assert feed(client(), b"\x81\x02hi") == [("text", "hi")]
    assert feed(client(), frame(1, b"hi")) == [("fail", 1002)]
    assert feed(server(), frame(1, b"hi")) == [("text", "hi")]


# -- the limits, exactly at the boundary -------------------------------------------------------


def test_the_frame_limit_is_checked_on_the_announced_length() -> None:
    assert feed(server(max_frame=1000), frame(2, b"x" * 1000)) == [("bytes", b"x" * 1000)]
    # the head alone is enough to refuse: the payload is never waited for
    head = frame(2, b"x" * 1001)[:8]
    assert feed(server(max_frame=1000), head) == [("fail", 1009)]


def test_the_message_limit_counts_every_fragment() -> None:
    ok = frame(1, b"x" * 600, fin=False) + frame(0, b"y" * 400)
    assert feed(server(max_message=1000), ok) == [("text", "x" * 600 + "y" * 400)]
    over = frame(1, b"x" * 600, fin=False) + frame(0, b"y" * 401)
    assert feed(server(max_message=1000), over) == [("fail", 1009)]


def test_control_frames_do_not_count_against_the_message() -> None:
    data = frame(2, b"x" * 100, fin=False) + frame(9, b"p" * 125) + frame(0, b"y" * 100)
    assert feed(server(max_message=200), data) == [
        ("ping", b"p" * 125),
        ("bytes", b"x" * 100 + b"y" * 100),
    ]


# -- permessage-deflate ----------------------------------------------------------------------


def test_a_compressed_message_in_one_frame() -> None:
    codec = server(deflate=deflate())
    assert feed(codec, frame(1, deflated("é".encode() * 500), rsv=0x40)) == [("text", "é" * 500)]


def test_a_fragmented_compressed_message() -> None:
    body = deflated(bytes(range(256)) * 40)
    pieces = [body[i : i + 100] for i in range(0, len(body), 100)]
    data = (
        frame(2, pieces[0], fin=False, rsv=0x40)
        + b"".join(frame(0, piece, fin=False) for piece in pieces[1:-1])
        + frame(9, b"between")
        + frame(0, pieces[-1])
    )
    assert feed(server(deflate=deflate()), data) == [
        ("ping", b"between"),
        ("bytes", bytes(range(256)) * 40),
    ]


def test_compressed_text_fragments_split_inside_a_character() -> None:
    text = "☃" * 300
    body = deflated(text.encode())
    data = frame(1, body[:5], fin=False, rsv=0x40) + frame(0, body[5:])
    assert feed(server(deflate=deflate()), data) == [("text", text)]


def test_the_context_is_kept_between_messages_unless_reset() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = deflated(b"repeat me " * 20, compressor)
    second = deflated(b"repeat me " * 20, compressor)  # refers back to the first message
    assert len(second) < len(first)
    data = frame(1, first, rsv=0x40) + frame(1, second, rsv=0x40)
    expected = [("text", "repeat me " * 20)] * 2
    assert feed(server(deflate=Deflate(15, False, 15, False)), data) == expected
    # A peer that said it resets its context (no_context_takeover) is inflated afresh.
    fresh = deflated(b"repeat me " * 20)
    data = frame(1, fresh, rsv=0x40) + frame(1, fresh, rsv=0x40)
    assert feed(server(deflate=Deflate(15, True, 15, False)), data) == expected


def test_uncompressed_messages_beside_compressed_ones() -> None:
    data = frame(1, b"plain") + frame(1, deflated(b"packed"), rsv=0x40)
    assert feed(server(deflate=deflate()), data) == [("text", "plain"), ("text", "packed")]


def test_decompression_stops_at_the_message_limit() -> None:
    exact = deflated(b"\0" * 1000)
    assert feed(server(max_message=1000, deflate=deflate()), frame(2, exact, rsv=0x40)) == [
        ("bytes", b"\0" * 1000)
    ]
    over = deflated(b"\0" * 1001)
    assert feed(server(max_message=1000, deflate=deflate()), frame(2, over, rsv=0x40)) == [
        ("fail", 1009)
    ]
    bomb = deflated(b"\0" * (64 * MiB))
    pieces = [bomb[i : i + 4096] for i in range(0, len(bomb), 4096)]
    data = frame(2, pieces[0], fin=False, rsv=0x40) + b"".join(
        frame(0, piece, fin=False) for piece in pieces[1:]
    )
    assert feed(server(deflate=deflate()), data) == [("fail", 1009)]


@pytest.mark.parametrize(
    "data",
    [
        frame(9, b"", rsv=0x40),  # RSV1 on a control frame
        frame(2, deflated(b"ab"), fin=False, rsv=0x40) + frame(0, b"", rsv=0x40),
        frame(2, b"x", rsv=0x60),
    ],
)
def test_reserved_bits_with_compression(data: bytes) -> None:
    assert feed(server(deflate=deflate()), data) == [("fail", 1002)]


def test_bytes_zlib_refuses_fail_with_1007() -> None:
    assert feed(server(deflate=deflate()), frame(2, b"\xff\xff\xff", rsv=0x40)) == [("fail", 1007)]


# -- the serializer, read back by the other side -------------------------------------------------


def sent(codec: FrameCodec, opcode: int, payload: bytes) -> bytes:
    out: list[bytes] = []
    if opcode in (TEXT, BINARY):
        codec.message(out, opcode, payload)
    else:
        codec.control(out, opcode, payload)
    return b"".join(out)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 100_000])
@pytest.mark.parametrize("compress", [False, True])
def test_what_one_side_sends_the_other_reads(size: int, compress: bool) -> None:
    payload = os.urandom(size // 2) * 2
    pairs = [
        (
            server(deflate=deflate() if compress else None),
            client(deflate=deflate() if compress else None),
        ),
        (
            client(deflate=deflate() if compress else None),
            server(deflate=deflate() if compress else None),
        ),
    ]
    for sender, receiver in pairs:
        data = sent(sender, BINARY, payload) + sent(sender, TEXT, b"t" * size)
        assert feed(receiver, data) == [("bytes", payload), ("text", "t" * size)]


def test_a_servers_frames_are_plain_and_a_clients_masked() -> None:
    assert sent(server(), TEXT, b"hi") == b"\x81\x02hi"
    assert sent(server(), BINARY, b"x" * 200) == b"\x82\x7e\x00\xc8" + b"x" * 200
    data = sent(client(), TEXT, b"hi")
    assert data[:2] == b"\x81\x82" and len(data) == 8
    assert unmask(data[6:], data[2:6]) == b"hi"


def test_control_frames_round_trip_and_are_bounded() -> None:
    for opcode, name in ((PING, "ping"), (PONG, "pong")):
        assert feed(server(), sent(client(), opcode, b"p" * 125)) == [(name, b"p" * 125)]
    with pytest.raises(ValueError):
        sent(server(), PING, b"p" * 126)
    data = sent(server(), CLOSE, close_payload(4000, "done"))
    assert feed(client(), data) == [("close", 4000, "done")]


def test_compressed_frames_carry_rsv1_and_drop_the_tail() -> None:
    data = sent(server(deflate=deflate()), TEXT, b"a" * 1000)
    assert data[0] == 0x80 | 0x40 | TEXT
    assert zlib.decompressobj(-15).decompress(data[2:] + b"\x00\x00\xff\xff") == b"a" * 1000


def test_close_payload() -> None:
    assert close_payload(1005, "") == b""  # no status: an empty close frame
    assert close_payload(1006, "x") == struct.pack("!H", 1000) + b"x"  # never on the wire
    reason = close_payload(1000, "é" * 100)  # 200 bytes: cut to 123, on a character
    assert len(reason) == 2 + 122 and reason[2:].decode() == "é" * 61


# -- unmasking -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 1023, 1024, 1025, 4099, 100_001])
def test_unmask_matches_the_rfcs_definition(size: int) -> None:
    data, mask = os.urandom(size), os.urandom(4)
    expected = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    assert unmask(data, mask) == expected
    assert unmask(expected, mask) == data


@settings(max_examples=150, deadline=None)
@given(
    messages=st.lists(
        st.one_of(st.text(max_size=300), st.binary(max_size=300)), min_size=1, max_size=8
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=6),
    fragment=st.integers(min_value=1, max_value=64),
)
def test_any_messages_in_any_reads(messages: list[Any], cuts: list[int], fragment: int) -> None:
    """Messages, fragmented and cut into reads anywhere, come out whole and in order."""
    stream = b""
    for message in messages:
        data = message.encode() if isinstance(message, str) else message
        opcode = TEXT if isinstance(message, str) else BINARY
        pieces = [data[i : i + fragment] for i in range(0, len(data), fragment)] or [b""]
        for i, piece in enumerate(pieces):
            stream += frame(opcode if i == 0 else 0, piece, fin=i == len(pieces) - 1)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    reads = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    expected = [("text", m) if isinstance(m, str) else ("bytes", m) for m in messages]
    assert feed(server(), *reads) == expected
