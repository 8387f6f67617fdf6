"""ASGIResource over real sockets with raw ASGI applications: the scope, request bodies in
pieces, streamed responses at the client's pace, disconnects, and applications that break the
protocol (each a 500 page or a cut response, one log line naming the application)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from zope.interface.verify import verifyObject

from treadle.web.asgi import (
    BODY_CHUNK,
    ASGIResource,
    ClientDisconnected,
    ProtocolError,
    resource_from_name,
)
from treadle.web.resource import IResource, Resource
from treadle.web.server import Request, Site

from .conftest import DEADLINE, host_port, raw_request, wait_for

Scope = dict[str, Any]
App = Callable[..., Any]


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=DEADLINE, headers={"Connection": "close"}) as shared:
        yield shared


def mount(app: App, at: tuple[bytes, ...] = (b"app",), **kwargs: Any) -> Resource:
    """A tree with ``app`` at the path ``at`` (nested resources for each segment)."""
    root = Resource()
    parent = root
    for segment in at[:-1]:
        child = Resource()
        parent.putChild(segment, child)
        parent = child
    # These applications do not speak lifespan (test_asgi_lifespan.py has those that do).
    kwargs.setdefault("lifespan", "off")
    parent.putChild(at[-1], ASGIResource(app, name="test-app", **kwargs))
    return root


async def start(send: Any, status: int = 200, headers: list[Any] | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": headers if headers is not None else [(b"content-type", b"text/plain")],
        }
    )


def scope_echo(seen: list[Scope]) -> App:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append(scope)
        shown = {k: v for k, v in scope.items() if k not in ("headers", "raw_path", "query_string")}
        shown["raw_path"] = scope["raw_path"].decode("latin-1")
        shown["query_string"] = scope["query_string"].decode("latin-1")
        shown["headers"] = [[n.decode(), v.decode()] for n, v in scope["headers"]]
        await start(send, headers=[(b"content-type", b"application/json")])
        await send({"type": "http.response.body", "body": json.dumps(shown).encode()})

    return app


def error_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "treadle.error" and r.levelno >= logging.ERROR]


# -- the scope ---------------------------------------------------------------------------------


def test_the_http_scope(serve: Any, client: httpx.Client) -> None:
    seen: list[Scope] = []
    url = serve(mount(scope_echo(seen)))
    response = client.get(
        url + "/app/a%20b/c?x=1&y=%20",
        headers=[("X-Twice", "one"), ("x-twice", "two"), ("Accept", "*/*")],
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "server" in response.headers and "date" in response.headers
    scope = response.json()
    host, port = host_port(url)
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["root_path"] == "/app"
    assert scope["path"] == "/app/a b/c"
    assert scope["raw_path"] == "/app/a%20b/c"
    assert scope["query_string"] == "x=1&y=%20"
    assert ["x-twice", "one"] in scope["headers"] and ["x-twice", "two"] in scope["headers"]
    assert all(name == name.lower() for name, _ in scope["headers"])
    assert scope["client"][0] == "127.0.0.1" and isinstance(scope["client"][1], int)
    assert scope["server"] == [host, port]
    assert scope["state"] == {}
    # Types as the specification gives them.
    (raw,) = seen
    assert isinstance(raw["raw_path"], bytes) and isinstance(raw["query_string"], bytes)
    assert all(type(n) is bytes and type(v) is bytes for n, v in raw["headers"])


@pytest.mark.parametrize(
    ("at", "path", "root_path", "full_path"),
    [
        ((b"app",), "/app", "/app", "/app"),
        ((b"app",), "/app/", "/app", "/app/"),
        ((b"a", b"b"), "/a/b/c/d", "/a/b", "/a/b/c/d"),
        # Mounted at an empty segment: the root path never ends in "/" (as WSGI's SCRIPT_NAME).
        ((b"app", b""), "/app/", "/app", "/app/"),
        ((b"app", b""), "/app//x", "/app", "/app//x"),
    ],
)
def test_root_path_is_what_traversal_consumed(
    serve: Any,
    client: httpx.Client,
    at: tuple[bytes, ...],
    path: str,
    root_path: str,
    full_path: str,
) -> None:
    url = serve(mount(scope_echo([]), at))
    scope = client.get(url + path).json()
    assert (scope["root_path"], scope["path"]) == (root_path, full_path)


def test_mounted_at_the_site_root(serve: Any, client: httpx.Client) -> None:
    url = serve(ASGIResource(scope_echo([]), lifespan="off"))
    assert [client.get(url + p).json()["path"] for p in ("/", "/x/y")] == ["/", "/x/y"]
    assert client.get(url + "/").json()["root_path"] == ""
    head = client.head(url + "/x")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 0


# -- request bodies ----------------------------------------------------------------------------


def body_collector(pieces: list[tuple[int, bool]]) -> App:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        total = 0
        while True:
            message = await receive()
            assert message["type"] == "http.request"
            pieces.append((len(message["body"]), message["more_body"]))
            total += len(message["body"])
            if not message["more_body"]:
                break
        await start(send)
        await send({"type": "http.response.body", "body": b"%d" % total})

    return app


@pytest.mark.parametrize("chunked", [False, True])
def test_request_body_arrives_in_pieces(serve: Any, client: httpx.Client, chunked: bool) -> None:
    pieces: list[tuple[int, bool]] = []
    url = serve(mount(body_collector(pieces)))
    size = 3 * BODY_CHUNK + 123
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    content: Any = iter([data[:1000], data[1000:]]) if chunked else data
    assert client.post(url + "/app", content=content).text == str(size)
    assert [n for n, _ in pieces] == [BODY_CHUNK, BODY_CHUNK, BODY_CHUNK, 123]
    assert [more for _, more in pieces] == [True, True, True, False]


def test_no_body_is_one_empty_message(serve: Any, client: httpx.Client) -> None:
    pieces: list[tuple[int, bool]] = []
    url = serve(mount(body_collector(pieces)))
    assert client.get(url + "/app").text == "0"
    assert pieces == [(0, False)]


def test_receive_after_the_response_is_a_disconnect(serve: Any, client: httpx.Client) -> None:
    after: list[Any] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await start(send)
        await send({"type": "http.response.body", "body": b"done"})
        after.append(await receive())

    url = serve(mount(app))
    assert client.get(url + "/app").text == "done"
    wait_for(lambda: after, "the receive after the response")
    assert after == [{"type": "http.disconnect"}]


# -- responses ---------------------------------------------------------------------------------


def test_one_body_goes_out_with_a_content_length(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await start(send, 201, [(b"content-type", b"text/plain"), (b"x-custom", b"yes")])
        await send({"type": "http.response.body", "body": b"created"})

    answer = raw_request(
        serve(mount(app)), b"GET /app HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 Created\r\n")
    assert b"\r\nContent-Length: 7" in head and b"chunked" not in head
    assert b"\r\nX-Custom: yes" in head
    assert body == b"created"


def test_streamed_body_goes_out_chunked_and_as_sent(serve: Any, client: httpx.Client) -> None:
    release = threading.Event()
    first_seen = threading.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await start(send)
        await send({"type": "http.response.body", "body": b"first,", "more_body": True})
        while not release.is_set():  # the client must see the first part before the rest
            await asyncio.sleep(0.005)
        await send({"type": "http.response.body", "body": b"second", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    url = serve(mount(app))
    parts = []
    with client.stream("GET", url + "/app") as response:
        assert response.headers["transfer-encoding"] == "chunked"
        for part in response.iter_raw():
            parts.append(part)
            if not first_seen.is_set():
                first_seen.set()
                release.set()
    assert b"".join(parts) == b"first,second"
    assert parts[0] == b"first,"


def test_a_start_alone_sends_the_head(serve: Any) -> None:
    """A stream whose first event is not ready still shows its head (server-sent events)."""
    release = threading.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await start(send, headers=[(b"content-type", b"text/event-stream")])
        while not release.is_set():
            await asyncio.sleep(0.005)
        await send({"type": "http.response.body", "body": b"data: 1\n\n"})

    host, port = host_port(serve(mount(app)))
    with socket.create_connection((host, port), timeout=DEADLINE) as sock:
        sock.sendall(b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n")
        head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200 OK") and b"text/event-stream" in head
        release.set()
        rest = b""
        while not rest.endswith(b"0\r\n\r\n"):
            rest += sock.recv(65536)
        assert b"data: 1\n\n" in rest


def test_declared_content_length_is_kept_and_enforced(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        n = int(scope["query_string"])
        await start(send, headers=[(b"content-length", b"5")])
        await send({"type": "http.response.body", "body": b"x" * n, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    url = serve(mount(app))
    request = b"GET /app?%d HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /app?5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    # Exact: kept alive, so the second response follows on the same connection.
    answer = raw_request(url, request % 5 + last)
    assert answer.count(b"Content-Length: 5\r\n") == 2 and answer.count(b"\r\n\r\nxxxxx") == 2
    assert b"chunked" not in answer
    with caplog.at_level(logging.WARNING, logger="treadle.error"):
        # Longer: cut to the length (warned); shorter: the connection closes (an error).
        assert raw_request(url, request % 9 + last).count(b"\r\n\r\nxxxxx") == 2
        answer = raw_request(url, request % 3 + request % 5)
    assert answer.count(b"HTTP/1.1") == 1 and answer.endswith(b"\r\n\r\nxxx")
    messages = [r.getMessage() for r in caplog.records]
    assert any("more than its Content-Length" in m and "test-app" in m for m in messages)
    assert any("2 bytes less than its Content-Length" in m for m in messages)


def test_connection_fields_are_the_servers(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        headers = [(b"transfer-encoding", b"chunked"), (b"keep-alive", b"timeout=5")]
        await start(send, headers=headers)
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        await asyncio.sleep(0.01)  # streamed, not joined into one write
        await send({"type": "http.response.body", "body": b"def"})

    url = serve(mount(app))
    answer = raw_request(url, b"GET /app HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.lower().count(b"transfer-encoding") == 1 and b"keep-alive" not in head.lower()
    assert body == b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"


def test_connection_close_from_the_application_closes(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await start(send, headers=[(b"connection", b"close")])
        await send({"type": "http.response.body", "body": b"bye"})

    request = b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = raw_request(serve(mount(app)), request * 2)
    assert answer.count(b"HTTP/1.1 200") == 1 and answer.endswith(b"bye")


def test_keep_alive_and_pipelining(serve: Any) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await asyncio.sleep(0)
        await start(send)
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    request = b"GET /app/%d HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /app/4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = raw_request(serve(mount(app)), b"".join(request % i for i in range(4)) + last)
    assert [answer.index(b"/app/%d" % i) for i in range(5)] == sorted(
        answer.index(b"/app/%d" % i) for i in range(5)
    )
    assert answer.count(b"HTTP/1.1 200 OK") == 5


def connection_echo() -> App:
    """Answers each request with its scope's scheme, client host and server, as JSON."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        shown = [scope["scheme"], scope["client"][0], list(scope["server"])]
        await start(send, headers=[(b"content-type", b"application/json")])
        await send({"type": "http.response.body", "body": json.dumps(shown).encode()})

    return app


