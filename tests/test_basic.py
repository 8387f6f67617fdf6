"""treadle.protocols.basic: line, netstring and length-prefixed receivers, and FileSender.

Most tests are differential: the same bytes, cut into the same pieces, go into Twisted's class
and into treadle's (each on its own framework's StringTransport), and the callbacks, what was
written, the close and the return values must be identical. The pieces include one byte at a
time and lengths exactly at, and one past, ``MAX_LENGTH``. Where treadle differs from
Twisted on purpose, a test pins the difference. A LineReceiver is also served over a real
socket with ``reactor.listenTCP``.
"""

from __future__ import annotations

import io
import itertools
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import twisted.internet.testing as tw_testing
import twisted.protocols.basic as tw_basic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import DEADLINE, ServerThread, wait_for
from treadle.internet import reactor
from treadle.internet.protocol import Factory
from treadle.internet.testing import StringTransport
from treadle.protocols import basic

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: A step is bytes to receive, or a function called with the protocol (to pause, resume...).
Step = bytes | Callable[[Any], Any]
Hook = Callable[[Any, bytes], Any] | None

FRAMEWORKS = ((tw_basic, tw_testing.StringTransport), (basic, StringTransport))


def line_receiver(
    mod: Any,
    *,
    base: str = "LineReceiver",
    on_line: Hook = None,
    on_raw: Hook = None,
    **attrs: Any,
) -> Any:
    """A subclass of ``mod.<base>`` recording its callbacks in ``events``."""

    class Recorder(getattr(mod, base)):  # type: ignore[misc]
        def __init__(self) -> None:
            self.events: list[tuple[str, bytes]] = []

        def lineReceived(self, line: bytes) -> Any:
            self.events.append(("line", line))
            return on_line(self, line) if on_line else None

        def rawDataReceived(self, data: bytes) -> Any:
            self.events.append(("raw", data))
            return on_raw(self, data) if on_raw else None

        def lineLengthExceeded(self, line: bytes) -> Any:
            self.events.append(("exceeded", line))
            return super().lineLengthExceeded(line)

    for name, value in attrs.items():
        setattr(Recorder, name, value)
    return Recorder


def string_receiver(mod: Any, base: str, on_string: Hook = None, **attrs: Any) -> Any:
    """A subclass of ``mod.<base>`` recording strings and refused lengths."""

    class Recorder(getattr(mod, base)):  # type: ignore[misc]
        def __init__(self) -> None:
            self.events: list[tuple[str, Any]] = []

        def stringReceived(self, string: bytes) -> None:
            self.events.append(("string", string))
            if on_string:
                on_string(self, string)

        def lengthLimitExceeded(self, length: int) -> None:
            self.events.append(("limit", length))
            super().lengthLimitExceeded(length)

    for name, value in attrs.items():
        setattr(Recorder, name, value)
    return Recorder


def run(
    build: Callable[[Any], Any],
    steps: Sequence[Step],
    finish: Callable[[Any], Any] | None = None,
    *,
    until_closed: bool = False,
) -> dict[str, Any]:
    """Run ``steps`` under Twisted and treadle; assert the same outcome and return it.

    With ``until_closed``, the steps after the protocol closed its transport are skipped.
    """
    outcomes = []
    for mod, transport_class in FRAMEWORKS:
        protocol = build(mod)()
        transport = transport_class()
        protocol.makeConnection(transport)
        returns = []
        for step in steps:
            if until_closed and transport.disconnecting:
                break
            if callable(step):
                returns.append(repr(step(protocol)))
            else:
                returns.append(repr(protocol.dataReceived(step)))
        outcomes.append(
            {
                "events": protocol.events,
                "written": transport.value(),
                "disconnecting": bool(transport.disconnecting),
                "returns": returns,
                "finish": finish(protocol) if finish else None,
            }
        )
    twisted_outcome, treadle_outcome = outcomes
    assert treadle_outcome == twisted_outcome
    return treadle_outcome


