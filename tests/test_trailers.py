"""Trailer fields over real sockets: ``requestTrailers`` and ``responseTrailers`` on HTTP/1.1
(raw sockets, curl) and HTTP/2 (the h2 library as a raw h2c client, httpx), the cases where a
response cannot carry them, fields that may not be trailers, and the ASGI
``http.response.trailers`` extension."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import subprocess
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pytest

from treadle.web.asgi import ASGIResource
from treadle.web.http_headers import Headers
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Request, Site

from .conftest import DEADLINE, ServerThread, host_port, wait_for

CURL = shutil.which("curl")

CHUNKED_POST = (
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n"
    b"3\r\nabc\r\n2\r\nde\r\n0\r\n"
)


class Trailing(Resource):
    """GET ``/whole``: bytes returned with trailers set; ``/streamed``: written over two turns
    of the loop, the trailers set last; ``/length``: a Content-Length of its own; ``/none``:
    no trailers. POST ``/echo``: the body, the request's trailers and headers, as JSON."""

    isLeaf = True

    def render_GET(self, request: Request) -> object:
        path = request.path
        if path == b"/none":
            return b"plain"
        if path == b"/streamed":
            request.write(b"first,")
            request.responseHeaders.setRawHeaders(b"trailer", [b"x-checksum"])

            def rest() -> None:
                request.write(b"second")
                request.responseTrailers.addRawHeader(b"x-checksum", b"abc123")
                request.responseTrailers.addRawHeader("X-Count", "2")
                request.finish()

            asyncio.get_running_loop().call_later(0.01, rest)  # a later turn of the loop
            return NOT_DONE_YET
        if path == b"/length":
            request.setHeader(b"content-length", b"5")
        request.responseTrailers.setRawHeaders(b"x-checksum", [b"abc123"])
        return b"hello"

    def render_HEAD(self, request: Request) -> bytes:
        request.responseTrailers.setRawHeaders(b"x-checksum", [b"abc123"])
        return b""

    def render_POST(self, request: Request) -> bytes:
        shown = {
            "body": request.content.read().decode(),
            "trailers": {k.decode(): [v.decode() for v in vs] for k, vs in _raw(request, True)},
            "headers": sorted(k.decode() for k, _ in _raw(request, False)),
        }
        return json.dumps(shown).encode()


def _raw(request: Request, trailers: bool) -> list[tuple[bytes, list[bytes]]]:
    headers = request.requestTrailers if trailers else request.requestHeaders
    return sorted(headers._raw.items())


def exchange(url: str, data: bytes) -> bytes:
    """Send ``data`` and read until the server closes (the request asks it to)."""
    with socket.create_connection(host_port(url), timeout=DEADLINE) as sock:
        sock.sendall(data)
        pieces = []
        while piece := sock.recv(65536):
            pieces.append(piece)
    return b"".join(pieces)


def get(path: bytes, version: bytes = b"HTTP/1.1", method: bytes = b"GET") -> bytes:
    return method + b" " + path + b" " + version + b"\r\nHost: x\r\nConnection: close\r\n\r\n"