def test_a_proxied_request_on_a_kept_connection_has_its_own_client(serve: Any) -> None:
    # The connection's scheme, client and server are kept for its requests; one a trusted
    # proxy describes differently gets the proxy's view, and the next the connection's again.
    url = serve(mount(connection_echo()), proxyHeaders="127.0.0.1")
    plain = b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n"
    proxied = (
        b"GET /app HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\n"
        b"X-Forwarded-Proto: https\r\n\r\n"
    )
    last = b"GET /app HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = raw_request(url, plain + proxied + last)
    bodies = [json.loads(part.partition(b"\r\n\r\n")[2]) for part in answer.split(b"HTTP/1.1 ")[1:]]
    host, port = host_port(url)
    assert bodies == [
        ["http", "127.0.0.1", [host, port]],
        ["https", "203.0.113.9", [host, port]],
        ["http", "127.0.0.1", [host, port]],
    ]


class AlwaysSecureRequest(Request):
    """A request class of a program's own, saying every request came over TLS."""

    def isSecure(self) -> bool:
        return True


def test_a_request_class_of_its_own_is_asked(serve: Any) -> None:
    url = serve(Site(mount(connection_echo()), requestFactory=AlwaysSecureRequest))
    request = b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /app HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = raw_request(url, request + last)
    assert answer.count(b'["https", "127.0.0.1"') == 2