def one_at_a_time(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def remaining(protocol: Any) -> bytes:
    return bytes(protocol.clearLineBuffer())


# -- LineReceiver ------------------------------------------------------------------------------


@pytest.mark.parametrize("pieces", ["whole", "bytes"])
def test_lines_in_any_pieces(pieces: str) -> None:
    data = b"one\r\ntwo\r\n\r\nthree\r\npartial"
    steps = [data] if pieces == "whole" else one_at_a_time(data)
    out = run(line_receiver, steps, remaining)
    assert out["events"] == [("line", b"one"), ("line", b"two"), ("line", b""), ("line", b"three")]
    assert out["finish"] == b"partial"


@pytest.mark.parametrize("pieces", ["whole", "bytes"])
def test_line_of_max_length_passes_and_one_more_fails(pieces: str) -> None:
    def build(mod: Any) -> Any:
        return line_receiver(mod, MAX_LENGTH=8)

    ok = b"x" * 8 + b"\r\n"
    long = b"y" * 9 + b"\r\nafter\r\n"
    steps = [ok + long] if pieces == "whole" else one_at_a_time(ok + long)
    out = run(build, steps, remaining)
    assert out["events"][0] == ("line", b"x" * 8)
    assert out["events"][1][0] == "exceeded"
    assert out["disconnecting"] is True


@pytest.mark.parametrize("size", [15, 16, 17, 18])
def test_partial_line_limit_is_max_plus_delimiter(size: int) -> None:
    # Without a delimiter, the partial line is refused once it reaches MAX_LENGTH +
    # len(delimiter) bytes (it could still end with the delimiter before that).
    out = run(lambda mod: line_receiver(mod, MAX_LENGTH=16), [b"z" * size], remaining)
    if size >= 18:
        assert out["events"] == [("exceeded", b"z" * size)]
        assert out["finish"] == b""
    else:
        assert out["events"] == []
        assert out["finish"] == b"z" * size


def test_long_line_is_handed_over_with_what_follows_and_buffer_emptied() -> None:
    out = run(
        lambda mod: line_receiver(mod, MAX_LENGTH=4),
        [b"ok\r\n12345\r\nnext\r\nmore"],
        remaining,
    )
    assert out["events"] == [("line", b"ok"), ("exceeded", b"12345\r\nnext\r\nmore")]
    assert out["finish"] == b""


def test_the_default_limit_is_16384() -> None:
    assert basic.LineReceiver.MAX_LENGTH == 16384 == basic.LineOnlyReceiver.MAX_LENGTH
    line = b"a" * 16384
    out = run(line_receiver, [line + b"\r\n" + line + b"b\r\n"])
    assert out["events"][0] == ("line", line)
    assert out["events"][1][0] == "exceeded"


def test_switching_to_raw_mode_inside_line_received() -> None:
    def on_line(p: Any, line: bytes) -> None:
        if line == b"RAW":
            p.setRawMode()

    def on_raw(p: Any, data: bytes) -> None:
        if b"|" in data:
            p.setLineMode(data[data.index(b"|") + 1 :])

    def build(mod: Any) -> Any:
        return line_receiver(mod, on_line=on_line, on_raw=on_raw)

    data = b"a\r\nRAW\r\nbinary\r\nstuff|b\r\nRAW\r\nmore"
    whole = run(build, [data], remaining)
    assert whole["events"][:4] == [
        ("line", b"a"),
        ("line", b"RAW"),
        ("raw", b"binary\r\nstuff|b\r\nRAW\r\nmore"),
        ("line", b"b"),
    ]
    run(build, one_at_a_time(data), remaining)


def test_true_result_of_line_received_stops_delivery() -> None:
    def build(mod: Any) -> Any:
        return line_receiver(mod, on_line=lambda p, line: "stop" if line == b"s" else None)

    out = run(build, [b"a\r\ns\r\nb\r\n", b"c\r\n"], remaining)
    # The second chunk delivers what the first left behind.
    assert out["events"] == [("line", b"a"), ("line", b"s"), ("line", b"b"), ("line", b"c")]
    assert out["returns"] == ["'stop'", "None"]


def test_lose_connection_inside_line_received_stops_delivery() -> None:
    def build(mod: Any) -> Any:
        return line_receiver(
            mod, on_line=lambda p, line: p.transport.loseConnection() if line == b"quit" else None
        )

    out = run(build, [b"a\r\nquit\r\nb\r\nc\r\n"], remaining)
    assert out["events"] == [("line", b"a"), ("line", b"quit")]
    assert out["finish"] == b"b\r\nc\r\n"


def test_pause_inside_line_received_holds_lines_until_resumed() -> None:
    def build(mod: Any) -> Any:
        return line_receiver(
            mod, on_line=lambda p, line: p.pauseProducing() if line == b"p" else None
        )

    def resume(p: Any) -> None:
        p.resumeProducing()

    def state(p: Any) -> Any:
        return (p.paused, p.transport.producerState, remaining(p))

    out = run(build, [b"a\r\np\r\nb\r\n", b"c\r\n", resume, b"d\r\n"], state)
    assert out["events"] == [("line", b"a"), ("line", b"p")] + [
        ("line", x) for x in (b"b", b"c", b"d")
    ]
    assert out["finish"] == (False, "producing", b"")


def test_clear_line_buffer_inside_line_received() -> None:
    seen: dict[str, list[bytes]] = {"twisted": [], "treadle": []}

    def build(mod: Any) -> Any:
        key = "twisted" if mod is tw_basic else "treadle"
        return line_receiver(
            mod,
            on_line=lambda p, line: seen[key].append(p.clearLineBuffer()) if line == b"c" else None,
        )

    out = run(build, [b"a\r\nc\r\ndropped\r\nalso"], remaining)
    assert out["events"] == [("line", b"a"), ("line", b"c")]
    assert seen["twisted"] == seen["treadle"] == [b"dropped\r\nalso"]


def test_delimiter_changed_between_lines() -> None:
    def on_line(p: Any, line: bytes) -> None:
        p.delimiter = b"\n" if p.delimiter == b"\r\n" else b"\r\n"

    data = b"one\r\ntwo\nthree\r\nfour\n"
    for steps in ([data], one_at_a_time(data)):
        out = run(lambda mod: line_receiver(mod, on_line=on_line), steps)
        assert [v for _, v in out["events"]] == [b"one", b"two", b"three", b"four"]


def test_send_line_writes_line_and_delimiter() -> None:
    out = run(line_receiver, [lambda p: p.sendLine(b"hello")])
    assert out["written"] == b"hello\r\n"


@SETTINGS
@given(
    data=st.binary(max_size=60).map(
        lambda b: bytes(b"ab\r\nRL"[x % 6] for x in b)  # a small alphabet: many delimiters
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=12),
    max_length=st.integers(min_value=1, max_value=6),
)
def test_line_receiver_matches_twisted_on_any_stream(
    data: bytes, cuts: list[int], max_length: int
) -> None:
    def on_line(p: Any, line: bytes) -> None:
        if line.endswith(b"R"):
            p.setRawMode()

    def on_raw(p: Any, chunk: bytes) -> None:
        if b"L" in chunk:
            p.setLineMode(chunk[chunk.index(b"L") + 1 :])

    def build(mod: Any) -> Any:
        return line_receiver(
            mod,
            on_line=on_line,
            on_raw=on_raw,
            MAX_LENGTH=max_length,
            lineLengthExceeded=lambda p, line: p.events.append(("exceeded", line)),
        )

    run(build, cut(data, cuts), remaining)


def test_many_small_pieces_are_linear() -> None:
    # 200 KB in one-byte pieces, in raw mode and as one long (allowed) line: quadratic
    # buffering would take minutes.
    class Big(basic.LineReceiver):
        MAX_LENGTH = 300_000

        def __init__(self) -> None:
            self.lines: list[bytes] = []

        def lineReceived(self, line: bytes) -> None:
            self.lines.append(line)

    p = Big()
    p.makeConnection(StringTransport())
    payload = bytes(range(97, 123)) * 8000
    for i in range(len(payload)):
        p.dataReceived(payload[i : i + 1])
    p.dataReceived(b"\r\n")
    assert p.lines == [payload]


# -- LineOnlyReceiver --------------------------------------------------------------------------


def only(mod: Any, **attrs: Any) -> Any:
    return line_receiver(mod, base="LineOnlyReceiver", **attrs)


@pytest.mark.parametrize("pieces", ["whole", "bytes"])
def test_line_only_receiver_lines(pieces: str) -> None:
    data = b"a\r\nbb\r\n\r\nccc"
    steps = [data] if pieces == "whole" else one_at_a_time(data)
    out = run(only, steps)
    assert out["events"] == [("line", b"a"), ("line", b"bb"), ("line", b"")]


def test_line_only_receiver_limit_in_one_piece() -> None:
    out = run(lambda mod: only(mod, MAX_LENGTH=5), [b"12345\r\n123456\r\nlater\r\n"])
    # The long line is refused and the rest of that piece dropped.
    assert out["events"] == [("line", b"12345"), ("exceeded", b"123456")]
    assert out["disconnecting"] is True


def test_line_only_receiver_partial_limit() -> None:
    out = run(lambda mod: only(mod, MAX_LENGTH=5), [b"123456"])
    assert out["events"] == [("exceeded", b"123456")]


def test_line_only_receiver_stops_after_lose_connection() -> None:
    def build(mod: Any) -> Any:
        return only(mod, on_line=lambda p, line: p.transport.loseConnection())

    out = run(build, [b"a\r\nb\r\nc\r\n"])
    assert out["events"] == [("line", b"a")]


def test_line_only_receiver_keeps_a_max_length_line_split_inside_its_delimiter() -> None:
    # Difference: Twisted refuses this legal line (MAX_LENGTH bytes then "\r" in one piece,
    # "\n" in the next); treadle delivers it.
    tw = line_receiver(tw_basic, base="LineOnlyReceiver", MAX_LENGTH=5)()
    tw.makeConnection(tw_testing.StringTransport())
    ours = only(basic, MAX_LENGTH=5)()
    ours.makeConnection(StringTransport())
    for p in (tw, ours):
        p.dataReceived(b"12345\r")
        p.dataReceived(b"\nnext\r\n")
    assert tw.events == [("exceeded", b"12345\r")]
    assert ours.events == [("line", b"12345"), ("line", b"next")]
    assert not ours.transport.disconnecting


@SETTINGS
@given(
    data=st.binary(max_size=60).map(lambda b: bytes(b"ab\r\n"[x % 4] for x in b)),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=12),
)
def test_line_only_receiver_matches_twisted_within_limits(data: bytes, cuts: list[int]) -> None:
    run(only, cut(data, cuts))


