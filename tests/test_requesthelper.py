"""treadle.web.test.requesthelper: DummyRequest and DummyChannel, as Twisted users test with them.

Each scenario is one piece of test code, run with Twisted's ``twisted.web.test.requesthelper``
and Twisted's resources, then with treadle's (the import rule): both must see the same.
"""

from __future__ import annotations

import importlib
import types
import warnings
from typing import Any

import pytest

from treadle.internet.address import IPv4Address
from treadle.web.test.requesthelper import DummyChannel, DummyRequest, NullAddress


def _modules(root: str) -> types.SimpleNamespace:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return types.SimpleNamespace(
            requesthelper=importlib.import_module(f"{root}.web.test.requesthelper"),
            resource=importlib.import_module(f"{root}.web.resource"),
            server=importlib.import_module(f"{root}.web.server"),
            static=importlib.import_module(f"{root}.web.static"),
            util=importlib.import_module(f"{root}.web.util"),
        )


BOTH = pytest.mark.parametrize("root", ["treadle", "twisted"])


def _seen(request: Any) -> dict[str, Any]:
    return {
        "written": b"".join(request.written),
        "finished": request.finished,
        "code": request.responseCode,
        "headers": sorted(
            (k.lower(), tuple(v)) for k, v in request.responseHeaders.getAllRawHeaders()
        ),
    }


def _render_data(root: str) -> dict[str, Any]:
    m = _modules(root)
    request = m.requesthelper.DummyRequest([b""])
    request.render(m.static.Data(b"hello", "text/plain"))
    return _seen(request)


def _render_child(root: str) -> dict[str, Any]:
    m = _modules(root)

    class Leaf(m.resource.Resource):  # type: ignore[name-defined,misc]
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            request.setHeader(b"x-postpath", b"/".join(request.postpath))
            return b"leaf at " + b"/".join(request.prepath)

    root_resource = m.resource.Resource()
    root_resource.putChild(b"leaf", Leaf())
    request = m.requesthelper.DummyRequest([b"leaf", b"more"])
    child = m.resource.getChildForRequest(root_resource, request)
    request.render(child)
    return {**_seen(request), "prepath": request.prepath, "postpath": request.postpath}


def _render_redirect(root: str) -> dict[str, Any]:
    m = _modules(root)
    request = m.requesthelper.DummyRequest([b""])
    request.render(m.util.Redirect(b"http://example.com/there"))
    seen = _seen(request)
    seen["written"] = b"http://example.com/there" in seen["written"]
    seen["headers"] = [h for h in seen["headers"] if h[0] == b"location"]
    return seen


def _render_later(root: str) -> list[Any]:
    m = _modules(root)
    pending: list[Any] = []

    class Later(m.resource.Resource):  # type: ignore[name-defined,misc]
        isLeaf = True

        def render_GET(self, request: Any) -> object:
            pending.append(request)
            request.write(b"first ")
            return m.server.NOT_DONE_YET

    request = m.requesthelper.DummyRequest([])
    events: list[Any] = []
    request.notifyFinish().addCallback(lambda result: events.append(("finished", result)))
    request.render(Later())
    events.append(("after render", request.finished, list(request.written)))
    pending[0].write(b"second")
    pending[0].finish()
    events.append(("after finish", request.finished, list(request.written)))
    return events


def _unsupported_method(root: str) -> list[Any]:
    m = _modules(root)

    class OnlyGet(m.resource.Resource):  # type: ignore[name-defined,misc]
        def render_GET(self, request: Any) -> bytes:
            return b"get"

    request = m.requesthelper.DummyRequest([])
    request.method = b"POST"
    with pytest.raises(m.server.UnsupportedMethod) as info:
        request.render(OnlyGet())
    return sorted(info.value.allowedMethods)


def _request_surface(root: str) -> dict[str, Any]:
    m = _modules(root)
    request = m.requesthelper.DummyRequest([b"a"])
    request.requestHeaders.addRawHeader(b"X-Thing", b"1")
    request.addArg(b"q", b"v")
    # (Twisted's setHost() calls an isSecure() its DummyRequest lacks: not compared.)
    request.requestHeaders.addRawHeader(b"host", b"example.com:8080")
    request.redirect(b"/elsewhere")
    return {
        "header": request.getHeader(b"x-thing"),
        "missing": request.getHeader(b"nope"),
        "all": request.getAllHeaders(),
        "args": request.args,
        "method": request.method,
        "uri": request.uri,
        "host header": request.getHeader(b"host"),
        "hostname": request.getRequestHostname(),
        "host": (request.getHost().host, request.getHost().port),
        "client": type(request.getClientAddress()).__name__,
        "code": request.responseCode,
        "location": request.responseHeaders.getRawHeaders(b"location"),
        "session uid": request.getSession().uid,
        "clientproto": request.clientproto,
    }


