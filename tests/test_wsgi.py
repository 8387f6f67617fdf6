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

from treadle.internet import reactor
from treadle.web import wsgi
from treadle.web.resource import Resource
from treadle.web.server import Request, Site
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
    assert env["HTTP_X_MULTI"] == "a, b"  # the underscore twin was left out
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