# -- NetstringReceiver -------------------------------------------------------------------------


def netstrings(mod: Any, **attrs: Any) -> Any:
    return string_receiver(mod, "NetstringReceiver", **attrs)


def broken(p: Any) -> int:
    return int(p.brokenPeer)


@pytest.mark.parametrize("pieces", ["whole", "bytes"])
def test_netstrings_in_any_pieces(pieces: str) -> None:
    data = b"5:hello,0:,3:a,b,"
    steps = [data] if pieces == "whole" else one_at_a_time(data)
    out = run(netstrings, steps, broken)
    assert out["events"] == [("string", b"hello"), ("string", b""), ("string", b"a,b")]
    assert out["finish"] == 0


@pytest.mark.parametrize("pieces", ["whole", "bytes"])
def test_netstring_limit(pieces: str) -> None:
    ok = b"99999:" + b"x" * 99999 + b","
    steps = [ok + b"100000:"] if pieces == "whole" else [ok, *one_at_a_time(b"100000:")]
    out = run(netstrings, steps, broken)
    assert out["events"] == [("string", b"x" * 99999)]
    assert out["disconnecting"] is True and out["finish"] == 1


@pytest.mark.parametrize(
    "data",
    [b"12345678", b"3:abc;", b":abc,", b"01:a,", b"00", b"x", b"-1:", b"3:abc,4x"],
)
def test_netstring_garbage_drops_the_peer(data: bytes) -> None:
    out = run(netstrings, [data, b"3:abc,"], broken)
    assert out["finish"] == 1
    assert out["disconnecting"] is True
    # Nothing after the garbage is delivered.
    assert out["events"] == [("string", b"abc")] * data.count(b"3:abc,")


