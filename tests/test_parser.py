"""The request parser on its own: bytes in, what it tells its sink out (no channel, no I/O)."""

from __future__ import annotations

import httptools
import pytest

from treadle.web._parser import Limits, Message, Parser, Refused

BIG = 1 << 20


class Recorder:
    """A sink that writes down what the parser tells it."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.messages: list[Message] = []

    def message_begun(self) -> None:
        self.events.append("begun")

    def head_received(self, invite: bool) -> None:
        self.events.append(f"head invite={invite}")

    def body_received(self) -> None:
        self.events.append("body")

    def message_received(self, message: Message) -> None:
        self.events.append("message")
        self.messages.append(message)


def parse(data: bytes) -> Recorder:
    parser = Parser()
    sink = Recorder()
    parser.sink = sink
    parser.limits = Limits(BIG, BIG, BIG, 1000, BIG, BIG, BIG)
    parser.llhttp.feed_data(data)
    return sink


def refusal(data: bytes) -> int:
    with pytest.raises(httptools.HttpParserCallbackError) as caught:
        parse(data)
    cause = caught.value.__context__
    assert isinstance(cause, Refused)
    return cause.code


@pytest.mark.parametrize(
    ("version", "connection", "http11", "keep_alive"),
    [
        (b"1.1", None, True, True),
        (b"1.1", b"close", True, False),
        (b"1.1", b"keep-alive", True, True),
        (b"1.0", None, False, False),
        (b"1.0", b"keep-alive", False, True),
        (b"1.0", b"close", False, False),
    ],
)
def test_version_and_keep_alive_with_and_without_a_connection_field(
    version: bytes, connection: bytes | None, http11: bool, keep_alive: bool
) -> None:
    field = b"" if connection is None else b"Connection: " + connection + b"\r\n"
    sink = parse(b"GET /a HTTP/" + version + b"\r\nHost: x\r\n" + field + b"\r\n")
    assert sink.events == ["begun", "head invite=False", "message"]
    method, target, is_http11, headers, body, keeps, trailers = sink.messages[0]
    assert (method, target, is_http11, keeps, body) == (b"GET", b"/a", http11, keep_alive, None)
    assert trailers is None
    # The fields flat, as read: name, value, ... with names lowercased.
    expected = [b"host", b"x"] + ([] if connection is None else [b"connection", connection])
    assert headers == expected


@pytest.mark.parametrize("version", [b"0.9", b"2.0"])
@pytest.mark.parametrize("connection", [b"", b"Connection: keep-alive\r\n"])
def test_versions_llhttp_passes_but_we_do_not_speak_are_refused(
    version: bytes, connection: bytes
) -> None:
    assert refusal(b"GET / HTTP/" + version + b"\r\nHost: x\r\n" + connection + b"\r\n") == 505


def test_pipelined_requests_each_get_their_own_version() -> None:
    sink = parse(
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /2 HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
        b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /4 HTTP/1.0\r\nHost: x\r\n\r\n"
    )
    assert [(m[1], m[2], m[5]) for m in sink.messages] == [
        (b"/1", True, True),
        (b"/2", False, True),
        (b"/3", True, True),
        (b"/4", False, False),
    ]


def test_a_body_is_reported_as_it_arrives_and_handed_over_whole() -> None:
    sink = parse(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    assert sink.events == ["begun", "head invite=False", "body", "message"]
    content = sink.messages[0][4]
    assert content is not None and content.read() == b"hello"


def test_trailer_fields_are_handed_over_apart_from_the_headers() -> None:
    chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    sink = parse(
        chunked + b"0\r\nX-Sum: 1\r\nHost: evil\r\nX-Sum: 2\r\n\r\n" + chunked + b"0\r\n\r\n"
    )
    first, second = sink.messages
    assert first[3] == [b"host", b"x", b"transfer-encoding", b"chunked"]
    assert first[6] == {b"x-sum": [b"1", b"2"], b"host": [b"evil"]}
    assert second[6] is None  # a chunked body without trailer fields


def test_field_names_are_lowercased_and_values_kept_in_arrival_order() -> None:
    sink = parse(
        b"GET / HTTP/1.1\r\nHOST: x\r\nX-A: 1\r\nAccept: */*\r\nx-a: 2 \r\nX-Odd-Name: v\r\n\r\n"
    )
    assert sink.messages[0][3] == [
        b"host",
        b"x",
        b"x-a",
        b"1",
        b"accept",
        b"*/*",
        b"x-a",
        b"2",
        b"x-odd-name",
        b"v",
    ]


@pytest.mark.parametrize(
    "fields",
    [b"Host: x\r\nhost: x\r\n", b"Host: x\r\nHOST: y\r\n", b"Host: a b\r\n"],
)
def test_more_than_one_host_or_an_invalid_one_is_refused(fields: bytes) -> None:
    assert refusal(b"GET / HTTP/1.1\r\n" + fields + b"\r\n") == 400


def test_an_absolute_form_target_replaces_every_host_field() -> None:
    sink = parse(b"GET http://example.com:8080/p HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n")
    assert sink.messages[0][3] == [b"x-a", b"1", b"host", b"example.com:8080"]