def test_statuses_without_bodies(serve: Any, client: httpx.Client) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await start(send, int(scope["query_string"]), [])
        await send({"type": "http.response.body", "body": b""})

    url = serve(mount(app))
    for status in (204, 304, 404):
        response = client.get(url + f"/app?{status}")
        assert response.status_code == status and response.content == b""
        assert "content-type" not in response.headers  # none of the server's choosing


# -- the client's pace and its leaving --------------------------------------------------------


class PauseWatchingRequest(Request):
    """Records when the transport pauses the ASGI cycle (its registered producer)."""

    paused = threading.Event()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        super().registerProducer(WatchedProducer(producer), streaming)


class WatchedProducer:
    def __init__(self, producer: Any) -> None:
        self.producer = producer

    def pauseProducing(self) -> None:
        PauseWatchingRequest.paused.set()
        self.producer.pauseProducing()

    def resumeProducing(self) -> None:
        self.producer.resumeProducing()

    def stopProducing(self) -> None:
        self.producer.stopProducing()


class Endless:
    """Streams 64 KiB blocks until the client leaves; counts them."""

    def __init__(self) -> None:
        self.sent = 0
        self.ended: list[BaseException | None] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        await start(send, headers=[(b"content-type", b"application/octet-stream")])
        block = b"x" * 65536
        try:
            while self.sent < 1 << 30:
                await send({"type": "http.response.body", "body": block, "more_body": True})
                self.sent += len(block)
        except BaseException as e:
            self.ended.append(e)
            raise