def test_netstring_length_refused_as_soon_as_its_digits_are_too_many() -> None:
    def build(mod: Any) -> Any:
        return netstrings(mod, MAX_LENGTH=50)

    for steps in ([b"51"], [b"5", b"1"], [b"100"]):
        out = run(build, steps, broken)
        assert out["finish"] == 1
    assert run(build, [b"50"], broken)["finish"] == 0


def test_send_string_writes_a_netstring() -> None:
    out = run(netstrings, [lambda p: p.sendString(b"hello, world")])
    assert out["written"] == b"12:hello, world,"


def test_netstring_newline_after_length_is_refused_at_once() -> None:
    # Difference: Twisted waits for one more byte before refusing "12\n".
    p = netstrings(basic)()
    p.makeConnection(StringTransport())
    p.dataReceived(b"12\n")
    assert p.brokenPeer == 1 and p.transport.disconnecting


@SETTINGS
@given(
    payloads=st.lists(st.binary(max_size=12), max_size=5),
    garbage=st.one_of(st.none(), st.tuples(st.integers(0, 100), st.sampled_from(b"x:,9"))),
    cuts=st.lists(st.integers(min_value=0, max_value=100), max_size=12),
    max_length=st.integers(min_value=1, max_value=14),
)
def test_netstring_receiver_matches_twisted(
    payloads: list[bytes], garbage: Any, cuts: list[int], max_length: int
) -> None:
    data = b"".join(b"%d:%s," % (len(p), p) for p in payloads)
    if garbage is not None:
        at = garbage[0] % (len(data) + 1)
        data = data[:at] + bytes([garbage[1]]) + data[at:]
    run(lambda mod: netstrings(mod, MAX_LENGTH=max_length), cut(data, cuts), broken)


