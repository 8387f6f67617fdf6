"""Redirects, DeferredResource, the request helpers and the Deferred idioms, over real sockets."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from treadle.internet import reactor
from treadle.internet.defer import (
    Deferred,
    TimeoutError,
    gatherResults,
    inlineCallbacks,
    maybeDeferred,
    succeed,
)
from treadle.internet.task import deferLater
from treadle.python.failure import Failure
from treadle.web.resource import IResource, NoResource, Resource
from treadle.web.server import CACHED, NOT_DONE_YET, Request, Site
from treadle.web.util import ChildRedirector, DeferredResource, ParentRedirect, Redirect, redirectTo

from .conftest import ServerThread, host_port, raw_request, wait_for


def tree(**children: IResource) -> Resource:
    root = Resource()
    for name, child in children.items():
        root.putChild(name.encode(), child)
    return root


class Text(Resource):
    isLeaf = True

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def render_GET(self, request: Request) -> bytes:
        return f"{self.text} {b'/'.join(request.postpath).decode()}".strip().encode()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


# -- redirects -----------------------------------------------------------------------------------


class RedirectTo(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return redirectTo(request.args[b"to"][0], request)


def test_redirectTo_answers_302_with_a_link(
    serve: Callable[..., str], client: httpx.Client
) -> None:
    url = serve(RedirectTo())
    response = client.get(url, params={"to": "/there?x=1&y=2"})
    assert response.status_code == 302
    assert response.headers["location"] == "/there?x=1&y=2"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    # Twisted's page, byte for byte (the URL escaped for the attributes it is in).
    assert response.content == (
        b"\n<html>\n    <head>\n"
        b'        <meta http-equiv="refresh" content="0;URL=/there?x=1&amp;y=2">\n'
        b'    </head>\n    <body bgcolor="#FFFFFF" text="#000000">\n'
        b'    <a href="/there?x=1&amp;y=2">click here</a>\n    </body>\n</html>\n'
    )


def test_redirectTo_accepts_str_and_refuses_control_characters() -> None:
    class Fake:
        def __init__(self) -> None:
            self.headers: dict[bytes, Any] = {}

        def setHeader(self, name: bytes, value: bytes) -> None:
            self.headers[name] = value

        def redirect(self, url: bytes) -> None:
            self.headers[b"location"] = url

    fake: Any = Fake()
    assert b"/caf\xc3\xa9" in redirectTo("/café", fake)
    assert fake.headers[b"location"] == "/café".encode()
    for hostile in (b"/x\r\nSet-Cookie: a=1", b"/x\nLocation: evil", b"/x\rfoo", b"/\x00", "/\n"):
        with pytest.raises(ValueError):
            redirectTo(hostile, fake)
        with pytest.raises(ValueError):
            Redirect(hostile)
    with pytest.raises(TypeError):
        redirectTo(42, fake)  # type: ignore[arg-type]


def test_a_header_injection_attempt_becomes_a_500_not_a_header(
    serve: Callable[..., str], client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    url = serve(RedirectTo())
    with caplog.at_level(logging.CRITICAL, logger="treadle.error"):
        response = client.get(url, params={"to": "/x\r\nSet-Cookie: stolen=1"})
    assert response.status_code == 500
    assert "set-cookie" not in response.headers


def test_redirect_resource_for_every_path_and_method(
    serve: Callable[..., str], client: httpx.Client
) -> None:
    url = serve(tree(old=Redirect(b"https://example.com/new")))
    for path in ("/old", "/old/", "/old/a/b"):
        response = client.get(url + path)
        assert response.status_code == 302
        assert response.headers["location"] == "https://example.com/new"
    assert client.post(url + "/old").status_code == 302


def test_child_redirector_moves_a_tree(serve: Callable[..., str], client: httpx.Client) -> None:
    url = serve(tree(old=ChildRedirector(b"http://new.example")))
    assert client.get(url + "/old").headers["location"] == "http://new.example"
    assert client.get(url + "/old/a/b").headers["location"] == "http://new.example/a/b"
    # The decoded segment is quoted again: a %0D%0A cannot reach the header.
    assert client.get(url + "/old/a%20b").headers["location"] == "http://new.example/a%20b"
    assert client.get(url + "/old/x%0D%0Ay").headers["location"] == "http://new.example/x%0D%0Ay"
    with pytest.raises(ValueError, match="forever"):
        ChildRedirector(b"below/me")


def test_parent_redirect(serve: Callable[..., str], client: httpx.Client) -> None:
    inner = tree(up=ParentRedirect())
    url = serve(tree(up=ParentRedirect(), a=inner))
    assert client.get(url + "/up").headers["location"] == url + "/"
    assert client.get(url + "/a/up").headers["location"] == url + "/a/"
    assert client.get(url + "/a/up/deeper").headers["location"] == url + "/a/"


# -- DeferredResource ----------------------------------------------------------------------------


def test_deferred_resource_answers_waiting_and_later_requests(
    serve: Callable[..., str], server: ServerThread, client: httpx.Client
) -> None:
    d: Deferred[Any] = Deferred()
    pending = DeferredResource(d)
    url = serve(tree(later=pending))
    with ThreadPoolExecutor(2) as pool:
        early = [pool.submit(httpx.get, url + path, timeout=10) for path in ("/later", "/later/x")]
        wait_for(lambda: server.call(lambda: len(pending._waiters)) == 2, what="2 waiting requests")
        assert not any(f.done() for f in early)
        server.call(d.callback, Text("the resource"))
        assert early[0].result().text == "the resource"
        assert early[1].result().text == "the resource x"  # the rest of the path goes on
    assert client.get(url + "/later/y/z").text == "the resource y/z"


def test_deferred_resource_walks_on_from_the_resource_it_gets(
    serve: Callable[..., str], client: httpx.Client
) -> None:
    child = tree(x=Text("x below"))
    url = serve(tree(later=DeferredResource(succeed(child))))
    assert client.get(url + "/later/x/1").text == "x below 1"
    assert client.get(url + "/later/nope").status_code == 404


def test_deferred_resource_failure_is_a_500(
    serve: Callable[..., str], server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    d: Deferred[Any] = Deferred()
    pending = DeferredResource(d)
    url = serve(pending)
    with caplog.at_level(logging.CRITICAL, logger="treadle.error"), ThreadPoolExecutor(1) as pool:
        early = pool.submit(httpx.get, url, timeout=10)
        wait_for(lambda: server.call(lambda: len(pending._waiters)) == 1, what="1 waiting request")
        server.call(d.errback, RuntimeError("no resource today"))
        assert early.result().status_code == 500
        late = httpx.get(url, timeout=10)
    assert late.status_code == 500 and "Processing Failed" in late.text
    assert "no resource today" not in late.text


def test_deferred_resource_forgets_a_client_that_left(
    serve: Callable[..., str], server: ServerThread, client: httpx.Client
) -> None:
    d: Deferred[Any] = Deferred()
    pending = DeferredResource(d)
    url = serve(pending)
    with socket.create_connection(host_port(url), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: server.call(lambda: len(pending._waiters)) == 1, what="1 waiting request")
    wait_for(
        lambda: server.call(lambda: len(pending._waiters)) == 0, what="the waiter to be forgotten"
    )
    server.call(d.callback, Text("fine"))
    assert client.get(url).text == "fine"


# -- conditional requests ------------------------------------------------------------------------

WHEN = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT
WHEN_TEXT = "Sun, 06 Nov 1994 08:49:37 GMT"


class LastModified(Resource):
    isLeaf = True

    def render(self, request: Request) -> bytes:
        # A fraction rounds up, and the latest of several times wins (the second call
        # compares against WHEN too).
        first = request.setLastModified(WHEN - 0.5)
        if request.setLastModified(WHEN - 100) is CACHED:
            assert first is CACHED
            return CACHED
        assert first is None
        return b"fresh"


class Tagged(Resource):
    isLeaf = True

    def __init__(self, tag: bytes) -> None:
        super().__init__()
        self.tag = tag

    def render(self, request: Request) -> bytes:
        if request.setETag(self.tag) is CACHED:
            return CACHED
        return b"fresh"


def test_last_modified_and_if_modified_since(
    serve: Callable[..., str], client: httpx.Client
) -> None:
    url = serve(LastModified())
    plain = client.get(url)
    assert plain.text == "fresh" and plain.headers["last-modified"] == WHEN_TEXT

    def ims(value: str, method: str = "GET", **headers: str) -> httpx.Response:
        return client.request(method, url, headers={"if-modified-since": value, **headers})

    cached = ims(WHEN_TEXT)
    assert cached.status_code == 304 and cached.content == b""
    assert cached.headers["last-modified"] == WHEN_TEXT
    assert ims("Sun, 06 Nov 1994 08:49:38 GMT").status_code == 304
    assert ims("Sunday, 06-Nov-94 08:49:37 GMT").status_code == 304  # RFC 850 form
    assert ims(WHEN_TEXT + "; length=5").status_code == 304  # old browsers' suffix
    assert ims(WHEN_TEXT, "HEAD").status_code == 304
    assert ims("Sun, 06 Nov 1994 08:49:36 GMT").text == "fresh"
    assert ims("not a date").text == "fresh"
    # Only for GET and HEAD, and If-None-Match takes precedence (RFC 9110 §13.1.3).
    assert ims(WHEN_TEXT, "POST").text == "fresh"
    assert ims(WHEN_TEXT, **{"if-none-match": '"other"'}).text == "fresh"


def test_etag_and_if_none_match(serve: Callable[..., str], client: httpx.Client) -> None:
    url = serve(tree(strong=Tagged(b'"v1"'), weak=Tagged(b'W/"v1"')))

    def request(path: str, method: str = "GET", **headers: str) -> httpx.Response:
        return client.request(method, url + path, headers=headers)

    plain = request("/strong")
    assert plain.text == "fresh" and plain.headers["etag"] == '"v1"'
    for tags in ('"v1"', '"x", "v1"', '"x","v1"', 'W/"v1"', "*"):
        cached = request("/strong", **{"if-none-match": tags})
        assert cached.status_code == 304, tags
        assert cached.content == b"" and cached.headers["etag"] == '"v1"'
    assert request("/weak", **{"if-none-match": '"v1"'}).status_code == 304
    assert request("/strong", **{"if-none-match": '"v2"'}).text == "fresh"
    # Other methods: the precondition fails instead.
    assert request("/strong", "PUT", **{"if-none-match": '"v1"'}).status_code == 412
    assert request("/strong", "PUT", **{"if-none-match": '"v2"'}).text == "fresh"


def test_if_match(serve: Callable[..., str], client: httpx.Client) -> None:
    url = serve(tree(strong=Tagged(b'"v1"'), weak=Tagged(b'W/"v1"')))

    def put(path: str, tags: str) -> httpx.Response:
        return client.put(url + path, headers={"if-match": tags})

    assert put("/strong", '"v1"').text == "fresh"
    assert put("/strong", '"v0", "v1"').text == "fresh"
    assert put("/strong", "*").text == "fresh"
    assert put("/strong", '"v0"').status_code == 412
    assert put("/strong", 'W/"v1"').status_code == 412  # If-Match compares strongly
    assert put("/weak", 'W/"v1"').status_code == 412


# -- links and credentials -----------------------------------------------------------------------


class Links(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return request.childLink(b"c") + b" " + request.sibLink(b"s")


def test_child_and_sibling_links(serve: Callable[..., str], client: httpx.Client) -> None:
    url = serve(tree(dir=Links()))
    assert client.get(url + "/dir").text == "dir/c s"
    assert client.get(url + "/dir/").text == "c ../s"
    assert client.get(url + "/dir/x/y").text == "../c ../../s"
    for path in ("/dir", "/dir/", "/dir/x/y"):
        child, sibling = client.get(url + path).text.split()
        base = httpx.URL(url + path)
        assert base.join(child).path == "/dir/c"
        assert base.join(sibling).path == "/s"


class Credentials(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return repr((request.getUser(), request.getPassword())).encode()


def test_basic_credentials(serve: Callable[..., str], client: httpx.Client) -> None:
    url = serve(Credentials())
    assert client.get(url, auth=("alice", "pass:word")).text == repr((b"alice", b"pass:word"))
    assert client.get(url).text == repr((b"", b""))
    for header in ("Basic !!!", "Bearer YWxpY2U6cHc=", "Basic YWxpY2U=", "Basic"):
        assert client.get(url, headers={"authorization": header}).text == repr((b"", b""))
    assert client.get(url, headers={"authorization": "basic YTpi"}).text == repr((b"a", b"b"))


# -- the Deferred idioms of the tutorials, in a resource -----------------------------------------


class DelayedWrite(Resource):
    """The tutorial's pattern: NOT_DONE_YET, then write and finish from a Deferred."""

    isLeaf = True

    def render_GET(self, request: Request) -> object:
        d = deferLater(reactor, 0.01, lambda: b"written later")
        d.addCallback(request.write)
        d.addCallback(lambda _: request.finish())
        return NOT_DONE_YET


