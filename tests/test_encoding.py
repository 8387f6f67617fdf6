"""gzip content coding: the Accept-Encoding decision, and compressed bodies over real sockets."""

from __future__ import annotations

import asyncio
import gc
import gzip
import http.client
import socket
import time
import weakref
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from treadle.internet import reactor
from treadle.internet.defer import Deferred
from treadle.web._encoding import (
    EncodingResourceWrapper,
    GzipEncoderFactory,
    accepts_coding,
)
from treadle.web.resource import Resource
from treadle.web.server import NOT_DONE_YET, Request
from treadle.web.wsgi import WSGIResource

from .conftest import raw_request

TEXT = b"".join(b"line %d of a rather repetitive body\n" % i for i in range(2000))


# -- the Accept-Encoding decision (no I/O) ---------------------------------------------------


@pytest.mark.parametrize(
    ("values", "accepted"),
    [
        ([], False),
        ([b"identity"], False),
        ([b"gzip"], True),
        ([b"GZip"], True),
        ([b"x-gzip"], True),
        ([b"deflate, gzip;q=0.5"], True),
        ([b"deflate", b"gzip"], True),
        ([b"gzip;q=0"], False),
        ([b"gzip; q=0.000"], False),
        ([b"gzip;q=0.001"], True),
        ([b"gzip;q=oops"], False),
        ([b"gzip;q=2"], False),
        ([b"*"], True),
        ([b"*;q=0"], False),
        ([b"gzip;q=0, *"], False),
        ([b"*;q=0, gzip"], True),
        ([b"br, zstd"], False),
        ([b"gzipx, xgzip"], False),
        ([b" , ,gzip , "], True),
    ],
)
def test_accepts_coding(values: list[bytes], accepted: bool) -> None:
    assert accepts_coding(values, b"gzip") is accepted


# -- resources -------------------------------------------------------------------------------