# -- IntNStringReceiver ------------------------------------------------------------------------

INT_RECEIVERS = [
    ("Int32StringReceiver", "!I"),
    ("Int16StringReceiver", "!H"),
    ("Int8StringReceiver", "!B"),
]


def framed(fmt: str, *strings: bytes) -> bytes:
    return b"".join(struct.pack(fmt, len(s)) + s for s in strings)


@pytest.mark.parametrize(("name", "fmt"), INT_RECEIVERS)
@pytest.mark.parametrize("pieces", ["whole", "bytes"])
def test_int_strings_in_any_pieces(name: str, fmt: str, pieces: str) -> None:
    data = framed(fmt, b"hello", b"", b"world!")
    steps = [data] if pieces == "whole" else one_at_a_time(data)
    out = run(lambda mod: string_receiver(mod, name), steps)
    assert out["events"] == [("string", b"hello"), ("string", b""), ("string", b"world!")]


@pytest.mark.parametrize(("name", "fmt"), INT_RECEIVERS)
def test_int_string_limit(name: str, fmt: str) -> None:
    def build(mod: Any) -> Any:
        return string_receiver(mod, name, MAX_LENGTH=10)

    data = framed(fmt, b"x" * 10, b"y" * 11)
    for steps in ([data], one_at_a_time(data)):
        out = run(build, steps, until_closed=True)
        assert out["events"] == [("string", b"x" * 10), ("limit", 11)]
        assert out["disconnecting"] is True


@pytest.mark.parametrize(("name", "fmt"), INT_RECEIVERS)
def test_int_string_limit_is_reported_again_without_redelivery(name: str, fmt: str) -> None:
    # Difference: after a refused length, Twisted's receiver delivers the strings that
    # preceded it in the same piece a second time when more data arrives; treadle's only
    # reports the refused length again (it stays buffered, as in Twisted).
    class Keep(string_receiver(basic, name, MAX_LENGTH=10)):  # type: ignore[misc]
        def lengthLimitExceeded(self, length: int) -> None:
            self.events.append(("limit", length))  # and keep the connection

    p = Keep()
    p.makeConnection(StringTransport())
    p.dataReceived(framed(fmt, b"x" * 10, b"y" * 11))
    p.dataReceived(b"more")
    assert p.events == [("string", b"x" * 10), ("limit", 11), ("limit", 11)]
    assert not p.transport.disconnecting


def test_int32_default_limit_is_99999() -> None:
    out = run(
        lambda mod: string_receiver(mod, "Int32StringReceiver"),
        [framed("!I", b"a" * 99999) + struct.pack("!I", 100000)],
    )
    assert out["events"] == [("string", b"a" * 99999), ("limit", 100000)]


@pytest.mark.parametrize(
    ("name", "size"), [("Int8StringReceiver", 256), ("Int16StringReceiver", 65536)]
)
def test_send_string_too_long_for_its_prefix(name: str, size: int) -> None:
    for mod, transport_class in FRAMEWORKS:
        p = getattr(mod, name)()
        p.makeConnection(transport_class())
        p.sendString(b"s" * (size - 1))
        assert len(p.transport.value()) == size - 1 + p.prefixLength
        with pytest.raises(mod.StringTooLongError):
            p.sendString(b"s" * size)
    assert issubclass(basic.StringTooLongError, AssertionError)


def test_int_receiver_pauses_inside_string_received() -> None:
    def build(mod: Any) -> Any:
        return string_receiver(
            mod,
            "Int16StringReceiver",
            on_string=lambda p, s: p.pauseProducing() if s == b"pause" else None,
        )

    data = framed("!H", b"a", b"pause", b"b", b"c")
    out = run(build, [data, lambda p: p.resumeProducing()])
    assert [v for _, v in out["events"]] == [b"a", b"pause", b"b", b"c"]


@SETTINGS
@given(
    lengths=st.lists(st.integers(min_value=0, max_value=12), max_size=5),
    cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=12),
    receiver=st.sampled_from(INT_RECEIVERS),
)
def test_int_receivers_match_twisted(lengths: list[int], cuts: list[int], receiver: Any) -> None:
    name, fmt = receiver
    data = framed(fmt, *(bytes([65 + i]) * n for i, n in enumerate(lengths)))
    run(lambda mod: string_receiver(mod, name, MAX_LENGTH=9), cut(data, cuts), until_closed=True)