def _channel(root: str) -> dict[str, Any]:
    m = _modules(root)
    channel = m.requesthelper.DummyChannel()
    channel.writeHeaders(b"HTTP/1.1", b"200", b"OK", [(b"a", b"b")])
    channel.write(b"body")
    channel.loseConnection()
    secure = m.requesthelper.DummyChannel()
    secure.transport = secure.SSL()
    return {
        "written": channel.transport.written.getvalue(),
        "disconnected": channel.transport.disconnected,
        "peer": (channel.getPeer().host, channel.getPeer().port),
        "host": (channel.getHost().host, channel.getHost().port),
        "secure": (channel.isSecure(), secure.isSecure()),
        "has site": channel.site is not None,
    }


def _subclass(root: str) -> dict[str, Any]:
    # Twisted's own access-log tests subclass DummyRequest with class attributes and pass
    # the factory where the postpath goes: both must survive construction.
    m = _modules(root)
    client = m.requesthelper.NullAddress()

    class ForLog(m.requesthelper.DummyRequest):  # type: ignore[name-defined,misc]
        uri = b"/dummy"
        code = 123
        clientproto = b"HTTP/1.0"

    ForLog.client = client
    request = ForLog(object())
    return {
        "client kept": request.client is client,
        "uri": request.uri,
        "code": request.code,
        "sanitized": (m.requesthelper.sanitizedText, m.requesthelper.sanitizedBytes),
        "components": (
            m.requesthelper.textLinearWhitespaceComponents,
            m.requesthelper.bytesLinearWhitespaceComponents,
        ),
    }


SCENARIOS = [
    _subclass,
    _render_data,
    _render_child,
    _render_redirect,
    _render_later,
    _unsupported_method,
    _request_surface,
    _channel,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__.strip("_") for s in SCENARIOS])
def test_same_as_twisted(scenario: Any) -> None:
    assert scenario("treadle") == scenario("twisted")


@BOTH
def test_render_data_writes_and_finishes(root: str) -> None:
    seen = _render_data(root)
    assert seen["written"] == b"hello" and seen["finished"] == 1
    assert (b"content-type", (b"text/plain",)) in seen["headers"]


def test_later_finish_fires_notify_finish() -> None:
    events = _render_later("treadle")
    assert events == [
        ("after render", 0, [b"first "]),
        ("finished", None),
        ("after finish", 1, [b"first ", b"second"]),
    ]


def test_processing_failed_errbacks_notify_finish() -> None:
    request = DummyRequest([])
    failures: list[Any] = []
    request.notifyFinish().addErrback(failures.append)
    request.processingFailed(ValueError("broken"))
    (failure,) = failures
    assert failure.check(ValueError)


def test_write_refuses_text_and_code_after_write() -> None:
    request = DummyRequest([])
    with pytest.raises(TypeError):
        request.write("text")  # type: ignore[arg-type]
    request.write(b"x")
    with pytest.raises(RuntimeError):
        request.setResponseCode(500)
    with pytest.raises(RuntimeError):
        request.getSession()


def test_beyond_twisted_urls_and_security() -> None:
    request = DummyRequest([b"b"])
    request.prepath = [b"a"]
    assert request.path == b"/b"
    assert request.prePathURL() == b"http://dummy/a"
    assert str(request.URLPath()) == "http://dummy/a"
    assert request.childLink(b"c") == b"c"
    assert not request.isSecure()
    request.setHost(b"example.com", 443, ssl=True)
    assert request.isSecure()
    assert request.getHeader(b"host") == b"example.com"
    plain = DummyRequest([])
    plain.setHost(b"example.com", 8080)
    assert plain.getHeader(b"host") == b"example.com:8080"
    request.channel.transport = DummyChannel.SSL()
    request._force_ssl = False
    assert request.isSecure()


def test_client_address() -> None:
    assert isinstance(DummyRequest([]).getClientAddress(), NullAddress)
    client = IPv4Address("TCP", "10.1.2.3", 5)
    request = DummyRequest([], client=client)
    assert request.getClientAddress() is client
    with pytest.warns(DeprecationWarning):
        assert request.getClientIP() == "10.1.2.3"


def test_render_accepts_text() -> None:
    class Text:
        def render(self, request: Any) -> str:
            return "é"

    request = DummyRequest([])
    request.render(Text())
    assert request.written == ["é".encode()]
