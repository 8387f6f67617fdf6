"""The WSGI container over real sockets: PEP 3333 (checked by wsgiref's validator), threads,
backpressure, errors, and real Flask (and Bottle) applications."""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import logging
import socket
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from wsgiref.validate import validator

import httpx
import pytest
from zope.interface.verify import verifyObject

import treadle
from treadle.internet import reactor
from treadle.internet.error import ConnectionLost
from treadle.logger import globalLogPublisher
from treadle.python.failure import Failure
from treadle.python.threadable import getThreadID
from treadle.web import wsgi
from treadle.web.resource import IResource, Resource
from treadle.web.server import Request, Site
from treadle.web.test.requesthelper import DummyChannel
from treadle.web.wsgi import WSGIResource, resource_from_name

from .conftest import DEADLINE, Hello, host_port, raw_request, wait_for

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], None]]


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    # Requested before ``serve`` in each test, so it is shut down after the server's loop has
    # stopped: a worker still waiting on that loop then notices and leaves.
    executor = ThreadPoolExecutor(4, thread_name_prefix="test-wsgi")
    try:
        yield executor
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    # One client for the module (creating one costs an SSL context); "Connection: close"
    # leaves no pooled connection to a server that a test has already stopped.
    with httpx.Client(timeout=10, headers={"Connection": "close"}) as shared:
        yield shared


@pytest.fixture
def shared_pool() -> Iterator[None]:
    """For tests that use the module's shared pool: shut it down afterwards."""
    try:
        yield
    finally:
        used = wsgi._default_pool
        wsgi._default_pool = None
        if used is not None:
            used.shutdown(wait=True, cancel_futures=True)


def mount(pool: Any, app: Any, *, at: bytes = b"app", check: bool = True) -> Resource:
    root = Resource()
    root.putChild(at, WSGIResource(reactor, pool, validator(app) if check else app))
    root.putChild(b"hello", Hello())
    return root


# -- applications ------------------------------------------------------------------------------


def hello_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, ", b"WSGI"]


NOT_CALLABLE = 42


def environ_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    seen = {
        key: value
        for key, value in environ.items()
        if isinstance(value, str | bool | tuple) or key.startswith("HTTP_")
    }
    seen["body"] = environ["wsgi.input"].read(length).decode("latin-1")
    body = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


class Tracked:
    """An iterable result that records how it was used and whether it was closed."""

    def __init__(self, blocks: Iterable[bytes | str], fail_at: int = -1) -> None:
        self.blocks = list(blocks)
        self.fail_at = fail_at
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[Any]:
        for i, block in enumerate(self.blocks):
            if i == self.fail_at:
                raise ValueError("the application broke mid-body")
            yield block

    def close(self) -> None:
        self.closed.set()


# -- the environ -------------------------------------------------------------------------------


def test_environ_follows_pep_3333(pool: Any, serve: Any, client: httpx.Client) -> None:
    url = serve(mount(pool, environ_app))
    _, port = host_port(url)
    response = client.get(
        url + "/app/caf%C3%A9/x?q=1&r=%20",
        headers=[
            ("X-Multi", "a"),
            ("X-Multi", "b"),
            ("X_Multi", "spoofed"),
            ("Cookie", "a=1"),
            ("Cookie", "b=2"),
        ],
        timeout=10,
    )
    assert response.status_code == 200
    env = response.json()
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == "/app"
    assert env["PATH_INFO"] == "/café/x".encode().decode("latin-1")
    assert env["QUERY_STRING"] == "q=1&r=%20"
    assert env["CONTENT_TYPE"] == ""
    assert env["CONTENT_LENGTH"] == ""
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"].isdigit()
    assert env["HTTP_HOST"] == f"127.0.0.1:{port}"
    assert env["HTTP_X_MULTI"] == "a,b"  # as Twisted joins; the underscore twin left out
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env


@pytest.mark.parametrize(
    ("at", "path", "script", "path_info"),
    [
        (None, "/", "", "/"),
        (None, "/x/y", "", "/x/y"),
        (b"", "/", "", "/"),
        (b"app", "/app", "/app", ""),
        (b"app", "/app/", "/app", "/"),
    ],
)
def test_script_name_and_path_info(
    pool: Any,
    serve: Any,
    at: bytes | None,
    path: str,
    script: str,
    path_info: str,
    client: httpx.Client,
) -> None:
    resource = WSGIResource(reactor, pool, validator(environ_app))
    if at is None:
        url = serve(resource)
    else:
        root = Resource()
        root.putChild(at, resource)
        url = serve(root)
    env = client.get(url + path).json()
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == (script, path_info)