# -- StatefulStringProtocol and FileSender ------------------------------------------------------


def test_stateful_string_protocol() -> None:
    class Talk(basic.StatefulStringProtocol, basic.NetstringReceiver):
        def proto_init(self, string: bytes) -> str:
            self.sendString(b"hi " + string)
            return "second"

        def proto_second(self, string: bytes) -> str:
            return "done"

    p = Talk()
    p.makeConnection(StringTransport())
    p.dataReceived(b"3:bob,")
    assert p.state == "second" and not p.transport.disconnecting
    p.dataReceived(b"1:x,")
    assert p.state == "done" and p.transport.disconnecting
    assert p.transport.value() == b"6:hi bob,"


class PullConsumer:
    """Asks a pull producer for data until it unregisters."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.producer: Any = None

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        assert streaming is False
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def pump(self) -> None:
        while self.producer is not None:
            self.producer.resumeProducing()


def test_file_sender_sends_the_file_in_chunks() -> None:
    content = bytes(range(256)) * 200  # 51200 bytes: four chunks
    consumer = PullConsumer()
    results: list[Any] = []
    sender = basic.FileSender()
    sender.beginFileTransfer(io.BytesIO(content), consumer, bytes.upper).addCallback(results.append)
    consumer.pump()
    assert b"".join(consumer.chunks) == content.upper()
    assert [len(c) for c in consumer.chunks] == [16384, 16384, 16384, 2048]
    assert results == [content.upper()[-1:]]


def test_file_sender_stopped_fails_its_deferred() -> None:
    consumer = PullConsumer()
    failures: list[Any] = []
    sender = basic.FileSender()
    sender.beginFileTransfer(io.BytesIO(b"data"), consumer).addErrback(failures.append)
    sender.stopProducing()
    assert len(failures) == 1
    assert "stop producing" in str(failures[0].value)


# -- over a real socket ------------------------------------------------------------------------


class Echo(basic.LineReceiver):
    """Answers each line in upper case; ``RAW n`` reads n raw bytes and echoes their length."""

    def __init__(self) -> None:
        self.raw_left = 0

    def lineReceived(self, line: bytes) -> None:
        if line.startswith(b"RAW "):
            self.raw_left = int(line[4:])
            self.setRawMode()
        else:
            self.sendLine(line.upper())

    def rawDataReceived(self, data: bytes) -> None:
        taken, rest = data[: self.raw_left], data[self.raw_left :]
        self.raw_left -= len(taken)
        if self.raw_left == 0:
            self.sendLine(b"got raw")
            self.setLineMode(rest)


def read_until(sock: socket.socket, expected: bytes) -> bytes:
    got = b""
    while len(got) < len(expected):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_line_receiver_over_a_real_socket(server: ServerThread) -> None:
    factory = Factory.forProtocol(Echo)
    port = server.call(lambda: reactor.listenTCP(0, factory, interface="127.0.0.1"))
    server.ports.append(port)
    with socket.create_connection(("127.0.0.1", port.getHost().port), timeout=DEADLINE) as sock:
        sock.sendall(b"hello\r\nRAW 5\r\nab\r\ncworld\r\n")
        assert read_until(sock, b"HELLO\r\ngot raw\r\nWORLD\r\n") == (
            b"HELLO\r\ngot raw\r\nWORLD\r\n"
        )
        for byte in one_at_a_time(b"slow\r\n"):
            sock.sendall(byte)
        assert read_until(sock, b"SLOW\r\n") == b"SLOW\r\n"
        sock.sendall(b"x" * (Echo.MAX_LENGTH + 1) + b"\r\n")
        # The over-long line closes the connection.
        sock.settimeout(DEADLINE)
        assert wait_for(lambda: sock.recv(1) == b"", "the server to close") is True


@pytest.mark.parametrize("base", ["LineReceiver", "LineOnlyReceiver"])
def test_buffer_attribute_reads_and_sets_like_twisteds(base: str) -> None:
    def finish(p: Any) -> Any:
        before = bytes(p._buffer)
        p._buffer = b"set\r\n"
        p.dataReceived(b"x\r\n")
        return before, bytes(p._buffer)

    out = run(lambda mod: line_receiver(mod, base=base), [b"a\r\npart", b"ial"], finish)
    assert out["finish"] == (b"partial", b"")
    assert [v for _, v in out["events"]] == [b"a", b"set", b"x"]