class Whole(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain")
        return TEXT


class Streamed(Resource):
    """Writes in pieces, the second half from a later loop iteration."""

    isLeaf = True

    def render_GET(self, request: Request) -> object:
        request.setHeader(b"content-length", b"%d" % len(TEXT))  # wrong once compressed
        half = len(TEXT) // 2
        for i in range(0, half, 1000):
            request.write(TEXT[i : min(i + 1000, half)])
        reactor.callLater(0.01, self._rest, request, half)
        return NOT_DONE_YET

    def _rest(self, request: Request, half: int) -> None:
        request.write(TEXT[half:].decode())  # a str, as treadle allows
        request.finish()


class AsyncBody(Resource):
    isLeaf = True

    async def render_GET(self, request: Request) -> bytes:
        await asyncio.sleep(0.01)
        return TEXT


class DeferredBody(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        reactor.callLater(0.01, d.callback, TEXT)
        return d


class Status(Resource):
    """Answers with the status (and optional Content-Encoding) given in the query."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        code = int(request.args.get(b"code", [b"200"])[0])
        request.setResponseCode(code)
        for coding in request.args.get(b"coding", []):
            request.setHeader(b"content-encoding", coding)
        if code == 206:
            request.setHeader(b"content-range", b"bytes 0-9/100")
        return b"" if code in (204, 304) else TEXT


class Held(Resource):
    """Writes a first part at once and the rest when the test says so."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Request] = []

    def render_GET(self, request: Request) -> object:
        request.write(b"first part;")
        self.requests.append(request)
        return NOT_DONE_YET


class Empty(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> object:
        request.finish()
        return NOT_DONE_YET


def wrapped(resource: Resource, **factory: Any) -> EncodingResourceWrapper:
    return EncodingResourceWrapper(resource, [GzipEncoderFactory(**factory)])


def site_tree() -> Resource:
    root = Resource()
    for name, child in [
        (b"whole", Whole()),
        (b"streamed", Streamed()),
        (b"async", AsyncBody()),
        (b"deferred", DeferredBody()),
        (b"status", Status()),
        (b"empty", Empty()),
    ]:
        root.putChild(name, wrapped(child))
    root.putChild(b"fast", wrapped(Whole(), compressLevel=1))
    root.putChild(b"twice", wrapped(wrapped(Whole())))  # type: ignore[arg-type]
    root.putChild(b"plain", Whole())
    return root


def fetch(url: str, path: str, **headers: str) -> tuple[http.client.HTTPResponse, bytes]:
    """GET with http.client, which leaves the content coding alone (bytes as sent)."""
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(
            "GET", path, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


# -- over sockets ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/whole", "/streamed", "/async", "/deferred", "/fast"])
def test_body_is_gzipped_for_clients_that_accept_it(serve: Any, path: str) -> None:
    url = serve(site_tree())
    response, body = fetch(url, path, Accept_Encoding="gzip")
    assert response.status == 200
    assert response.getheader("content-encoding") == "gzip"
    assert response.getheader("vary") == "Accept-Encoding"
    assert len(body) < len(TEXT) // 5
    assert gzip.decompress(body) == TEXT
    if path == "/streamed":
        assert response.getheader("content-length") is None  # the app's length was dropped
        assert response.getheader("transfer-encoding") == "chunked"
    else:
        assert response.getheader("content-length") == str(len(body))


def test_httpx_decodes_what_we_send(serve: Any) -> None:
    url = serve(site_tree())
    for path in ("/whole", "/streamed", "/async"):
        response = httpx.get(url + path, headers={"Accept-Encoding": "gzip"}, timeout=10)
        assert response.headers["content-encoding"] == "gzip"
        assert response.content == TEXT


@pytest.mark.parametrize("accept", [None, "identity", "gzip;q=0", "br", "*;q=0"])
def test_identity_when_gzip_is_not_accepted(serve: Any, accept: str | None) -> None:
    url = serve(site_tree())
    headers = {} if accept is None else {"Accept_Encoding": accept}
    for path in ("/whole", "/streamed"):
        response, body = fetch(url, path, **headers)
        assert response.getheader("content-encoding") is None
        assert response.getheader("vary") == "Accept-Encoding"
        assert body == TEXT


def test_unwrapped_resources_get_no_vary(serve: Any) -> None:
    url = serve(site_tree())
    response, body = fetch(url, "/plain", Accept_Encoding="gzip")
    assert response.getheader("vary") is None
    assert response.getheader("content-encoding") is None
    assert body == TEXT


def test_head_is_not_compressed(serve: Any) -> None:
    url = serve(site_tree())
    answer = raw_request(
        url,
        b"HEAD /whole HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-encoding" not in head.lower()
    assert b"Vary: Accept-Encoding" in head
    assert b"Content-Length: %d" % len(TEXT) in head
    assert body == b""


@pytest.mark.parametrize(
    ("query", "code", "coding"),
    [
        ("code=204", 204, None),
        ("code=304", 304, None),
        ("code=206", 206, None),
        ("code=404", 404, "gzip"),
        ("coding=br", 200, "br"),
    ],
)
def test_statuses_and_codings_left_alone(
    serve: Any, query: str, code: int, coding: str | None
) -> None:
    url = serve(site_tree())
    response, body = fetch(url, "/status?" + query, Accept_Encoding="gzip")
    assert response.status == code
    assert response.getheader("content-encoding") == coding
    if coding == "gzip":
        assert gzip.decompress(body) == TEXT
    elif code not in (204, 304):
        assert body == TEXT


def test_empty_and_already_compressed_extensions_stay_identity(serve: Any) -> None:
    root = Resource()
    root.putChild(b"empty", wrapped(Empty()))
    root.putChild(b"pics", wrapped(Whole()))
    url = serve(root)
    response, body = fetch(url, "/empty", Accept_Encoding="gzip")
    assert (response.getheader("content-encoding"), body) == (None, b"")
    assert response.getheader("vary") == "Accept-Encoding"
    response, body = fetch(url, "/pics/photo.PNG", Accept_Encoding="gzip")
    assert (response.getheader("content-encoding"), body) == (None, TEXT)
    response, body = fetch(url, "/pics/page.html", Accept_Encoding="gzip")
    assert response.getheader("content-encoding") == "gzip"


def test_nested_wrappers_compress_once(serve: Any) -> None:
    url = serve(site_tree())
    response, body = fetch(url, "/twice", Accept_Encoding="gzip")
    assert response.getheader("content-encoding") == "gzip"
    assert gzip.decompress(body) == TEXT


def test_each_write_reaches_the_client_decodable(serve: Any, server: Any) -> None:
    """Writes are flushed: a held streaming response is readable before it finishes."""
    held = Held()
    url = serve(wrapped(held))
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert b"Content-Encoding: gzip" in head
        assert b"Transfer-Encoding: chunked" in head
        # The first write alone must decode (it was sync-flushed, not held inside zlib).
        while (
            zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(_dechunk_available(rest))
            != b"first part;"
        ):
            rest += sock.recv(65536)

        def finish() -> None:
            request = held.requests[0]
            request.write(b" second part")
            request.finish()

        server.call(finish)
        while not rest.endswith(b"0\r\n\r\n"):
            rest += sock.recv(65536)
    whole = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert whole.decompress(_dechunk_available(rest)) == b"first part; second part"
    assert whole.eof


def _dechunk_available(data: bytes) -> bytes:
    """Return the payload of the complete chunks at the start of ``data``."""
    out = b""
    while True:
        line, sep, rest = data.partition(b"\r\n")
        if not sep:
            return out
        size = int(line, 16)
        if size == 0 or len(rest) < size + 2:
            return out
        out += rest[:size]
        data = rest[size + 2 :]


def test_keep_alive_connection_carries_compressed_responses(serve: Any) -> None:
    url = serve(site_tree())
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        for path in ("/streamed", "/whole", "/async", "/streamed"):
            connection.request("GET", path, headers={"Accept-Encoding": "gzip"})
            response = connection.getresponse()
            assert gzip.decompress(response.read()) == TEXT
        connection.request("POST", "/whole", headers={"Accept-Encoding": "gzip"})
        response = connection.getresponse()
        assert response.status == 405
        assert response.getheader("vary") == "Accept-Encoding"
        assert b"Method Not Allowed" in response.read()
    finally:
        connection.close()


def test_http10_client_gets_a_close_delimited_gzip_body(serve: Any) -> None:
    url = serve(site_tree())
    answer = raw_request(url, b"GET /streamed HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Content-Encoding: gzip" in head
    assert gzip.decompress(body) == TEXT


def test_wrapper_passes_children_and_leafness_through() -> None:
    inner = Resource()
    child = Whole()
    wrapper = EncodingResourceWrapper(inner, [GzipEncoderFactory()])
    wrapper.putChild(b"c", child)
    assert inner.children[b"c"] is child
    assert wrapper.isLeaf is False
    wrapper.isLeaf = True
    assert inner.isLeaf is True
    assert wrapper.getChildWithDefault(b"c", None) is child  # type: ignore[arg-type]


def test_wsgi_application_under_gzip(serve: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        for i in range(0, len(TEXT), 4096):
            yield TEXT[i : i + 4096]

    def whole_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [TEXT]

    with ThreadPoolExecutor(2) as pool:
        root = Resource()
        root.putChild(b"stream", wrapped(WSGIResource(reactor, pool, app)))  # type: ignore[arg-type]
        root.putChild(b"list", wrapped(WSGIResource(reactor, pool, whole_app)))  # type: ignore[arg-type]
        url = serve(root)
        for path in ("/stream", "/list"):
            response, body = fetch(url, path, Accept_Encoding="gzip")
            assert response.getheader("content-encoding") == "gzip"
            # Never the application's length; a whole compressed body may get its own.
            length = response.getheader("content-length")
            assert length is None or int(length) == len(body)
            assert gzip.decompress(body) == TEXT


class Recorded(Resource):
    """Finishes at once, or holds the request until the client leaves; remembers requests."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: weakref.WeakSet[Request] = weakref.WeakSet()

    def render_GET(self, request: Request) -> object:
        self.requests.add(request)
        request.write(TEXT[:100])
        if not request.args.get(b"hold"):
            request.finish()
        return NOT_DONE_YET


def test_encoded_requests_are_freed_without_the_garbage_collector(serve: Any, server: Any) -> None:
    resource = Recorded()
    url = serve(wrapped(resource))
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    gc.collect()
    gc.disable()  # a reference cycle would now keep a request (and its compressor) alive
    try:
        for query in (b"", b"?hold=1"):
            with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
                sock.sendall(
                    b"GET /%s HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n" % query
                )
                assert b"Content-Encoding: gzip" in sock.recv(65536)
        deadline = time.monotonic() + 5
        while server.call(lambda: len(resource.requests)):
            assert time.monotonic() < deadline, "a request was kept alive by a cycle"
            time.sleep(0.01)
    finally:
        gc.enable()


def test_gzip_over_a_large_static_file(serve: Any, tmp_path: Path) -> None:
    from treadle.web.static import File

    body = bytes(range(256)) * 1024  # 256 KiB: past the one-write size, sent in a task
    (tmp_path / "big.txt").write_bytes(body)
    root = Resource()
    root.putChild(
        b"big.txt",
        EncodingResourceWrapper(File(str(tmp_path / "big.txt")), [GzipEncoderFactory()]),
    )
    url = serve(root)
    response = httpx.get(url + "/big.txt", headers={"accept-encoding": "gzip"}, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.content == body


def test_the_gzip_factory_and_encoder_declare_twisteds_interfaces() -> None:
    # Twisted's (private) interface names, which programs writing their own encoders use.
    from zope.interface.verify import verifyObject

    from treadle.web import iweb
    from treadle.web.test.requesthelper import DummyChannel

    request = Request(DummyChannel())
    request.requestHeaders.setRawHeaders(b"accept-encoding", [b"gzip, deflate"])
    factory = GzipEncoderFactory()
    assert verifyObject(iweb._IRequestEncoderFactory, factory)
    assert verifyObject(iweb._IRequestEncoder, factory.encoderForRequest(request))