def test_request_body_reaches_wsgi_input(pool: Any, serve: Any, client: httpx.Client) -> None:
    url = serve(mount(pool, environ_app))
    env = client.post(
        url + "/app", content=b"a=1&b=2", headers={"Content-Type": "text/plain"}
    ).json()
    assert (env["CONTENT_TYPE"], env["CONTENT_LENGTH"], env["body"]) == (
        "text/plain",
        "7",
        "a=1&b=2",
    )

    def chunks() -> Iterator[bytes]:
        yield b"chunked "
        yield b"body"

    env = client.post(url + "/app", content=chunks()).json()  # no Content-Length
    assert (env["CONTENT_LENGTH"], env["body"]) == ("12", "chunked body")


# -- responses ---------------------------------------------------------------------------------


def streaming_app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    write = start_response("201 Created", [("Content-Type", "text/plain"), ("X-App", "yes")])
    write(b"written; ")
    for i in range(3):
        yield b""  # empty blocks are allowed and send nothing
        yield b"block %d; " % i


def test_streamed_body_with_write_callable(pool: Any, serve: Any, client: httpx.Client) -> None:
    url = serve(mount(pool, streaming_app))
    response = client.get(url + "/app")
    assert response.status_code == 201
    assert response.headers["x-app"] == "yes"
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.text == "written; block 0; block 1; block 2; "


def test_list_result_goes_out_with_a_content_length(
    pool: Any, serve: Any, client: httpx.Client
) -> None:
    url = serve(mount(pool, hello_app, check=False))  # the validator hides the list
    response = client.get(url + "/app")
    assert response.text == "Hello, WSGI"
    assert response.headers["content-length"] == "11"


