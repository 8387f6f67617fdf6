"""ASGIResource's ``send()`` and the call around it, over real sockets: what ``send`` returns,
the task an application runs in, a response that fails before its head went out, header
fields set before the application ran, the Content-Length checks, and a start timeout
changed on a resource already serving."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections import UserDict
from typing import Any

import httpx
import pytest

from treadle.web.asgi import ASGIResource
from treadle.web.resource import Resource
from treadle.web.server import Request, Site
from treadle.web.testing import StringTransport

from .conftest import DEADLINE, raw_request, wait_for
from .test_asgi import Scope, error_lines, mount, scope_echo, start

GET = b"GET /app HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


@pytest.fixture(scope="module")
def client() -> Any:
    with httpx.Client(timeout=DEADLINE, headers={"Connection": "close"}) as shared:
        yield shared


def test_send_returns_an_awaitable_that_asyncio_accepts(serve: Any, client: httpx.Client) -> None:
    """``send`` is an awaitable callable, no coroutine function: what it returns may be
    awaited later, wrapped by ensure_future or given to wait_for."""
    seen: list[Any] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append(inspect.iscoroutinefunction(send))
        started = send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.wait_for(started, DEADLINE)
        part = send({"type": "http.response.body", "body": b"a", "more_body": True})
        seen.append(inspect.isawaitable(part))
        await asyncio.ensure_future(part)
        await send({"type": "http.response.body", "body": b"b"})

    assert client.get(serve(mount(app)) + "/app").text == "ab"
    assert seen == [False, True]


def test_the_call_runs_in_a_task_named_after_the_application(
    serve: Any, client: httpx.Client
) -> None:
    names: list[str] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        names.append(task.get_name())
        await start(send)
        await send({"type": "http.response.body", "body": b"ok"})

    assert client.get(serve(mount(app)) + "/app").text == "ok"
    assert names == ["ASGI test-app"]


async def starts_then_raises(scope: Scope, receive: Any, send: Any) -> None:
    await start(send)
    raise ZeroDivisionError("after the start, in the same step")


async def whole_body_too_short(scope: Scope, receive: Any, send: Any) -> None:
    await start(send, headers=[(b"content-length", b"10")])
    await send({"type": "http.response.body", "body": b"short"})


@pytest.mark.parametrize(
    ("app", "said"),
    [
        (starts_then_raises, "raised an exception; answered 500"),
        (whole_body_too_short, "sent 5 bytes less than its Content-Length; answered 500"),
    ],
)
def test_a_failure_before_the_head_went_out_is_a_500(
    serve: Any, caplog: pytest.LogCaptureFixture, app: Any, said: str
) -> None:
    """The head of a started response leaves with its body or at the next turn of the loop:
    until then a failure can still be answered with a 500 page."""
    url = serve(mount(app))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        answer = raw_request(url, GET)
        wait_for(lambda: error_lines(caplog), "the log line")
    assert answer.startswith(b"HTTP/1.1 500 Internal Server Error")
    assert b"Processing Failed" in answer
    (line,) = error_lines(caplog)
    assert said in line.getMessage() and "test-app" in line.getMessage()


def test_header_fields_set_before_the_application_ran_are_kept(serve: Any) -> None:
    class Wrapper(Resource):
        isLeaf = True

        def __init__(self, inner: ASGIResource) -> None:
            super().__init__()
            self.inner = inner

        def render(self, request: Request) -> Any:
            request.setHeader(b"x-wrapper", b"kept")
            return self.inner.render(request)

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await start(send, headers=[(b"content-type", b"text/plain"), (b"x-app", b"too")])
        await send({"type": "http.response.body", "body": b"wrapped"})

    root = Resource()
    root.putChild(b"app", Wrapper(ASGIResource(app, name="test-app", lifespan="off")))
    answer = raw_request(serve(root), GET)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"\r\nX-Wrapper: kept" in head and b"\r\nX-App: too" in head
    assert body == b"wrapped"


@pytest.mark.parametrize(
    ("lengths", "fine"),
    [
        ([b"5", b"5"], True),  # repeated, agreeing (RFC 9110 §8.6 lets a recipient take it)
        ([b" 5 "], True),
        ([b"5", b"6"], False),
        ([b"-5"], False),
        ([b"five"], False),
    ],
)
def test_content_length_values(
    serve: Any, caplog: pytest.LogCaptureFixture, lengths: list[bytes], fine: bool
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await start(send, headers=[(b"content-length", value) for value in lengths])
        await send({"type": "http.response.body", "body": b"hello"})

    url = serve(mount(app))
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        answer = raw_request(url, GET)
        if not fine:
            wait_for(lambda: error_lines(caplog), "the log line")
    if fine:
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\nhello")
        assert not error_lines(caplog)
    else:
        assert answer.startswith(b"HTTP/1.1 500 Internal Server Error")
        assert "malformed header" in error_lines(caplog)[0].getMessage()


def test_a_start_timeout_changed_while_serving_applies(
    serve: Any, caplog: pytest.LogCaptureFixture, client: httpx.Client
) -> None:
    release = threading.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["query_string"] == b"wait":
            while not release.is_set():
                await asyncio.sleep(0.005)
        await start(send)
        await send({"type": "http.response.body", "body": b"late"})

    root = mount(app, startTimeout=60)
    resource = root.children[b"app"]
    url = serve(root)
    assert client.get(url + "/app").text == "late"  # served (and timed) with 60 s
    resource.startTimeout = 0.2
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        response = client.get(url + "/app?wait")
    release.set()
    assert response.status_code == 500
    (line,) = error_lines(caplog)
    assert "did not start its response within 0.2 s" in line.getMessage()


def test_an_application_may_return_any_awaitable(serve: Any, client: httpx.Client) -> None:
    """A callable returning a future (or any awaitable) rather than a coroutine is served."""

    async def real(scope: Scope, receive: Any, send: Any) -> None:
        await start(send)
        await send({"type": "http.response.body", "body": b"via a future"})

    def app(scope: Scope, receive: Any, send: Any) -> Any:
        return asyncio.ensure_future(real(scope, receive, send))

    assert client.get(serve(mount(app)) + "/app").text == "via a future"


def test_http2_streams_get_the_http_scope_and_both_kinds_of_response(serve: Any) -> None:
    """Over HTTP/2 (cleartext, prior knowledge) a whole response and a streamed one each go
    out through the stream's request as over HTTP/1.1."""
    versions: list[str] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        versions.append(scope["http_version"])
        await start(send)
        if scope["path"] == "/app/stream":
            await send({"type": "http.response.body", "body": b"a", "more_body": True})
            await asyncio.sleep(0.01)  # the head and the first part are out by now
            await send({"type": "http.response.body", "body": b"b", "more_body": True})
        await send({"type": "http.response.body", "body": b"end"})

    url = serve(mount(app))
    with httpx.Client(base_url=url, http1=False, http2=True, timeout=DEADLINE) as client:
        whole = client.get("/app")
        streamed = client.get("/app/stream")
    assert whole.http_version == streamed.http_version == "HTTP/2"
    assert whole.text == "end" and streamed.text == "abend"
    assert versions == ["2", "2"]


