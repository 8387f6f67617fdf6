"""``http.HTTPClient``: Twisted's deprecated line-based HTTP/1.0 client protocol."""

from __future__ import annotations

from typing import Any

import pytest

from treadle.internet.testing import StringTransport
from treadle.web import http


def client_class() -> Any:
    with pytest.warns(DeprecationWarning, match="Agent"):
        return http.HTTPClient


class Recorder:
    """Records what an HTTPClient reports."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def bind(self, client: Any) -> Any:
        client.handleStatus = lambda *a: self.events.append(("status", *a))
        client.handleHeader = lambda *a: self.events.append(("header", *a))
        client.handleEndHeaders = lambda: self.events.append(("end",))
        client.handleResponse = lambda body: self.events.append(("response", body))
        return client


def connected() -> tuple[Any, StringTransport, Recorder]:
    recorder = Recorder()
    client = recorder.bind(client_class()())
    transport = StringTransport()
    client.makeConnection(transport)
    return client, transport, recorder


def test_access_warns_that_it_is_deprecated() -> None:
    with pytest.warns(DeprecationWarning):
        http.HTTPClient  # noqa: B018


def test_the_request_is_written_line_by_line() -> None:
    client, transport, _ = connected()
    client.sendCommand(b"GET", b"/foo")
    client.sendHeader(b"Host", b"example.com")
    client.sendHeader(b"Content-Length", 10)
    client.endHeaders()
    assert transport.value() == (
        b"GET /foo HTTP/1.0\r\nHost: example.com\r\nContent-Length: 10\r\n\r\n"
    )


def test_line_breaks_in_a_header_become_spaces() -> None:
    client, transport, _ = connected()
    client.sendHeader(b"X\r\nY", b"a\nb\r\nc\rd")
    assert transport.value() == b"X Y: a b c d\r\n"


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"HTTP/1.0 201 foo", (b"HTTP/1.0", b"201", b"foo")),
        (b"HTTP/1.0 201", (b"HTTP/1.0", b"201", b"")),
        (b"HTTP/1.0 201 ", (b"HTTP/1.0", b"201", b"")),
        (b"HTTP/1.1 404 Not Found", (b"HTTP/1.1", b"404", b"Not Found")),
    ],
)
def test_status_line(line: bytes, status: tuple[bytes, bytes, bytes]) -> None:
    client, _, recorder = connected()
    client.lineReceived(line)
    assert recorder.events == [("status", *status)]


def test_a_response_framed_by_content_length() -> None:
    client, _, recorder = connected()
    client.dataReceived(
        b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nX-Folded: a\r\n b\r\n\r\nhelloEXTRA"
    )
    assert recorder.events == [
        ("status", b"HTTP/1.0", b"200", b"OK"),
        ("header", b"Content-Length", b"5"),
        ("header", b"X-Folded", b"a b"),
        ("end",),
        ("response", b"hello"),
    ]


def test_a_response_delimited_by_the_connection_closing() -> None:
    client, _, recorder = connected()
    client.dataReceived(b"HTTP/1.0 200 OK\r\n\r\npart one, ")
    client.dataReceived(b"part two")
    assert recorder.events[-1] == ("end",)
    client.connectionLost(None)
    assert recorder.events[-1] == ("response", b"part one, part two")
    client.connectionLost(None)  # handed over once
    assert [e for e in recorder.events if e[0] == "response"] == [
        ("response", b"part one, part two")
    ]