def test_head_sends_headers_only(pool: Any, serve: Any) -> None:
    url = serve(mount(pool, hello_app))
    answer = raw_request(url, b"HEAD /app HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Type: text/plain" in head
    assert body == b""


def test_keep_alive_across_wsgi_responses(pool: Any, serve: Any) -> None:
    root = mount(pool, streaming_app)
    root.putChild(b"list", WSGIResource(reactor, pool, hello_app))
    url = serve(root)
    address = host_port(url)
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        for path, body in [
            ("/app", b"written; block 0; block 1; block 2; "),
            ("/list", b"Hello, WSGI"),
        ] * 2:
            connection.request("GET", path)
            assert connection.getresponse().read() == body
    finally:
        connection.close()


# -- errors ------------------------------------------------------------------------------------


def failing_before(environ: Environ, start_response: StartResponse) -> list[bytes]:
    raise ZeroDivisionError("before the headers")


def test_error_before_headers_is_a_logged_500(
    pool: Any, serve: Any, caplog: pytest.LogCaptureFixture, client: httpx.Client
) -> None:
    url = serve(mount(pool, failing_before))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        response = client.get(url + "/app")
    assert response.status_code == 500
    assert "Processing Failed" in response.text
    assert "ZeroDivisionError" not in response.text  # no traceback unless asked for
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


def test_error_after_headers_aborts_the_connection(
    pool: Any, serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    result = Tracked([b"first", b"second"], fail_at=1)

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return result

    url = serve(mount(pool, app, check=False))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        answer = raw_request(url, b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert b"first" in answer
    assert not answer.endswith(b"0\r\n\r\n")  # never properly terminated
    assert result.closed.wait(5)
    assert any(r.exc_info and r.exc_info[0] is ValueError for r in caplog.records)


def exc_info_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise KeyError("missing")
    except KeyError:
        start_response("503 Sorry", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"recovered"]


def test_exc_info_before_headers_replaces_the_status(
    pool: Any, serve: Any, client: httpx.Client
) -> None:
    url = serve(mount(pool, exc_info_app))
    response = client.get(url + "/app")
    assert (response.status_code, response.reason_phrase, response.text) == (
        503,
        "Sorry",
        "recovered",
    )


def exc_info_late_app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"started"
    try:
        raise KeyError("late")
    except KeyError:
        start_response("500 Error", [("Content-Type", "text/plain")], sys.exc_info())
    yield b"never"


def test_exc_info_after_headers_is_reraised(
    pool: Any, serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = serve(mount(pool, exc_info_late_app))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        answer = raw_request(url, b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert b"never" not in answer
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


def _bad(call: Callable[[StartResponse], Any]) -> Callable[[Environ, StartResponse], Any]:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        return call(start_response)

    return app


@pytest.mark.parametrize(
    ("app", "error"),
    [
        (_bad(lambda sr: sr(b"200 OK", [])), TypeError),
        (_bad(lambda sr: sr("200OK", [])), ValueError),
        (_bad(lambda sr: sr("99 Low", [])), ValueError),
        (_bad(lambda sr: sr("200 OK", {"a": "b"})), TypeError),
        (_bad(lambda sr: sr("200 OK", [("A", "b", "c")])), TypeError),
        (_bad(lambda sr: sr("200 OK", [(b"A", "b")])), TypeError),
        (_bad(lambda sr: sr("200 OK", [("Bad Name", "b")])), ValueError),
        (_bad(lambda sr: sr("200 OK", [("X", "a\r\nInjected: 1")])), ValueError),
        (_bad(lambda sr: sr("200 OK", [("X", "snowman \u2603")])), ValueError),
        (_bad(lambda sr: sr("200 OK", [("Connection", "close")])), ValueError),
        (_bad(lambda sr: sr("200 OK", [("Content-Length", "ten")])), ValueError),
        (_bad(lambda sr: (sr("200 OK", [])(b"x"), [])[1]), type(None)),
        (_bad(lambda sr: [b"no start_response"]), RuntimeError),
        (_bad(lambda sr: iter([b"no start_response"])), RuntimeError),
        (_bad(lambda sr: (sr("200 OK", []), ["text"])[1]), TypeError),
        (_bad(lambda sr: (sr("200 OK", []), iter(["text"]))[1]), TypeError),
        (_bad(lambda sr: sr("200 OK", [])("text")), TypeError),
    ],
)
def test_pep_3333_violations_are_500s(
    pool: Any,
    serve: Any,
    caplog: pytest.LogCaptureFixture,
    app: Any,
    error: type,
    client: httpx.Client,
) -> None:
    url = serve(mount(pool, app, check=False))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        response = client.get(url + "/app")
    if error is type(None):  # the one valid case of the table: write() then an empty list
        assert (response.status_code, response.text) == (200, "x")
        return
    assert response.status_code == 500
    assert any(r.exc_info and r.exc_info[0] is error for r in caplog.records)


def test_close_is_called_on_success_and_on_error(
    pool: Any, serve: Any, client: httpx.Client
) -> None:
    results = {"ok": Tracked([b"a", b"b"]), "broken": Tracked([b"a"], fail_at=0)}

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return results[environ["PATH_INFO"][1:]]

    url = serve(mount(pool, app, check=False))
    assert client.get(url + "/app/ok").text == "ab"
    assert client.get(url + "/app/broken").status_code == 500
    assert results["ok"].closed.wait(5)
    assert results["broken"].closed.wait(5)


def test_content_length_is_enforced(pool: Any, serve: Any) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        declared = environ["PATH_INFO"][1:]
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", declared)])
        yield b"12345"
        yield b"67890"

    url = serve(mount(pool, app, check=False))
    address = host_port(url)
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request("GET", "/app/3")
        assert connection.getresponse().read() == b"123"  # the excess was cut
        connection.request("GET", "/app/10")  # the same connection is still in step
        assert connection.getresponse().read() == b"1234567890"
        connection.request("GET", "/app/15")
        with pytest.raises(http.client.IncompleteRead):
            connection.getresponse().read()  # short: closed, never left hanging
    finally:
        connection.close()


def test_wsgi_errors_go_to_the_error_log(
    pool: Any, serve: Any, caplog: pytest.LogCaptureFixture, client: httpx.Client
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        errors = environ["wsgi.errors"]
        errors.write("first line\nsecond ")
        errors.writelines(["line\n", "unterminated"])
        errors.flush()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    url = serve(mount(pool, app))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        assert client.get(url + "/app").text == "ok"
    messages = [r.getMessage() for r in caplog.records if r.name == "treadle.error"]
    assert messages == [
        "WSGI application (GET /app): first line",
        "WSGI application (GET /app): second line",
        "WSGI application (GET /app): unterminated",
    ]


# -- threads, backpressure, disconnects --------------------------------------------------------


def test_slow_applications_run_in_parallel_off_the_loop(
    pool: Any, serve: Any, client: httpx.Client
) -> None:
    # The barrier opens only when four applications are inside it at the same time: one
    # after the other, it would break after DEADLINE instead. Then all four stay blocked
    # until the test lets them go, so /hello can only be answered by a free loop.
    together = threading.Barrier(4, timeout=DEADLINE)
    all_running = threading.Semaphore(0)
    release = threading.Event()

    def slow(environ: Environ, start_response: StartResponse) -> list[bytes]:
        together.wait()
        all_running.release()
        release.wait(DEADLINE)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slow"]

    url = serve(mount(pool, slow))
    answers: list[str] = []
    clients = [
        threading.Thread(target=lambda: answers.append(client.get(url + "/app").text))
        for _ in range(4)
    ]
    for thread in clients:
        thread.start()
    try:
        for _ in range(4):
            assert all_running.acquire(timeout=DEADLINE), "four applications never ran at once"
        assert not release.is_set()
        assert client.get(url + "/hello").text == "Hello, world!"  # while all four are blocked
    finally:
        release.set()
        for thread in clients:
            thread.join(DEADLINE)
    assert answers == ["slow"] * 4


BLOCK = b"x" * 65536


class Endless:
    """A (practically) endless body that counts what was taken from it."""

    def __init__(self) -> None:
        self.produced = 0
        self.closed = threading.Event()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return self._body()

    def _body(self) -> Iterator[bytes]:
        try:
            for _ in range(100_000):  # 6.5 GB if nobody pushed back
                self.produced += len(BLOCK)
                yield BLOCK
        finally:
            self.closed.set()


class PauseWatchingRequest(Request):
    """Records, through the public producer API, when the transport pauses the producer."""

    paused = threading.Event()
    produced_at_pause: list[int] = []
    app: Endless | None = None

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pause = producer.pauseProducing
        watched = type(self)

        def pause_and_record() -> None:
            pause()
            if watched.app is not None and not watched.paused.is_set():
                watched.produced_at_pause.append(watched.app.produced)
                watched.paused.set()

        producer.pauseProducing = pause_and_record
        super().registerProducer(producer, streaming)


def test_slow_client_holds_the_application_back_and_leaving_stops_it(
    pool: Any, serve: Any, server: Any
) -> None:
    app = Endless()
    PauseWatchingRequest.app = app
    PauseWatchingRequest.paused.clear()
    PauseWatchingRequest.produced_at_pause.clear()
    site = Site(mount(pool, app), requestFactory=PauseWatchingRequest)
    url = serve(site)
    address = host_port(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.settimeout(10)
    sock.connect(address)
    try:
        sock.sendall(b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 200 OK")
        # The client reads nothing more: the transport pauses the application, which then
        # takes at most the blocks already on their way, however long it is left alone (a
        # thousand turns of the server's loop, each polling the sockets, here).
        wait_for(PauseWatchingRequest.paused.is_set, "the transport to pause the application")

        async def many_turns() -> None:
            for _ in range(1000):
                await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(many_turns(), server.loop).result(DEADLINE)
        at_pause = PauseWatchingRequest.produced_at_pause[0]
        assert 0 < app.produced <= at_pause + 2 * len(BLOCK)
        assert app.produced < 16 * 1024 * 1024
    finally:
        sock.close()
    assert app.closed.wait(DEADLINE), "the iteration did not stop when the client left"
    assert app.produced < 16 * 1024 * 1024


def test_a_request_whose_client_left_while_queued_is_never_run(serve: Any) -> None:
    gate = threading.Event()
    calls: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        calls.append(environ["PATH_INFO"])
        gate.wait(5)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    with ThreadPoolExecutor(1) as one_thread:
        site = Site(mount(one_thread, app))
        url = serve(site)
        address = host_port(url)
        first = socket.create_connection(address, timeout=10)
        try:
            first.sendall(b"GET /app/first HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            wait_for(lambda: calls == ["/first"], what="the first request to run")
            with socket.create_connection(address, timeout=10) as second:
                second.sendall(b"GET /app/second HTTP/1.1\r\nHost: x\r\n\r\n")
                wait_for(lambda: len(site.connections) == 2, what="both connections")
            wait_for(lambda: len(site.connections) == 1, what="the server to see the second leave")
            gate.set()
            answer = b""
            while chunk := first.recv(65536):
                answer += chunk
            assert b"done" in answer
        finally:
            first.close()
    assert calls == ["/first"]


class Watched(WSGIResource):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.requests: weakref.WeakSet[Request] = weakref.WeakSet()

    def render(self, request: Request) -> int:
        self.requests.add(request)
        return super().render(request)


def test_requests_are_freed_without_the_garbage_collector(
    pool: Any, serve: Any, server: Any
) -> None:
    gate = threading.Event()
    closed = threading.Event()

    def held(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            yield b"first"
            gate.wait(5)
            yield b"never delivered"
        finally:
            closed.set()

    watched = [Watched(reactor, pool, hello_app), Watched(reactor, pool, held)]
    root = Resource()
    root.putChild(b"hello", watched[0])
    root.putChild(b"held", watched[1])
    site = Site(root)
    url = serve(site)
    address = host_port(url)
    gc.collect()
    gc.disable()  # a reference cycle would now keep a request alive
    try:
        for path in (b"/hello", b"/held"):
            with socket.create_connection(address, timeout=10) as sock:
                sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        wait_for(lambda: not site.connections, what="the client of /held to leave mid-body")
        gate.set()
        assert closed.wait(5)
        wait_for(
            lambda: server.call(lambda: sum(len(w.requests) for w in watched)) == 0,
            what="every request to be freed",
        )
    finally:
        gc.enable()


def test_thread_pool_shapes(serve: Any, shared_pool: None, client: httpx.Client) -> None:
    class TwistedStylePool:
        def __init__(self) -> None:
            self.calls = 0
            self.executor = ThreadPoolExecutor(1)

        def callInThread(self, f: Callable[..., object], *args: Any) -> None:
            self.calls += 1
            self.executor.submit(f, *args)

    twisted_pool = TwistedStylePool()
    try:
        root = Resource()
        root.putChild(b"twisted", WSGIResource(reactor, twisted_pool, validator(hello_app)))
        root.putChild(b"shared", WSGIResource(reactor, None, validator(hello_app)))
        url = serve(root)
        assert client.get(url + "/twisted").text == "Hello, WSGI"
        assert twisted_pool.calls == 1
        assert client.get(url + "/shared").text == "Hello, WSGI"
        assert wsgi._default_pool is not None
        assert wsgi._default_pool._max_workers == wsgi.DEFAULT_POOL_SIZE
    finally:
        twisted_pool.executor.shutdown(wait=True)


def test_wsgi_resource_has_no_children() -> None:
    resource = WSGIResource(reactor, None, hello_app)
    assert resource.isLeaf
    with pytest.raises(RuntimeError):
        resource.putChild(b"x", Resource())
    with pytest.raises(RuntimeError):
        resource.getChildWithDefault(b"x", None)  # type: ignore[arg-type]


# -- loading an application by name ------------------------------------------------------------


@pytest.mark.parametrize("name", ["tests.test_wsgi:hello_app", "tests.test_wsgi.hello_app"])
def test_resource_from_name(serve: Any, shared_pool: None, name: str, client: httpx.Client) -> None:
    resource = resource_from_name(name)
    assert isinstance(resource, WSGIResource)
    url = serve(resource)
    assert client.get(url + "/").text == "Hello, WSGI"


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("hello_app", ValueError),
        ("tests.test_wsgi:", ValueError),
        (":hello_app", ValueError),
        ("tests.test_wsgi:no_such_app", ValueError),
        ("tests.no_such_module_here:app", ImportError),
        ("tests.test_wsgi:NOT_CALLABLE", TypeError),
    ],
)
def test_resource_from_name_errors(name: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        resource_from_name(name)


# -- real frameworks ---------------------------------------------------------------------------


def make_flask_app() -> Any:
    flask = pytest.importorskip("flask")
    app = flask.Flask("treadle_flask_test")

    @app.get("/json")
    def as_json() -> Any:
        return flask.jsonify(ok=True, items=[1, 2, 3])

    @app.post("/form")
    def form() -> str:
        return f"hello {flask.request.form['name']}, {len(flask.request.files)} files"

    @app.get("/go")
    def go() -> Any:
        return flask.redirect(flask.url_for("as_json"))

    @app.get("/stream")
    def stream() -> Any:
        def parts() -> Iterator[str]:
            for i in range(5):
                yield f"part {i}\n"

        return flask.Response(parts(), mimetype="text/plain")

    @app.get("/args")
    def args() -> Any:
        return flask.jsonify(
            {name: flask.request.args.getlist(name) for name in flask.request.args}
        )

    return app


def test_flask_application(pool: Any, serve: Any) -> None:
    root = Resource()
    root.putChild(b"flask", WSGIResource(reactor, pool, validator(make_flask_app())))
    url = serve(root)
    with httpx.Client(base_url=url + "/flask", timeout=10) as client:
        response = client.get("/json")
        assert response.json() == {"ok": True, "items": [1, 2, 3]}
        assert response.headers["content-type"] == "application/json"

        response = client.post("/form", data={"name": "treadle"})
        assert response.text == "hello treadle, 0 files"

        response = client.post("/form", data={"name": "up"}, files={"f": ("a.txt", b"data")})
        assert response.text == "hello up, 1 files"

        response = client.get("/nope")
        assert response.status_code == 404
        assert "Not Found" in response.text

        response = client.get("/go")
        assert response.status_code == 302
        assert response.headers["location"].endswith("/flask/json")  # SCRIPT_NAME honoured
        assert client.get("/go", follow_redirects=True).json()["ok"] is True

        response = client.get("/stream")
        assert response.text == "".join(f"part {i}\n" for i in range(5))
        assert response.headers["transfer-encoding"] == "chunked"

        response = client.get("/args?a=1&a=2&b=caf%C3%A9")
        assert response.json() == {"a": ["1", "2"], "b": ["café"]}


def test_bottle_application(pool: Any, serve: Any, client: httpx.Client) -> None:
    bottle = pytest.importorskip("bottle")
    app = bottle.Bottle()

    @app.get("/hello/<name>")
    def hello(name: str) -> str:
        return f"hello {name} {bottle.request.query.get('x', '')}"

    @app.post("/echo")
    def echo() -> dict[str, str]:
        return {"got": bottle.request.forms.get("v")}

    url = serve(mount(pool, app))
    assert client.get(url + "/app/hello/world?x=1").text == "hello world 1"
    assert client.post(url + "/app/echo", data={"v": "w"}).json() == {"got": "w"}
    assert client.get(url + "/app/missing").status_code == 404


def _restarted(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("500 Oops", [("Content-Type", "text/html")])
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"second"]


def test_second_start_response_replaces_the_first(
    pool: Any, serve: Any, client: httpx.Client
) -> None:
    # As Twisted's WSGIResource: a second call before anything was sent wins (PEP 3333 calls
    # it an error, Twisted accepts it).
    response = client.get(serve(mount(pool, _restarted, check=False)) + "/app")
    assert (response.status_code, response.text) == (201, "second")
    assert response.headers["content-type"] == "text/plain"


def _untyped(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [])
    return [b"x"]


def test_no_content_type_is_added(pool: Any, serve: Any, client: httpx.Client) -> None:
    # Twisted sends none when the application names none; treadle adds no text/html.
    response = client.get(serve(mount(pool, _untyped, check=False)) + "/app")
    assert response.text == "x"
    assert "content-type" not in response.headers


# -- Twisted's behaviour where a program sees it -----------------------------------------------


class SyncPool:
    """Twisted's test-suite habit: a pool that runs the work at once, in the caller's thread."""

    def callInThread(self, func: Callable[..., object], *args: Any, **kw: Any) -> None:
        func(*args, **kw)


class SyncReactor:
    """A reactor of the program's own: ``callFromThread`` runs the call at once, and counts."""

    def __init__(self) -> None:
        self.calls = 0

    def callFromThread(self, f: Callable[..., object], *args: Any, **kw: Any) -> None:
        self.calls += 1
        f(*args, **kw)


def by_hand(
    app: Any,
    *,
    headers: Iterable[tuple[bytes, bytes | str]] = (),
    request_class: type[Request] = Request,
    prepare: Callable[[Request], None] = lambda request: None,
) -> tuple[Request, DummyChannel, SyncReactor]:
    """Drive a request through ``WSGIResource(SyncReactor(), SyncPool(), app)`` by hand."""
    wsgi_reactor = SyncReactor()
    channel: Any = DummyChannel()
    channel.site = Site(WSGIResource(wsgi_reactor, SyncPool(), app))
    request = request_class(channel, False)
    for name, value in headers:
        request.requestHeaders.addRawHeader(name, value)
    request.gotLength(0)
    prepare(request)
    request.requestReceived(b"GET", b"/", b"HTTP/1.1")
    return request, channel, wsgi_reactor


def test_wsgi_resource_provides_iresource() -> None:
    assert verifyObject(IResource, WSGIResource(reactor, None, hello_app))


def test_a_reactor_of_the_programs_own_is_used_as_given() -> None:
    request, channel, wsgi_reactor = by_hand(hello_app)
    # Everything happened during requestReceived: the pool and the reactor ran it at once.
    assert request.finished
    assert wsgi_reactor.calls > 0
    written = channel.transport.written.getvalue()
    assert written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert written.endswith(b"\r\n\r\nHello, WSGI")


def test_a_synchronous_pool_on_the_serving_loop_does_not_deadlock(
    serve: Any, client: httpx.Client
) -> None:
    # treadle's reactor, and a pool that runs the application on the loop's own thread: the
    # blocks cannot wait for that loop to take them, so they are written at once.
    url = serve(mount(SyncPool(), streaming_app))
    assert client.get(url + "/app").text == "written; block 0; block 1; block 2; "


def test_environ_of_a_request_driven_by_hand() -> None:
    seen: list[Environ] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(environ)
        start_response("200 OK", [])
        return []

    def with_str_hostname(request: Request) -> None:
        request.getRequestHostname = lambda: "host.example.com"  # type: ignore[method-assign,assignment,return-value]

    by_hand(
        app,
        headers=[(b"Content-Length", "1234"), (b"X-Multi", b"a"), (b"X-Multi", b"b")],
        prepare=with_str_hostname,
    )
    environ = seen[0]
    # The request's own Content-Length field, even with no body behind it (as Twisted).
    assert environ["CONTENT_LENGTH"] == "1234"
    assert environ["SERVER_NAME"] == "host.example.com"
    assert environ["HTTP_X_MULTI"] == "a,b"


def test_wsgi_errors_events_are_shaped_as_twisteds(
    pool: Any, serve: Any, client: httpx.Client
) -> None:
    events: list[dict[str, Any]] = []
    type_errors: list[str] = []

    def observer(event: dict[str, Any]) -> None:
        if event.get("system") == "wsgi":
            events.append(event)

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        errors = environ["wsgi.errors"]
        errors.write("some message\n")
        errors.writelines(["another\n", "message\n"])  # one event, as Twisted's
        errors.flush()
        try:
            errors.write(b"fred")
        except TypeError as exc:
            type_errors.append(str(exc))
        start_response("200 OK", [])
        return [b"ok"]

    globalLogPublisher.addObserver(observer)
    try:
        assert client.get(serve(mount(pool, app, check=False)) + "/app").text == "ok"
    finally:
        globalLogPublisher.removeObserver(observer)
    assert [(e["message"], e["isError"]) for e in events] == [
        (("some message\n",), True),
        (("another\nmessage\n",), True),
    ]
    assert type_errors == ["write() argument must be str, not b'fred' (bytes)"]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda sr: sr(b"200 OK", []), TypeError, "status must be str, not b'200 OK' (bytes)"),
        (
            lambda sr: sr("200 OK", 42),
            TypeError,
            "headers must be a list, not 42 (int)",
        ),
        (
            lambda sr: sr("200 OK", [42]),
            TypeError,
            "header must be a (str, str) tuple, not 42 (int)",
        ),
        (
            lambda sr: sr("200 OK", [("too", "many", "cooks")]),
            TypeError,
            "header must be a (str, str) tuple, not ('too', 'many', 'cooks')",
        ),
        (
            lambda sr: sr("200 OK", [(b"key", "value")]),
            TypeError,
            "header must be (str, str) tuple, not (b'key', 'value')",
        ),
        (
            lambda sr: sr("200 OK", [])("bogus"),
            TypeError,
            "Can only write bytes to a transport, not 'bogus'",
        ),
    ],
)
def test_start_response_and_write_refuse_as_twisted(
    call: Callable[[StartResponse], object], error: type, message: str
) -> None:
    raised: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            call(start_response)
        except BaseException as exc:
            raised.append(exc)
        start_response("200 OK", [])
        return []

    by_hand(app)
    assert len(raised) == 1
    assert type(raised[0]) is error
    assert str(raised[0]) == message


@pytest.mark.parametrize(
    ("headers", "warning"),
    [
        ((("X-Seq", "tuple"),), "headers should be a list, not (('X-Seq', 'tuple'),) (tuple)"),
        (
            [["X-Seq", "tuple"]],
            "header should be a (str, str) tuple, not ['X-Seq', 'tuple'] (list)",
        ),
    ],
)
def test_sequences_that_are_not_lists_or_tuples_are_accepted_with_a_warning(
    headers: Any, warning: str
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", headers)
        return [b"x"]

    with pytest.warns(RuntimeWarning) as caught:
        _, channel, _ = by_hand(app)
    assert [str(w.message) for w in caught] == [warning]
    assert b"\r\nX-Seq: tuple\r\n" in channel.transport.written.getvalue()


def test_server_and_date_are_the_servers(pool: Any, serve: Any, client: httpx.Client) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Server", "app/1"), ("dATE", "yesterday"), ("X-Kept", "y")])
        return [b"x"]

    response = client.get(serve(mount(pool, app, check=False)) + "/app")
    assert response.headers.get_list("server") == ["treadle/" + treadle.__version__]
    assert response.headers["date"].endswith(" GMT")
    assert response.headers["x-kept"] == "y"


class CloseRecorder:
    """A streamed result whose ``close`` records whether the response had finished."""

    def __init__(self, request_finished: Callable[[], bool], fail: bool = False) -> None:
        self.request_finished = request_finished
        self.fail = fail
        self.finished_at_close: list[bool] = []

    def __iter__(self) -> Iterator[bytes]:
        yield b"foo"

    def close(self) -> None:
        self.finished_at_close.append(self.request_finished())
        if self.fail:
            raise RuntimeError("close() broke")


def test_close_is_called_before_the_response_ends() -> None:
    requests: list[Request] = []
    results: list[CloseRecorder] = []

    def app(environ: Environ, start_response: StartResponse) -> CloseRecorder:
        start_response("200 OK", [])
        results.append(CloseRecorder(lambda: requests[0].finished))
        return results[0]

    def keep(request: Request) -> None:
        requests.append(request)

    request, _, _ = by_hand(app, prepare=keep)
    assert request.finished
    assert results[0].finished_at_close == [False]


def test_close_that_raises_cuts_the_response_short(
    pool: Any, serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> CloseRecorder:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return CloseRecorder(lambda: False, fail=True)

    url = serve(mount(pool, app, check=False))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        answer = raw_request(url, b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert b"\r\n3\r\nfoo\r\n" in answer
    assert not answer.endswith(b"0\r\n\r\n")  # no last chunk: the client sees it incomplete
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


def test_connection_lost_by_hand_stops_the_iteration() -> None:
    class Unreliable(Request):
        def write(self, data: bytes | str) -> None:
            self.connectionLost(Failure(ConnectionLost("gone")))

    resumed: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"foo"
        resumed.append(True)
        yield b"bar"

    lost: list[Failure] = []

    def watch(request: Request) -> None:
        request.notifyFinish().addErrback(lost.append)

    by_hand(app, request_class=Unreliable, prepare=watch)
    assert resumed == []
    assert len(lost) == 1 and lost[0].check(ConnectionLost)


def test_the_application_runs_off_the_loop_and_writes_on_it(
    pool: Any, serve: Any, server: Any, client: httpx.Client
) -> None:
    threads: dict[str, set[int]] = {"application": set(), "write": set()}

    class Watched(Request):
        def write(self, data: bytes | str) -> None:
            threads["write"].add(getThreadID())
            super().write(data)

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        threads["application"].add(getThreadID())
        write = start_response("200 OK", [])
        write(b"a")
        threads["application"].add(getThreadID())
        yield b"b"

    url = serve(Site(mount(pool, app, check=False), requestFactory=Watched))
    assert client.get(url + "/app").text == "ab"
    loop_thread = server.call(getThreadID)
    assert threads["write"] == {loop_thread}
    assert len(threads["application"]) == 1
    assert loop_thread not in threads["application"]