def test_a_slow_client_holds_the_application_back(serve: Any, server: Any) -> None:
    app = Endless()
    PauseWatchingRequest.paused.clear()
    url = serve(Site(mount(app), requestFactory=PauseWatchingRequest))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.settimeout(DEADLINE)
    sock.connect(host_port(url))
    try:
        sock.sendall(b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 200 OK")
        wait_for(PauseWatchingRequest.paused.is_set, "the transport to pause the application")

        async def many_turns() -> None:
            for _ in range(1000):
                await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(many_turns(), server.loop).result(DEADLINE)
        # Paused: a send waits for room. What the kernel's socket buffers still take lets it
        # go on a little (a few MiB on loopback at most), never without bound.
        assert app.sent < 16 * 1024 * 1024
        # Reading lets it go on.
        sent = app.sent
        deadline = time.monotonic() + DEADLINE
        while app.sent <= sent:
            assert sock.recv(65536), "the server closed the connection"
            assert time.monotonic() < deadline, "the application did not go on"
    finally:
        # A reset, so that the server learns of it whether it is reading or writing.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    wait_for(lambda: app.ended, "the application to learn that the client left")
    assert isinstance(app.ended[0], ClientDisconnected)
    assert isinstance(app.ended[0], OSError)


def test_a_waiting_receive_gets_http_disconnect(serve: Any) -> None:
    messages: list[Any] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        messages.append(await receive())
        messages.append(await receive())  # waits: the body is all there

    host, port = host_port(serve(mount(app)))
    with socket.create_connection((host, port), timeout=DEADLINE) as sock:
        sock.sendall(b"POST /app HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        wait_for(lambda: messages, "the body to be received")
    wait_for(lambda: len(messages) == 2, "http.disconnect")
    assert messages == [
        {"type": "http.request", "body": b"hi", "more_body": False},
        {"type": "http.disconnect"},
    ]


def test_an_application_ignoring_the_disconnect_is_cancelled(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    started = threading.Event()
    cancelled = threading.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    root = mount(app)
    root.children[b"app"].disconnectGrace = 0.05
    host, port = host_port(serve(root))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        with socket.create_connection((host, port), timeout=DEADLINE) as sock:
            sock.sendall(b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n")
            assert started.wait(DEADLINE)
        assert cancelled.wait(DEADLINE)
    assert not error_lines(caplog)  # the client left: no error of the application's


# -- breaking the protocol --------------------------------------------------------------------


async def body_first(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.body", "body": b"oops"})


async def two_starts(scope: Scope, receive: Any, send: Any) -> None:
    await start(send)
    await start(send)


async def raises_first(scope: Scope, receive: Any, send: Any) -> None:
    raise ZeroDivisionError("before the start")


async def returns_silently(scope: Scope, receive: Any, send: Any) -> None:
    return None


async def unknown_message(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.bogus"})


async def bad_status(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": "200"})


async def informational_status(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 103})


async def str_headers(scope: Scope, receive: Any, send: Any) -> None:
    await start(send, headers=[("content-type", "text/plain")])


async def split_header(scope: Scope, receive: Any, send: Any) -> None:
    await start(send, headers=[(b"x-evil", b"a\r\nSet-Cookie: b")])


async def str_body(scope: Scope, receive: Any, send: Any) -> None:
    await start(send)
    await send({"type": "http.response.body", "body": "text"})


def sync_function(scope: Scope, receive: Any, send: Any) -> None:
    """Not a coroutine function: an ASGI 2 or WSGI callable given by mistake."""


@pytest.mark.parametrize(
    ("app", "said"),
    [
        (body_first, "sent http.response.body before http.response.start; answered 500"),
        (raises_first, "raised an exception; answered 500"),
        (returns_silently, "returned without sending http.response.start; answered 500"),
        (unknown_message, "sent 'http.response.bogus', which is no ASGI HTTP response message"),
        (bad_status, "sent http.response.start with the status '200'"),
        (informational_status, "sent http.response.start with the status 103"),
        (str_headers, "malformed header"),
        (split_header, "malformed header"),
        (sync_function, "could not be called; answered 500"),
    ],
)
def test_errors_before_the_start_are_a_500_and_one_log_line(
    serve: Any, caplog: pytest.LogCaptureFixture, app: App, said: str
) -> None:
    url = serve(mount(app))
    request = b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /app HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        # The second request shows the connection is still good after the 500.
        answer = raw_request(url, request + last)
        wait_for(lambda: len(error_lines(caplog)) >= 2, "the log lines")
    assert answer.count(b"HTTP/1.1 500 Internal Server Error") == 2
    assert b"Processing Failed" in answer
    assert b"Set-Cookie" not in answer and b"X-Evil" not in answer
    lines = error_lines(caplog)
    assert len(lines) == 2, [r.getMessage() for r in lines]  # one per request
    message = lines[0].getMessage()
    assert message.startswith("ASGI application test-app ") and said in message
    assert "(GET /app)" in message


async def two_starts_after_a_turn(scope: Scope, receive: Any, send: Any) -> None:
    await start(send)
    await asyncio.sleep(0.01)  # the head is out
    await start(send)


async def raises_mid_stream(scope: Scope, receive: Any, send: Any) -> None:
    await start(send)
    await send({"type": "http.response.body", "body": b"part", "more_body": True})
    await asyncio.sleep(0.01)
    raise ZeroDivisionError("mid-stream")


async def returns_mid_stream(scope: Scope, receive: Any, send: Any) -> None:
    await start(send)
    await send({"type": "http.response.body", "body": b"part", "more_body": True})


@pytest.mark.parametrize(
    ("app", "said"),
    [
        (two_starts_after_a_turn, "sent a second http.response.start; response cut short"),
        (raises_mid_stream, "raised an exception; response cut short"),
        (returns_mid_stream, "returned before its response was complete; response cut short"),
    ],
)
def test_errors_after_the_start_cut_the_response(
    serve: Any, caplog: pytest.LogCaptureFixture, app: App, said: str
) -> None:
    url = serve(mount(app))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        answer = raw_request(url, b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: error_lines(caplog), "the log line")
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert not answer.endswith(b"0\r\n\r\n")  # no last chunk: the client sees a cut body
    (line,) = error_lines(caplog)
    assert said in line.getMessage() and "test-app" in line.getMessage()


def test_a_protocol_error_is_raised_into_the_application(serve: Any, client: httpx.Client) -> None:
    caught: list[BaseException] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        try:
            await send({"type": "http.response.body", "body": b"early"})
        except ProtocolError as e:
            caught.append(e)
        try:  # going on after the error gets it again
            await start(send)
        except ProtocolError as e:
            caught.append(e)

    url = serve(mount(app))
    assert client.get(url + "/app").status_code == 500
    wait_for(lambda: len(caught) == 2, "the errors")
    assert "before http.response.start" in str(caught[0]) and caught[1] is caught[0]


def test_a_body_after_the_end_is_an_error_of_its_own(
    serve: Any, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await start(send)
        await send({"type": "http.response.body", "body": b"whole"})
        await send({"type": "http.response.body", "body": b"extra"})

    url = serve(mount(app))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        assert client.get(url + "/app").text == "whole"
        wait_for(lambda: error_lines(caplog), "the log line")
    assert "after its response was complete" in error_lines(caplog)[0].getMessage()


def test_a_never_answering_application_times_out(
    serve: Any, caplog: pytest.LogCaptureFixture, client: httpx.Client
) -> None:
    cancelled = threading.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    url = serve(mount(app, startTimeout=0.2))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        started = time.monotonic()
        response = client.get(url + "/app")
    assert response.status_code == 500
    assert 0.15 < time.monotonic() - started < DEADLINE
    assert cancelled.wait(DEADLINE)
    (line,) = error_lines(caplog)
    assert "did not start its response within 0.2 s" in line.getMessage()


def test_tracebacks_shown_when_the_site_says_so(serve: Any, client: httpx.Client) -> None:
    site = Site(mount(raises_first))
    site.displayTracebacks = True
    response = client.get(serve(site) + "/app")
    assert response.status_code == 500 and "ZeroDivisionError" in response.text


# -- the resource ------------------------------------------------------------------------------


def test_the_resource_interface() -> None:
    resource = ASGIResource(body_first)
    assert verifyObject(IResource, resource)
    assert resource.isLeaf and resource.name == "tests.test_asgi:body_first"
    with pytest.raises(RuntimeError):
        resource.putChild(b"x", Resource())
    with pytest.raises(RuntimeError):
        resource.getChildWithDefault(b"x", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ASGIResource(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ASGIResource(body_first, lifespan="sometimes")


def test_resource_from_name(serve: Any, client: httpx.Client) -> None:
    resource = resource_from_name("tests.test_asgi:body_first")
    assert resource.app is body_first and resource.name == "tests.test_asgi:body_first"
    assert resource_from_name("tests.test_asgi.body_first").app is body_first
    for name, error in [
        ("nocolon", ValueError),
        ("tests.test_asgi:nothing", ValueError),
        ("tests.no_such_module:app", ImportError),
        ("tests.test_asgi:BODY_CHUNK", TypeError),
    ]:
        with pytest.raises(error):
            resource_from_name(name)