def test_messages_as_other_mappings_and_fields_as_lists_are_served(serve: Any) -> None:
    """ASGI asks for dicts and pairs, but a mapping of another class and two-item lists are
    read as well as the dicts and tuples that frameworks send."""

    class Message(UserDict[str, Any]):
        pass

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        headers = [[b"content-type", b"text/plain"], [b"content-length", b"2"], (b"x-a", b"1")]
        await send(Message(type="http.response.start", status=200, headers=headers))
        await send(Message(type="http.response.body", body=b"ok"))

    answer = raw_request(serve(mount(app)), GET)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b"ok"
    assert b"\r\nContent-Type: text/plain\r\n" in head and b"\r\nX-A: 1" in head


# -- what the cycle sets on treadle's own request, and what it still asks of others ------------


class CountingRequest(Request):
    """A request class overriding what the cycle otherwise does on the request's fields."""

    calls: list[str] = []

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.calls.append("registerProducer")
        super().registerProducer(producer, streaming)

    def setResponseCode(self, code: int, message: Any = None) -> None:
        self.calls.append(f"setResponseCode {code}")
        super().setResponseCode(code, message)

    def unregisterProducer(self) -> None:
        self.calls.append("unregisterProducer")
        super().unregisterProducer()


async def answers_201(scope: Scope, receive: Any, send: Any) -> None:
    await start(send, 201)
    await send({"type": "http.response.body", "body": b"made"})