class Inline(Resource):
    isLeaf = True

    @inlineCallbacks
    def render_GET(self, request: Request) -> Generator[Any, Any, bytes]:
        first = yield deferLater(reactor, 0.01, lambda: b"inline")
        second = yield asyncio.sleep(0.01, result=b"callbacks")  # an awaitable yields too
        return first + b" " + second


class Gathered(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> Deferred[Any]:
        parts = [
            deferLater(reactor, 0.02, lambda: b"a"),
            succeed(b"b"),
            deferLater(reactor, 0.01, lambda: b"c"),
        ]
        return gatherResults(parts).addCallback(b"".join)


class TimedOut(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> Deferred[Any]:
        never: Deferred[bytes] = Deferred()
        never.addTimeout(0.05, reactor)

        def gateway_timeout(failure: Failure) -> bytes:
            failure.trap(TimeoutError)
            request.setResponseCode(504)
            return b"upstream timed out"

        return never.addErrback(gateway_timeout)


class MaybeDeferred(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> Deferred[Any]:
        def compute() -> bytes:
            if request.args.get(b"fail"):
                raise ValueError("maybe not")
            return b"computed"

        return maybeDeferred(compute)


def test_deferred_idioms_in_render(
    serve: Callable[..., str], client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    url = serve(
        tree(
            write=DelayedWrite(),
            inline=Inline(),
            gather=Gathered(),
            timeout=TimedOut(),
            maybe=MaybeDeferred(),
        )
    )
    assert client.get(url + "/write").text == "written later"
    assert client.get(url + "/inline").text == "inline callbacks"
    assert client.get(url + "/gather").text == "abc"
    timed_out = client.get(url + "/timeout")
    assert (timed_out.status_code, timed_out.text) == (504, "upstream timed out")
    assert client.get(url + "/maybe").text == "computed"
    with caplog.at_level(logging.CRITICAL, logger="treadle.error"):
        failed = client.get(url + "/maybe", params={"fail": "1"})
    assert failed.status_code == 500 and "maybe not" not in failed.text


# -- children given as Deferreds or coroutines ---------------------------------------------------


class LazyTree(Resource):
    """Looks its children up asynchronously, the way a database-backed tree would."""

    def __init__(self) -> None:
        super().__init__()
        self.cancelled = threading.Event()

    def getChild(self, path: bytes, request: Request) -> Any:
        name = path.decode()
        if name == "deferred":
            return deferLater(reactor, 0.01, lambda: Text("from a Deferred"))
        if name == "coroutine":
            return self._child_later(Text("from a coroutine"))
        if name == "nested":  # an asynchronous child whose own children are asynchronous
            return self._child_later(LazyTree())
        if name == "missing":
            return succeed(NoResource())
        if name == "broken":
            return deferLater(reactor, 0.01, self._fail)
        if name == "slow":
            return Deferred(lambda _: self.cancelled.set())
        if name == "asyncrender":
            return succeed(AsyncRender())
        return Text("sync " + name)

    async def _child_later(self, child: IResource) -> IResource:
        await asyncio.sleep(0.01)
        return child

    def _fail(self) -> IResource:
        raise LookupError("database down")


class AsyncRender(Resource):
    isLeaf = True

    async def render_GET(self, request: Request) -> bytes:
        await asyncio.sleep(0.01)
        return b"async render after async child"


def test_children_from_deferreds_and_coroutines(
    serve: Callable[..., str], client: httpx.Client
) -> None:
    url = serve(LazyTree())
    assert client.get(url + "/deferred").text == "from a Deferred"
    assert client.get(url + "/deferred/rest/of/path").text == "from a Deferred rest/of/path"
    assert client.get(url + "/coroutine").text == "from a coroutine"
    assert client.get(url + "/nested/coroutine/x").text == "from a coroutine x"
    assert client.get(url + "/nested/nested/deferred").text == "from a Deferred"
    assert client.get(url + "/nested/plain").text == "sync plain"
    assert client.get(url + "/asyncrender").text == "async render after async child"
    assert client.head(url + "/deferred").status_code == 200
    missing = client.get(url + "/missing")
    assert missing.status_code == 404 and "No Such Resource" in missing.text
    assert client.post(url + "/deferred").status_code == 405


def test_a_failing_child_lookup_is_a_500(
    serve: Callable[..., str], client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    url = serve(LazyTree())
    with caplog.at_level(logging.ERROR, logger="treadle.error"):
        response = client.get(url + "/broken")
        assert client.get(url + "/deferred").text == "from a Deferred"  # connection still fine
    assert response.status_code == 500 and "database down" not in response.text
    assert any("database down" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_a_pending_child_lookup_is_cancelled_when_the_client_leaves(
    serve: Callable[..., str], client: httpx.Client
) -> None:
    lazy = LazyTree()
    url = serve(lazy)
    raw_request(url, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", timeout=0.2, until_close=False)
    assert lazy.cancelled.wait(10)
    assert client.get(url + "/coroutine").text == "from a coroutine"


def test_site_getResourceFor_returns_a_renderable_stand_in() -> None:
    class FakeRequest:
        def __init__(self, *segments: bytes) -> None:
            self.prepath: list[bytes] = []
            self.postpath = list(segments)

    site = Site(LazyTree())
    request: Any = FakeRequest(b"missing", b"x")
    found = site.getResourceFor(request)
    # The walk stopped at the Deferred child; the stand-in carries on when rendered.
    assert found.isLeaf and not isinstance(found, Resource) and callable(found.render)
    assert request.prepath == [b"missing"] and request.postpath == [b"x"]
    assert found.getChildWithDefault(b"x", request) is found
    synchronous: Any = FakeRequest(b"plain", b"x")
    found = site.getResourceFor(synchronous)
    assert isinstance(found, Text) and synchronous.postpath == [b"x"]


# -- driven by hand, as Twisted programs test their resources ------------------------------------


def test_deferred_resource_hands_the_child_to_request_render() -> None:
    from treadle.web.test.requesthelper import DummyRequest

    child = Text("child")
    request = DummyRequest([])
    rendered: list[Any] = []
    request.render = rendered.append  # type: ignore[method-assign]
    assert DeferredResource(succeed(child)).render(request) is NOT_DONE_YET  # type: ignore[arg-type]
    assert rendered == [child]
    waiting: Deferred[Any] = Deferred()
    assert DeferredResource(waiting).render(request) is NOT_DONE_YET  # type: ignore[arg-type]
    assert rendered == [child]
    waiting.callback(child)
    assert rendered == [child, child]


def test_deferred_resource_failure_goes_to_processingFailed_once() -> None:
    from treadle.web.test.requesthelper import DummyRequest

    request = DummyRequest([])
    finished = request.notifyFinish()
    failure = Failure(RuntimeError("no resource"))
    resource = DeferredResource(_failed(failure))
    assert resource.render(request) is NOT_DONE_YET  # type: ignore[arg-type]
    outcome: list[Any] = []
    finished.addErrback(outcome.append)
    assert outcome == [failure]


def _failed(failure: Failure) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.errback(failure)
    return d


def test_formatFailure_shows_the_traceback_as_ascii_html() -> None:
    from treadle.web.error import FlattenerError
    from treadle.web.util import formatFailure

    def failing_function() -> None:
        raise ValueError("caf\xe9 <closed>")

    try:
        failing_function()
    except ValueError:
        page = formatFailure(Failure())
    assert page.isascii()
    assert b"builtins.ValueError" in page and b"caf&#233; &lt;closed&gt;" in page
    assert b"failing_function" in page and b"&#160;" in page  # indentation kept visible
    with pytest.raises(FlattenerError):
        formatFailure(object())