def head_and_body(response: bytes) -> tuple[bytes, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    return head, body


# -- request trailers, HTTP/1.1 ---------------------------------------------------------------


def test_chunked_request_trailers_become_request_trailers(serve: Any) -> None:
    url = serve(Trailing())
    # (llhttp itself refuses a Content-Length among a chunked request's trailers: 400.)
    trailer = b"X-Sum: 1\r\nHost: evil\r\nAuthorization: x\r\nx-sum: 2\r\n\r\n"
    data = CHUNKED_POST.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    _, body = head_and_body(exchange(url, data + trailer))
    shown = json.loads(body)
    assert shown["body"] == "abcde"
    # Forbidden fields (Host, Authorization) are dropped; repeated names keep every value.
    assert shown["trailers"] == {"x-sum": ["1", "2"]}
    assert "x-sum" not in shown["headers"]


def test_a_request_without_trailers_has_none(serve: Any) -> None:
    url = serve(Trailing())
    data = CHUNKED_POST.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    _, body = head_and_body(exchange(url, data + b"\r\n"))
    assert json.loads(body)["trailers"] == {}


# -- response trailers, HTTP/1.1 --------------------------------------------------------------


def test_a_whole_body_with_trailers_goes_out_chunked(serve: Any) -> None:
    url = serve(Trailing())
    head, body = head_and_body(exchange(url, get(b"/whole")))
    assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head
    assert body == b"5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n"


def test_a_streamed_body_ends_with_its_trailers_and_the_connection_goes_on(serve: Any) -> None:
    url = serve(Trailing())
    keep = b"GET /streamed HTTP/1.1\r\nHost: x\r\n\r\n"
    response = exchange(url, keep + get(b"/none"))
    first, _, second = response.partition(b"\r\n\r\nHTTP/1.1 ")
    head, body = head_and_body(first + b"\r\n\r\n")
    assert b"Trailer: x-checksum" in head
    assert body == (b"6\r\nfirst,\r\n6\r\nsecond\r\n0\r\nX-Checksum: abc123\r\nX-Count: 2\r\n\r\n")
    assert second.startswith(b"200 OK") and second.endswith(b"\r\n\r\nplain")


@pytest.mark.skipif(CURL is None, reason="curl not installed")
def test_curl_raw_shows_the_trailer_section(serve: Any) -> None:
    url = serve(Trailing())
    assert CURL is not None
    done = subprocess.run(
        [CURL, "-s", "--raw", url + "/whole"], capture_output=True, timeout=DEADLINE
    )
    assert done.stdout == b"5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n"
    # Without --raw, the body as sent: the trailer section is framing.
    done = subprocess.run([CURL, "-s", url + "/whole"], capture_output=True, timeout=DEADLINE)
    assert done.stdout == b"hello"


def test_httpx_over_http11_reads_past_trailers(serve: Any) -> None:
    url = serve(Trailing())
    with httpx.Client(base_url=url, timeout=DEADLINE) as client:
        assert client.get("/streamed").text == "first,second"
        assert client.get("/whole").text == "hello"
        assert client.get("/none").text == "plain"  # the same connection


@pytest.mark.parametrize(
    ("request_bytes", "expected_head", "expected_body"),
    [
        # The resource's own Content-Length: the body cannot be chunked.
        (get(b"/length"), b"Content-Length: 5", b"hello"),
        # HTTP/1.0 knows no chunks: the body is the content, delimited as before.
        (get(b"/whole", b"HTTP/1.0"), b"Content-Length: 5", b"hello"),
        (get(b"/streamed", b"HTTP/1.0"), b"Connection: close", b"first,second"),
        # No body at all.
        (get(b"/whole", method=b"HEAD"), b"HTTP/1.1 200 OK", b""),
    ],
)
def test_trailers_are_dropped_where_the_response_cannot_carry_them(
    serve: Any, request_bytes: bytes, expected_head: bytes, expected_body: bytes
) -> None:
    url = serve(Trailing())
    head, body = head_and_body(exchange(url, request_bytes))
    assert expected_head in head and b"chunked" not in head
    assert body == expected_body


# -- fields that may not be trailers ---------------------------------------------------------


def test_forbidden_trailer_fields_are_refused_as_they_are_set(serve: Any) -> None:
    errors: list[str] = []

    class Refusing(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            for name in (b"content-length", "Transfer-Encoding", b"host", b"authorization"):
                try:
                    request.responseTrailers.setRawHeaders(name, [b"1"])
                except ValueError as e:
                    errors.append(str(e))
            try:
                request.responseTrailers = Headers({b"content-type": [b"text/plain"]})
            except ValueError as e:
                errors.append(str(e))
            request.responseTrailers.addRawHeader(b"x-fine", b"yes")
            return b"ok"

    url = serve(Refusing())
    _, body = head_and_body(exchange(url, get(b"/")))
    assert len(errors) == 5 and all("trailer" in e for e in errors)
    assert body == b"2\r\nok\r\n0\r\nX-Fine: yes\r\n\r\n"


def test_forbidden_fields_slipped_in_are_dropped_with_a_log_line(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class Sly(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            given = Headers({b"x-ok": [b"1"]})
            request.responseTrailers = given
            given.setRawHeaders(b"content-length", [b"99"])  # after the check
            return b"ok"

    url = serve(Sly())
    with caplog.at_level(logging.WARNING, logger="treadle.error"):
        _, body = head_and_body(exchange(url, get(b"/")))
    assert body == b"2\r\nok\r\n0\r\nX-Ok: 1\r\n\r\n"
    assert any("content-length" in r.getMessage() for r in caplog.records)


# -- HTTP/2 (h2c with prior knowledge) --------------------------------------------------------


class H2Socket:
    """The h2 library as a raw client over a socket, recording every event per stream."""

    def __init__(self, url: str, window: int | None = None) -> None:
        self.host, port = host_port(url)
        self.sock = socket.create_connection((self.host, port), timeout=DEADLINE)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        if window is not None:
            self.conn.local_settings = h2.settings.Settings(
                client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window}
            )
        self.conn.initiate_connection()
        self.events: list[Any] = []
        self.acknowledge = True

    def request(
        self,
        path: str,
        method: str = "GET",
        body: bytes | None = None,
        trailers: list[tuple[str, str]] | None = None,
    ) -> int:
        sid: int = self.conn.get_next_available_stream_id()
        fields = [(":method", method), (":scheme", "http"), (":authority", self.host)]
        self.conn.send_headers(sid, [*fields, (":path", path)], end_stream=body is None)
        if body is not None:
            self.conn.send_data(sid, body, end_stream=trailers is None)
        if trailers is not None:
            self.conn.send_headers(sid, trailers, end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        return sid

    def until_ended(self, sid: int) -> list[Any]:
        """Read until stream ``sid`` ends; return its events in order."""
        while not any(
            isinstance(e, h2.events.StreamEnded | h2.events.StreamReset) and e.stream_id == sid
            for e in self.events
        ):
            data = self.sock.recv(65536)
            assert data, "the connection closed"
            for event in self.conn.receive_data(data):
                self.events.append(event)
                if isinstance(event, h2.events.DataReceived) and self.acknowledge:
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
            self.sock.sendall(self.conn.data_to_send())
        return [e for e in self.events if getattr(e, "stream_id", None) == sid]

    def close(self) -> None:
        self.sock.close()


def kinds(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_h2_response_trailers_follow_the_data_and_end_the_stream(serve: Any) -> None:
    url = serve(Trailing())
    client = H2Socket(url)
    try:
        for path in ("/whole", "/streamed"):
            events = client.until_ended(client.request(path))
            names = kinds(events)
            assert names[0] == "ResponseReceived" and names[-2:] == [
                "TrailersReceived",
                "StreamEnded",
            ]
            assert set(names[1:-2]) == {"DataReceived"}
            assert all(e.stream_ended is None for e in events if type(e).__name__ == "DataReceived")
            trailers = events[-2]
            assert trailers.stream_ended is not None  # END_STREAM on the trailers' frame
            assert dict(trailers.headers)[b"x-checksum"] == b"abc123"
            body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
            assert body == (b"hello" if path == "/whole" else b"first,second")
        # No trailers: the last DATA frame ends the stream, as before.
        events = client.until_ended(client.request("/none"))
        assert "TrailersReceived" not in kinds(events)
    finally:
        client.close()


def test_h2_trailers_wait_for_flow_control(serve: Any) -> None:
    size = 200_000

    class Big(Resource):
        isLeaf = True

        def render_GET(self, request: Request) -> bytes:
            request.responseTrailers.setRawHeaders(b"x-size", [b"%d" % size])
            return b"x" * size

    url = serve(Big())
    # A window far smaller than the body: the response goes out in several rounds of
    # WINDOW_UPDATE, and the trailers only after its last DATA frame.
    client = H2Socket(url, window=16_384)
    try:
        events = client.until_ended(client.request("/"))
    finally:
        client.close()
    data = [e for e in events if isinstance(e, h2.events.DataReceived)]
    assert sum(len(e.data) for e in data) == size and len(data) > 4
    assert kinds(events)[-2:] == ["TrailersReceived", "StreamEnded"]
    assert events[-2].headers == [(b"x-size", b"200000")]


def test_h2_request_trailers_become_request_trailers(serve: Any) -> None:
    url = serve(Trailing())
    client = H2Socket(url)
    try:
        sid = client.request(
            "/echo", "POST", b"abcde", [("x-sum", "1"), ("x-sum", "2"), ("content-length", "9")]
        )
        events = client.until_ended(sid)
    finally:
        client.close()
    body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    shown = json.loads(body)
    assert shown["body"] == "abcde"
    assert shown["trailers"] == {"x-sum": ["1", "2"]}
    assert "x-sum" not in shown["headers"]


def test_h2_request_trailers_over_the_limit_are_refused(server: ServerThread) -> None:
    site = Site(Trailing())
    site.maxTrailerSize = 100
    url = server.serve(site)
    client = H2Socket(url)
    try:
        events = client.until_ended(client.request("/echo", "POST", b"ab", [("x-big", "v" * 200)]))
    finally:
        client.close()
    response = events[0]
    assert isinstance(response, h2.events.ResponseReceived)
    assert dict(response.headers)[b":status"] == b"431"


def test_httpx_over_h2_reads_past_trailers(serve: Any) -> None:
    url = serve(Trailing())
    with httpx.Client(base_url=url, http1=False, http2=True, timeout=DEADLINE) as client:
        for path, text in (("/whole", "hello"), ("/streamed", "first,second"), ("/none", "plain")):
            response = client.get(path)
            assert response.http_version == "HTTP/2" and response.text == text


# -- ASGI: the http.response.trailers extension -----------------------------------------------


def trailer_app(seen: list[dict[str, Any]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        path = scope["path"]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
                "trailers": path != "/plain",
            }
        )
        if path == "/early":
            await send({"type": "http.response.trailers", "headers": [(b"x-a", b"1")]})
            return
        await send({"type": "http.response.body", "body": b"part,", "more_body": True})
        await send({"type": "http.response.body", "body": b"last"})
        if path == "/plain":
            return
        if path == "/forbidden":
            await send({"type": "http.response.trailers", "headers": [(b"content-length", b"9")]})
            return
        await send(
            {"type": "http.response.trailers", "headers": [(b"x-a", b"1")], "more_trailers": True}
        )
        await send({"type": "http.response.trailers", "headers": [(b"x-b", b"2")]})

    return app


def test_asgi_scope_advertises_response_trailers(serve: Any) -> None:
    seen: list[dict[str, Any]] = []
    url = serve(ASGIResource(trailer_app(seen), lifespan="off"))
    _, body = head_and_body(exchange(url, get(b"/plain")))
    assert seen[0]["extensions"] == {"http.response.trailers": {}}
    # Not announced: no trailers, and the response ends with its last body as usual.
    assert body == b"5\r\npart,\r\n4\r\nlast\r\n0\r\n\r\n"


def test_asgi_trailers_over_http11(serve: Any) -> None:
    url = serve(ASGIResource(trailer_app([]), lifespan="off"))
    head, body = head_and_body(exchange(url, get(b"/t")))
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"5\r\npart,\r\n4\r\nlast\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n"


def test_asgi_trailers_over_h2(serve: Any) -> None:
    url = serve(ASGIResource(trailer_app([]), lifespan="off"))
    client = H2Socket(url)
    try:
        events = client.until_ended(client.request("/t"))
    finally:
        client.close()
    assert kinds(events)[-2:] == ["TrailersReceived", "StreamEnded"]
    assert events[-2].headers == [(b"x-a", b"1"), (b"x-b", b"2")]
    body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert body == b"part,last"


@pytest.mark.parametrize(
    ("path", "complaint"),
    [
        ("/early", "http.response.trailers before its last http.response.body"),
        ("/forbidden", "may not"),
    ],
)
def test_asgi_trailers_that_break_the_protocol(
    serve: Any, caplog: pytest.LogCaptureFixture, path: str, complaint: str
) -> None:
    url = serve(ASGIResource(trailer_app([]), lifespan="off"))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        response = exchange(url, get(path.encode()))
    if path == "/early":
        assert response.startswith(b"HTTP/1.1 500 ")  # nothing went out yet
    else:
        # The body went out: the response is cut short (no last chunk).
        assert b"last\r\n" in response and not response.endswith(b"0\r\n\r\n")
    wait_for(lambda: any(complaint in r.getMessage() for r in caplog.records), complaint)