def test_a_request_class_overriding_the_response_methods_is_called(serve: Any) -> None:
    CountingRequest.calls = []
    url = serve(Site(mount(answers_201), requestFactory=CountingRequest))
    answer = raw_request(url, GET)
    assert answer.startswith(b"HTTP/1.1 201 Created") and answer.endswith(b"made")
    assert CountingRequest.calls == [
        "registerProducer",
        "setResponseCode 201",
        "unregisterProducer",
    ]


def test_a_channel_class_registering_producers_its_own_way_is_called(serve: Any) -> None:
    from treadle.web.http import HTTPChannel

    registered: list[Any] = []

    class Channel(HTTPChannel):
        def registerProducer(self, producer: Any, streaming: bool) -> None:
            registered.append((type(producer).__name__, streaming))
            super().registerProducer(producer, streaming)

    site = Site(mount(answers_201))
    site.protocol = Channel
    answer = raw_request(serve(site), GET)
    assert answer.startswith(b"HTTP/1.1 201 Created") and answer.endswith(b"made")
    assert registered == [("HTTPCycle", True)]


def test_the_scope_of_requests_for_the_root(serve: Any, client: httpx.Client) -> None:
    seen: list[Scope] = []
    url = serve(ASGIResource(scope_echo(seen), lifespan="off"))
    for target in ("/", "/?a=1", "/x%20y?q", "/%C3%A9/"):
        assert client.get(url + target).status_code == 200
    assert [(s["root_path"], s["path"], s["raw_path"], s["query_string"]) for s in seen] == [
        ("", "/", b"/", b""),
        ("", "/", b"/", b"a=1"),
        ("", "/x y", b"/x%20y", b"q"),
        ("", "/\u00e9/", b"/%C3%A9/", b""),
    ]
    # Every request has a scope of its own, nothing shared but what cannot change.
    first, second = seen[0], seen[1]
    for key in ("asgi", "headers", "state", "extensions"):
        assert first[key] is not second[key]


class OwnFinish(Resource):
    """Wraps an ASGI resource, giving each request instance its own finish and _write_whole
    first (as the shared-session store does to store a session before the response ends)."""

    def __init__(self, inner: ASGIResource) -> None:
        super().__init__()
        self.inner = inner
        self.isLeaf = True
        self.calls: list[str] = []

    def render(self, request: Request) -> Any:
        stock_finish, stock_whole = request.finish, request._write_whole

        def finish() -> None:
            self.calls.append("finish")
            del request.finish
            stock_finish()

        def write_whole(body: bytes) -> None:
            self.calls.append(f"_write_whole {body!r}")
            del request._write_whole
            stock_whole(body)

        request.finish = finish  # type: ignore[method-assign]
        request._write_whole = write_whole  # type: ignore[method-assign]
        return self.inner.render(request)


def test_a_request_instance_with_its_own_finish_is_called(serve: Any) -> None:
    wrapper = OwnFinish(ASGIResource(answers_201, lifespan="off"))
    answer = raw_request(serve(Site(wrapper)), GET.replace(b"/app", b"/"))
    assert answer.startswith(b"HTTP/1.1 201 Created") and answer.endswith(b"made")
    assert wrapper.calls == ["_write_whole b'made'"]


def test_one_resource_serves_on_one_loop_then_another() -> None:
    """The calls of a request run on the loop serving its connection, also when the last
    request of the same resource came on another loop (a server started again, a test)."""
    loops: list[asyncio.AbstractEventLoop] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        loops.append(asyncio.get_running_loop())
        await start(send)
        await send({"type": "http.response.body", "body": b"ok"})

    site = Site(mount(app))

    async def one_request() -> None:
        channel = site.buildProtocol(None)
        transport = StringTransport()
        channel.connection_made(transport)  # type: ignore[arg-type]
        channel.data_received(GET)
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while not transport.value().endswith(b"\r\n\r\nok"):
            assert asyncio.get_running_loop().time() < deadline, transport.value()
            await asyncio.sleep(0.001)
        assert loops[-1] is asyncio.get_running_loop()

    for _ in range(2):
        asyncio.run(one_request())
    assert len(loops) == 2 and loops[0] is not loops[1]
